using System.Globalization;
using System.Text;
using System.Text.Json;
using FleetWatch.Controller.Stragglers;

namespace FleetWatch.Controller.Tests.Stragglers;

/// <summary>Settings of one generated job (model: bench-data/stragglers/README.md "How the traces are made").</summary>
internal sealed record GeneratedJob
{
    public required string Name { get; init; }
    public int Ranks { get; init; } = 128;
    public int PeerGroups { get; init; } = 4;
    public bool RoundRobinLayout { get; init; }
    public long FirstStep { get; init; }
    public int Steps { get; init; } = 300;
    public double StageCostMs { get; init; } = 1000;
    public double Sigma { get; init; } = 0.03;
    public int RankStragglers { get; init; } = 3;
    public int NodeStragglers { get; init; }
    public int DontCare { get; init; } = 1;
    public bool SlowGroupByDesign { get; init; }
    public bool Hangs { get; init; }
    public int CheckpointEveryMin { get; init; } = 100;
    public int CheckpointEveryMax { get; init; } = 200;
    public double SpikesPerStep { get; init; } = 0.15;

    /// <summary>Slowdowns drawn for true stragglers; README: {1.10, 1.15, 1.25, 1.5, 2.0}.</summary>
    public IReadOnlyList<double> Slowdowns { get; init; } = [1.10, 1.15, 1.25, 1.5, 2.0];
}

/// <summary>A true straggler of a generated trace (truth-file fields).</summary>
internal sealed record TrueStraggler(string Job, int Rank, string Node, int Gpu, string PeerGroup, long OnsetStep, long? EndStep, double Slowdown, string Kind);

/// <summary>A rank slowed by less than 10 %: flagging it or not does not count.</summary>
internal sealed record DontCareRank(string Job, int Rank, long OnsetStep, double Slowdown);

/// <summary>A hung job of a generated trace.</summary>
internal sealed record TrueHang(string Job, long HangStartMs, long LastStep, IReadOnlyList<int> Suspects);

/// <summary>A generated trace with its ground truth.</summary>
internal sealed record GeneratedTrace(
    string Name,
    IReadOnlyList<StepReport> Rows,
    long EndMs,
    IReadOnlyList<TrueStraggler> Stragglers,
    IReadOnlyList<DontCareRank> DontCare,
    IReadOnlyList<TrueHang> Hangs,
    IReadOnlyDictionary<string, double> MedianStepMs)
{
    public string ToCsv()
    {
        var sb = new StringBuilder("job,rank,node,gpu,peer_group,step,end_ms,duration_ms\n");
        foreach (var r in Rows)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{r.Job},{r.Rank},{r.Node},{r.Gpu},{r.PeerGroup},{r.Step},{r.EndMs},{r.DurationMs:0.0}\n");
        }

        return sb.ToString();
    }

    /// <summary>The truth file the Python scorer reads (same fields as the public corpus).</summary>
    public string ToTruthJson()
    {
        var truth = new Dictionary<string, object?>
        {
            ["trace"] = Name + ".csv",
            ["end_ms"] = EndMs,
            ["stragglers"] = Stragglers.Select(s => new Dictionary<string, object?>
            {
                ["job"] = s.Job, ["rank"] = s.Rank, ["node"] = s.Node, ["gpu"] = s.Gpu, ["peer_group"] = s.PeerGroup,
                ["onset_step"] = s.OnsetStep, ["end_step"] = s.EndStep, ["slowdown"] = s.Slowdown, ["kind"] = s.Kind,
            }).ToList(),
            ["dont_care"] = DontCare.Select(d => new Dictionary<string, object?>
            {
                ["job"] = d.Job, ["rank"] = d.Rank, ["onset_step"] = d.OnsetStep, ["slowdown"] = d.Slowdown,
            }).ToList(),
            ["hangs"] = Hangs.Select(h => new Dictionary<string, object?>
            {
                ["job"] = h.Job, ["hang_start_ms"] = h.HangStartMs, ["last_step"] = h.LastStep, ["suspects"] = h.Suspects,
            }).ToList(),
            ["median_step_ms"] = MedianStepMs,
        };
        return JsonSerializer.Serialize(truth);
    }

    public string Args => string.Create(CultureInfo.InvariantCulture, $"--end-ms {EndMs}");
}

