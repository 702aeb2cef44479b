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
/// stored errors are status codes or error kinds, never exception messages (which can quote the URL). A chat receiver
/// with storm batching holds each notification for its storm window and sends a storm as one summary
/// (<see cref="StormBatcher"/>).
/// </summary>
internal sealed partial class ReceiverSender
{
    /// <summary>Rows one storm summary settles at most (bounds one read); a bigger storm continues in the next summary.</summary>
    private const int MaxSummaryRows = 10_000;

    private readonly ReceiverOptions _receiver;
    private readonly AlertingOptions _options;
    private readonly AlertOutbox _outbox;
    private readonly IHttpClientFactory _http;
    private readonly TimeProvider _time;
    private readonly AlertMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TokenBucket _bucket;
    private readonly StormPolicy? _storm;
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
        _storm = receiver.Storm();
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

        IReadOnlyList<OutboxRow> rows = [row];
        if (_storm is { } storm)
        {
            if (StormBatcher.HoldUntil(row, now, storm) is { } until)
            {
                // Woken by every enqueue, which looks at the oldest row only: the hold still ends at the same instant.
                await WaitAsync(until - now, ct).ConfigureAwait(false);
                return;
            }

            var decision = StormBatcher.Plan(row, _outbox.Pending(Name, row.CreatedAt + storm.Window, MaxSummaryRows), now, storm);

            if (decision is StormDecision.Summary summary)
            {
                rows = summary.Rows;
            }
        }

        var wait = _bucket.TryTake(now);
        if (wait > TimeSpan.Zero)
        {
            await Task.Delay(wait, _time, ct).ConfigureAwait(false);
            return;
        }

        await AttemptAsync(rows, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// One POST for <paramref name="rows"/>: one notification, or a storm summary of many. The oldest row decides the
    /// attempt number and the give-up deadline (the others were queued later, within the storm window), and every row
    /// gets the same outcome in one transaction.
    /// </summary>
    private async Task AttemptAsync(IReadOnlyList<OutboxRow> rows, CancellationToken ct)
    {
        var row = rows[0];
        var ids = rows.Select(r => r.Id).ToList();
        var attempt = row.Attempts + 1;
        var request = rows.Count == 1
            ? ReceiverRequests.Build(_receiver, row.Notice, _options.ExternalUrl, _time.GetUtcNow())
            : ReceiverRequests.Summary(_receiver, rows.Select(r => r.Notice).ToList(), _options.ExternalUrl, _storm!.Window);
        var (status, retryAfter, error) = await PostAsync(request, ct).ConfigureAwait(false);
        var now = _time.GetUtcNow();
        var verdict = DeliveryRetry.Judge(status);
        if (verdict == DeliveryVerdict.Delivered)
        {
            _outbox.MarkDelivered(ids, attempt, (int?)status, now);
            if (_receiver.Type == ReceiverType.Alertmanager)
            {
                RememberFiring(row.Notice, now);
            }

            foreach (var r in rows)
            {
                _metrics.OnDelivered(Name, now - r.CreatedAt);
            }

            if (rows.Count > 1)
            {
                _metrics.OnStormSummary(Name);
                LogStormDelivered(_logger, rows.Count, Name, row.Notice.NotificationKey, attempt);
            }
            else
            {
                LogDelivered(_logger, row.Notice.NotificationKey, Name, attempt);
            }

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
            _outbox.MarkGivenUp(ids, attempt, (int?)status, error, now);
            if (_receiver.Type == ReceiverType.Alertmanager && row.Notice.Resolved)
            {
                // Stop re-posting it: Alertmanager then resolves it on its own after resolve_timeout.
                _outbox.ClearFiring(Name, row.Notice.Incident.Id);
            }

            foreach (var r in rows)
            {
                _metrics.OnGivenUp(Name);
                LogGaveUp(_logger, r.Notice.NotificationKey, Name, attempt, error);
            }

            return;
        }

        _outbox.MarkRetry(ids, attempt, (int?)status, error, now + delay, now);
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

    [LoggerMessage(EventId = 310, Level = LogLevel.Information, Message = "Storm summary of {Count} notifications (first {NotificationKey}) delivered to receiver {Receiver} after {Attempts} attempt(s)")]
    private static partial void LogStormDelivered(ILogger logger, int count, string receiver, string notificationKey, int attempts);

    [LoggerMessage(EventId = 305, Level = LogLevel.Error, Message = "Sender of receiver {Receiver} failed ({Error}); retrying")]
    private static partial void LogSenderError(ILogger logger, string receiver, string error);

    [LoggerMessage(EventId = 306, Level = LogLevel.Warning, Message = "Re-posting {Count} firing alert(s) to Alertmanager receiver {Receiver} failed: {Error}")]
    private static partial void LogRefreshFailed(ILogger logger, string receiver, int count, string error);
}
