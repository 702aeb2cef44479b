using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using FleetWatch.Controller.Remediation.Rebalancing;

namespace FleetWatch.Bench.Rebalance;

/// <summary>
/// Expert-rebalancer benchmark: FleetWatch's planner against EPLB's recorded results on every public case of
/// bench-data/eplb, plus weight moves after losing one GPU. Usage: <c>[CASE_DIR]</c> (default: the public set of
/// the shared folder next to the repository).
/// </summary>
public static class Program
{
    private static readonly ExpertPlannerOptions Options = new();

    public static int Main(string[] args)
    {
        var dir = args.Length > 0 ? args[0] : Path.Combine(FindRepoRoot(), "..", "shared", "bench-data", "eplb", "public");
        if (!Directory.Exists(dir))
        {
            Console.Error.WriteLine($"bench: no case folder {dir}");
            return 2;
        }

        var files = Directory.GetFiles(dir, "*.input.json");
        Array.Sort(files, StringComparer.Ordinal);
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine("| case | shape L/E/R/G | EPLB mean | EPLB max | EPLB ms (recorded) | EPLB global mean | FleetWatch mean | FleetWatch max | FleetWatch ms (wall) | FleetWatch ms (CPU) | lower bound | ratio vs EPLB |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
        var logRatio = 0.0;
        var logRatioGlobal = 0.0;
        var cases = new List<RebalanceCase>();
        foreach (var file in files)
        {
            var c = RebalanceCase.Parse(File.ReadAllText(file), Path.GetFileName(file), out var reason)
                ?? throw new InvalidDataException($"{file}: {reason}");
            cases.Add(c);
            using var eplb = JsonDocument.Parse(File.ReadAllText(file.Replace(".input.json", ".eplb.json", StringComparison.Ordinal)));
            var root = eplb.RootElement;
            var eMean = root.GetProperty("metrics").GetProperty("mean_imbalance").GetDouble();
            var eMax = root.GetProperty("metrics").GetProperty("max_imbalance").GetDouble();
            var eMs = root.GetProperty("time_ms").GetProperty("median").GetDouble();
            var gMean = root.TryGetProperty("global_policy_reference", out var gp)
                && gp.TryGetProperty("mean_imbalance", out var gm)
                ? gm.GetDouble()
                : eMean;
            var request = new ExpertPlanRequest(c.Weight, c.Gpus);
            _ = ExpertPlanner.Plan(request, Options);
            var times = new double[5];
            var cpu = new double[5];
            ExpertPlan plan = null!;
            using var self = Process.GetCurrentProcess();
            for (var i = 0; i < times.Length; i++)
            {
                self.Refresh();
                var c0 = self.TotalProcessorTime;
                var t0 = Stopwatch.GetTimestamp();
                plan = ExpertPlanner.Plan(request, Options);
                times[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                self.Refresh();
                cpu[i] = (self.TotalProcessorTime - c0).TotalMilliseconds;
            }

            Array.Sort(times);
            Array.Sort(cpu);
            var ratio = plan.MeanImbalance / eMean;
            logRatio += Math.Log(ratio);
            logRatioGlobal += Math.Log(plan.MeanImbalance / Math.Min(eMean, gMean));
            var slots = c.Gpus.Sum(g => g.Slots);
            Console.WriteLine(string.Create(inv,
                $"| {c.Name} | {c.Weight.Length}/{c.Weight[0].Length}/{slots}/{c.Gpus.Count} | {eMean:F4} | {eMax:F4} | {eMs:F0} | {gMean:F4} | {plan.MeanImbalance:F4} | {plan.MaxImbalance:F4} | {times[times.Length / 2]:F1} | {cpu[cpu.Length / 2]:F0} | {plan.LowerBound.Average():F4} | {ratio:F3} |"));
        }

        Console.WriteLine();
        Console.WriteLine(string.Create(inv,
            $"geometric mean of FleetWatch/EPLB mean imbalance: {Math.Exp(logRatio / files.Length):F4}; vs the better of EPLB's two policies: {Math.Exp(logRatioGlobal / files.Length):F4}"));
        Console.WriteLine();
        Migration(cases);
        return 0;
    }

    /// <summary>Lose one GPU from a balanced placement; compare weight moves of a from-scratch plan and ours.</summary>
    private static void Migration(List<RebalanceCase> cases)
    {
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine("| case (one GPU lost) | GPUs after | imbalance from scratch | moves from scratch | FleetWatch imbalance | FleetWatch moves | repair only (budget 0) imbalance | repair only moves | ms |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var c in cases.Where(c => !c.Name.Contains("lost", StringComparison.Ordinal)))
        {
            var balanced = ExpertPlanner.Plan(new ExpertPlanRequest(c.Weight, c.Gpus));
            var lost = c.Gpus.Count / 2;
            var experts = c.Weight[0].Length;
            var s = c.Gpus[0].Slots;
            var survivors = c.Gpus.Count - 1;
            var newS = Math.Max(s, (experts + survivors - 1) / survivors);
            var gpus = c.Gpus.Where((_, g) => g != lost).Select(g => g with { Slots = newS }).ToArray();
            var current = new int[c.Weight.Length][];
            for (var l = 0; l < current.Length; l++)
            {
                var row = new int[survivors * newS];
                Array.Fill(row, -1);
                var dst = 0;
                for (var g = 0; g < c.Gpus.Count; g++)
                {
                    if (g == lost)
                    {
                        continue;
                    }

                    Array.Copy(balanced.Phy2Log[l], g * s, row, dst * newS, s);
                    dst++;
                }

                current[l] = row;
            }

            var scratch = ExpertPlanner.Plan(new ExpertPlanRequest(c.Weight, gpus));
            var scratchMoves = 0;
            for (var l = 0; l < current.Length; l++)
            {
                scratchMoves += Moves(current[l], scratch.Phy2Log[l], newS);
            }

            var t0 = Stopwatch.GetTimestamp();
            var ours = ExpertPlanner.Plan(new ExpertPlanRequest(c.Weight, gpus, current));
            var ms = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            var repair = ExpertPlanner.Plan(
                new ExpertPlanRequest(c.Weight, gpus, current), new ExpertPlannerOptions { MaxWeightMovesPerLayer = 0 });
            Console.WriteLine(string.Create(inv,
                $"| {c.Name} | {survivors} x {newS} slots | {scratch.MeanImbalance:F4} | {scratchMoves} | {ours.MeanImbalance:F4} | {ours.TotalWeightMoves} | {repair.MeanImbalance:F4} | {repair.TotalWeightMoves} | {ms:F1} |"));
        }
    }

    private static int Moves(int[] current, int[] plan, int slotsPerGpu)
    {
        var moves = 0;
        for (var j = 0; j < plan.Length; j++)
        {
            var g = j / slotsPerGpu;
            var had = false;
            for (var k = g * slotsPerGpu; k < (g + 1) * slotsPerGpu; k++)
            {
                had |= current[k] == plan[j];
            }

            moves += had ? 0 : 1;
        }

        return moves;
    }

    private static string FindRepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "FleetWatch.sln")))
            {
                return d.FullName;
            }
        }

        throw new DirectoryNotFoundException("FleetWatch.sln not found above " + AppContext.BaseDirectory);
    }
}
