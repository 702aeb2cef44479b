using System.Diagnostics;
using System.Globalization;
using FleetWatch.Controller.Stragglers;
using FleetWatch.Controller.Tests.Stragglers;

namespace FleetWatch.Bench.Stragglers;

/// <summary>
/// Straggler detector benchmark (issue 5): analysis time per step at 1,024 and 10,240 ranks, detection delay by
/// slowdown factor, and precision / recall on generated traces. Run in Release:
/// <c>dotnet run -c Release --project bench/FleetWatch.Bench.Stragglers</c> (<c>--quick</c> for a short run, <c>--traces N</c> for more precision/recall traces).
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        var quick = args.Contains("--quick");
        CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        Console.WriteLine("# FleetWatch straggler detector benchmark");
        Console.WriteLine();
        Cost(1_024, quick ? 100 : 400);
        Cost(10_240, quick ? 60 : 200);
        Console.WriteLine();
        DelayByFactor(quick ? 2 : 6);
        Console.WriteLine();
        var traces = Array.IndexOf(args, "--traces") is var i and >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : 0;
        PrecisionRecall(traces > 0 ? traces : quick ? 4 : 12);
        return 0;
    }

    /// <summary>Feeds synchronous steps of <paramref name="ranks"/> ranks (64 per peer group) and times the detector.</summary>
    private static void Cost(int ranks, int steps)
    {
        var detector = new StragglerDetector(new StragglerDetectorOptions());
        var findings = new List<StragglerFinding>();
        var rng = new Random(ranks);
        var groups = Enumerable.Range(0, ranks / 64).Select(g => $"pp{g:000}").ToArray();
        var nodes = Enumerable.Range(0, ranks / 8).Select(n => $"n{n:00000}").ToArray();
        var duration = new double[ranks];

        const double stepMs = 2_000;
        var perStep = new List<double>(steps);
        var closes = new List<double>(steps);
        var t = 0L;
        var allocatedBefore = 0L;
        for (var s = 0; s < steps; s++)
        {
            if (s == 20)
            {
                // Steady state from here: arrays have grown to the rank count, the JIT has tiered up.
                GC.Collect();
                allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
            }

            t += (long)stepMs;
            for (var r = 0; r < ranks; r++)
            {
                // Fresh per-step noise (sigma 3 %), drawn outside the timed region.
                var slow = r % 997 == 0 && s > 50 ? 1.2 : 1.0; // a few stragglers so the flagging paths run
                duration[r] = 1_500 * slow * Math.Exp(0.03 * Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
            }

            var stepWatch = Stopwatch.StartNew();
            for (var r = 0; r < ranks; r++)
            {
                var report = new StepReport("big", r, nodes[r / 8], r % 8, groups[r / 64], s, t + (r & 3), duration[r]);
                if (r == 0)
                {
                    // The first report of step s closes step s-1: this call carries the whole per-step analysis.
                    var close = Stopwatch.GetTimestamp();
                    detector.Observe(report, findings);
                    closes.Add(Stopwatch.GetElapsedTime(close).TotalMilliseconds);
                }
                else
                {
                    detector.Observe(report, findings);
                }
            }

            perStep.Add(stepWatch.Elapsed.TotalMilliseconds);
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        var warm = perStep.Skip(20).ToList();
        var warmCloses = closes.Skip(20).ToList();
        Console.WriteLine(
            $"cost {ranks,6} ranks, {steps} steps: per step (ingest {ranks} reports + analysis) mean {warm.Average():0.000} ms, " +
            $"p99 {Pct(warm, 0.99):0.000} ms, max {warm.Max():0.000} ms; analysis alone (step close) mean {warmCloses.Average():0.000} ms, " +
            $"p50 {Pct(warmCloses, 0.5):0.000} p90 {Pct(warmCloses, 0.9):0.000} (every 8th step also judges the window) max {warmCloses.Max():0.000} ms; per report {warm.Sum() * 1e6 / ((double)ranks * warm.Count):0} ns; " +
            $"= {100 * warm.Average() / stepMs:0.000} % of a {stepMs / 1000:0} s step; allocated {allocated / (double)(steps - 20) / 1024:0.00} KiB/step; " +
            $"flagged ranks {findings.OfType<StragglerFlagged>().Select(f => f.Rank).Distinct().Count()} (slowed: {(ranks + 996) / 997})");
    }

    /// <summary>Detection delay (first flagged step − onset) for each slowdown factor, over generated traces.</summary>
    private static void DelayByFactor(int seeds)
    {
        Console.WriteLine("detection delay by slowdown factor (128 ranks, 4 peer groups, noise sigma 0.02–0.05, 6 stragglers per trace, " +
                          $"{seeds} seeds × 3 noise levels; default options vs the same engine with NVRx's 0.75 threshold):");
        var nvrx = new StragglerDetectorOptions { RelativeThreshold = 0.75, IndividualThreshold = 0.75 };
        foreach (var factor in new[] { 1.10, 1.25, 1.5, 2.0 })
        {
            var ours = new Grade();
            var anchor = new Grade();
            foreach (var sigma in new[] { 0.02, 0.035, 0.05 })
            {
                for (var seed = 0; seed < seeds; seed++)
                {
                    var trace = StepTraceGenerator.Generate($"d{factor}", 1000 + seed + (int)(sigma * 1e4),
                    [
                        new GeneratedJob { Name = "j", Ranks = 128, PeerGroups = 4, Steps = 300, Sigma = sigma, RankStragglers = 6, Slowdowns = [factor], DontCare = 0 },
                    ]);
                    ours.Add(trace, StragglerTool.Analyse(trace.Rows, trace.EndMs, new StragglerDetectorOptions()));
                    anchor.Add(trace, StragglerTool.Analyse(trace.Rows, trace.EndMs, nvrx));
                }
            }

            Console.WriteLine(
                $"  x{factor:0.00}: detected {ours.Detected}/{ours.True} (recall {ours.Recall:0.000}), delay median {Pct(ours.Delays, 0.5):0} " +
                $"p90 {Pct(ours.Delays, 0.9):0} max {ours.Delays.DefaultIfEmpty(double.NaN).Max():0} steps, false positives {ours.FalsePositives}" +
                $"  | threshold 0.75: detected {anchor.Detected}/{anchor.True}, delay median {Pct(anchor.Delays, 0.5):0} steps");
        }
    }

    /// <summary>Precision and recall over varied generated traces (rank counts, layouts, noise, damage, hangs).</summary>
    private static void PrecisionRecall(int traces)
    {
        var grade = new Grade();
        var rng = new Random(2024);
        var rows = 0L;
        for (var i = 0; i < traces; i++)
        {
            var ranks = new[] { 64, 128, 256, 512 }[rng.Next(4)];
            var groups = new[] { 2, 4, 8 }[rng.Next(3)];
            var roundRobin = ranks / 8 / groups >= 4 && rng.Next(2) == 0;
            var jobs = new List<GeneratedJob>
            {
                new()
                {
                    Name = "a", Ranks = ranks, PeerGroups = groups, RoundRobinLayout = roundRobin, Steps = 220 + rng.Next(200),
                    Sigma = 0.02 + (0.03 * rng.NextDouble()), RankStragglers = rng.Next(0, 6), NodeStragglers = ranks / 8 / groups >= 4 ? rng.Next(0, 2) : 0,
                    SlowGroupByDesign = rng.Next(3) == 0, FirstStep = rng.Next(2) * 10_000, StageCostMs = 600 + rng.Next(2500),
                    CheckpointEveryMin = 50 + rng.Next(60), CheckpointEveryMax = 150 + rng.Next(60),
                },
            };
            if (rng.Next(2) == 0)
            {
                jobs.Add(new GeneratedJob
                {
                    Name = "b", Ranks = 64, PeerGroups = 4, Steps = 200 + rng.Next(100), Sigma = 0.03, RankStragglers = rng.Next(0, 4),
                    Hangs = rng.Next(2) == 0, StageCostMs = 800 + rng.Next(1500),
                });
            }

            var trace = StepTraceGenerator.Generate($"pr{i}", 5000 + i, jobs, shuffle: rng.Next(3) == 0);
            rows += trace.Rows.Count;
            grade.Add(trace, StragglerTool.Analyse(trace.Rows, trace.EndMs, new StragglerDetectorOptions()));
        }

        Console.WriteLine(
            $"precision/recall on {traces} generated traces ({rows:N0} rows; 64–512 ranks, 2–8 groups, sigma 0.02–0.05, checkpoints, damage, hangs): " +
            $"recall {grade.Recall:0.000} ({grade.Detected}/{grade.True}, early {grade.Early}, late {grade.Late}), precision {grade.Precision:0.000} " +
            $"(FP {grade.FalsePositives}), delay median {Pct(grade.Delays, 0.5):0} p90 {Pct(grade.Delays, 0.9):0} steps; " +
            $"hangs {grade.HangsDetected}/{grade.Hangs} within 10 median steps (latency max {grade.HangLatency.DefaultIfEmpty(double.NaN).Max():0.0}×), false hangs {grade.FalseHangs}");
    }

    private static double Pct(IReadOnlyList<double> values, double q)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }

        var s = values.Order().ToArray();
        return s[Math.Max(0, (int)Math.Ceiling(q * s.Length) - 1)];
    }

    /// <summary>The grading rules of score_stragglers.py, in C# so the bench can split figures by slowdown factor.</summary>
    private sealed class Grade
    {
        public int True { get; private set; }
        public int Detected { get; private set; }
        public int Early { get; private set; }
        public int Late { get; private set; }
        public int FlaggedTrue { get; private set; }
        public int FalsePositives { get; private set; }
        public int Hangs { get; private set; }
        public int HangsDetected { get; private set; }
        public int FalseHangs { get; private set; }
        public List<double> Delays { get; } = [];
        public List<double> HangLatency { get; } = [];
        public double Recall => True == 0 ? 1 : (double)Detected / True;
        public double Precision => FlaggedTrue + FalsePositives == 0 ? 1 : (double)FlaggedTrue / (FlaggedTrue + FalsePositives);

        public void Add(GeneratedTrace trace, StragglerAnalysis result)
        {
            var flags = result.Stragglers.GroupBy(s => (s.Job, s.Rank)).ToDictionary(g => g.Key, g => g.Min(s => s.FirstFlaggedStep));
            var truth = trace.Stragglers.ToDictionary(s => (s.Job, s.Rank));
            var dontCare = trace.DontCare.Select(d => (d.Job, d.Rank)).ToHashSet();
            foreach (var (key, s) in truth)
            {
                True++;
                if (!flags.TryGetValue(key, out var step))
                {
                    continue;
                }

                if (step < s.OnsetStep)
                {
                    Early++;
                }
                else if (step > s.OnsetStep + 100)
                {
                    Late++;
                }
                else
                {
                    Detected++;
                    Delays.Add(step - s.OnsetStep);
                }
            }

            FlaggedTrue += flags.Keys.Count(truth.ContainsKey);
            FalsePositives += flags.Keys.Count(k => !truth.ContainsKey(k) && !dontCare.Contains(k));
            foreach (var h in trace.Hangs)
            {
                Hangs++;
                var median = trace.MedianStepMs[h.Job];
                var found = result.Hangs.FirstOrDefault(o => o.Job == h.Job && o.AtMs > h.HangStartMs && o.AtMs <= h.HangStartMs + (10 * median));
                if (found is not null)
                {
                    HangsDetected++;
                    HangLatency.Add((found.AtMs - h.HangStartMs) / median);
                }
            }

            FalseHangs += result.Hangs.Count(o => trace.Hangs.All(h => h.Job != o.Job));
        }
    }
}
