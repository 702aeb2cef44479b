using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Incidents;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using static FleetWatch.Controller.Tests.Detection.SampleBuilder;

namespace FleetWatch.Controller.Tests.Incidents;

/// <summary>Alertmanager's model on findings: group by node and NVLink domain, group wait, inhibition, hysteresis, repeat, silences.</summary>
public sealed class IncidentGroupingTests
{
    internal static IncidentManager NewManager(Action<IncidentOptions>? configure = null, IncidentStore? store = null)
    {
        var options = new IncidentOptions { ResolveHold = TimeSpan.FromSeconds(30), GroupWait = TimeSpan.FromSeconds(3) };
        configure?.Invoke(options);
        return new IncidentManager(Options.Create(options), Options.Create(new DetectionOptions { EventHold = TimeSpan.FromSeconds(300) }), store);
    }

    internal static Finding Lost(string node, int gpu, bool active = true) =>
        new(node, gpu, "gpu_lost", FindingKind.Condition, active, Severity.Critical, "gpu_fell_off_bus", "restart_node", $"GPU {gpu} lost", T0);

    internal static Finding Hot(string node, int gpu, bool active = true) =>
        new(node, gpu, "over_temperature", FindingKind.Condition, active, Severity.Warning, "over_temperature", "check_cooling", $"GPU {gpu} 93 C", T0);

    private static Finding Silent(string node, bool active = true) =>
        new(node, null, "node_silent", FindingKind.Condition, active, Severity.Critical, "node_silent", "check_node", "silent", T0);

    private static Finding NvLink(string node, int gpu, bool active = true) =>
        new(node, gpu, "nvlink_down:3", FindingKind.Condition, active, Severity.Critical, "nvlink_down", "drain_and_reset_gpu", $"GPU {gpu} link 3 down", T0);

    private static Finding Sxid(string node) =>
        new(node, null, "sxid:24007", FindingKind.Event, true, Severity.Critical, "nvswitch_error", "restart_node", "NVSwitch SXid 24007", T0);

    /// <summary>Applies then ticks, as the sweep does, at T0 + <paramref name="seconds"/>.</summary>
    private static List<IncidentChange> Step(IncidentManager manager, double seconds, params Finding[] findings)
    {
        var now = T0.AddSeconds(seconds);
        return [.. manager.Apply(findings.Select(f => f with { Time = now }).ToList(), now), .. manager.Tick(now)];
    }

    [Fact]
    public void A_fault_seen_on_all_eight_gpus_within_the_group_wait_is_one_incident_and_one_page()
    {
        var manager = NewManager();
        var changes = new List<IncidentChange>();
        for (var gpu = 0; gpu < 8; gpu++)
        {
            // Xid lane arrival order: a few hundred milliseconds apart.
            changes.AddRange(Step(manager, gpu * 0.3, Lost("n1", gpu)));
        }

        var incident = Assert.Single(manager.Open());
        Assert.Equal(Enumerable.Range(0, 8), incident.Gpus);
        Assert.Null(incident.GpuIndex);
        Assert.Equal("n1", incident.GroupKey);
        Assert.Equal(8, incident.Findings.Count);
        // Critical pages at once (CriticalGroupWait 0); the other GPUs join without a second page.
        var page = Assert.Single(changes, c => c.IsNotification);
        Assert.Equal((IncidentChangeKind.Opened, 0.0), (page.Kind, (page.Incident.OpenedAt - T0).TotalSeconds));
    }

    [Fact]
    public void Group_wait_holds_the_first_notification_of_a_warning_and_folds_the_group_into_it()
    {
        var manager = NewManager();
        Assert.Empty(Step(manager, 0, Hot("n1", 2)));
        Assert.Empty(Step(manager, 1, Hot("n1", 5)));
        Assert.Empty(Step(manager, 2.9, Hot("n1", 2), Hot("n1", 5)));

        var opened = Assert.Single(Step(manager, 3, Hot("n1", 2), Hot("n1", 5)));
        Assert.Equal(IncidentChangeKind.Opened, opened.Kind);
        Assert.Equal([2, 5], opened.Incident.Gpus);
        Assert.Equal(2, opened.Incident.Findings.Count);

        // An escalation to critical during the wait pages at once, with the critical severity.
        var other = NewManager();
        Assert.Empty(Step(other, 0, Hot("n2", 1)));
        var escalated = Assert.Single(Step(other, 1, Lost("n2", 1)));
        Assert.Equal((IncidentChangeKind.Opened, Severity.Critical), (escalated.Kind, escalated.Incident.Severity));
    }

