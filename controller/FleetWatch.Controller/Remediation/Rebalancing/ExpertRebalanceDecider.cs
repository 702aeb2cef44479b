using System.Globalization;
using FleetWatch.Contracts;

namespace FleetWatch.Controller.Remediation.Rebalancing;

/// <summary>What happened to a GPU's capacity, as the controller knows it (cordon, loss, straggler).</summary>
public enum GpuCapacityState
{
    /// <summary>The GPU is gone (lost, cordoned): its slots are removed.</summary>
    Unavailable = 0,

    /// <summary>The GPU runs slow (a straggler): it keeps its slots but is given load in proportion to its speed.</summary>
    Degraded = 1,
}

/// <summary>A capacity change of one GPU. <paramref name="Speed"/> (0..1] applies to <see cref="GpuCapacityState.Degraded"/>.</summary>
public sealed record GpuCapacityChange(string Node, int Gpu, GpuCapacityState State, double Speed = 1.0);

/// <summary>Options of the expert rebalancer (section <c>FleetWatch:ExpertRebalancing</c>).</summary>
public sealed class ExpertRebalancingOptions
{
    public const string SectionName = "FleetWatch:ExpertRebalancing";

    /// <summary>Most weight copies per layer (null: no limit); copies a lost GPU forces are made even past it.</summary>
    public int? MaxWeightMovesPerLayer { get; set; }

    /// <summary>Imbalance a plan may give up to move fewer weights (0.005 = 0.5 % of the mean GPU load).</summary>
    public double MigrationBalanceTolerance { get; set; } = 0.005;

    /// <summary>
    /// Without a topology change, re-place only when the mean imbalance improves by at least this much (0.02 = 2 %):
    /// moving weights costs step time, and a window's loads are noisy (research/eplb.md 5.6).
    /// </summary>
    public double MinImbalanceImprovement { get; set; } = 0.02;

    /// <summary>
    /// Without a topology change, each weight copy per layer (on average over layers) raises the improvement a new
    /// plan must bring by this much (1e-4: 100 copies per layer must buy 1 % more). Copies stall the job while
    /// weights move, so a small gain is not worth many of them (SwiftBalancer's gain threshold, research/eplb.md
    /// section 3).
    /// </summary>
    public double ImbalanceCostPerWeightMove { get; set; } = 1e-4;

    /// <summary>Incident categories that slow a GPU rather than remove it (planned at <see cref="StragglerSpeed"/>), comma separated.</summary>
    public string StragglerCategories { get; set; } = "straggler_rank,straggler,over_temperature";

    /// <summary>
    /// Relative speed planned for a GPU under a straggler-category incident, which carries no measured speed (a
    /// flagged straggler's own score is used where one is known).
    /// </summary>
    public double StragglerSpeed { get; set; } = 0.8;

    /// <summary>Placements kept in the in-memory action log (oldest dropped first).</summary>
    public int ActionLogCapacity { get; set; } = 512;

    /// <summary>Prefer keeping an expert group's replicas in one node when it costs little balance.</summary>
    public ExpertLocality Locality { get; set; } = ExpertLocality.None;

    /// <summary>Balance given up for locality, as a fraction of the mean GPU load.</summary>
    public double LocalityTolerance { get; set; } = 0.01;

    /// <summary>How often a job is re-planned without a topology change (for the scheduled job).</summary>
    public TimeSpan ReplanInterval { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Queue of the command lane that <see cref="FleetWatch.Contracts.ApplyExpertPlacement"/> is sent to.</summary>
    public string CommandQueue { get; set; } = "fleetwatch-commands";
}

/// <summary>Outcome of <see cref="ExpertRebalanceDecider.Decide"/>: a command to send, or why there is none.</summary>
public sealed record ExpertRebalanceDecision(ApplyExpertPlacement? Command, string Outcome, ExpertPlan? Plan);

/// <summary>
/// Pure part of the controller's rebalancing: from a job's latest <see cref="ExpertLoadReport"/> and the GPUs that
/// lost or reduced capacity, build the planner input (surviving topology, current placement mapped onto it) and
/// the <see cref="ApplyExpertPlacement"/> to send. Consumers and jobs only load state, call this, and send.
/// </summary>
public static class ExpertRebalanceDecider
{
    public static ExpertRebalanceDecision Decide(
        ExpertLoadReport report,
        IReadOnlyCollection<GpuCapacityChange> changes,
        long cycle,
        ExpertRebalancingOptions options)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentNullException.ThrowIfNull(changes);
        ArgumentNullException.ThrowIfNull(options);
        var problem = CheckReport(report);
        if (problem is not null)
        {
            return new ExpertRebalanceDecision(null, "invalid report: " + problem, null);
        }

