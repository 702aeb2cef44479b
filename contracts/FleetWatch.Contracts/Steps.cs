namespace FleetWatch.Contracts;

/// <summary>
/// One rank's timings for one completed training step, as the training-side step reporter hands them to the
/// node agent and the agent forwards them (batched) to the controller's straggler and hang detector.
/// Reports may arrive late, twice, out of order, or not at all; the controller copes with each.
/// </summary>
public sealed record StepTimings
{
    public required string Job { get; init; }

    public required int Rank { get; init; }

    public required string Node { get; init; }

    /// <summary>GPU index on the node (0..7 on an 8-GPU node).</summary>
    public required int Gpu { get; init; }

    public string? GpuUuid { get; init; }

    /// <summary>Training step number; it goes back when the job restarts from a checkpoint.</summary>
    public required long Step { get; init; }

    /// <summary>
    /// Ranks doing the same work (for example the pipeline stage and role): a rank is compared only with its
    /// peers, so a stage that is slower by design is never a straggler.
    /// </summary>
    public required string PeerGroup { get; init; }

    /// <summary>Per-section durations (for example <c>fwd</c>, <c>bwd</c>, <c>optimizer</c>), in milliseconds.</summary>
    public IReadOnlyDictionary<string, double> SectionsMs { get; init; } = new Dictionary<string, double>();

    /// <summary>The rank's own duration of the whole step (compute, excluding time spent waiting for peers), in milliseconds.</summary>
    public required double DurationMs { get; init; }

    /// <summary>When the step ended on the rank.</summary>
    public required DateTimeOffset EndTime { get; init; }

    /// <summary>
    /// The rank's last report: training ended normally on this rank (the reporter's <c>close()</c> repeats its last step with
    /// this set). When every rank of a job has sent one, the job has ended and its silence is not a hang.
    /// </summary>
    public bool Final { get; init; }
}

/// <summary>
/// The step reports one node's agent received during one tick, sent as one message. At 8 ranks reporting once a
/// second on each of 1,250 nodes, one message per report would be 10,000 messages/s, each carrying a broker
/// envelope larger than the report itself; one batch per node and tick is 1,250 messages/s, the rate of
/// <see cref="NodeSample"/>. The controller treats every report in it exactly as if it had come alone.
/// </summary>
public sealed record StepTimingsBatch
{
    public required string Node { get; init; }

    /// <summary>When the agent sent the batch.</summary>
    public required DateTimeOffset Time { get; init; }

    /// <summary>Reports in the order the agent received them.</summary>
    public required IReadOnlyList<StepTimings> Steps { get; init; }

    /// <summary>Reports the agent dropped since it started (buffer full while the broker was slow), cumulative.</summary>
    public long DroppedTotal { get; init; }
}
