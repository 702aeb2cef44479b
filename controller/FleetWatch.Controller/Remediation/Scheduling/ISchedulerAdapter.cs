namespace FleetWatch.Controller.Remediation.Scheduling;

/// <summary>The outcome of one scheduler call: what the scheduler said, for the audit log.</summary>
public sealed record SchedulerResult(bool Ok, string Detail);

/// <summary>
/// What remediation asks of a cluster scheduler (Slurm, Kubernetes). One adapter per scheduler; the job registry
/// says which scheduler runs a job. Calls must be idempotent: draining a drained node or requeueing a job already
/// pending succeeds, so a controller restart can safely repeat an action whose outcome it did not record.
/// </summary>
public interface ISchedulerAdapter
{
    /// <summary>The scheduler's name in the job registry and configuration ("slurm", "kubernetes").</summary>
    string Name { get; }

    /// <summary>Stops new work landing on the node (Slurm drain, Kubernetes cordon + taint), with a reason naming the incident.</summary>
    Task<SchedulerResult> DrainAsync(string node, string reason, CancellationToken ct);

    /// <summary>Returns the node to service (Slurm resume, Kubernetes uncordon + untaint).</summary>
    Task<SchedulerResult> ResumeAsync(string node, CancellationToken ct);

    /// <summary>Restarts the job through the scheduler (Slurm requeue + release), avoiding the excluded nodes.</summary>
    Task<SchedulerResult> RequeueAsync(string schedulerJobId, IReadOnlyList<string> excludedNodes, CancellationToken ct);
}