        var byGpu = new Dictionary<(string, int), GpuCapacityChange>();
        foreach (var change in changes)
        {
            byGpu[(change.Node, change.Gpu)] = change;
        }

        var experts = report.TokensPerExpert[0].Count;
        var survivors = new List<int>();
        var affected = new List<string>();
        for (var g = 0; g < report.Gpus.Count; g++)
        {
            var gpu = report.Gpus[g];
            if (byGpu.TryGetValue((gpu.Node, gpu.Gpu), out var change))
            {
                affected.Add(string.Create(CultureInfo.InvariantCulture, $"{gpu.Node}/{gpu.Gpu} {Describe(change)}"));
                if (change.State == GpuCapacityState.Unavailable)
                {
                    continue;
                }
            }

            if (gpu.Slots > 0)
            {
                survivors.Add(g);
            }
        }

        if (survivors.Count == 0)
        {
            return new ExpertRebalanceDecision(null, "no surviving GPU holds expert slots", null);
        }

        // Keep each survivor's slot count; grow them evenly only when the survivors cannot hold every expert
        // (bench-data/eplb README: 32 -> 24 GPUs go from 9 to 11 slots).
        var slotTotal = survivors.Sum(g => report.Gpus[g].Slots);
        var grow = slotTotal >= experts ? 0 : (experts - slotTotal + survivors.Count - 1) / survivors.Count;
        var gpus = new ExpertGpu[survivors.Count];
        var slotGpus = new ExpertSlotGpu[survivors.Count];
        var nodeIds = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < survivors.Count; i++)
        {
            var old = report.Gpus[survivors[i]];
            var node = nodeIds.TryGetValue(old.Node, out var id) ? id : nodeIds[old.Node] = nodeIds.Count;
            var speed = byGpu.TryGetValue((old.Node, old.Gpu), out var c) && c.State == GpuCapacityState.Degraded
                ? Math.Clamp(c.Speed, 0.05, 1.0)
                : 1.0;
            gpus[i] = new ExpertGpu(node, old.Slots + grow, node, speed);
            slotGpus[i] = old with { Slots = old.Slots + grow };
        }

        var oldStart = new int[report.Gpus.Count + 1];
        for (var g = 0; g < report.Gpus.Count; g++)
        {
            oldStart[g + 1] = oldStart[g] + report.Gpus[g].Slots;
        }

        var layers = report.TokensPerExpert.Count;
        var loads = new double[layers][];
        var current = new int[layers][];
        var newSlots = gpus.Sum(g => g.Slots);
        for (var l = 0; l < layers; l++)
        {
            loads[l] = report.TokensPerExpert[l].Select(x => (double)Math.Max(0, x)).ToArray();
            var row = new int[newSlots];
            Array.Fill(row, -1);
            var dst = 0;
            for (var i = 0; i < survivors.Count; i++)
            {
                var g = survivors[i];
                for (var j = oldStart[g]; j < oldStart[g + 1]; j++)
                {
                    row[dst + j - oldStart[g]] = report.Placement[l][j];
                }

                dst += gpus[i].Slots;
            }

            current[l] = row;
        }

        var plan = ExpertPlanner.Plan(
            new ExpertPlanRequest(loads, gpus, current),
            new ExpertPlannerOptions
            {
                MaxWeightMovesPerLayer = options.MaxWeightMovesPerLayer,
                MigrationBalanceTolerance = options.MigrationBalanceTolerance,
                Locality = options.Locality,
                LocalityTolerance = options.LocalityTolerance,
                ExpertGroups = report.ExpertGroups,
            });

