using FleetWatch.Contracts;
using FleetWatch.Controller.Alerting;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Fleet;
using FleetWatch.Controller.Incidents;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Replay;

/// <summary>One incident of a replay report (FORMATS.md section 4); times are seconds after the start.</summary>
public sealed record ReplayIncident(
    string Id, double OpenedSeconds, double? ResolvedSeconds, int Node, int? Gpu, Severity Severity, string Category, string Action, IReadOnlyList<string> Findings);

/// <summary>What arrives at the controller during a replay.</summary>
public enum ReplayEventKind
{
    Xid,
    Sample,
    Sweep,
}

/// <summary>One arrival at the controller: an Xid, a node sample, or a run of the time-driven sweep.</summary>
public sealed record ReplayEvent(DateTimeOffset Time, ReplayEventKind Kind, GpuXidObserved? Xid = null, NodeSample? Sample = null);

/// <summary>The result of a replay: every incident opened, and the notifications the live controller would have sent.</summary>
public sealed record ReplayReport(IReadOnlyList<ReplayIncident> Incidents, int AlertsSent, long Samples, long Xids);

/// <summary>
/// Drives a <see cref="ReplayFleet"/> through the controller's own <see cref="DetectionEngine"/>, incident manager
/// and options, built by the same <c>AddDetection</c> registration the live controller uses, in virtual time.
/// </summary>
public static class ReplayRunner
{
    /// <summary>Runs a scenario. <paramref name="configuration"/> supplies FleetWatch:Detection/Incidents/Alerting as in the controller; null means the defaults.</summary>
    public static ReplayReport Run(ReplayScenario scenario, IConfiguration? configuration = null)
    {
        configuration ??= new ConfigurationBuilder().Build();
        var services = new ServiceCollection();
        services.AddDetection(configuration);
        using var provider = services.BuildServiceProvider();
        // Resolving the options runs the same validators as the controller's start (a bad value fails here, named).
        var detection = provider.GetRequiredService<IOptions<DetectionOptions>>().Value;
        _ = provider.GetRequiredService<IOptions<IncidentOptions>>().Value;
        var minimum = configuration.GetSection(AlertingOptions.Section).Get<AlertingOptions>()?.MinimumSeverity ?? Severity.Warning;
        var engine = provider.GetRequiredService<DetectionEngine>();
        var incidents = provider.GetRequiredService<IncidentManager>();

        var recorder = new Recorder(minimum);
        long samples = 0, xids = 0;
        foreach (var e in Schedule(scenario, detection.SweepInterval))
        {
            switch (e.Kind)
            {
                case ReplayEventKind.Xid:
                    recorder.Record(engine.OnXid(e.Xid!, e.Time));
                    xids++;
                    break;
                case ReplayEventKind.Sample:
                    recorder.Record(engine.OnSample(e.Sample!, e.Time, out _));
                    samples++;
                    break;
                default:
                    recorder.Record(engine.Sweep(e.Time));
                    break;
            }
        }

        // Open incidents: take their latest state (finding counts keep growing without a change).
        foreach (var open in incidents.Open())
        {
            recorder.Latest[open.Id] = open;
        }

        return new ReplayReport(recorder.Incidents(), recorder.Alerts, samples, xids);
    }

    /// <summary>
    /// What reaches the controller, in arrival order: Xids the moment they happen (their own lane), each tick's samples,
    /// and the time-driven sweep every <paramref name="sweepInterval"/> as the live Quartz trigger runs it; at the same
    /// instant an Xid comes before samples and samples before the sweep. The replay and the live-equivalence test both
    /// consume this one schedule.
    /// </summary>
    public static IEnumerable<ReplayEvent> Schedule(ReplayScenario scenario, TimeSpan sweepInterval)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(sweepInterval, TimeSpan.Zero);
        var nextSweep = ReplayFleet.Start;
        foreach (var tick in new ReplayFleet(scenario).Ticks())
        {
            foreach (var xid in tick.Xids)
            {
                for (; nextSweep < xid.Time; nextSweep += sweepInterval)
                {
                    yield return new ReplayEvent(nextSweep, ReplayEventKind.Sweep);
                }

                yield return new ReplayEvent(xid.Time, ReplayEventKind.Xid, Xid: xid);
            }

            for (; nextSweep < tick.Time; nextSweep += sweepInterval)
            {
                yield return new ReplayEvent(nextSweep, ReplayEventKind.Sweep);
            }

            foreach (var sample in tick.Samples)
            {
                yield return new ReplayEvent(tick.Time, ReplayEventKind.Sample, Sample: sample);
            }

            for (; nextSweep <= tick.Time; nextSweep += sweepInterval)
            {
                yield return new ReplayEvent(nextSweep, ReplayEventKind.Sweep);
            }
        }
    }

    private sealed class Recorder(Severity minimum)
    {
        private readonly List<string> _order = [];

        public Dictionary<string, IncidentSnapshot> Latest { get; } = new(StringComparer.Ordinal);

        public int Alerts { get; private set; }

        public void Record(IReadOnlyList<IncidentChange> changes)
        {
            foreach (var change in changes)
            {
                if (!Latest.ContainsKey(change.Incident.Id))
                {
                    _order.Add(change.Incident.Id);
                }

                Latest[change.Incident.Id] = change.Incident;
                if (NotificationPolicy.ShouldNotify(change, minimum))
                {
                    Alerts++;
                }
            }
        }

        // In opening order (ids count up): with a group wait, a warning's first change can come after a later critical's.
        public List<ReplayIncident> Incidents() => _order.Select(id => Latest[id]).OrderBy(s => s.OpenedAt).ThenBy(s => s.Id.Length).ThenBy(s => s.Id, StringComparer.Ordinal).Select(s => new ReplayIncident(
            s.Id,
            Seconds(s.OpenedAt),
            s.ResolvedAt is { } r ? Seconds(r) : null,
            ReplayFleet.NodeIndex(s.Node) ?? -1,
            s.GpuIndex,
            s.Severity,
            s.Category,
            s.Action,
            s.Findings.Select(f => f.Count > 1 ? $"{f.Rule}: {f.Message} (x{f.Count})" : $"{f.Rule}: {f.Message}").ToList())).ToList();

        private static double Seconds(DateTimeOffset time) => Math.Round((time - ReplayFleet.Start).TotalSeconds, 3);
    }
}
