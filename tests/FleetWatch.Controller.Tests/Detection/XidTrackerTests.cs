using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Fleet;
using FleetWatch.Controller.Incidents;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using static FleetWatch.Controller.Tests.Detection.SampleBuilder;

namespace FleetWatch.Controller.Tests.Detection;

/// <summary>
/// The Xid path through the real <see cref="DetectionEngine"/> and incident manager: dedup of the NVML and kernel-log
/// paths, flood collapsing, rule 4 (repeated Xid 94), rule 39 (app-class Xids promoted across jobs), 40 and 41.
/// </summary>
public sealed class XidTrackerTests
{
    private sealed class Jobs : IGpuJobResolver
    {
        public Dictionary<(string, int), string> Map { get; } = [];

        public string? JobOf(string node, int gpuIndex) => Map.GetValueOrDefault((node, gpuIndex));
    }

    private sealed class Harness : IDisposable
    {
        private readonly ServiceProvider _sp;

        public Harness(IGpuJobResolver? jobs = null)
        {
            var services = new ServiceCollection();
            if (jobs is not null)
            {
                services.AddSingleton(jobs);
            }

            _sp = services.AddDetection(new ConfigurationBuilder().Build()).BuildServiceProvider();
            Engine = _sp.GetRequiredService<DetectionEngine>();
            Incidents = _sp.GetRequiredService<IncidentManager>();
            Tracker = _sp.GetRequiredService<XidTracker>();
        }

        public DetectionEngine Engine { get; }
        public IncidentManager Incidents { get; }
        public XidTracker Tracker { get; }
        public List<IncidentChange> Changes { get; } = [];

        public void Xid(double seconds, int xid, int gpu = 3, XidSource source = XidSource.Kmsg, string? process = "python", string kind = "xid")
        {
            var time = T0.AddSeconds(seconds);
            Changes.AddRange(Engine.OnXid(new GpuXidObserved
            {
                Node = "n1", Time = time, Xid = kind == "fallen_off_bus" ? null : xid, Kind = kind, GpuIndex = gpu, Source = source, Process = process, Message = "m",
            }, time));
        }

        public void Dispose() => _sp.Dispose();
    }

