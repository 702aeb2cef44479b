using FleetWatch.Contracts;
using FleetWatch.Controller.Incidents;
using FleetWatch.Controller.Telemetry;

namespace FleetWatch.Controller.Fleet;

/// <summary>
/// The controller's live path from telemetry to notifications: metrics, the telemetry sink, the shared
/// <see cref="DetectionEngine"/> (state update, pure detectors, incident manager) at the clock's time, and the
/// notifier. Consumers and the sweep job go through it; the offline replay drives the same engine in virtual time.
/// </summary>
public sealed class DetectionPipeline(
    DetectionEngine engine,
    IncidentNotifier notifier,
    InfluxTelemetrySink sink,
    FleetMetrics metrics,
    TimeProvider time,
    NodeHistory? history = null)
{
    public async Task<SampleAcceptance> OnSampleAsync(NodeSample sample, CancellationToken ct)
    {
        var changes = engine.OnSample(sample, time.GetUtcNow(), out var verdict);
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
        history?.Record(sample); // the node page's 30-minute sparklines
        await NotifyAsync(changes, ct).ConfigureAwait(false);
        return verdict;
    }

    public async Task OnXidAsync(GpuXidObserved xid, CancellationToken ct)
    {
        metrics.OnXid();
        history?.RecordXid(xid);
        await NotifyAsync(engine.OnXid(xid, time.GetUtcNow()), ct).ConfigureAwait(false);
    }

    /// <summary>Time-driven rules: silent nodes, expiry of event findings, resolution after the hold.</summary>
    public Task SweepAsync(CancellationToken ct) => NotifyAsync(engine.Sweep(time.GetUtcNow()), ct);

    /// <summary>The node's conditions now (see <see cref="DetectionEngine.Conditions"/>); null for a node never seen.</summary>
    public IReadOnlyList<Detection.DetectionCondition>? Conditions(string node) => engine.Conditions(node, time.GetUtcNow());

    private Task NotifyAsync(IReadOnlyList<IncidentChange> changes, CancellationToken ct) =>
        changes.Count > 0 ? notifier.NotifyAsync(changes, ct) : Task.CompletedTask;

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
