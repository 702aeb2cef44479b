namespace FleetWatch.Contracts;

/// <summary>One rank of a training job and the GPU it runs on.</summary>
/// <param name="Rank">Global rank.</param>
/// <param name="Node">Node name as the agents and the scheduler spell it.</param>
/// <param name="GpuIndex">GPU index on the node (0..7 on an 8-GPU node).</param>
/// <param name="Domain">NVLink domain (NVSwitch ClusterUUID segment) of the node, when the job knows it.</param>
/// <param name="Rack">Rack of the node, when the job knows it.</param>
public sealed record JobRank(int Rank, string Node, int GpuIndex, string? Domain = null, string? Rack = null);

/// <summary>
/// A training job announces itself (at start and after every restart): its ranks and their GPUs, the scheduler that
/// runs it, where it writes checkpoints and how spares may replace its nodes. Registering again replaces the ranks.
/// </summary>
public sealed record JobRegistered
{
    public required string JobId { get; init; }

    public required IReadOnlyList<JobRank> Ranks { get; init; }

    /// <summary>"slurm", "kubernetes" or "none": the name of the scheduler adapter that drains and requeues.</summary>
    public string Scheduler { get; init; } = "none";

    /// <summary>The scheduler's id of the job (Slurm job id, Kubernetes job name), for requeue.</summary>
    public string? SchedulerJobId { get; init; }

    /// <summary>Root of the job's checkpoint directory (<c>&lt;dir&gt;/step_&lt;n&gt;/</c>), scanned when configured.</summary>
    public string? CheckpointDir { get; init; }

    /// <summary>"same_domain_first" (default), "same_domain_only" or "none" (never give this job a spare).</summary>
    public string SparePolicy { get; init; } = "same_domain_first";

    /// <summary>Optional URL of the job's launcher: <see cref="RestoreFromCheckpoint"/> is also POSTed there as JSON.</summary>
    public string? WebhookUrl { get; init; }

    public DateTimeOffset? Time { get; init; }
}

/// <summary>The job completed a training step (sent by the job or its launcher; one per job, not per rank).</summary>
public sealed record JobStepReported
{
    public required string JobId { get; init; }

    public required long Step { get; init; }

    /// <summary>False when the step produced a non-finite loss or a loss spike: a restored run that reports it falls back at once.</summary>
    public bool Healthy { get; init; } = true;

    public DateTimeOffset? Time { get; init; }
}

/// <summary>A checkpoint the job finished writing.</summary>
public sealed record CheckpointSaved
{
    public required string JobId { get; init; }

    public required long Step { get; init; }

    public required string Uri { get; init; }

    /// <summary>Number of shard files written.</summary>
    public required int Shards { get; init; }

    /// <summary>Ranks whose state the shards hold (a complete checkpoint covers every rank of the job).</summary>
    public required IReadOnlyList<int> RanksCovered { get; init; }

    public string? ManifestChecksum { get; init; }

    public DateTimeOffset? Time { get; init; }
}

/// <summary>The job ended (normally or cancelled): it holds no GPUs any more and is never restarted.</summary>
public sealed record JobFinished
{
    public required string JobId { get; init; }

    public DateTimeOffset? Time { get; init; }
}

/// <summary>The checkpoint a restore starts from.</summary>
public sealed record CheckpointRef(long Step, string Uri);

/// <summary>
/// Command to a job: restart from <see cref="Checkpoint"/> without the excluded nodes, on the given spares. Idempotent per
/// (<see cref="JobId"/>, <see cref="Cycle"/>): a job that already restarted for this cycle acknowledges again and does nothing.
/// </summary>
public sealed record RestoreFromCheckpoint
{
    public required string JobId { get; init; }

    /// <summary>Restore cycle of the job, 1 for the first restore; <c>JobId/Cycle</c> is the command's identity.</summary>
    public required long Cycle { get; init; }

    public required CheckpointRef Checkpoint { get; init; }

    public required IReadOnlyList<string> ExcludedNodes { get; init; }

    public required IReadOnlyList<string> Spares { get; init; }

    /// <summary>The nodes the job runs on after the restore, in rank order of their first rank.</summary>
    public required IReadOnlyList<string> Nodes { get; init; }

    /// <summary>"hardware", "software" or "fallback".</summary>
    public required string Reason { get; init; }

    public string? IncidentId { get; init; }

    public required DateTimeOffset Time { get; init; }
}

/// <summary>The job (or its launcher) received <see cref="RestoreFromCheckpoint"/> for the cycle and is restarting.</summary>
public sealed record RestoreAcknowledged
{
    public required string JobId { get; init; }

    public required long Cycle { get; init; }

    public DateTimeOffset? Time { get; init; }
}

/// <summary>Command to the scheduler side: take the node out of service (sent even when no scheduler adapter runs the node).</summary>
public sealed record CordonNode
{
    public required string Node { get; init; }

    public required string Reason { get; init; }

    public string? IncidentId { get; init; }

    public required DateTimeOffset Time { get; init; }
}

/// <summary>
/// Remediation stopped or refused to act and a person must look (the storm guard, the cordon circuit breaker, an
/// exhausted spare pool). <see cref="Halted"/> true: the job is no longer restarted automatically.
/// </summary>
public sealed record RemediationHalted
{
    /// <summary>no_progress, restart_storm, spares_exhausted, suspect_node, circuit_breaker, before_first_step, no_checkpoint.</summary>
    public required string Kind { get; init; }

    public string? JobId { get; init; }

    public long? Cycle { get; init; }

    public IReadOnlyList<string> Nodes { get; init; } = [];

    public required bool Halted { get; init; }

    public required Severity Severity { get; init; }

    public required string Message { get; init; }

    public string? IncidentId { get; init; }

    public required DateTimeOffset Time { get; init; }
}
