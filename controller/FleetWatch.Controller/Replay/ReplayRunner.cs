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
        var fleet = new ReplayFleet(scenario);
        var nextSweep = ReplayFleet.Start;
        long samples = 0, xids = 0;
        foreach (var tick in fleet.Ticks())
        {
            // Xids travel at once, on their own lane; samples follow at the tick; the sweep runs on its interval.
            foreach (var xid in tick.Xids)
            {
                recorder.Record(engine.OnXid(xid, xid.Time));
                xids++;
            }

            foreach (var sample in tick.Samples)
            {
                recorder.Record(engine.OnSample(sample, tick.Time, out _));
                samples++;
            }

            while (nextSweep <= tick.Time)
            {
                recorder.Record(engine.Sweep(tick.Time));
                nextSweep += detection.SweepInterval;
            }
        }

        // Open incidents: take their latest state (finding counts keep growing without a change).
        foreach (var open in incidents.Open())
        {
            recorder.Latest[open.Id] = open;
        }

        return new ReplayReport(recorder.Incidents(), recorder.Alerts, samples, xids);
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

        public List<ReplayIncident> Incidents() => _order.Select(id => Latest[id]).Select(s => new ReplayIncident(
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
