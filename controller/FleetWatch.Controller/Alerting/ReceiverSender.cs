using System.Net;
using System.Net.Http.Headers;
using System.Threading.Channels;
using FleetWatch.Controller.Incidents;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Controller.Alerting;

/// <summary>
/// Drains one receiver's outbox rows in order. Woken by a signal on every enqueue (so a healthy receiver gets its POST
/// within milliseconds), otherwise it polls only as a safety net. Spends the receiver's token bucket, honours
/// Retry-After on 429/503, backs off with jitter, and gives up at the deadline. A failure of one receiver never
/// touches another: each has its own sender. Receiver URLs and keys are secrets: logs name the receiver only, and
/// stored errors are status codes or error kinds, never exception messages (which can quote the URL).
/// </summary>
internal sealed partial class ReceiverSender
{
    private readonly ReceiverOptions _receiver;
    private readonly AlertingOptions _options;
    private readonly AlertOutbox _outbox;
    private readonly IHttpClientFactory _http;
    private readonly TimeProvider _time;
    private readonly AlertMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TokenBucket _bucket;
    private readonly Channel<bool> _signal = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private DateTimeOffset _nextRefresh;

    public ReceiverSender(ReceiverOptions receiver, AlertingOptions options, AlertOutbox outbox, IHttpClientFactory http, TimeProvider time, AlertMetrics metrics, ILogger logger)
    {
        _receiver = receiver;
        _options = options;
        _outbox = outbox;
        _http = http;
        _time = time;
        _metrics = metrics;
        _logger = logger;
        var (count, per, burst) = (receiver.RateLimit ?? new RateLimitOptions()).Resolve(receiver.Type);
        _bucket = new TokenBucket(count, per, burst, time.GetUtcNow());
        // Alerts posted before a restart stay valid in Alertmanager for its resolve_timeout: one interval is soon enough.
        _nextRefresh = time.GetUtcNow() + receiver.ResendInterval;
    }

    public string Name => _receiver.Name;

    /// <summary>Wakes the sender (coalesced: one pending signal is enough).</summary>
    public void Signal() => _signal.Writer.TryWrite(true);

