namespace FleetWatch.Controller.Detection;

/// <summary>
/// The increases of one cumulative counter over a sliding window, kept in a fixed ring of buckets so its memory
/// never grows with the tick rate or the window length (a 10,000-GPU fleet has ~750,000 counters; most never move,
/// and <see cref="NodeDetectionState"/> creates a window only for a counter that moved). Time comes from the data.
/// </summary>
public sealed class RateWindow
{
    private readonly double[] _sums;
    private readonly long[] _bucketIds;
    private readonly long _bucketTicks;
    private double _total;

    /// <param name="window">How far back the sum reaches.</param>
    /// <param name="buckets">Resolution: the sum covers between (buckets − 1) and buckets bucket widths.</param>
    public RateWindow(TimeSpan window, int buckets = 12)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(buckets, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(window.Ticks, buckets);
        Window = window;
        _sums = new double[buckets];
        _bucketIds = new long[buckets];
        Array.Fill(_bucketIds, long.MinValue);
        _bucketTicks = window.Ticks / buckets;
    }

    public TimeSpan Window { get; }

    /// <summary>Since when the rule built on this window has seen its threshold reached without a break (null: not reached now).</summary>
    public DateTimeOffset? AboveSince { get; set; }

    /// <summary>The rule's verdict at the last evaluation; held while the counter is saturated (its increase is unknown).</summary>
    public bool LastAbove { get; set; }

    /// <summary>
    /// Adds an increase observed at <paramref name="time"/> that accrued since <paramref name="previousTime"/>. When the
    /// gap is longer than the window (the node was silent), only the window's share of it is counted, so a burst
    /// after a silence is not mistaken for a storm.
    /// </summary>
    public void Add(DateTimeOffset time, double increase, DateTimeOffset previousTime)
    {
        if (increase <= 0)
        {
            return;
        }

        var gap = time - previousTime;
        if (gap > Window)
        {
            increase *= Window / gap;
        }

        var id = BucketId(time);
        var slot = (int)(((id % _sums.Length) + _sums.Length) % _sums.Length);
        if (_bucketIds[slot] != id)
        {
            _bucketIds[slot] = id;
            _sums[slot] = 0;
        }

        _sums[slot] += increase;
        _total += increase;
    }

    /// <summary>Sum of the increases in the buckets that still lie inside the window at <paramref name="now"/>.</summary>
    public double Sum(DateTimeOffset now)
    {
        var newest = BucketId(now);
        var oldest = newest - _sums.Length + 1;
        double sum = 0;
        for (var i = 0; i < _sums.Length; i++)
        {
            if (_bucketIds[i] >= oldest && _bucketIds[i] <= newest)
            {
                sum += _sums[i];
            }
        }

        return sum;
    }

    /// <summary>
    /// Average increase per second over the window, or over the time since <paramref name="observedSince"/> when that
    /// is shorter, but never over less than <paramref name="minimumSpan"/> (one error in the first second of a fresh
    /// controller is not "1 per second").
    /// </summary>
    public double PerSecond(DateTimeOffset now, DateTimeOffset observedSince, TimeSpan minimumSpan)
    {
        var windowStart = new DateTimeOffset((BucketId(now) - _sums.Length + 1) * _bucketTicks, TimeSpan.Zero);
        var start = observedSince > windowStart ? observedSince : windowStart;
        var span = now - start;
        if (span < minimumSpan)
        {
            span = minimumSpan;
        }

        return Sum(now) / span.TotalSeconds;
    }

    /// <summary>True when nothing inside the window remains: the window can be dropped.</summary>
    public bool IsEmpty(DateTimeOffset now) => Sum(now) <= 0;

    /// <summary>Every increase ever added (for tests and diagnostics).</summary>
    public double Total => _total;

    private long BucketId(DateTimeOffset time) => time.UtcTicks / _bucketTicks;
}
