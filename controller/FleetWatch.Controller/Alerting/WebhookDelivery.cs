using FleetWatch.Contracts;
using FleetWatch.Controller.Incidents;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Alerting;

/// <summary>
/// The alert delivery engine. <see cref="Enqueue"/> routes an incident change to its receivers and writes one outbox
/// row per receiver (persistent, exactly once per notification key and receiver), then wakes those receivers'
/// senders; the senders (one per receiver, <see cref="ReceiverSender"/>) POST in order with each receiver's payload,
/// rate budget, retry and give-up rules. On start, pending rows left by a previous run are resumed. The name is kept
/// from the first version (generic webhooks only) because the incident notifier calls it.
/// </summary>
public sealed partial class WebhookDelivery : BackgroundService
{
    public const string HttpClientName = "fleetwatch-alerts";

    private readonly AlertingOptions _options;
    private readonly AlertOutbox _outbox;
    private readonly AlertRouter _router;
    private readonly TimeProvider _time;
    private readonly AlertMetrics _metrics;
    private readonly ILogger<WebhookDelivery> _logger;
    private readonly IReadOnlyDictionary<string, ReceiverOptions> _receivers;
    private readonly Dictionary<string, ReceiverSender> _senders = new(StringComparer.Ordinal);
    private readonly IServiceProvider? _services;

    // services: where the start-up reconciliation of acknowledgements finds the incident manager, when the host has one.
    public WebhookDelivery(IHttpClientFactory http, IOptions<AlertingOptions> options, AlertOutbox outbox, TimeProvider time, AlertMetrics metrics, ILogger<WebhookDelivery> logger, IServiceProvider? services = null)
    {
        _services = services;
        _options = options.Value;
        _outbox = outbox;
        _router = new AlertRouter(_options);
        _time = time;
        _metrics = metrics;
        _logger = logger;
        _receivers = _options.AllReceivers().ToDictionary(r => r.Name, StringComparer.Ordinal);
        foreach (var receiver in _receivers.Values)
        {
            _senders[receiver.Name] = new ReceiverSender(receiver, _options, outbox, http, time, metrics, logger);
        }

        metrics.ObservePending(() => _outbox.Counts().Select(c => new KeyValuePair<string, long>(c.Key, c.Value.Pending)));
    }

    /// <summary>Configured receivers by name (for the API: it shows names and types, never URLs or keys).</summary>
    public IReadOnlyDictionary<string, ReceiverOptions> Receivers => _receivers;

    /// <summary>
    /// Queues an incident change for its routed receivers. Writes the outbox (a few milliseconds) and returns; never
    /// waits for a receiver. A change already queued (same notification key, e.g. re-derived after a restart) is a
    /// no-op. A storage failure is logged and counted as given up; it never fails the detection path.
    /// </summary>
    public void Enqueue(IncidentChange change)
    {
        if (!NotificationPolicy.ShouldNotify(change, _options.MinimumSeverity))
        {
            return;
        }

        var notice = new AlertNotice(change.Kind, change.Incident, change.NotificationKey);
        IReadOnlyList<string> receivers = [];
        IReadOnlyList<string> inserted;
        try
        {
            receivers = ReceiversFor(notice);
            if (receivers.Count == 0)
            {
                _metrics.OnUnrouted();
                LogUnrouted(_logger, change.NotificationKey);
                return;
            }

            inserted = _outbox.Enqueue(notice, receivers, _time.GetUtcNow());
        }
        catch (Exception ex) when (AlertOutbox.IsStorageError(ex))
        {
            foreach (var r in receivers)
            {
                _metrics.OnGivenUp(r);
            }

            LogEnqueueFailed(_logger, change.NotificationKey, ex.GetType().Name, ex.Message);
            return;
        }

        foreach (var name in inserted)
        {
            _senders[name].Signal();
        }

        if (inserted.Count < receivers.Count)
        {
            LogAlreadyQueued(_logger, change.NotificationKey, receivers.Count - inserted.Count);
        }
    }

