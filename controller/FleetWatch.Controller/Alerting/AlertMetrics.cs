using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace FleetWatch.Controller.Alerting;

/// <summary>
/// Delivery metrics (meter <c>FleetWatch.Controller.Alerting</c>), tagged by receiver: attempts, deliveries, retries,
/// give-ups, unrouted notifications, storm summaries, enqueue-to-delivery latency, and the outbox backlog. The same
/// figures are kept per receiver in this class (<see cref="Receivers"/>) so the controller's hand-written
/// <c>/metrics</c> exports them without an OpenTelemetry exporter, and the totals feed the status endpoint.
/// </summary>
public sealed class AlertMetrics
{
    public const string MeterName = "FleetWatch.Controller.Alerting";

    /// <summary>
    /// Upper bounds (seconds) of <c>fleetwatch_alert_delivery_seconds</c>. Why these: a healthy receiver answers in
    /// tens of milliseconds on a LAN to about a second over the internet (0.05-1); Slack's budget of one message per
    /// second and Teams' 4/s queue a burst for seconds (2.5-10); a storm summary for chat waits its storm window
    /// (default 10 s, so 10-20); retries back off from 0.5 s up to the 60 s cap Alertmanager also uses, and PagerDuty
    /// asks for "3 times … 30 seconds apart" on 429 (30-120; research/dashboard-alerting-anchors.md sections 2.1, 2.4,
    /// 2.6); anything slower runs into the give-up deadline (default 10 min: 300, 600).
    /// </summary>
    public static readonly IReadOnlyList<double> LatencyBuckets = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600];

    private readonly Counter<long> _delivered;
    private readonly Counter<long> _givenUp;
    private readonly Counter<long> _attempts;
    private readonly Counter<long> _retries;
    private readonly Counter<long> _unrouted;
    private readonly Counter<long> _stormBatches;
    private readonly Histogram<double> _latency;
    private readonly ConcurrentDictionary<string, ReceiverTally> _byReceiver = new(StringComparer.Ordinal);
    private long _deliveredTotal;
    private long _givenUpTotal;
    private long _attemptsTotal;
    private long _unroutedTotal;
    private Func<IEnumerable<KeyValuePair<string, long>>> _pending = () => [];

    public AlertMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _delivered = meter.CreateCounter<long>("fleetwatch_alerts_delivered_total", description: "Notifications delivered, by receiver");
        _givenUp = meter.CreateCounter<long>("fleetwatch_alerts_given_up_total", description: "Notifications given up (permanent error or deadline), by receiver");
        _attempts = meter.CreateCounter<long>("fleetwatch_alert_attempts_total", description: "HTTP attempts, by receiver");
        _retries = meter.CreateCounter<long>("fleetwatch_alert_retries_total", description: "Attempts that failed and were scheduled again, by receiver");
        _unrouted = meter.CreateCounter<long>("fleetwatch_alerts_unrouted_total", description: "Notifications that matched no route and no default receiver");
        _stormBatches = meter.CreateCounter<long>("fleetwatch_alert_storm_summaries_total", description: "Storm summaries delivered to chat receivers (one message for many notifications), by receiver");
        // The same boundaries as the /metrics histogram, so an OpenTelemetry exporter and the scrape agree.
        _latency = meter.CreateHistogram<double>("fleetwatch_alert_delivery_seconds", unit: "s", description: "From enqueue to the receiver's 2xx",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        meter.CreateObservableGauge("fleetwatch_alert_outbox_pending", () => _pending().Select(p => new Measurement<long>(p.Value, new KeyValuePair<string, object?>("receiver", p.Key))),
            description: "Outbox rows waiting for delivery, by receiver");
    }

    public long Delivered => Interlocked.Read(ref _deliveredTotal);
    public long GivenUp => Interlocked.Read(ref _givenUpTotal);
    public long Attempts => Interlocked.Read(ref _attemptsTotal);
    public long Unrouted => Interlocked.Read(ref _unroutedTotal);

    /// <summary>Per-receiver figures since start, ordered by receiver name (receivers that recorded nothing are absent).</summary>
    public IReadOnlyList<ReceiverMetrics> Receivers() =>
        _byReceiver.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => p.Value.Snapshot(p.Key)).ToList();

    public void OnDelivered(string receiver, TimeSpan sinceEnqueue)
    {
        var seconds = Math.Max(0, sinceEnqueue.TotalSeconds);
        Interlocked.Increment(ref _deliveredTotal);
        Tally(receiver).Delivered(seconds);
        _delivered.Add(1, Tag(receiver));
        _latency.Record(seconds, Tag(receiver));
    }

    public void OnGivenUp(string receiver)
    {
        Interlocked.Increment(ref _givenUpTotal);
        Interlocked.Increment(ref Tally(receiver).GivenUp);
        _givenUp.Add(1, Tag(receiver));
    }

    public void OnAttempt(string receiver)
    {
        Interlocked.Increment(ref _attemptsTotal);
        Interlocked.Increment(ref Tally(receiver).Attempts);
        _attempts.Add(1, Tag(receiver));
    }

    public void OnRetry(string receiver)
    {
        Interlocked.Increment(ref Tally(receiver).Retries);
        _retries.Add(1, Tag(receiver));
    }

    /// <summary>One storm summary delivered (its notifications are counted by <see cref="OnDelivered"/> one by one).</summary>
    public void OnStormSummary(string receiver)
    {
        Interlocked.Increment(ref Tally(receiver).StormSummaries);
        _stormBatches.Add(1, Tag(receiver));
    }

    public void OnUnrouted()
    {
        Interlocked.Increment(ref _unroutedTotal);
        _unrouted.Add(1);
    }

    /// <summary>Where the backlog gauge reads from (the outbox, once it exists).</summary>
    internal void ObservePending(Func<IEnumerable<KeyValuePair<string, long>>> pending) => _pending = pending;

    private ReceiverTally Tally(string receiver) => _byReceiver.GetOrAdd(receiver, static _ => new ReceiverTally());

    private static KeyValuePair<string, object?> Tag(string receiver) => new("receiver", receiver);

    /// <summary>Mutable counters of one receiver; the histogram under a lock (a sum of doubles has no atomic add).</summary>
    private sealed class ReceiverTally
    {
        public long Attempts;
        public long Retries;
        public long GivenUp;
        public long StormSummaries;
        private readonly Lock _gate = new();
        private readonly long[] _buckets = new long[LatencyBuckets.Count];
        private long _delivered;
        private double _sum;

        public void Delivered(double seconds)
        {
            lock (_gate)
            {
                _delivered++;
                _sum += seconds;
                for (var i = 0; i < _buckets.Length; i++)
                {
                    if (seconds <= LatencyBuckets[i])
                    {
                        _buckets[i]++; // non-cumulative here; cumulated when read
                        break;
                    }
                }
            }
        }

        public ReceiverMetrics Snapshot(string name)
        {
            lock (_gate)
            {
                var cumulative = new long[_buckets.Length];
                long running = 0;
                for (var i = 0; i < _buckets.Length; i++)
                {
                    running += _buckets[i];
                    cumulative[i] = running;
                }

                return new ReceiverMetrics(name, Interlocked.Read(ref Attempts), Interlocked.Read(ref Retries), Interlocked.Read(ref GivenUp), _delivered,
                    Interlocked.Read(ref StormSummaries), cumulative, _sum);
            }
        }
    }
}

/// <summary>
/// One receiver's figures since start. <see cref="LatencyBucketCounts"/> are cumulative counts for
/// <see cref="AlertMetrics.LatencyBuckets"/> (Prometheus <c>le</c> semantics); <see cref="Delivered"/> is the +Inf
/// bucket and the histogram's count.
/// </summary>
public sealed record ReceiverMetrics(
    string Receiver,
    long Attempts,
    long Retries,
    long GivenUp,
    long Delivered,
    long StormSummaries,
    IReadOnlyList<long> LatencyBucketCounts,
    double LatencySecondsSum);
