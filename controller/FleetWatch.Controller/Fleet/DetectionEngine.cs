using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Incidents;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Fleet;

/// <summary>
/// The one path from telemetry to incident changes, with time passed in: fleet state, the pure detectors with each
/// node's detector memory, and the incident manager. The live <see cref="DetectionPipeline"/> calls it with the
/// clock's time and sends what it returns; the offline replay calls it with virtual time. Keeping both on this
/// class is what makes a replay give the incidents the live controller would.
/// </summary>
public sealed class DetectionEngine(
    FleetState fleet,
    IncidentManager incidents,
    XidCatalog catalog,
    XidTracker xids,
    IGpuJobResolver jobs,
    IOptions<DetectionOptions> options)
{
    /// <summary>Accepts a sample received at <paramref name="now"/> and evaluates it; returns the incident changes it causes.</summary>
    public IReadOnlyList<IncidentChange> OnSample(NodeSample sample, DateTimeOffset now, out SampleAcceptance verdict)
    {
        var findings = new List<Finding>(8);
        var state = fleet.DetectionState(sample.Node);
        lock (state)
        {
            verdict = fleet.Accept(sample, now, out var previous);
            if (verdict != SampleAcceptance.Accepted)
            {
                return [];
            }

            SampleDetectors.Evaluate(previous, sample, state, options.Value, findings);
        }

        // The node reports again: a node_silent condition clears.
        findings.Add(NodeSilenceDetector.Evaluate(sample.Node, now, now, options.Value).Finding);
        return incidents.Apply(findings, now);
    }

    /// <summary>
    /// Classifies an Xid seen at <paramref name="now"/>; returns the incident changes it causes. The other path's report of
    /// the same occurrence changes nothing; a flood refreshes one finding whose count the incident keeps.
    /// </summary>
    public IReadOnlyList<IncidentChange> OnXid(GpuXidObserved xid, DateTimeOffset now)
    {
        fleet.Touch(xid.Node);
        if (xid.GpuIndex is null && fleet.Latest(xid.Node) is { } latest)
        {
            // kmsg names the GPU by PCI id (or UUID); map it to the index with the node's latest sample.
            var gpu = latest.Gpus.FirstOrDefault(g =>
                (xid.GpuUuid is not null && string.Equals(g.Uuid, xid.GpuUuid, StringComparison.OrdinalIgnoreCase))
                || (xid.PciBusId is not null && g.PciBusId is not null && DetectionPipeline.PciMatches(g.PciBusId, xid.PciBusId)));
            if (gpu is not null)
            {
                xid = xid with { GpuIndex = gpu.Index, GpuUuid = gpu.Uuid };
            }
        }

        // Rule 39 tells jobs apart by the registry's job on the GPU, else by the process the kernel line names.
        var job = (xid.GpuIndex is { } index ? jobs.JobOf(xid.Node, index) : null) ?? xid.Process;
        return xids.Observe(xid, job, catalog, options.Value) is { } finding ? incidents.Apply([finding], now) : [];
    }

    /// <summary>
    /// The conditions of one node as of <paramref name="now"/>: node_silent first, then every (GPU, rule) the detectors
    /// evaluated, each True, False or Unknown with the time of its last transition. A node that has not reported for
    /// NodeUnknownAfter has every condition Unknown (no data is never healthy); null for a node never seen.
    /// </summary>
    public IReadOnlyList<DetectionCondition>? Conditions(string node, DateTimeOffset now)
    {
        if (!fleet.TryGetNode(node, out var state, out var lastSeen))
        {
            return null;
        }

        IReadOnlyList<DetectionCondition> evaluated;
        DateTimeOffset? reportingSince;
        lock (state)
        {
            evaluated = state.Conditions(node);
            reportingSince = state.ReportingSince;
        }

        var o = options.Value;
        var (status, finding) = NodeSilenceDetector.Evaluate(node, lastSeen, now, o);
        var quietSince = lastSeen is { } seen ? seen + (status == ConditionStatus.True ? o.NodeSilentAfter : o.NodeUnknownAfter) : now;
        var result = new List<DetectionCondition>(evaluated.Count + 1)
        {
            new(node, null, "node_silent", status, status == ConditionStatus.False ? reportingSince ?? now : quietSince,
                status == ConditionStatus.False ? null : finding.Message),
        };
        foreach (var c in evaluated)
        {
            result.Add(status == ConditionStatus.False ? c : c with { Status = ConditionStatus.Unknown, Since = c.Since > quietSince ? c.Since : quietSince, Detail = null });
        }

        return result;
    }

    /// <summary>Time-driven rules at <paramref name="now"/>: silent nodes, expiry of event findings, resolution after the hold.</summary>
    public IReadOnlyList<IncidentChange> Sweep(DateTimeOffset now)
    {
        var findings = new List<Finding>();
        foreach (var (node, _, lastSeen) in fleet.Nodes())
        {
            var (status, finding) = NodeSilenceDetector.Evaluate(node, lastSeen, now, options.Value);
            if (status != ConditionStatus.Unknown)
            {
                findings.Add(finding);
            }
        }

        xids.Prune(now, options.Value);
        var applied = incidents.Apply(findings, now);
        var ticked = incidents.Tick(now);
        if (ticked.Count == 0)
        {
            return applied;
        }

        return applied.Count == 0 ? ticked : [.. applied, .. ticked];
    }
}