    [Fact]
    public void A_gpu_failing_after_the_group_wait_is_its_own_incident_and_other_nodes_never_group()
    {
        var manager = NewManager();
        Step(manager, 0, Lost("n1", 0), Lost("n2", 0));
        Step(manager, 10, Lost("n1", 0), Lost("n2", 0), Lost("n1", 4));

        var open = manager.Open();
        Assert.Equal(3, open.Count);
        Assert.Equal(["n1/0", "n2/0", "n1/4"], open.Select(i => i.GroupKey));
        Assert.Equal(3, open.Select(i => i.Id).Distinct().Count());
    }

    [Fact]
    public void An_nvswitch_sxid_groups_the_nvlink_findings_of_the_node_even_later_but_not_other_faults()
    {
        var manager = NewManager();
        var changes = Step(manager, 0, Sxid("n1"));
        changes.AddRange(Step(manager, 20, NvLink("n1", 0), NvLink("n1", 3), NvLink("n1", 6)));
        changes.AddRange(Step(manager, 25, Hot("n1", 7)));
        changes.AddRange(Step(manager, 30));

        var open = manager.Open();
        Assert.Equal(2, open.Count);
        var domain = open.Single(i => i.GroupKey == "n1/nvlink");
        Assert.Equal([0, 3, 6], domain.Gpus);
        Assert.Equal(4, domain.Findings.Count);
        Assert.Equal("n1/7", open.Single(i => i != domain).GroupKey);
        Assert.Equal(2, changes.Count(c => c.Kind == IncidentChangeKind.Opened));
    }

    [Fact]
    public void A_silent_node_inhibits_its_gpu_findings_which_become_evidence_and_page_nothing()
    {
        var manager = NewManager();
        var changes = Step(manager, 0, Silent("n1"));
        changes.AddRange(Step(manager, 10, Hot("n1", 1), Hot("n1", 2), new Finding("n1", 3, "xid:79", FindingKind.Event, true, Severity.Critical, "gpu_fell_off_bus", "restart_node", "Xid 79", T0)));
        changes.AddRange(Step(manager, 11, Hot("n1", 1)));

        var incident = Assert.Single(manager.Open());
        Assert.Equal("node_silent", incident.Category);
        Assert.Equal(3, incident.Findings.Count(f => f.Inhibited));
        Assert.Equal(2, incident.Findings.Single(f => f.Rule == "over_temperature" && f.GpuIndex == 1).Count);
        Assert.Single(changes, c => c.IsNotification);
        Assert.DoesNotContain(manager.ActiveSeverities().Keys, k => k.Gpu is not null);

        // The node comes back and GPU 1 is still hot: now it is an incident in its own right.
        Step(manager, 40, Silent("n1", active: false));
        Step(manager, 41, Hot("n1", 1));
        var gpu1 = Assert.Single(manager.Open(), i => i.GroupKey == "n1/1");
        Assert.False(Assert.Single(gpu1.Findings).Inhibited);
    }

    [Fact]
    public void A_lost_gpu_inhibits_the_other_findings_of_that_gpu_only()
    {
        var manager = NewManager(o => o.GroupWait = TimeSpan.Zero);
        Step(manager, 0, Lost("n1", 4));
        Step(manager, 5, Hot("n1", 4), Hot("n1", 5));

        var open = manager.Open();
        Assert.Equal(2, open.Count);
        Assert.True(open.Single(i => i.GroupKey == "n1/4").Findings.Single(f => f.Rule == "over_temperature").Inhibited);
        Assert.False(open.Single(i => i.GroupKey == "n1/5").Findings.Single().Inhibited);
    }

    [Fact]
    public void Fifty_flaps_are_one_incident_one_page_and_one_resolution()
    {
        var manager = NewManager();
        var changes = new List<IncidentChange>();
        var t = 0.0;
        for (var flap = 0; flap < 50; flap++)
        {
            // Up 4 s, down 6 s: shorter than the 30 s resolve hold.
            for (var s = 0; s < 10; s++, t++)
            {
                changes.AddRange(Step(manager, t, Lost("n1", 2, active: s < 4)));
            }
        }

        for (var s = 0; s < 40; s++, t++)
        {
            changes.AddRange(Step(manager, t, Lost("n1", 2, active: false)));
        }

        Assert.Single(changes, c => c.Kind == IncidentChangeKind.Opened);
        var resolved = Assert.Single(changes, c => c.Kind == IncidentChangeKind.Resolved);
        Assert.Equal(2, changes.Count(c => c.IsNotification));
        Assert.Equal(50, Assert.Single(resolved.Incident.Findings).Count);
        // The last flap cleared at t = 494; resolved one hold later.
        Assert.Equal(T0.AddSeconds(494 + 30), resolved.Incident.ResolvedAt);
    }

