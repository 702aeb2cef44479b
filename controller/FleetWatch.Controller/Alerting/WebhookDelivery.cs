using System.Net.Http.Json;
using System.Threading.Channels;
using FleetWatch.Contracts;
using FleetWatch.Controller.Incidents;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Alerting;

/// <summary>
/// Sends incident changes to every configured generic webhook as the Alertmanager v4 payload. One queue and
/// one sender per receiver keep each receiver's order (firing before resolved) and keep a slow receiver from
/// delaying the others. Receiver URLs are secrets and never logged: logs name the receiver.
/// </summary>
public sealed partial class WebhookDelivery : BackgroundService
{
    private readonly IHttpClientFactory _http;
    private readonly AlertingOptions _options;
    private readonly TimeProvider _time;
    private readonly AlertMetrics _metrics;
    private readonly ILogger<WebhookDelivery> _logger;
    private readonly Dictionary<string, Channel<IncidentSnapshot>> _queues = new(StringComparer.Ordinal);

    public WebhookDelivery(IHttpClientFactory http, IOptions<AlertingOptions> options, TimeProvider time, AlertMetrics metrics, ILogger<WebhookDelivery> logger)
    {
        _http = http;
        _options = options.Value;
        _time = time;
        _metrics = metrics;
        _logger = logger;
        foreach (var receiver in _options.Webhooks)
        {
            _queues[receiver.Name] = Channel.CreateBounded<IncidentSnapshot>(new BoundedChannelOptions(100_000) { FullMode = BoundedChannelFullMode.Wait, SingleReader = true });
        }
    }

    public const string HttpClientName = "fleetwatch-alerts";

    /// <summary>Queues an incident change for every receiver. Never blocks the caller; a full queue is logged and counted.</summary>
    public void Enqueue(IncidentChange change)
    {
        if (!NotificationPolicy.ShouldNotify(change, _options.MinimumSeverity))
        {
            return;
        }

        foreach (var (name, queue) in _queues)
        {
            if (!queue.Writer.TryWrite(change.Incident))
            {
                _metrics.OnGivenUp();
                LogQueueFull(_logger, name, change.Incident.Id);
            }
        }
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(_options.Webhooks.Select(r => SendLoopAsync(r, _queues[r.Name].Reader, stoppingToken)));

    private async Task SendLoopAsync(WebhookReceiverOptions receiver, ChannelReader<IncidentSnapshot> queue, CancellationToken ct)
    {
        try
        {
            await foreach (var incident in queue.ReadAllAsync(ct).ConfigureAwait(false))
            {
                await DeliverAsync(receiver, incident, ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // shutting down
        }
    }

    private async Task DeliverAsync(WebhookReceiverOptions receiver, IncidentSnapshot incident, CancellationToken ct)
    {
        var payload = AlertmanagerPayloadBuilder.Build(incident, receiver.Name, _options.ExternalUrl);
        var started = _time.GetUtcNow();
        var client = _http.CreateClient(HttpClientName);
        for (var attempt = 1; ; attempt++)
        {
            _metrics.OnAttempt();
            System.Net.HttpStatusCode? status = null;
            System.Net.Http.Headers.RetryConditionHeaderValue? retryAfter = null;
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(_options.RequestTimeout);
                using var response = await client.PostAsJsonAsync(receiver.Url, payload, timeout.Token).ConfigureAwait(false);
                status = response.StatusCode;
                retryAfter = response.Headers.RetryAfter;
            }
            catch (Exception ex) when (ex is HttpRequestException || (ex is OperationCanceledException && !ct.IsCancellationRequested))
            {
                LogAttemptFailed(_logger, receiver.Name, incident.Id, attempt, ex.GetType().Name);
            }

            var verdict = DeliveryRetry.Judge(status);
            if (verdict == DeliveryVerdict.Delivered)
            {
                _metrics.OnDelivered();
                LogDelivered(_logger, receiver.Name, incident.Id, payload.Status, attempt);
                return;
            }

            var delay = DeliveryRetry.NextDelay(attempt, retryAfter, _time.GetUtcNow(), _options.InitialBackoff, _options.MaxBackoff, Random.Shared.NextDouble());
            if (verdict == DeliveryVerdict.GiveUp || _time.GetUtcNow() + delay - started > _options.GiveUpAfter)
            {
                _metrics.OnGivenUp();
                LogGaveUp(_logger, receiver.Name, incident.Id, (int?)status, attempt);
                return;
            }

            LogRetrying(_logger, receiver.Name, incident.Id, (int?)status, delay);
            await Task.Delay(delay, _time, ct).ConfigureAwait(false);
        }
    }

    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "Alert {IncidentId} ({Status}) delivered to receiver {Receiver} after {Attempts} attempt(s)")]
    private static partial void LogDelivered(ILogger logger, string receiver, string incidentId, string status, int attempts);

    [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message = "Alert {IncidentId} to receiver {Receiver}: HTTP {StatusCode}, retrying in {Delay}")]
    private static partial void LogRetrying(ILogger logger, string receiver, string incidentId, int? statusCode, TimeSpan delay);

    [LoggerMessage(EventId = 302, Level = LogLevel.Error, Message = "Alert {IncidentId} to receiver {Receiver} given up after {Attempts} attempt(s), last HTTP {StatusCode}")]
    private static partial void LogGaveUp(ILogger logger, string receiver, string incidentId, int? statusCode, int attempts);

    [LoggerMessage(EventId = 303, Level = LogLevel.Warning, Message = "Alert {IncidentId} to receiver {Receiver}: attempt {Attempt} failed ({Error})")]
    private static partial void LogAttemptFailed(ILogger logger, string receiver, string incidentId, int attempt, string error);

    [LoggerMessage(EventId = 304, Level = LogLevel.Error, Message = "Alert queue of receiver {Receiver} is full; alert {IncidentId} dropped")]
    private static partial void LogQueueFull(ILogger logger, string receiver, string incidentId);
}
