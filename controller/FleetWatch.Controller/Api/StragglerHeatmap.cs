using FleetWatch.Controller.Stragglers;

namespace FleetWatch.Controller.Api;

/// <summary>
/// The jobs view's rank × time matrix (MegaScale's per-rank heat-map, research/dashboard-alerting-anchors.md section 1.5):
/// per job, per rank and per <see cref="BucketWidth"/> bucket of the last <see cref="Window"/>, the mean step time. The
/// score of a cell is the bucket's median rank time over the rank's time, capped at 1: nvidia-resiliency-ext's "relative"
/// score in [0, 1] (same section), lower is slower. The live straggler service feeds it (<see cref="Observe"/>) and
/// publishes what its detector decided (<see cref="Publish"/>); the API only reads.
/// <para>
/// Memory: a cell is a float sum and a ushort count (6 B); a 10,000-rank job over 180 buckets is 10.8 MB. Ranks per job
/// are capped at <see cref="MaxRanks"/> and jobs at <see cref="MaxJobs"/> (the least recently reported job goes first).
/// </para>
/// </summary>
public sealed class StragglerHeatmap
{
    /// <summary>Same 30-minute window as the node page.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(30);

    /// <summary>10 s: several steps of a typical large-model job (seconds per step) per cell, 180 columns.</summary>
    public static readonly TimeSpan BucketWidth = TimeSpan.FromSeconds(10);

    public static readonly int Buckets = (int)(Window / BucketWidth);

    public const int MaxRanks = 16_384;

    public const int MaxJobs = 64;

    private readonly Lock _gate = new();
    private readonly Dictionary<string, JobCells> _jobs = new(StringComparer.Ordinal);
    private IReadOnlyDictionary<string, LiveJobState> _states = new Dictionary<string, LiveJobState>(StringComparer.Ordinal);

    /// <summary>Adds one step report (not a final one) of <paramref name="job"/>.</summary>
    public void Observe(string job, int rank, string node, int gpu, DateTimeOffset end, double durationMs)
    {
        if (string.IsNullOrEmpty(job) || rank is < 0 or >= MaxRanks || !(durationMs > 0) || double.IsInfinity(durationMs))
        {
            return;
        }

        var bucket = end.ToUnixTimeMilliseconds() / (long)BucketWidth.TotalMilliseconds;
        lock (_gate)
        {
            if (!_jobs.TryGetValue(job, out var cells))
            {
                if (_jobs.Count >= MaxJobs)
                {
                    _jobs.Remove(_jobs.MinBy(kv => kv.Value.NewestBucket).Key);
                }

                cells = new JobCells();
                _jobs[job] = cells;
            }

            cells.Add(rank, node, gpu, bucket, durationMs);
        }
    }

    /// <summary>Replaces what the detector currently says about each job (flagged ranks, hang).</summary>
    public void Publish(IReadOnlyDictionary<string, LiveJobState> states)
    {
        ArgumentNullException.ThrowIfNull(states);
        Volatile.Write(ref _states, states);
    }

    /// <summary>Jobs known to the heatmap or the detector.</summary>
    public IReadOnlyList<string> Jobs()
    {
        lock (_gate)
        {
            return [.. _jobs.Keys.Union(Volatile.Read(ref _states).Keys).Order(StringComparer.Ordinal)];
        }
    }

    /// <summary>The current straggler score of every rank of every job that reported within the window, for the fleet view's colour mode.</summary>
    public IReadOnlyList<RankScore> CurrentScores(DateTimeOffset now)
    {
        var scores = new List<RankScore>();
        var oldest = (now.ToUnixTimeMilliseconds() / (long)BucketWidth.TotalMilliseconds) - Buckets;
        lock (_gate)
        {
            foreach (var (job, cells) in _jobs)
            {
                if (cells.NewestBucket > oldest)
                {
                    cells.Latest(job, scores);
                }
            }
        }

        return scores;
    }

    /// <summary>The job's matrix as of <paramref name="now"/>; null when neither the heatmap nor the detector knows it.</summary>
    public JobStragglerView? Read(string job, DateTimeOffset now)
    {
        Volatile.Read(ref _states).TryGetValue(job, out var state);
        var width = (long)BucketWidth.TotalMilliseconds;
        var newest = now.ToUnixTimeMilliseconds() / width;
        var oldest = newest - Buckets + 1;
        lock (_gate)
        {
            if (!_jobs.TryGetValue(job, out var cells))
            {
                return state is null ? null : new JobStragglerView(job, DateTimeOffset.FromUnixTimeMilliseconds(oldest * width), BucketWidth.TotalSeconds, [], [], state);
            }

            var (ranks, scores) = cells.Scores(oldest);
            return new JobStragglerView(job, DateTimeOffset.FromUnixTimeMilliseconds(oldest * width), BucketWidth.TotalSeconds, ranks, scores, state);
        }
    }

    private sealed class JobCells
    {
        private float[] _sum = [];
        private ushort[] _count = [];
        private readonly long[] _stamps = CreateStamps();
        private readonly List<RankPlace?> _places = [];