    public async Task RunAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await StepAsync(ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // A storage error (disk full, lock timeout) must not end this receiver's deliveries: log, wait, go on.
                LogSenderError(_logger, Name, ex.GetType().Name);
                await WaitAsync(_options.PollInterval, ct).ConfigureAwait(false);
            }
        }
    }

    private async Task StepAsync(CancellationToken ct)
    {
        var now = _time.GetUtcNow();
        if (_receiver.Type == ReceiverType.Alertmanager && now >= _nextRefresh)
        {
            await RefreshFiringAsync(ct).ConfigureAwait(false);
            return;
        }

        var row = _outbox.NextPending(Name);
        if (row is null)
        {
            var idle = _receiver.Type == ReceiverType.Alertmanager ? Min(_options.PollInterval, _nextRefresh - now) : _options.PollInterval;
            await WaitAsync(idle, ct).ConfigureAwait(false);
            return;
        }

        if (row.NextAttemptAt > now)
        {
            await WaitAsync(row.NextAttemptAt - now, ct).ConfigureAwait(false);
            return;
        }

        var wait = _bucket.TryTake(now);
        if (wait > TimeSpan.Zero)
        {
            await Task.Delay(wait, _time, ct).ConfigureAwait(false);
            return;
        }

        await AttemptAsync(row, ct).ConfigureAwait(false);
    }

    private async Task AttemptAsync(OutboxRow row, CancellationToken ct)
    {
        var attempt = row.Attempts + 1;
        var request = ReceiverRequests.Build(_receiver, row.Notice, _options.ExternalUrl, _time.GetUtcNow());
        var (status, retryAfter, error) = await PostAsync(request, ct).ConfigureAwait(false);
        var now = _time.GetUtcNow();
        var verdict = DeliveryRetry.Judge(status);
        if (verdict == DeliveryVerdict.Delivered)
        {
            _outbox.MarkDelivered(row.Id, attempt, (int?)status, now);
            if (_receiver.Type == ReceiverType.Alertmanager)
            {
                RememberFiring(row.Notice, now);
            }

            _metrics.OnDelivered(Name, now - row.CreatedAt);
            LogDelivered(_logger, row.Notice.NotificationKey, Name, attempt);
            return;
        }

        error ??= $"HTTP {(int)status!.Value}";
        if (status == HttpStatusCode.TooManyRequests)
        {
            _bucket.Drain(now);
        }

        var delay = DeliveryRetry.NextDelay(attempt, DeliveryRetry.HonoursRetryAfter(status) ? retryAfter : null, now, _options.InitialBackoff, _options.MaxBackoff, Random.Shared.NextDouble());
        if (verdict == DeliveryVerdict.GiveUp || now + delay - row.CreatedAt > _options.GiveUpAfter)
        {
            _outbox.MarkGivenUp(row.Id, attempt, (int?)status, error, now);
            if (_receiver.Type == ReceiverType.Alertmanager && row.Notice.Resolved)
            {
                // Stop re-posting it: Alertmanager then resolves it on its own after resolve_timeout.
                _outbox.ClearFiring(Name, row.Notice.Incident.Id);
            }

            _metrics.OnGivenUp(Name);
            LogGaveUp(_logger, row.Notice.NotificationKey, Name, attempt, error);
            return;
        }

        _outbox.MarkRetry(row.Id, attempt, (int?)status, error, now + delay, now);
        _metrics.OnRetry(Name);
        LogRetrying(_logger, row.Notice.NotificationKey, Name, error, delay);
    }

    private void RememberFiring(AlertNotice notice, DateTimeOffset now)
    {
        if (notice.Resolved)
        {
            _outbox.ClearFiring(Name, notice.Incident.Id);
        }
        else
        {
            _outbox.SetFiring(Name, notice, now);
        }
    }

    /// <summary>
    /// Alertmanager resolves an alert not re-sent within its resolve_timeout (docs/alerts_api.md: clients "re-send firing
    /// alerts … at regular intervals"): post every firing alert again, in one array. A failure waits for the next round.
    /// </summary>
    private async Task RefreshFiringAsync(CancellationToken ct)
    {
        _nextRefresh = _time.GetUtcNow() + _receiver.ResendInterval;
        var firing = _outbox.Firing(Name);
        if (firing.Count == 0)
        {
            return;
        }

        var (status, _, error) = await PostAsync(ReceiverRequests.Refresh(_receiver, firing, _options.ExternalUrl, _time.GetUtcNow()), ct).ConfigureAwait(false);
        if (DeliveryRetry.Judge(status) != DeliveryVerdict.Delivered)
        {
            _metrics.OnRetry(Name);
            LogRefreshFailed(_logger, Name, firing.Count, error ?? $"HTTP {(int)status!.Value}");
        }
    }

    private async Task<(HttpStatusCode? Status, RetryConditionHeaderValue? RetryAfter, string? Error)> PostAsync(ReceiverRequest request, CancellationToken ct)
    {
        _metrics.OnAttempt(Name);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(_options.RequestTimeout);
            using var message = new HttpRequestMessage(HttpMethod.Post, request.Url) { Content = new ByteArrayContent(request.Body) };
            message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
            foreach (var (name, value) in request.Headers)
            {
                message.Headers.TryAddWithoutValidation(name, value);
            }

            // A client per request: the factory rotates handlers, so DNS changes of a receiver are picked up.
            using var response = await _http.CreateClient(WebhookDelivery.HttpClientName).SendAsync(message, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
            var status = response.StatusCode;
            if (_receiver.Type == ReceiverType.Teams && response.IsSuccessStatusCode && await IsLegacyTeamsThrottleAsync(response, timeout.Token).ConfigureAwait(false))
            {
                status = HttpStatusCode.TooManyRequests;
            }

            return (status, response.Headers.RetryAfter, null);
        }
        catch (HttpRequestException ex)
        {
            return (null, null, $"network error ({ex.HttpRequestError})");
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return (null, null, $"timeout after {_options.RequestTimeout}");
        }
    }

    /// <summary>Legacy Teams connectors answer 200 with "Microsoft Teams endpoint returned HTTP error 429" in the body (section 2.3).</summary>
    private static async Task<bool> IsLegacyTeamsThrottleAsync(HttpResponseMessage response, CancellationToken ct)
    {
        if (response.Content.Headers.ContentLength is > 4096)
        {
            return false;
        }

        var body = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        return body.Contains("HTTP error 429", StringComparison.Ordinal);
    }

    /// <summary>Waits for a signal or the timeout, whichever comes first.</summary>
    private async Task WaitAsync(TimeSpan timeout, CancellationToken ct)
    {
        if (timeout <= TimeSpan.Zero)
        {
            return;
        }

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var signalled = _signal.Reader.WaitToReadAsync(cts.Token).AsTask();
        var delay = Task.Delay(timeout, _time, cts.Token);
        await Task.WhenAny(signalled, delay).ConfigureAwait(false);
        await cts.CancelAsync().ConfigureAwait(false);
        _signal.Reader.TryRead(out _);
        try
        {
            await Task.WhenAll(signalled, delay).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // the loser was cancelled above
        }

        ct.ThrowIfCancellationRequested();
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "Notification {NotificationKey} delivered to receiver {Receiver} after {Attempts} attempt(s)")]
    private static partial void LogDelivered(ILogger logger, string notificationKey, string receiver, int attempts);

    [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message = "Notification {NotificationKey} to receiver {Receiver}: {Error}, retrying in {Delay}")]
    private static partial void LogRetrying(ILogger logger, string notificationKey, string receiver, string error, TimeSpan delay);

    [LoggerMessage(EventId = 302, Level = LogLevel.Error, Message = "Notification {NotificationKey} to receiver {Receiver} given up after {Attempts} attempt(s): {Error}")]
    private static partial void LogGaveUp(ILogger logger, string notificationKey, string receiver, int attempts, string error);

    [LoggerMessage(EventId = 305, Level = LogLevel.Error, Message = "Sender of receiver {Receiver} failed ({Error}); retrying")]
    private static partial void LogSenderError(ILogger logger, string receiver, string error);

    [LoggerMessage(EventId = 306, Level = LogLevel.Warning, Message = "Re-posting {Count} firing alert(s) to Alertmanager receiver {Receiver} failed: {Error}")]
    private static partial void LogRefreshFailed(ILogger logger, string receiver, int count, string error);
}