        var before = plan.ImbalanceBefore!.Average();
        var after = plan.MeanImbalance;
        // A drift-only re-plan must pay for its weight copies: the bar rises with the copies per layer.
        var required = options.MinImbalanceImprovement
            + (options.ImbalanceCostPerWeightMove * plan.TotalWeightMoves / Math.Max(1, layers));
        if (affected.Count == 0 && !(before - after >= required))
        {
            return new ExpertRebalanceDecision(
                null,
                string.Create(
                    CultureInfo.InvariantCulture,
                    $"balanced enough: imbalance {before:F4}, a new plan reaches {after:F4} with {plan.TotalWeightMoves} weight moves (needs a gain of {required:F4})"),
                plan);
        }

        var reason = affected.Count > 0
            ? "capacity changed: " + string.Join(", ", affected)
            : string.Create(CultureInfo.InvariantCulture, $"load drift: imbalance {before:F4} -> {after:F4}");
        var command = new ApplyExpertPlacement
        {
            Job = report.Job,
            PlanId = string.Create(CultureInfo.InvariantCulture, $"{report.Job}/{cycle}"),
            Cycle = cycle,
            BasedOnPlacementVersion = report.PlacementVersion,
            Gpus = slotGpus,
            Placement = plan.Phy2Log,
            ExpectedImbalanceBefore = double.IsFinite(before) ? before : null,
            ExpectedImbalanceAfter = after,
            ExpectedMaxImbalanceAfter = plan.MaxImbalance,
            WeightMoveCount = plan.TotalWeightMoves,
            WeightMoves = Moves(report, oldStart, plan.Phy2Log, slotGpus),
            Reason = reason,
        };
        return new ExpertRebalanceDecision(command, reason, plan);
    }

    private static string Describe(GpuCapacityChange change) => change.State == GpuCapacityState.Unavailable
        ? "unavailable"
        : string.Create(CultureInfo.InvariantCulture, $"degraded to {change.Speed:P0}");

    private static List<ExpertWeightMove> Moves(
        ExpertLoadReport report, int[] oldStart, int[][] placement, ExpertSlotGpu[] slotGpus)
    {
        var moves = new List<ExpertWeightMove>();
        var surviving = new HashSet<(string, int)>(slotGpus.Select(g => (g.Node, g.Gpu)));
        for (var l = 0; l < placement.Length; l++)
        {
            // Where each expert lives now, on a GPU that survives (a source to copy from).
            var holders = new Dictionary<int, List<(string Node, int Gpu)>>();
            for (var g = 0; g < report.Gpus.Count; g++)
            {
                var gpu = report.Gpus[g];
                if (!surviving.Contains((gpu.Node, gpu.Gpu)))
                {
                    continue;
                }

                for (var j = oldStart[g]; j < oldStart[g + 1]; j++)
                {
                    var e = report.Placement[l][j];
                    if (!holders.TryGetValue(e, out var list))
                    {
                        holders[e] = list = [];
                    }

                    list.Add((gpu.Node, gpu.Gpu));
                }
            }

            var start = 0;
            foreach (var gpu in slotGpus)
            {
                for (var j = start; j < start + gpu.Slots; j++)
                {
                    var e = placement[l][j];
                    var has = holders.TryGetValue(e, out var list) ? list : null;
                    if (has is not null && has.Contains((gpu.Node, gpu.Gpu)))
                    {
                        continue;
                    }

                    var from = has?[0];
                    moves.Add(new ExpertWeightMove(l, e, gpu.Node, gpu.Gpu, from?.Node, from?.Gpu));
                }

                start += gpu.Slots;
            }
        }

        return moves;
    }

    private static string? CheckReport(ExpertLoadReport report)
    {
        if (report.TokensPerExpert.Count == 0 || report.TokensPerExpert[0].Count == 0)
        {
            return "no expert loads";
        }

        var experts = report.TokensPerExpert[0].Count;
        if (report.TokensPerExpert.Any(r => r.Count != experts))
        {
            return "layers have different expert counts";
        }

        var slots = report.Gpus.Sum(g => g.Slots);
        if (report.Gpus.Any(g => g.Slots < 0) || report.Placement.Count != report.TokensPerExpert.Count
            || report.Placement.Any(r => r.Count != slots))
        {
            return string.Create(
                CultureInfo.InvariantCulture, $"placement must have {report.TokensPerExpert.Count} layers of {slots} slots");
        }

        return report.Placement.Any(r => r.Any(e => e < 0 || e >= experts))
            ? string.Create(CultureInfo.InvariantCulture, $"placement ids must be in [0, {experts})")
            : null;
    }
}