        public long NewestBucket { get; private set; } = long.MinValue;

        private static long[] CreateStamps()
        {
            var s = new long[Buckets];
            Array.Fill(s, long.MinValue);
            return s;
        }

        public void Add(int rank, string node, int gpu, long bucket, double durationMs)
        {
            if (NewestBucket != long.MinValue && bucket <= NewestBucket - Buckets)
            {
                return; // older than the window
            }

            if (rank >= _places.Count)
            {
                var ranks = Math.Min(MaxRanks, Math.Max(rank + 1, _places.Count * 2));
                while (_places.Count < ranks)
                {
                    _places.Add(null);
                }

                Array.Resize(ref _sum, ranks * Buckets);
                Array.Resize(ref _count, ranks * Buckets);
            }

            if (_places[rank] is not { } p || p.Gpu != gpu || !string.Equals(p.Node, node, StringComparison.Ordinal))
            {
                _places[rank] = new RankPlace(rank, node, gpu);
            }

            var slot = (int)(bucket % Buckets);
            if (_stamps[slot] != bucket)
            {
                if (_stamps[slot] > bucket)
                {
                    return; // the slot already holds a newer bucket
                }

                _stamps[slot] = bucket;
                for (var r = 0; r < _places.Count; r++)
                {
                    _sum[(r * Buckets) + slot] = 0;
                    _count[(r * Buckets) + slot] = 0;
                }
            }

            NewestBucket = Math.Max(NewestBucket, bucket);
            var i = (rank * Buckets) + slot;
            if (_count[i] < ushort.MaxValue)
            {
                _sum[i] += (float)durationMs;
                _count[i]++;
            }
        }

        /// <summary>Ranks seen and, per rank, one score per bucket from <paramref name="oldest"/> (null: no report).</summary>
        public (IReadOnlyList<RankPlace> Ranks, IReadOnlyList<double?[]> Scores) Scores(long oldest)
        {
            var ranks = _places.Where(p => p is not null).Select(p => p!).ToList();
            var scores = ranks.Select(_ => new double?[Buckets]).ToList();
            var means = new List<double>(ranks.Count);
            for (var k = 0; k < Buckets; k++)
            {
                var bucket = oldest + k;
                var slot = (int)(bucket % Buckets);
                if (_stamps[slot] != bucket)
                {
                    continue;
                }

                means.Clear();
                foreach (var p in ranks)
                {
                    var i = (p.Rank * Buckets) + slot;
                    if (_count[i] > 0)
                    {
                        means.Add(_sum[i] / _count[i]);
                    }
                }

                if (means.Count == 0)
                {
                    continue;
                }

                means.Sort();
                var median = means[means.Count / 2];
                for (var r = 0; r < ranks.Count; r++)
                {
                    var i = (ranks[r].Rank * Buckets) + slot;
                    if (_count[i] > 0)
                    {
                        scores[r][k] = Math.Round(Math.Min(1.0, median / (_sum[i] / _count[i])), 3);
                    }
                }
            }

            return (ranks, scores);
        }

        public void Latest(string job, List<RankScore> into)
        {
            if (NewestBucket == long.MinValue)
            {
                return;
            }

            var (ranks, scores) = Scores(NewestBucket - Buckets + 1);
            for (var r = 0; r < ranks.Count; r++)
            {
                // The newest bucket may still be filling: take the newest of the last two with a value.
                var s = scores[r][Buckets - 1] ?? scores[r][Buckets - 2];
                if (s is { } score)
                {
                    into.Add(new RankScore(job, ranks[r].Rank, ranks[r].Node, ranks[r].Gpu, score));
                }
            }
        }
    }
}

/// <summary>Where a rank runs.</summary>
public sealed record RankPlace(int Rank, string Node, int Gpu);

/// <summary>A rank's current score (1 keeps pace with the median rank; 0.5 takes twice as long).</summary>
public sealed record RankScore(string Job, int Rank, string Node, int Gpu, double Score);

/// <summary>A rank the detector flagged, with the cause it attributed.</summary>
public sealed record FlaggedRankView(int Rank, string Node, int Gpu, double Score, long FirstFlaggedStep, string Cause, IReadOnlyList<string> Evidence, DateTimeOffset Since, bool Escalated);

/// <summary>What the live detector currently holds about a job.</summary>
public sealed record LiveJobState(string Job, int Ranks, long LastStep, double? MedianStepMs, bool Hung, IReadOnlyList<FlaggedRankView> Flagged, IReadOnlyList<string> HangTargets);

/// <summary>The jobs view's matrix: <paramref name="Scores"/>[i] belongs to <paramref name="Ranks"/>[i], one point per bucket from <paramref name="Start"/>.</summary>
public sealed record JobStragglerView(string Job, DateTimeOffset Start, double BucketSeconds, IReadOnlyList<RankPlace> Ranks, IReadOnlyList<double?[]> Scores, LiveJobState? Detector);