    [Fact]
    public void A_flood_of_800000_identical_xid_lines_is_one_incident_with_the_count()
    {
        using var h = new Harness();
        var engine = h.Engine;
        var changes = 0;
        var allocated = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 800_000; i++)
        {
            // 10 lines per millisecond for 80 s, as a driver looping on one fault logs them.
            var time = T0.AddTicks(i * 1_000L);
            changes += engine.OnXid(new GpuXidObserved { Node = "n1", Time = time, Xid = 95, GpuIndex = 3, Source = XidSource.Kmsg, Message = "Uncontained" }, time).Count;
        }

        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        var incident = Assert.Single(h.Incidents.Open());
        var finding = Assert.Single(incident.Findings);
        Assert.Equal(800_000, finding.Count);
        Assert.True(changes <= 2, $"{changes} incident changes for one flood");
        Assert.Equal(Severity.Critical, incident.Severity);
        Assert.Equal(1, h.Tracker.Count);
        // Bounded work per line: the finding's text is rebuilt about once a second of data, not once per line
        // (a few small objects per line remain: the line's own record and the incident manager's enumeration).
        Assert.True(allocated < 800_000L * 400, $"{allocated / 800_000.0:F0} bytes allocated per line");
    }

    [Fact]
    public void The_nvml_and_kmsg_reports_of_one_xid_are_one_occurrence_seen_by_both()
    {
        using var h = new Harness();
        h.Xid(0, 79, source: XidSource.NvmlEvent);
        h.Xid(0.3, 79, source: XidSource.Kmsg);
        h.Xid(0.4, 79, kind: "fallen_off_bus"); // the text-only line of the same event

        var finding = Assert.Single(Assert.Single(h.Incidents.Open()).Findings);
        Assert.Equal(1, finding.Count);
        Assert.Single(h.Changes);
        Assert.Equal(IncidentChangeKind.Opened, h.Changes[0].Kind);
    }

    [Fact]
    public void Two_paths_far_apart_are_two_occurrences_and_the_message_counts_both_paths()
    {
        using var h = new Harness();
        for (var i = 0; i < 5; i++)
        {
            h.Xid(i * 10, 48, source: XidSource.NvmlEvent);
            h.Xid((i * 10) + 0.5, 48, source: XidSource.Kmsg);
        }

        var finding = Assert.Single(Assert.Single(h.Incidents.Open()).Findings);
        Assert.Equal(5, finding.Count);
        Assert.Contains("5 occurrences", finding.Message, StringComparison.Ordinal);
        Assert.Contains("nvml 5", finding.Message, StringComparison.Ordinal);
        Assert.Contains("kmsg 4", finding.Message, StringComparison.Ordinal); // the last kmsg report is a duplicate: no rebuild
    }

    [Fact]
    public void Interleaved_floods_from_both_paths_count_each_occurrence_once()
    {
        using var h = new Harness();
        for (var i = 0; i < 10_000; i++)
        {
            h.Xid(i * 0.01, 95, source: XidSource.NvmlEvent);
            h.Xid((i * 0.01) + 0.001, 95, source: XidSource.Kmsg);
        }

        Assert.Equal(10_000, Assert.Single(Assert.Single(h.Incidents.Open()).Findings).Count);
    }

    [Fact]
    public void Rule_4_the_third_xid_94_episode_within_24_h_escalates_to_high()
    {
        using var h = new Harness();
        h.Xid(0, 94);
        h.Xid(0.1, 94); // same burst: same episode
        Assert.Equal(Severity.Warning, Assert.Single(h.Incidents.Open()).Severity);
        h.Xid(3_600, 94);
        Assert.Equal(Severity.Warning, Assert.Single(h.Incidents.Open()).Severity);
        h.Xid(7_200, 94);

        var incident = Assert.Single(h.Incidents.Open());
        Assert.Equal((Severity.High, "memory_contained_repeated", "reset_gpu_at_next_drain"), (incident.Severity, incident.Category, incident.Action));
        Assert.Contains(h.Changes, c => c.Escalated);
    }

    [Fact]
    public void Rule_4_three_xid_94_spread_over_more_than_24_h_stay_warnings()
    {
        using var h = new Harness();
        var severities = new List<Severity>();
        foreach (var hours in new[] { 0, 13, 26, 39 })
        {
            h.Xid(hours * 3600.0, 94);
            // Warnings page after the group wait (no change yet), so read the incident itself.
            severities.Add(Assert.Single(h.Incidents.Open()).Severity);
        }

        Assert.All(severities, s => Assert.Equal(Severity.Warning, s));
    }

    [Fact]
    public void Rule_39_one_app_class_xid_is_info_and_opens_nothing()
    {
        using var h = new Harness();
        foreach (var xid in new[] { 13, 31, 32, 43, 45, 68, 69 })
        {
            h.Xid(xid, xid);
        }

        Assert.Empty(h.Incidents.Open());
        Assert.Equal(7, h.Incidents.InfoFindings);
    }

    [Fact]
    public void Rule_39_the_same_gpu_under_two_jobs_is_promoted_to_high_with_diagnostics()
    {
        var jobs = new Jobs();
        using var h = new Harness(jobs);
        jobs.Map[("n1", 3)] = "job-a";
        h.Xid(0, 13);
        h.Xid(30, 13); // the same job crashing again: still the application
        Assert.Empty(h.Incidents.Open());

        jobs.Map[("n1", 3)] = "job-b";
        h.Xid(600, 13);

        var incident = Assert.Single(h.Incidents.Open());
        Assert.Equal((Severity.High, "app_error_repeated", "run_diagnostics", (int?)3), (incident.Severity, incident.Category, incident.Action, incident.GpuIndex));
        Assert.Contains("job-a", incident.Findings[0].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Rule_39_different_gpus_or_jobs_outside_the_window_stay_info()
    {
        var jobs = new Jobs();
        using var h = new Harness(jobs);
        jobs.Map[("n1", 1)] = "job-a";
        jobs.Map[("n1", 2)] = "job-b";
        h.Xid(0, 31, gpu: 1);
        h.Xid(10, 31, gpu: 2); // spread across GPUs: the application
        jobs.Map[("n1", 1)] = "job-c";
        h.Xid((25 * 3600) + 10, 31, gpu: 1); // second job on GPU 1, but 25 h later

        Assert.Empty(h.Incidents.Open());
    }

    [Fact]
    public void Rule_39_falls_back_to_the_process_name_without_a_job_registry()
    {
        using var h = new Harness();
        h.Xid(0, 43, process: "trainer-a");
        h.Xid(100, 43, process: "trainer-b");

        Assert.Equal(Severity.High, Assert.Single(h.Incidents.Open()).Severity);
    }

    [Fact]
    public void Rule_40_aux_power_and_rule_41_unknown_xid_with_the_catalogue_version()
    {
        using var h = new Harness();
        h.Xid(0, 54, gpu: 1);
        h.Xid(10, 4242, gpu: 2); // after the node's group wait (3 s): its own incident
        var open = h.Incidents.Open();

        Assert.Equal((Severity.High, "aux_power", "check_mechanicals"), (open[0].Severity, open[0].Category, open[0].Action));
        Assert.Equal((Severity.Warning, "xid_unknown", "contact_support"), (open[1].Severity, open[1].Category, open[1].Action));
        Assert.Contains(XidCatalog.LoadEmbedded().Version, open[1].Findings[0].Message, StringComparison.Ordinal);
    }
}