    [Fact]
    public void An_unacknowledged_incident_repeats_every_interval_and_stops_once_acknowledged()
    {
        var manager = NewManager(o => o.RepeatInterval = TimeSpan.FromHours(4));
        var changes = Step(manager, 0, Lost("n1", 0));
        for (var s = 60; s <= 9 * 3600; s += 60)
        {
            changes.AddRange(Step(manager, s, Lost("n1", 0)));
        }

        var repeats = changes.Where(c => c.Repeat > 0).ToList();
        Assert.Equal([1, 2], repeats.Select(r => r.Repeat));
        Assert.All(repeats, r => Assert.True(r.IsNotification));
        Assert.Equal(T0.AddHours(4), changes.Single(c => c.Repeat == 1).Incident.OpenedAt.AddHours(4));
        Assert.Equal(3, changes.Select(c => c.NotificationKey).Distinct().Count());

        var id = manager.Open()[0].Id;
        Assert.NotNull(manager.Acknowledge(id, "alice", "on it", T0.AddHours(9)));
        var later = new List<IncidentChange>();
        for (var s = 9 * 3600; s <= 20 * 3600; s += 600)
        {
            later.AddRange(Step(manager, s, Lost("n1", 0)));
        }

        Assert.Empty(later);
        var acked = manager.Find(id)!;
        Assert.Equal(("alice", "on it"), (acked.AcknowledgedBy, Assert.Single(acked.Notes).Text));
    }

    [Fact]
    public void A_silenced_incident_is_recorded_and_flagged_but_notified_only_when_the_silence_ends()
    {
        var manager = NewManager();
        manager.AddMute(Mute("sil-1", MuteKind.Silence, 0, 100, new MuteMatcher("node", "n1")), T0);
        var changes = Step(manager, 0, Lost("n1", 0));
        changes.AddRange(Step(manager, 10, Lost("n1", 0)));

        Assert.DoesNotContain(changes, c => c.IsNotification);
        Assert.Equal("sil-1", Assert.Single(manager.Open()).SilencedBy);

        // Expired early through the API: what was held back flows at the next tick.
        Assert.True(manager.ExpireMute(MuteKind.Silence, "sil-1", T0.AddSeconds(20)));
        var opened = Assert.Single(Step(manager, 21, Lost("n1", 0)));
        Assert.Equal((IncidentChangeKind.Opened, (string?)null), (opened.Kind, opened.Incident.SilencedBy));
        Assert.False(manager.ExpireMute(MuteKind.Silence, "sil-1", T0.AddSeconds(22)));
    }

    [Fact]
    public void A_window_that_starts_later_flags_an_open_incident_and_its_natural_end_clears_the_flag()
    {
        var manager = NewManager();
        manager.AddMute(Mute("mnt-2", MuteKind.Maintenance, 60, 120, new MuteMatcher("node", "n1")), T0);
        Assert.Single(Step(manager, 0, Lost("n1", 0)), c => c.IsNotification);
        Assert.Null(Assert.Single(manager.Open()).SilencedBy);

        Step(manager, 60, Lost("n1", 0));
        Assert.Equal("mnt-2", Assert.Single(manager.Open()).SilencedBy);
        Step(manager, 120, Lost("n1", 0));
        Assert.Null(Assert.Single(manager.Open()).SilencedBy);
    }