/// <summary>
/// Generates step-timing traces following bench-data/stragglers/README.md: per-stage cost × static per-rank offset ×
/// job-wide factor (noise, drift, slow warm-up) × per-rank noise × spikes × checkpoints × straggler slowdown; the step
/// interval is the slowest rank plus communication, every rank's step ends together (a few ms of jitter); ~1 % of rows
/// missing, 0.5 % duplicated a few hundred rows later, optionally shuffled. Written independently of the public corpus
/// so the detector is checked on settings it was not tuned on.
/// </summary>
internal static class StepTraceGenerator
{
    public static GeneratedTrace Generate(
        string name, int seed, IReadOnlyList<GeneratedJob> jobs, double missingRate = 0.01, double duplicateRate = 0.005, bool shuffle = false)
    {
        var rng = new Random(seed);
        var built = jobs.Select(j => BuildJob(j, rng)).ToList();

        // End of observation: every job that does not hang runs until it (its last step ends within one normal interval).
        var running = built.Where(b => !b.Spec.Hangs).ToList();
        var end = running.Count > 0 ? running.Min(b => b.Ends[^1]) : built.Max(b => b.Ends[^1]) + 1;
        bool changed;
        do
        {
            changed = false;
            foreach (var b in running)
            {
                var last = b.LastStepEndingBy(end);
                if (end - b.Ends[last] > 1.5 * b.MedianInterval)
                {
                    end = b.Ends[last] + 1;
                    changed = true;
                }
            }
        }
        while (changed);

        var rows = new List<StepReport>();
        var stragglers = new List<TrueStraggler>();
        var dontCare = new List<DontCareRank>();
        var hangs = new List<TrueHang>();
        var medians = new Dictionary<string, double>();
        foreach (var b in built)
        {
            var spec = b.Spec;
            int lastIndex;
            if (spec.Hangs)
            {
                // The hang leaves at least 12 median intervals of observation after it (README).
                lastIndex = b.LastStepEndingBy(end - (long)(13 * b.MedianInterval));
                lastIndex = Math.Min(lastIndex, b.Ends.Length - 1);
            }
            else
            {
                lastIndex = b.LastStepEndingBy(end);
            }

            var suspects = new HashSet<int>();
            if (spec.Hangs)
            {
                var n = rng.Next(1, 3);
                while (suspects.Count < n)
                {
                    suspects.Add(rng.Next(spec.Ranks));
                }
            }

            var hangStart = 0L;
            for (var i = 0; i <= lastIndex; i++)
            {
                for (var r = 0; r < spec.Ranks; r++)
                {
                    if (spec.Hangs && i == lastIndex && suspects.Contains(r))
                    {
                        continue;
                    }

                    var endMs = b.Ends[i] + rng.Next(0, 4);
                    if (spec.Hangs)
                    {
                        hangStart = Math.Max(hangStart, endMs);
                    }

                    rows.Add(new StepReport(spec.Name, r, b.Node(r), r % 8, b.GroupName(r), spec.FirstStep + i, endMs, Math.Round(b.Durations[i][r], 1)));
                }
            }

            var lastStep = spec.FirstStep + lastIndex;
            foreach (var s in b.Stragglers)
            {
                // A slowdown counts only if it stays slow at least 100 observed steps (README); shorter ones are don't care.
                var slowUntil = Math.Min(s.EndStep ?? long.MaxValue, lastStep + 1);
                if (s.Slowdown >= 1.10 && slowUntil - s.OnsetStep >= 100)
                {
                    stragglers.Add(s);
                }
                else
                {
                    dontCare.Add(new DontCareRank(s.Job, s.Rank, s.OnsetStep, s.Slowdown));
                }
            }

            if (spec.Hangs)
            {
                hangs.Add(new TrueHang(spec.Name, hangStart, lastStep, suspects.Order().ToList()));
            }

            var intervals = new List<double>();
            for (var i = 1; i <= lastIndex; i++)
            {
                intervals.Add(b.Ends[i] - b.Ends[i - 1]);
            }

            medians[spec.Name] = Median(intervals);
        }

        rows.Sort((a, c) => a.EndMs.CompareTo(c.EndMs));
        var damaged = new List<StepReport>(rows.Count + (rows.Count / 100));
        var pending = new List<(int At, StepReport Row)>();
        for (var i = 0; i < rows.Count; i++)
        {
            foreach (var p in pending.Where(p => p.At == i).ToList())
            {
                damaged.Add(p.Row);
                pending.Remove(p);
            }

            var u = rng.NextDouble();
            if (u < missingRate)
            {
                continue;
            }

            damaged.Add(rows[i]);
            if (u < missingRate + duplicateRate)
            {
                pending.Add((i + rng.Next(100, 400), rows[i]));
            }
        }

        damaged.AddRange(pending.Select(p => p.Row));
        if (shuffle)
        {
            var array = damaged.ToArray();
            rng.Shuffle(array);
            damaged = [.. array];
        }

        return new GeneratedTrace(name, damaged, end, stragglers, dontCare, hangs, medians);
    }

