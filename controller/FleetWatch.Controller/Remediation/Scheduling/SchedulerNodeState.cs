namespace FleetWatch.Controller.Remediation.Scheduling;

/// <summary>
/// What a scheduler says about one node, read back to verify a drain or resume (remediation step "verify",
/// research/straggler-restore-anchors.md section 5.4).
/// </summary>
/// <param name="Node">The node name as asked.</param>
/// <param name="Found">False when the scheduler does not know the node.</param>
/// <param name="Drained">True when the scheduler places no new work on the node (Slurm DRAIN/DOWN/FAIL, Kubernetes unschedulable).</param>
/// <param name="State">The scheduler's own state text ("IDLE+DRAIN", "MIXED", "unschedulable"), for the audit log.</param>
/// <param name="Reason">The drain reason the scheduler holds (Slurm <c>Reason</c>, FleetWatch's taint value on Kubernetes), or null.</param>
public sealed record SchedulerNodeState(string Node, bool Found, bool Drained, string State, string? Reason);

/// <summary>
/// Reads a node's state back from the scheduler. Implemented beside <see cref="ISchedulerAdapter"/> by the adapters
/// that can (Slurm, Kubernetes); kept apart so that the adapter contract stays small and fakes need not implement it.
/// </summary>
public interface ISchedulerNodeInspector
{
    /// <summary>The node's current state; <see cref="SchedulerNodeState.Found"/> is false for an unknown node.</summary>
    Task<SchedulerNodeState> GetNodeStateAsync(string node, CancellationToken ct);
}
