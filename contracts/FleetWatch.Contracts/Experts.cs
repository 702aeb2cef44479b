namespace FleetWatch.Contracts;

/// <summary>One GPU that holds expert slots, in physical-slot order (its slots follow those of the GPU before it).</summary>
public sealed record ExpertSlotGpu(string Node, int Gpu, int Slots);

/// <summary>
/// Routing load of a Mixture-of-Experts job over a window, sent by the job (or its reporter) to the controller.
/// Slots are GPU-major: the first <c>Gpus[0].Slots</c> entries of a placement row live on <c>Gpus[0]</c>, and so on.
/// </summary>
public sealed record ExpertLoadReport
{
    public required string Job { get; init; }

    public required DateTimeOffset WindowStart { get; init; }

    public required DateTimeOffset WindowEnd { get; init; }

    /// <summary>Tokens routed to each logical expert over the window: [layer][logical expert].</summary>
    public required IReadOnlyList<IReadOnlyList<long>> TokensPerExpert { get; init; }

    /// <summary>The GPUs the placement's slots live on, in slot order.</summary>
    public required IReadOnlyList<ExpertSlotGpu> Gpus { get; init; }

    /// <summary>Current placement: [layer][physical slot] = logical expert id.</summary>
    public required IReadOnlyList<IReadOnlyList<int>> Placement { get; init; }

    /// <summary>Expert groups of group-limited routing (contiguous id blocks; 8 for DeepSeek-V3), 1 if none.</summary>
    public int ExpertGroups { get; init; } = 1;

    /// <summary>Version of the placement the job runs, as last applied (0 before any rebalance).</summary>
    public long PlacementVersion { get; init; }
}

/// <summary>One expert weight to copy onto a GPU that does not hold it.</summary>
/// <param name="Layer">MoE layer.</param>
/// <param name="Expert">Logical expert id.</param>
/// <param name="ToNode">Node of the GPU that receives the weights.</param>
/// <param name="ToGpu">GPU index in that node.</param>
/// <param name="FromGpu">GPU index of <paramref name="FromNode"/>, or null.</param>
/// <param name="FromNode">A GPU that holds the expert now, or null when no surviving GPU does (restore it from the checkpoint).</param>
public sealed record ExpertWeightMove(int Layer, int Expert, string ToNode, int ToGpu, string? FromNode, int? FromGpu);

/// <summary>
/// Command to a job: run this expert placement. Idempotent per <see cref="PlanId"/>; a job that already applied it
/// acknowledges again without moving weights.
/// </summary>
public sealed record ApplyExpertPlacement
{
    public required string Job { get; init; }

    /// <summary>Unique per (job, cycle), e.g. <c>job-7/12</c>.</summary>
    public required string PlanId { get; init; }

    public required long Cycle { get; init; }

    /// <summary>The placement version this plan replaces (the report's <see cref="ExpertLoadReport.PlacementVersion"/>).</summary>
    public required long BasedOnPlacementVersion { get; init; }

    /// <summary>The GPUs of the new placement, in slot order (failed GPUs left out).</summary>
    public required IReadOnlyList<ExpertSlotGpu> Gpus { get; init; }

    /// <summary>New placement: [layer][physical slot] = logical expert id.</summary>
    public required IReadOnlyList<IReadOnlyList<int>> Placement { get; init; }

    /// <summary>Mean over layers of max GPU load / mean GPU load for the current placement on the surviving GPUs; null when it lost an expert.</summary>
    public double? ExpectedImbalanceBefore { get; init; }

    /// <summary>Mean over layers of max GPU load / mean GPU load for the new placement.</summary>
    public required double ExpectedImbalanceAfter { get; init; }

    /// <summary>Worst layer of the new placement.</summary>
    public required double ExpectedMaxImbalanceAfter { get; init; }

    public required int WeightMoveCount { get; init; }

    public required IReadOnlyList<ExpertWeightMove> WeightMoves { get; init; }

    public required string Reason { get; init; }
}
