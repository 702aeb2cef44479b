using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Incidents;
using Microsoft.Extensions.Options;
using static FleetWatch.Controller.Tests.Detection.SampleBuilder;

namespace FleetWatch.Controller.Tests.Incidents;

public sealed class IncidentManagerTests
{
    // No group wait: these tests are about the lifecycle of one incident (IncidentGroupingTests cover the wait).
    private static IncidentManager NewManager(int resolveHoldSeconds = 30, int eventHoldSeconds = 300) =>
        new(Options.Create(new IncidentOptions { ResolveHold = TimeSpan.FromSeconds(resolveHoldSeconds), GroupWait = TimeSpan.Zero }),
            Options.Create(new DetectionOptions { EventHold = TimeSpan.FromSeconds(eventHoldSeconds) }));

    private static Finding Lost(bool active, int second, int gpu = 0) =>
        new("n1", gpu, "gpu_lost", FindingKind.Condition, active, Severity.Critical, "gpu_fell_off_bus", "restart_node", "lost", T0.AddSeconds(second));

    [Fact]
    public void One_fault_seen_in_many_samples_is_one_incident()
    {
        var manager = NewManager();
        var changes = Enumerable.Range(0, 60).SelectMany(s => manager.Apply([Lost(true, s)], T0.AddSeconds(s))).ToList();

        var opened = Assert.Single(changes);
        Assert.Equal(IncidentChangeKind.Opened, opened.Kind);
        Assert.Single(manager.Open());
    }

    [Fact]
    public void Single_app_class_xid_opens_no_incident_but_is_counted()
    {
        var manager = NewManager();
        var xid13 = new Finding("n1", 0, "xid:13", FindingKind.Event, true, Severity.Info, "app_error", "restart_app", "Xid 13", T0);

        Assert.Empty(manager.Apply([xid13], T0));
        Assert.Empty(manager.Open());
        Assert.Equal(1, manager.InfoFindings);
    }

    [Fact]
    public void Flapping_condition_keeps_one_incident_and_resolves_after_the_hold()
    {
        var manager = NewManager(resolveHoldSeconds: 30);
        var changes = new List<IncidentChange>();
        for (var s = 0; s < 100; s++)
        {
            // up for 5 s, down for 5 s: a flapping signal
            changes.AddRange(manager.Apply([Lost(s % 10 < 5, s)], T0.AddSeconds(s)));
            changes.AddRange(manager.Tick(T0.AddSeconds(s)));
        }

        Assert.Single(changes, c => c.Kind == IncidentChangeKind.Opened);
        Assert.DoesNotContain(changes, c => c.Kind == IncidentChangeKind.Resolved);

        // Now it stays clear: resolved once, after the hold and not before.
        var clearAt = 100;
        changes.Clear();
        for (var s = clearAt; s < clearAt + 60; s++)
        {
            changes.AddRange(manager.Apply([Lost(false, s)], T0.AddSeconds(s)));
            changes.AddRange(manager.Tick(T0.AddSeconds(s)));
        }

        var resolved = Assert.Single(changes);
        Assert.Equal(IncidentChangeKind.Resolved, resolved.Kind);
        // The last flap went clear at s = 95 (s % 10 >= 5): resolved exactly one hold later.
        Assert.Equal(T0.AddSeconds(95 + 30), resolved.Incident.ResolvedAt);
        Assert.Empty(manager.Open());
        Assert.Single(manager.RecentlyResolved());
    }

    [Fact]
    public void Event_findings_expire_after_the_event_hold()
    {
        var manager = NewManager(resolveHoldSeconds: 0, eventHoldSeconds: 60);
        var xid = new Finding("n1", 2, "xid:79", FindingKind.Event, true, Severity.Critical, "gpu_fell_off_bus", "restart_node", "Xid 79", T0);
        Assert.Equal(IncidentChangeKind.Opened, Assert.Single(manager.Apply([xid], T0)).Kind);

        Assert.Empty(manager.Tick(T0.AddSeconds(59)));
        Assert.Equal(IncidentChangeKind.Resolved, Assert.Single(manager.Tick(T0.AddSeconds(60))).Kind);
    }

    [Fact]
    public void Higher_severity_escalates_and_a_new_rule_at_equal_severity_does_not()
    {
        var manager = NewManager();
        var warn = new Finding("n1", 0, "over_temperature", FindingKind.Condition, true, Severity.Warning, "over_temperature", "check_cooling", "91 C", T0);
        manager.Apply([warn], T0);
        var warn2 = warn with { Rule = "xid:94", Kind = FindingKind.Event, Category = "memory_contained" };
        var joined = Assert.Single(manager.Apply([warn2], T0.AddSeconds(1)));
        Assert.False(joined.Escalated);

        var escalation = Assert.Single(manager.Apply([Lost(true, 2)], T0.AddSeconds(2)));
        Assert.True(escalation.Escalated);
        Assert.Equal(Severity.Critical, escalation.Incident.Severity);
        Assert.Equal("gpu_fell_off_bus", escalation.Incident.Category);
        Assert.Equal(3, escalation.Incident.Findings.Count);
    }

    [Fact]
    public void Different_gpus_get_different_incidents_once_the_group_wait_is_over()
    {
        var manager = NewManager();
        manager.Apply([Lost(true, 0, gpu: 0)], T0);
        manager.Apply([Lost(true, 1, gpu: 1)], T0.AddSeconds(1));
        manager.Apply([new Finding("n1", null, "ib_link_down:0", FindingKind.Condition, true, Severity.Critical, "ib_link_down", "drain_node", "down", T0)], T0.AddSeconds(2));

        Assert.Equal(3, manager.Open().Count);
        var severities = manager.ActiveSeverities();
        Assert.Equal(Severity.Critical, severities[("n1", null)]);
    }
}
