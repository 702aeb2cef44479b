using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Incidents;
using FleetWatch.Controller.Telemetry;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Fleet;

/// <summary>
/// The controller's one path from telemetry to incidents: state update, pure detectors, incident manager,
/// notifications. Consumers, the sweep job and the offline replay all go through it.
/// </summary>
public sealed class DetectionPipeline(
    FleetState fleet,
    IncidentManager incidents,
    XidCatalog catalog,
    IOptions<DetectionOptions> options,
    IncidentNotifier notifier,
    InfluxTelemetrySink sink,
    FleetMetrics metrics,
    TimeProvider time)
{
    public async Task<SampleAcceptance> OnSampleAsync(NodeSample sample, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var verdict = fleet.Accept(sample, now, out var previous);
        switch (verdict)
        {
            case SampleAcceptance.Duplicate:
                metrics.OnDuplicate();
                return verdict;
            case SampleAcceptance.Stale:
                metrics.OnStale();
                return verdict;
        }

        metrics.OnAccepted();
        sink.Enqueue(sample);
        var findings = new List<Finding>(sample.Gpus.Count * 3);
        SampleDetectors.Evaluate(previous, sample, options.Value, findings);
        // The node reports again: a node_silent condition clears.
        findings.Add(NodeSilenceDetector.Evaluate(sample.Node, now, now, options.Value).Finding);
        var changes = incidents.Apply(findings, now);
        if (changes.Count > 0)
        {
            await notifier.NotifyAsync(changes, ct).ConfigureAwait(false);
        }

        return verdict;
    }

    public async Task OnXidAsync(GpuXidObserved xid, CancellationToken ct)
    {
        metrics.OnXid();
        fleet.Touch(xid.Node);
        if (xid.GpuIndex is null && fleet.Latest(xid.Node) is { } latest)
        {
            // kmsg names the GPU by PCI id (or UUID); map it to the index with the node's latest sample.
            var gpu = latest.Gpus.FirstOrDefault(g =>
                (xid.GpuUuid is not null && string.Equals(g.Uuid, xid.GpuUuid, StringComparison.OrdinalIgnoreCase))
                || (xid.PciBusId is not null && g.PciBusId is not null && PciMatches(g.PciBusId, xid.PciBusId)));
            if (gpu is not null)
            {
                xid = xid with { GpuIndex = gpu.Index, GpuUuid = gpu.Uuid };
            }
        }

        var finding = XidDetector.Classify(xid, catalog);
        var changes = incidents.Apply([finding], time.GetUtcNow());
        if (changes.Count > 0)
        {
            await notifier.NotifyAsync(changes, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Time-driven rules: silent nodes, expiry of event findings, resolution after the hold.</summary>
    public async Task SweepAsync(CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var findings = new List<Finding>();
        foreach (var (node, _, lastSeen) in fleet.Nodes())
        {
            var (status, finding) = NodeSilenceDetector.Evaluate(node, lastSeen, now, options.Value);
            if (status != ConditionStatus.Unknown)
            {
                findings.Add(finding);
            }
        }

        var changes = incidents.Apply(findings, now).Concat(incidents.Tick(now)).ToList();
        if (changes.Count > 0)
        {
            await notifier.NotifyAsync(changes, ct).ConfigureAwait(false);
        }
    }

    /// <summary>"0000:3b:00" matches "00000000:3B:00.0": compare bus and device, ignoring domain width and function.</summary>
    public static bool PciMatches(string a, string b)
    {
        static string Key(string s)
        {
            var parts = s.ToLowerInvariant().Split(':');
            if (parts.Length < 3)
            {
                return s.ToLowerInvariant();
            }

            var domain = parts[^3].TrimStart('0');
            var device = parts[^1].Split('.')[0];
            return $"{domain}:{parts[^2]}:{device}";
        }

        return Key(a) == Key(b);
    }
}
