using System.Diagnostics.Metrics;

namespace FleetWatch.Controller.Alerting;

/// <summary>
/// Delivery metrics (meter <c>FleetWatch.Controller.Alerting</c>), tagged by receiver: attempts, deliveries, retries,
/// give-ups, unrouted notifications, enqueue-to-delivery latency, and the outbox backlog. The totals are also read by
/// the controller status endpoint and the dashboard.
/// </summary>
public sealed class AlertMetrics
{
    public const string MeterName = "FleetWatch.Controller.Alerting";

    private readonly Counter<long> _delivered;
    private readonly Counter<long> _givenUp;
    private readonly Counter<long> _attempts;
    private readonly Counter<long> _retries;
    private readonly Counter<long> _unrouted;
    private readonly Histogram<double> _latency;
    private long _deliveredTotal;
    private long _givenUpTotal;
    private long _attemptsTotal;
    private Func<IEnumerable<KeyValuePair<string, long>>> _pending = () => [];

    public AlertMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _delivered = meter.CreateCounter<long>("fleetwatch_alerts_delivered_total", description: "Notifications delivered, by receiver");
        _givenUp = meter.CreateCounter<long>("fleetwatch_alerts_given_up_total", description: "Notifications given up (permanent error or deadline), by receiver");
        _attempts = meter.CreateCounter<long>("fleetwatch_alert_attempts_total", description: "HTTP attempts, by receiver");
        _retries = meter.CreateCounter<long>("fleetwatch_alert_retries_total", description: "Attempts that failed and were scheduled again, by receiver");
        _unrouted = meter.CreateCounter<long>("fleetwatch_alerts_unrouted_total", description: "Notifications that matched no route and no default receiver");
        _latency = meter.CreateHistogram<double>("fleetwatch_alert_delivery_seconds", unit: "s", description: "From enqueue to the receiver's 2xx");
        meter.CreateObservableGauge("fleetwatch_alert_outbox_pending", () => _pending().Select(p => new Measurement<long>(p.Value, new KeyValuePair<string, object?>("receiver", p.Key))),
            description: "Outbox rows waiting for delivery, by receiver");
    }

    public long Delivered => Interlocked.Read(ref _deliveredTotal);
    public long GivenUp => Interlocked.Read(ref _givenUpTotal);
    public long Attempts => Interlocked.Read(ref _attemptsTotal);

    public void OnDelivered(string receiver, TimeSpan sinceEnqueue)
    {
        Interlocked.Increment(ref _deliveredTotal);
        _delivered.Add(1, Tag(receiver));
        _latency.Record(Math.Max(0, sinceEnqueue.TotalSeconds), Tag(receiver));
    }

    public void OnGivenUp(string receiver)
    {
        Interlocked.Increment(ref _givenUpTotal);
        _givenUp.Add(1, Tag(receiver));
    }

    public void OnAttempt(string receiver)
    {
        Interlocked.Increment(ref _attemptsTotal);
        _attempts.Add(1, Tag(receiver));
    }

    public void OnRetry(string receiver) => _retries.Add(1, Tag(receiver));

    public void OnUnrouted() => _unrouted.Add(1);

    /// <summary>Where the backlog gauge reads from (the outbox, once it exists).</summary>
    internal void ObservePending(Func<IEnumerable<KeyValuePair<string, long>>> pending) => _pending = pending;

    private static KeyValuePair<string, object?> Tag(string receiver) => new("receiver", receiver);
}