    private static BuiltJob BuildJob(GeneratedJob spec, Random rng)
    {
        var b = new BuiltJob(spec);
        var groups = spec.PeerGroups;
        var stage = new double[groups];
        for (var g = 0; g < groups; g++)
        {
            stage[g] = spec.StageCostMs * (0.87 + (0.13 * rng.NextDouble()));
        }

        stage[^1] *= 1.08; // the last stage carries the loss / vocabulary layer
        if (spec.SlowGroupByDesign)
        {
            stage[rng.Next(groups - 1)] *= 1.25 + (0.2 * rng.NextDouble());
        }

        var offsetSigma = 0.005 + (0.005 * rng.NextDouble());
        var offset = new double[spec.Ranks];
        for (var r = 0; r < spec.Ranks; r++)
        {
            offset[r] = Math.Exp(offsetSigma * Gaussian(rng));
        }

        // Slowdowns: true stragglers, don't-care ranks and node-level stragglers, on distinct ranks.
        var slow = new double[spec.Ranks];
        Array.Fill(slow, 1.0);
        var onset = new long[spec.Ranks];
        var until = new long?[spec.Ranks];
        var taken = new HashSet<int>();
        var warm = 8;
        var latestOnset = Math.Max(warm + 1, spec.Steps - 110);
        void Add(int rank, double s, long on, long? end, string kind)
        {
            taken.Add(rank);
            slow[rank] = s;
            onset[rank] = on;
            until[rank] = end;
            if (s >= 1.10 || kind == "dc")
            {
                b.Stragglers.Add(new TrueStraggler(spec.Name, rank, b.Node(rank), rank % 8, b.GroupName(rank),
                    spec.FirstStep + on, end is { } e ? spec.FirstStep + e : null, s, kind == "dc" ? "rank" : kind));
            }
        }

        int FreeRank()
        {
            int r;
            do
            {
                r = rng.Next(spec.Ranks);
            }
            while (taken.Contains(r));
            return r;
        }

        (long On, long? End) Window()
        {
            long on = rng.Next(warm + 10, latestOnset);
            long? end = rng.NextDouble() < 0.4 && on + 130 < spec.Steps ? on + rng.Next(110, (int)Math.Min(spec.Steps - on, 250)) : null;
            return (on, end);
        }

        for (var i = 0; i < spec.NodeStragglers; i++)
        {
            var nodes = spec.Ranks / 8;
            int node;
            do
            {
                node = rng.Next(nodes);
            }
            while (Enumerable.Range(node * 8, 8).Any(taken.Contains));
            var (on, end) = Window();
            var s = spec.Slowdowns[rng.Next(spec.Slowdowns.Count)];
            for (var r = node * 8; r < (node * 8) + 8; r++)
            {
                Add(r, s, on, end, "node");
            }
        }

        for (var i = 0; i < spec.RankStragglers; i++)
        {
            var (on, end) = Window();
            Add(FreeRank(), spec.Slowdowns[rng.Next(spec.Slowdowns.Count)], on, end, "rank");
        }

        for (var i = 0; i < spec.DontCare; i++)
        {
            var (on, _) = Window();
            Add(FreeRank(), rng.NextDouble() < 0.5 ? 1.05 : 1.08, on, null, "dc");
        }

        // Checkpoints: every rank 3–10× longer on the same step.
        var checkpoint = new double[spec.Steps];
        Array.Fill(checkpoint, 1.0);
        for (var s = rng.Next(spec.CheckpointEveryMin, spec.CheckpointEveryMax + 1); s < spec.Steps - 20;
             s += rng.Next(spec.CheckpointEveryMin, spec.CheckpointEveryMax + 1))
        {
            checkpoint[s] = 3 + (7 * rng.NextDouble());
        }

        // Spikes: 1–3 consecutive steps ×1.5–3.5 on a random rank.
        var spikes = new Dictionary<(int Step, int Rank), double>();
        for (var s = 0; s < spec.Steps; s++)
        {
            if (rng.NextDouble() < spec.SpikesPerStep)
            {
                var r = rng.Next(spec.Ranks);
                var f = 1.5 + (2 * rng.NextDouble());
                for (var k = 0; k < rng.Next(1, 4); k++)
                {
                    spikes[(s + k, r)] = f;
                }
            }
        }

        var comm = 0.03 + (0.06 * rng.NextDouble());
        var driftPeriod = 150 + rng.Next(200);
        var t = (long)rng.Next(1000, 5000);
        for (var s = 0; s < spec.Steps; s++)
        {
            var jobWide = Math.Exp(0.01 * Gaussian(rng)) * (1 + (0.04 * Math.Sin(2 * Math.PI * s / driftPeriod)))
                * (s < 3 ? 1.6 - (0.2 * s) : 1.0) * checkpoint[s];
            var d = new double[spec.Ranks];
            var max = 0.0;
            for (var r = 0; r < spec.Ranks; r++)
            {
                var v = stage[b.Group(r)] * offset[r] * jobWide * Math.Exp(spec.Sigma * Gaussian(rng));
                if (spikes.TryGetValue((s, r), out var spike))
                {
                    v *= spike;
                }

                if (slow[r] > 1 && s >= onset[r] && (until[r] is null || s < until[r]))
                {
                    v *= slow[r];
                }

                d[r] = v;
                max = Math.Max(max, v);
            }

            t += (long)Math.Round(max * (1 + comm));
            b.Durations.Add(d);
            b.EndList.Add(t);
        }

        b.Freeze();
        return b;
    }

