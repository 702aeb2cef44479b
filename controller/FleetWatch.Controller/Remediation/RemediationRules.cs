using FleetWatch.Contracts;

namespace FleetWatch.Controller.Remediation;

/// <summary>What an incident asks of the jobs on its GPU (research/straggler-restore-anchors.md section 5.4 step 2).</summary>
public enum FaultClass
{
    /// <summary>Slow or degrading (stragglers, thermal, error-rate trends): no restart; the rebalancer and the on-call see it.</summary>
    Observe,

    /// <summary>The job failed but the hardware is fine (application-class Xid, contained memory error, hang): restart in place, no spare, no cordon.</summary>
    Software,

    /// <summary>The node (or its GPU or links) is broken: cordon it, replace it with a spare, restore from the checkpoint.</summary>
    Hardware,
}

/// <summary>Classifies an incident by its category and action (docs/categories.md). Pure function.</summary>
public static class FaultClassifier
{
    // Actions that restart the job and nothing else (docs/categories.md: restart_app = "restart the job from its
    // checkpoint; no node action"; restore_from_checkpoint is the hang incident's action).
    private static readonly HashSet<string> SoftwareActions = new(StringComparer.Ordinal) { "restart_app", "restore_from_checkpoint" };

    private static readonly HashSet<string> SoftwareCategories = new(StringComparer.Ordinal) { "app_error", "memory_contained", "job_hang" };

    // Node-fatal actions (section 5.4 step 2: Xid 79/74/48-class, link down, ECC uncorrectable, recovery action reset/reboot/drain).
    private static readonly HashSet<string> HardwareActions = new(StringComparer.Ordinal)
    {
        "restart_node", "drain_and_reset_gpu", "reset_gpu", "drain_and_diagnose_nvlink", "follow_recovery_action", "isolate_gpu",
        "drain_node", "check_node", "check_mechanicals",
    };

    public static FaultClass Classify(IncidentSnapshot incident)
    {
        ArgumentNullException.ThrowIfNull(incident);
        // FleetWatch's own pages about remediation (storm guard, circuit breaker) are for a human, never remediated.
        if (incident.ResolvedAt is not null || incident.Category == RemediationPager.Category)
        {
            return FaultClass.Observe;
        }

        if (SoftwareActions.Contains(incident.Action) || SoftwareCategories.Contains(incident.Category))
        {
            return FaultClass.Software;
        }

        // Warnings stay observations whatever their action: acting on them would restart jobs for a trend.
        if (incident.Severity == Severity.Critical || (incident.Severity == Severity.High && HardwareActions.Contains(incident.Action)))
        {
            return FaultClass.Hardware;
        }

        return FaultClass.Observe;
    }
}

/// <summary>
/// The storm guard's verdict for one restart about to happen. <c>HaltKind</c> non-null: do not restart (<c>no_progress</c>);
/// <c>Storm</c>: page, too many cycles in the window (restart still allowed); <c>SuspectNode</c>: a node that ended the
/// last consecutive short runs.
/// </summary>
public sealed record StormVerdict(string? HaltKind, string? HaltMessage, bool Storm, int CyclesInWindow, string? SuspectNode);

/// <summary>
/// The storm guard (research/straggler-restore-anchors.md section 5.4 step 8, anchored on NVRx and nvrx-watch, section 3.1).
/// Pure function of the job's previous cycles and the restart about to happen.
/// </summary>
public static class StormGuard
{
    /// <param name="previous">The job's earlier cycles in order.</param>
    /// <param name="checkpointStep">Step the new cycle would restore.</param>
    /// <param name="triggerNode">Node whose failure ends the current run.</param>
    /// <param name="firstRunStart">When the job's first run started (its registration), the start of the run cycle 1 ends.</param>
    /// <param name="now">The time of the failure that ends the current run.</param>
    /// <param name="options">Thresholds.</param>
    public static StormVerdict Evaluate(IReadOnlyList<RestoreCycle> previous, long checkpointStep, string? triggerNode, DateTimeOffset firstRunStart,
        DateTimeOffset now, RemediationOptions options)
    {
        ArgumentNullException.ThrowIfNull(previous);
        ArgumentNullException.ThrowIfNull(options);

        // NVRx progress tracker: stop when max_no_progress_cycles consecutive cycles did not raise the checkpoint
        // iteration by min_progress_iterations = 1. A fallback restores an older step, so it counts as no progress.
        var steps = previous.Select(c => c.CheckpointStep).Append(checkpointStep).ToArray();
        var stalled = 0;
        for (var i = steps.Length - 1; i > 0 && steps[i] <= steps[i - 1]; i--)
        {
            stalled++;
        }

        string? halt = null, message = null;
        if (stalled >= options.MaxNoProgressCycles)
        {
            halt = "no_progress";
            message = $"checkpoint step has not advanced over {stalled} restart cycles (stuck at {checkpointStep}); restarts stopped (NVRx max_no_progress_cycles={options.MaxNoProgressCycles})";
        }

        // nvrx-watch restart_storm: >= 5 cycles started within 30 min, counting this one.
        var inWindow = previous.Count(c => now - c.StartedAt <= options.StormWindow) + 1;
        var storm = inWindow >= options.StormCycles;

        // nvrx-watch suspect_node, narrowed: the same node ended each of the last N runs and each run was short.
        string? suspect = null;
        var n = options.SuspectNodeCycles;
        if (triggerNode is not null && previous.Count >= n - 1)
        {
            var runStarts = new List<DateTimeOffset> { firstRunStart };
            runStarts.AddRange(previous.Select(c => c.StartedAt));
            var runEnds = previous.Select(c => c.StartedAt).Append(now).ToArray();
            var triggers = previous.Select(c => c.TriggerNode).Append(triggerNode).ToArray();
            var all = true;
            for (var k = 0; k < n; k++)
            {
                var i = triggers.Length - 1 - k;
                if (triggers[i] != triggerNode || runEnds[i] - runStarts[i] >= options.ShortCycle)
                {
                    all = false;
                    break;
                }
            }

            suspect = all ? triggerNode : null;
        }

        return new StormVerdict(halt, message, storm, inWindow, suspect);
    }
}

/// <summary>Spare choice: same NVLink domain first, then same rack, then any (unless the job's policy forbids). Pure function.</summary>
public static class SparePicker
{
    public const string SameDomainFirst = "same_domain_first";
    public const string SameDomainOnly = "same_domain_only";
    public const string None = "none";

    public static bool IsKnownPolicy(string policy) => policy is SameDomainFirst or SameDomainOnly or None;

    public static SpareNode? Pick(IReadOnlyList<SpareNode> spares, IReadOnlySet<string> unavailable, string? domain, string? rack, string policy)
    {
        ArgumentNullException.ThrowIfNull(spares);
        ArgumentNullException.ThrowIfNull(unavailable);
        if (policy == None)
        {
            return null;
        }

        var free = spares.Where(s => !unavailable.Contains(s.Node)).ToList();
        var same = domain is null ? null : free.FirstOrDefault(s => string.Equals(s.Domain, domain, StringComparison.Ordinal));
        if (same is not null || policy == SameDomainOnly)
        {
            return same;
        }

        return (rack is null ? null : free.FirstOrDefault(s => string.Equals(s.Rack, rack, StringComparison.Ordinal))) ?? free.FirstOrDefault();
    }
}