    /// <summary>
    /// Queues PagerDuty's <c>acknowledge</c> after an operator acknowledged <paramref name="incident"/> in FleetWatch
    /// (call it with the snapshot <c>IncidentManager.Acknowledge</c> returned). It goes to the PagerDuty receivers
    /// that were sent (or are sending) the incident's trigger, after it in their queue, with the same dedup_key.
    /// Exactly once per incident and receiver: the outbox row is keyed <c>{id}/Acknowledged</c>, so a second
    /// acknowledgement, a retried API call or the start-up reconciliation inserts nothing. Nothing is queued for an
    /// incident that is not acknowledged or already resolved (its resolve closes the PagerDuty alert). Returns the
    /// receivers that got a new row. A storage failure is logged and counted as given up, never thrown.
    /// </summary>
    public IReadOnlyList<string> EnqueueAcknowledged(IncidentSnapshot incident)
    {
        if (incident.AcknowledgedBy is null || incident.ResolvedAt is not null)
        {
            return [];
        }

        var notice = AlertNotice.Acknowledged(incident);
        IReadOnlyList<string> receivers = [];
        IReadOnlyList<string> inserted;
        try
        {
            receivers = _outbox.ReceiversOf(incident.Id)
                .Where(r => _receivers.TryGetValue(r, out var o) && o.Type == ReceiverType.PagerDuty)
                .ToList();
            inserted = _outbox.Enqueue(notice, receivers, _time.GetUtcNow());
        }
        catch (Exception ex) when (AlertOutbox.IsStorageError(ex))
        {
            foreach (var r in receivers)
            {
                _metrics.OnGivenUp(r);
            }

            LogEnqueueFailed(_logger, notice.NotificationKey, ex.GetType().Name, ex.Message);
            return [];
        }

        foreach (var name in inserted)
        {
            _senders[name].Signal();
        }

        return inserted;
    }

    /// <summary>
    /// The routed receivers; a resolve also goes to every receiver that heard about the incident before (its severity,
    /// and so its route, may have changed since), except receivers with <c>SendResolved</c> off. Alertmanager always gets
    /// the resolve: without an endsAt it would keep the alert firing until resolve_timeout.
    /// </summary>
    private List<string> ReceiversFor(AlertNotice notice)
    {
        var routed = _router.Route(notice.Incident);
        if (!notice.Resolved)
        {
            return [.. routed];
        }

        return routed.Union(_outbox.ReceiversOf(notice.Incident.Id), StringComparer.Ordinal)
            .Where(r => _receivers.TryGetValue(r, out var o) && (o.SendResolved || o.Type == ReceiverType.Alertmanager))
            .ToList();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var now = _time.GetUtcNow();
        try
        {
            var orphans = _outbox.GiveUpOrphans([.. _receivers.Keys], now);
            var pruned = _outbox.Prune(now - _options.OutboxRetention);
            if (orphans > 0 || pruned > 0)
            {
                LogHousekeeping(_logger, orphans, pruned);
            }
        }
        catch (Exception ex) when (AlertOutbox.IsStorageError(ex))
        {
            LogEnqueueFailed(_logger, "(housekeeping)", ex.GetType().Name, ex.Message);
        }

        ReconcileAcknowledged();

        await Task.WhenAll(_senders.Values.Select(s => Task.Run(() => s.RunAsync(stoppingToken), CancellationToken.None))).ConfigureAwait(false);
    }

    /// <summary>
    /// An acknowledgement stored by the incident manager but not queued here (the controller stopped between the two)
    /// is queued at start: every open, acknowledged incident is offered again, a no-op for those already queued.
    /// </summary>
    private void ReconcileAcknowledged()
    {
        if (_services?.GetService<IncidentManager>() is not { } incidents || !_receivers.Values.Any(r => r.Type == ReceiverType.PagerDuty))
        {
            return;
        }

        try
        {
            var queued = incidents.Open().Where(i => i.AcknowledgedBy is not null).Sum(i => EnqueueAcknowledged(i).Count);
            if (queued > 0)
            {
                LogAcknowledgementsRecovered(_logger, queued);
            }
        }
        catch (Exception ex) when (AlertOutbox.IsStorageError(ex))
        {
            LogEnqueueFailed(_logger, "(acknowledgements)", ex.GetType().Name, ex.Message);
        }
    }

    [LoggerMessage(EventId = 311, Level = LogLevel.Warning, Message = "{Count} PagerDuty acknowledgement(s) stored but not queued before the last stop; queued now")]
    private static partial void LogAcknowledgementsRecovered(ILogger logger, int count);

    [LoggerMessage(EventId = 304, Level = LogLevel.Error, Message = "Notification {NotificationKey} could not be queued ({Error}: {Detail})")]
    private static partial void LogEnqueueFailed(ILogger logger, string notificationKey, string error, string detail);

    [LoggerMessage(EventId = 307, Level = LogLevel.Warning, Message = "Notification {NotificationKey} matched no route and there is no default receiver")]
    private static partial void LogUnrouted(ILogger logger, string notificationKey);

    [LoggerMessage(EventId = 308, Level = LogLevel.Debug, Message = "Notification {NotificationKey} already queued for {Count} receiver(s); not queued again")]
    private static partial void LogAlreadyQueued(ILogger logger, string notificationKey, int count);

    [LoggerMessage(EventId = 309, Level = LogLevel.Information, Message = "Outbox housekeeping: {Orphans} row(s) of unconfigured receivers given up, {Pruned} old row(s) deleted")]
    private static partial void LogHousekeeping(ILogger logger, int orphans, int pruned);
}