    private static double Gaussian(Random rng)
    {
        var u1 = 1.0 - rng.NextDouble();
        var u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    internal static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }

        var s = values.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[(s.Length / 2) - 1] + s[s.Length / 2]) / 2;
    }

    private sealed class BuiltJob(GeneratedJob spec)
    {
        private readonly string[] _groupNames = Enumerable.Range(0, spec.PeerGroups)
            .Select(g => string.Create(CultureInfo.InvariantCulture, $"pp{g:00}")).ToArray();

        public GeneratedJob Spec { get; } = spec;
        public List<double[]> Durations { get; } = [];
        public List<long> EndList { get; } = [];
        public List<TrueStraggler> Stragglers { get; } = [];
        public long[] Ends { get; private set; } = [];
        public double MedianInterval { get; private set; }

        public void Freeze()
        {
            Ends = [.. EndList];
            MedianInterval = Median(Ends.Zip(Ends.Skip(1), (a, c) => (double)(c - a)).ToList());
        }

        public int Group(int rank) => Spec.RoundRobinLayout
            ? rank / 8 % Spec.PeerGroups
            : rank / (Spec.Ranks / Spec.PeerGroups);

        public string GroupName(int rank) => _groupNames[Group(rank)];

        public string Node(int rank) => string.Create(CultureInfo.InvariantCulture, $"{Spec.Name}-n{rank / 8:0000}");

        public int LastStepEndingBy(long endMs)
        {
            var i = Array.BinarySearch(Ends, endMs);
            return i >= 0 ? i : Math.Max(0, ~i - 1);
        }
    }
}
