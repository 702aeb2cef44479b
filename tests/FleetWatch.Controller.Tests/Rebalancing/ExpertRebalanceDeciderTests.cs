using FleetWatch.Contracts;
using FleetWatch.Controller.Remediation.Rebalancing;

namespace FleetWatch.Controller.Tests.Rebalancing;

/// <summary>Table-driven tests of the controller's pure rebalancing step.</summary>
public sealed class ExpertRebalanceDeciderTests
{
    private const int Experts = 64;
    private const int SlotsPerGpu = 5;

    public enum Expect
    {
        NoCommand,
        Command,
    }

    /// <summary>name, load kind of the window, placement the job runs, capacity changes, budget, expected outcome.</summary>
    public static TheoryData<string, string, string, GpuCapacityChange[], int?, Expect> Cases => new()
    {
        { "balanced, nothing changed", "zipf", "balanced", [], null, Expect.NoCommand },
        { "load drifted from a naive placement", "zipf", "naive", [], null, Expect.Command },
        { "one GPU lost (8,7 GPUs per node)", "zipf", "balanced", [new("node-1", 7, GpuCapacityState.Unavailable)], null, Expect.Command },
        { "one GPU lost, budget 0", "zipf", "balanced", [new("node-1", 7, GpuCapacityState.Unavailable)], 0, Expect.Command },
        { "a whole node lost", "zipf", "balanced", Enumerable.Range(0, 8).Select(g => new GpuCapacityChange("node-0", g, GpuCapacityState.Unavailable)).ToArray(), null, Expect.Command },
        { "a straggler at half speed", "uniform", "balanced", [new("node-0", 2, GpuCapacityState.Degraded, 0.5)], null, Expect.Command },
        { "change on a GPU the job does not use", "zipf", "balanced", [new("node-9", 0, GpuCapacityState.Unavailable)], null, Expect.NoCommand },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decide(string name, string load, string placement, GpuCapacityChange[] changes, int? budget, Expect expect)
    {
        var report = Report(load, placement);
        var options = new ExpertRebalancingOptions { MaxWeightMovesPerLayer = budget };
        var decision = ExpertRebalanceDecider.Decide(report, changes, cycle: 7, options);
        if (expect == Expect.NoCommand)
        {
            Assert.Null(decision.Command);
            Assert.Contains("balanced enough", decision.Outcome, StringComparison.Ordinal);
            return;
        }

        var command = Assert.IsType<ApplyExpertPlacement>(decision.Command);
        Assert.Equal("job-1/7", command.PlanId);
        Assert.Equal(report.PlacementVersion, command.BasedOnPlacementVersion);
        var unavailable = changes.Where(c => c.State == GpuCapacityState.Unavailable).Select(c => (c.Node, c.Gpu)).ToHashSet();
        Assert.DoesNotContain(command.Gpus, g => unavailable.Contains((g.Node, g.Gpu)));
        Assert.Equal(report.Gpus.Count - unavailable.Count(u => report.Gpus.Any(g => (g.Node, g.Gpu) == u)), command.Gpus.Count);
        var slots = command.Gpus.Sum(g => g.Slots);
        Assert.True(slots >= Experts, name);
        for (var l = 0; l < command.Placement.Count; l++)
        {
            Assert.Equal(slots, command.Placement[l].Count);
            Assert.Equal(Experts, command.Placement[l].Distinct().Count());
        }

        Assert.Equal(command.WeightMoveCount, command.WeightMoves.Count);
        Assert.Equal(MovesFromScratch(report, command), command.WeightMoveCount);
        if (budget is null)
        {
            // As good as a fresh plan on the same surviving topology, up to the migration tolerance.
            var speeds = changes.Where(c => c.State == GpuCapacityState.Degraded).ToDictionary(c => (c.Node, c.Gpu), c => c.Speed);
            var topology = command.Gpus.Select(g => new ExpertGpu(0, g.Slots, Speed: speeds.GetValueOrDefault((g.Node, g.Gpu), 1.0))).ToArray();
            var fresh = ExpertPlanner.Plan(new ExpertPlanRequest(Loads(report), topology));
            Assert.True(
                command.ExpectedImbalanceAfter <= fresh.MeanImbalance + options.MigrationBalanceTolerance + 1e-9,
                $"{name}: {command.ExpectedImbalanceAfter} vs fresh {fresh.MeanImbalance}");
        }

        if (unavailable.Count > 0)
        {
            Assert.Contains("unavailable", command.Reason, StringComparison.Ordinal);
        }

        if (budget == 0)
        {
            // Only experts that lost every replica are copied, and they come from the checkpoint.
            Assert.All(command.WeightMoves, m => Assert.Null(m.FromNode));
        }
        else if (command.ExpectedImbalanceBefore is { } before)
        {
            Assert.True(command.ExpectedImbalanceAfter < before, $"{name}: {before} -> {command.ExpectedImbalanceAfter}");
        }
    }

    [Fact]
    public void Decide_MovesFarFewerWeightsThanAFreshPlan_AfterAGpuLoss()
    {
        var report = Report("zipf", "balanced");
        var lost = new GpuCapacityChange("node-1", 3, GpuCapacityState.Unavailable);
        var command = ExpertRebalanceDecider.Decide(report, [lost], 1, new ExpertRebalancingOptions()).Command!;
        var survivors = report.Gpus.Where(g => (g.Node, g.Gpu) != ("node-1", 3)).Select(_ => new ExpertGpu(0, SlotsPerGpu)).ToArray();
        var fresh = ExpertPlanner.Plan(new ExpertPlanRequest(Loads(report), survivors));
        var current = CurrentOnSurvivors(report, command);
        var freshMoves = Enumerable.Range(0, fresh.Phy2Log.Length).Sum(l => ExpertPlannerTests.Moves(current[l], fresh.Phy2Log[l], SlotsPerGpu));
        Assert.True(command.WeightMoveCount * 4 < freshMoves * 3, $"{command.WeightMoveCount} moves vs {freshMoves} from scratch");
        Assert.True(command.ExpectedImbalanceAfter <= fresh.MeanImbalance + 0.005 + 1e-9);
    }

    [Fact]
    public void Decide_ReportsAMalformedReport_InsteadOfThrowing()
    {
        var report = Report("zipf", "balanced") with { Placement = [[0, 1, 2]] };
        var decision = ExpertRebalanceDecider.Decide(report, [], 1, new ExpertRebalancingOptions());
        Assert.Null(decision.Command);
        Assert.StartsWith("invalid report", decision.Outcome, StringComparison.Ordinal);
    }

    private static int MovesFromScratch(ExpertLoadReport report, ApplyExpertPlacement command)
    {
        var current = CurrentOnSurvivors(report, command);
        var moves = 0;
        for (var l = 0; l < current.Length; l++)
        {
            var start = 0;
            foreach (var gpu in command.Gpus)
            {
                for (var j = start; j < start + gpu.Slots; j++)
                {
                    moves += current[l].Skip(start).Take(gpu.Slots).Contains(command.Placement[l][j]) ? 0 : 1;
                }

                start += gpu.Slots;
            }
        }

        return moves;
    }

    private static int[][] CurrentOnSurvivors(ExpertLoadReport report, ApplyExpertPlacement command)
    {
        var oldStart = new Dictionary<(string, int), int>();
        var s = 0;
        foreach (var g in report.Gpus)
        {
            oldStart[(g.Node, g.Gpu)] = s;
            s += g.Slots;
        }

        return report.Placement.Select(row =>
        {
            var result = new List<int>();
            foreach (var gpu in command.Gpus)
            {
                var from = oldStart[(gpu.Node, gpu.Gpu)];
                result.AddRange(Enumerable.Range(0, gpu.Slots).Select(k => k < SlotsPerGpu ? row[from + k] : -1));
            }

            return result.ToArray();
        }).ToArray();
    }

    private static double[][] Loads(ExpertLoadReport report) =>
        report.TokensPerExpert.Select(r => r.Select(x => (double)x).ToArray()).ToArray();

    private static ExpertLoadReport Report(string load, string placement)
    {
        var loads = ExpertPlannerTests.Loads(load, layers: 4, Experts, seed: 11);
        var gpus = Enumerable.Range(0, 16).Select(g => new ExpertSlotGpu($"node-{g / 8}", g % 8, SlotsPerGpu)).ToArray();
        int[][] rows = placement == "balanced"
            ? ExpertPlanner.Plan(new ExpertPlanRequest(loads, gpus.Select(g => new ExpertGpu(0, g.Slots)).ToArray())).Phy2Log
            : loads.Select(_ => Enumerable.Range(0, 16 * SlotsPerGpu).Select(j => j % Experts).ToArray()).ToArray();
        return RebalanceTestKit.Report("job-1", loads, gpus, rows) with { ExpertGroups = 8, PlacementVersion = 3 };
    }
}