    [Theory]
    [InlineData("CriticalGroupWait", "00:00:10", "FleetWatch:Incidents:CriticalGroupWait = '00:00:10'")]
    [InlineData("GroupWait", "00:10:00", "FleetWatch:Incidents:GroupWait = '00:10:00'")]
    [InlineData("RepeatInterval", "00:00:00", "FleetWatch:Incidents:RepeatInterval = '00:00:00'")]
    [InlineData("InhibitingRules:0", " ", "FleetWatch:Incidents:InhibitingRules:0 = ' '")]
    public void Bad_incident_options_fail_at_start_naming_the_key_and_the_value(string key, string value, string message)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { [$"FleetWatch:Incidents:{key}"] = value }).Build();
        var services = new ServiceCollection();
        services.AddDetection(configuration);
        using var provider = services.BuildServiceProvider();

        var e = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<IncidentOptions>>().Value);
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_maintenance_window_mutes_by_regex_and_an_incident_muted_all_its_life_resolves_silently()
    {
        var manager = NewManager();
        manager.AddMute(Mute("mnt-1", MuteKind.Maintenance, 0, 3600, new MuteMatcher("node", "rack1-.*", IsRegex: true), new MuteMatcher("rule", "gpu_lost")), T0);
        var changes = Step(manager, 0, Lost("rack1-n3", 1), Lost("rack2-n1", 1), Hot("rack1-n5", 0));
        for (var s = 1; s < 60; s++)
        {
            changes.AddRange(Step(manager, s, Lost("rack1-n3", 1, active: false), Lost("rack2-n1", 1), Hot("rack1-n5", 0)));
        }

        var notified = changes.Where(c => c.IsNotification).Select(c => c.Incident.Node).ToList();
        Assert.Equal(["rack2-n1", "rack1-n5"], notified);
        var muted = Assert.Single(changes, c => c.Kind == IncidentChangeKind.Resolved);
        Assert.True(muted.Muted);
        Assert.False(NotificationPolicy.ShouldNotify(muted, Severity.Info));
        Assert.Equal("mnt-1", muted.Incident.SilencedBy);
    }

    [Fact]
    public void A_negative_gpu_matcher_mutes_every_gpu_but_the_named_one()
    {
        var manager = NewManager(o => o.GroupWait = TimeSpan.Zero);
        manager.AddMute(Mute("sil-2", MuteKind.Silence, 0, 3600, new MuteMatcher("gpu", "3", IsEqual: false)), T0);
        var changes = Step(manager, 0, Lost("n1", 3), Lost("n2", 4));
        Assert.Equal(["n1"], changes.Where(c => c.IsNotification).Select(c => c.Incident.Node));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Random_finding_streams_never_emit_a_notification_key_twice_and_resolve_only_what_was_opened(int seed)
    {
        var random = new Random(seed);
        var manager = NewManager(o =>
        {
            o.RepeatInterval = TimeSpan.FromMinutes(10);
            o.ResolveHold = TimeSpan.FromSeconds(random.Next(0, 40));
        });
        string[] rules = ["gpu_lost", "over_temperature", "nvlink_down:1", "xid:79", "node_silent", "sxid:1"];
        var changes = new List<IncidentChange>();
        for (var s = 0; s < 3600; s++)
        {
            var batch = new List<Finding>();
            for (var k = random.Next(0, 4); k > 0; k--)
            {
                var rule = rules[random.Next(rules.Length)];
                var node = $"n{random.Next(3)}";
                int? gpu = rule is "node_silent" or "sxid:1" ? null : random.Next(8);
                var kind = rule.StartsWith("xid", StringComparison.Ordinal) || rule.StartsWith("sxid", StringComparison.Ordinal) ? FindingKind.Event : FindingKind.Condition;
                var severity = (Severity)random.Next(1, 4);
                batch.Add(new Finding(node, gpu, rule, kind, random.NextDouble() < 0.6, severity, rule.Split(':')[0], "act", rule, T0));
            }

            changes.AddRange(Step(manager, s, [.. batch]));
            if (s % 500 == 0 && manager.Open().FirstOrDefault() is { } first)
            {
                manager.Acknowledge(first.Id, "bob", null, T0.AddSeconds(s));
            }
        }

        var keys = changes.Where(c => c.IsNotification).Select(c => c.NotificationKey).ToList();
        Assert.Equal(keys.Count, keys.Distinct().Count());
        var opened = changes.Where(c => c.Kind == IncidentChangeKind.Opened).Select(c => c.Incident.Id).ToList();
        Assert.Equal(opened.Count, opened.Distinct().Count());
        foreach (var resolved in changes.Where(c => c.Kind == IncidentChangeKind.Resolved && !c.Muted))
        {
            Assert.Contains(resolved.Incident.Id, opened);
        }

        // An incident covers the GPUs of its own (not inhibited) findings, and an open incident owns each of them alone.
        var open = manager.Open();
        Assert.All(open, i => Assert.All(i.Findings.Where(f => !f.Inhibited), f => Assert.True(f.GpuIndex is null || i.Gpus.Contains(f.GpuIndex.Value), $"{i.Id} lacks GPU {f.GpuIndex}")));
        var owned = open.SelectMany(i => i.Findings.Where(f => !f.Inhibited).Select(f => (i.Node, f.GpuIndex, f.Rule))).ToList();
        Assert.Equal(owned.Count, owned.Distinct().Count());
        Assert.True(opened.Count > 5, $"only {opened.Count} incidents opened");
    }

    internal static Mute Mute(string id, MuteKind kind, int fromSeconds, int toSeconds, params MuteMatcher[] matchers) =>
        new(id, kind, matchers, T0.AddSeconds(fromSeconds), T0.AddSeconds(toSeconds), "alice", T0, "test");
}
