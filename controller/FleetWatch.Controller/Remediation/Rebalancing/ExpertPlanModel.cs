namespace FleetWatch.Controller.Remediation.Rebalancing;

/// <summary>
/// One GPU of the surviving topology as the expert planner sees it. GPUs are listed in physical-slot order: the
/// slots of GPU 0 come first, then GPU 1, and so on (GPU-major, as EPLB's <c>phy2log</c> and FORMATS.md section 3).
/// </summary>
/// <param name="Node">Node the GPU sits in (used for locality only; the balance objective ignores it).</param>
/// <param name="Slots">Expert slots on this GPU (0 removes the GPU without renumbering the others).</param>
/// <param name="NvLinkDomain">NVLink domain; by default the node.</param>
/// <param name="Speed">
/// Relative throughput, 1.0 for a healthy GPU. A straggler at 0.8 is given 20 % less load: the planner minimises
/// max(load / speed).
/// </param>
public sealed record ExpertGpu(int Node, int Slots, int NvLinkDomain = -1, double Speed = 1.0);

/// <summary>How the planner treats expert groups (group-limited routing, e.g. DeepSeek-V3's 8 groups).</summary>
public enum ExpertLocality
{
    /// <summary>Balance only (the benchmark's metric; research/eplb.md section 5.1: flat placement by default).</summary>
    None = 0,

    /// <summary>
    /// Prefer GPUs of the node a group is homed on when that costs at most
    /// <see cref="ExpertPlannerOptions.LocalityTolerance"/> of balance.
    /// </summary>
    PreferGroupNode = 1,
}

/// <summary>Options of <see cref="ExpertPlanner"/>. The defaults are what the benchmark runs with.</summary>
public sealed record ExpertPlannerOptions
{
    /// <summary>Locality mode (soft; never a hard partition as EPLB's hierarchical policy).</summary>
    public ExpertLocality Locality { get; init; } = ExpertLocality.None;

    /// <summary>Expert groups (contiguous id blocks), used with <see cref="ExpertLocality.PreferGroupNode"/>.</summary>
    public int ExpertGroups { get; init; } = 1;

    /// <summary>Balance given up for locality, as a fraction of the mean GPU load (0.01 = 1 %).</summary>
    public double LocalityTolerance { get; init; } = 0.01;

    /// <summary>
    /// Most expert weights to copy onto a GPU per layer when a current placement is given (null: no limit). Moves
    /// needed for validity (an expert that lost its last replica) are always made, even past the budget.
    /// </summary>
    public int? MaxWeightMovesPerLayer { get; init; }

    /// <summary>
    /// With a current placement: the incremental plan (few moves) is kept unless a from-scratch plan is better by
    /// more than this much imbalance (0.005 = 0.5 % of the mean GPU load).
    /// </summary>
    public double MigrationBalanceTolerance { get; init; } = 0.005;

    /// <summary>
    /// The search stops when the max GPU load is within this fraction of the lower bound (1e-4 = 0.01 %); 0 searches
    /// until no move helps.
    /// </summary>
    public double StopWithinBound { get; init; } = 1e-4;

    /// <summary>Replica-count moves tried per layer after packing (joint count/packing search).</summary>
    public int CountSearchTrials { get; init; } = 16;
}

/// <summary>Input of <see cref="ExpertPlanner.Plan"/>.</summary>
/// <param name="Loads">Per layer, the load (tokens) of each logical expert. All layers have the same expert count.</param>
/// <param name="Gpus">The surviving topology, in physical-slot order.</param>
/// <param name="Current">
/// Optional current placement on this topology: per layer one entry per physical slot, the logical expert it holds
/// now, or -1 for a slot that holds nothing (a replaced GPU, or capacity that was added).
/// </param>
public sealed record ExpertPlanRequest(
    IReadOnlyList<double[]> Loads,
    IReadOnlyList<ExpertGpu> Gpus,
    IReadOnlyList<int[]>? Current = null);

/// <summary>Result of <see cref="ExpertPlanner.Plan"/>, per layer.</summary>
public sealed record ExpertPlan
{
    /// <summary>Per layer, the logical expert in each physical slot (GPU-major).</summary>
    public required int[][] Phy2Log { get; init; }

    /// <summary>Per layer, max GPU load / mean GPU load (speed-weighted; 1.0 is perfect).</summary>
    public required double[] Imbalance { get; init; }

    /// <summary>Per layer, a lower bound on <see cref="Imbalance"/> (score.py's bound: max(1, T*/mean)).</summary>
    public required double[] LowerBound { get; init; }

    /// <summary>
    /// Per layer, the imbalance of the current placement on this topology; null without a current placement, and
    /// <see cref="double.PositiveInfinity"/> for a layer where the current placement lost an expert.
    /// </summary>
    public double[]? ImbalanceBefore { get; init; }

    /// <summary>Per layer, expert weights copied onto a GPU that did not hold them (0 without a current placement).</summary>
    public required int[] WeightMoves { get; init; }

    /// <summary>Per layer, GPUs holding a second replica of one expert (0 unless slots outnumber experts × GPUs).</summary>
    public required int[] DuplicatesOnGpu { get; init; }

    /// <summary>
    /// Per layer, the share of slots whose expert sits on its group's home node under
    /// <see cref="ExpertLocality.PreferGroupNode"/> (1.0 when locality is off).
    /// </summary>
    public required double[] HomeNodeShare { get; init; }

    public double MeanImbalance => Mean(Imbalance);

    public double MaxImbalance => Imbalance.Length == 0 ? 1.0 : Imbalance.Max();

    public int TotalWeightMoves => WeightMoves.Sum();

    private static double Mean(double[] values) => values.Length == 0 ? 1.0 : values.Average();
}
