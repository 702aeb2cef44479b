using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Remediation;
using Microsoft.Extensions.Time.Testing;

namespace FleetWatch.Controller.Tests.Remediation;

/// <summary>Unit tier: the return-to-service decision and guard, pure functions, table-driven, time from a FakeTimeProvider.</summary>
public sealed class ReturnToServicePolicyTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 30, 3, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset CordonAt = Now.AddHours(-2);
    private static readonly RemediationOptions O = new() { ReturnToService = new ReturnToServiceOptions { Enabled = true } };
    private static readonly CordonRecord Cordon = new("gpu-r1", "Xid 79", "inc-1", CordonService.SystemOperator, CordonAt);

    /// <summary>A node healthy at <paramref name="at"/>, reporting from agent run <paramref name="run"/> since <paramref name="reportingSince"/>.</summary>
    private static NodeFacts Facts(DateTimeOffset at, string run = "run-2", DateTimeOffset? reportingSince = null, DateTimeOffset? conditionSince = null) =>
        NodeHealthTests.Good("gpu-r1") with
        {
            Latest = RemediationTestHost.Healthy("gpu-r1", 5, at, run),
            LastSeen = at,
            ReportingSince = reportingSince ?? CordonAt.AddMinutes(-30),
            Conditions =
            [
                new DetectionCondition("gpu-r1", null, "node_silent", ConditionStatus.False, reportingSince ?? CordonAt.AddMinutes(-30), null),
                new DetectionCondition("gpu-r1", 3, "gpu_lost", ConditionStatus.False, conditionSince ?? CordonAt.AddMinutes(-10), null),
            ],
        };

    private static RepairRecord Record(string? run = "run-1", DateTimeOffset? repairedAt = null, DateTimeOffset? soak = null, DateTimeOffset? lastHealthy = null) => new()
    {
        Node = "gpu-r1", CordonedAt = CordonAt, RunAtCordon = run,
        RepairKind = repairedAt is null ? null : ReturnToServicePolicy.AgentRestart, RepairedBy = repairedAt is null ? null : "fleetwatch", RepairedAt = repairedAt,
        SoakStart = soak, LastHealthyAt = lastHealthy,
    };

    public static TheoryData<string, CordonRecord, RepairRecord?, NodeFacts, string?, (bool First, DateTimeOffset? Excused), ReturnVerdict, string, DateTimeOffset?> Cases() => new()
    {
        { "operator cordon is never automatic", Cordon with { Operator = "alice" }, Record(soak: Now.AddHours(-1)), Facts(Now), null, Warm, ReturnVerdict.Manual, "by hand", null },
        { "same agent run: no evidence", Cordon, Record(), Facts(Now, run: "run-1"), null, Warm, ReturnVerdict.Wait, "no repair evidence yet", null },
        { "run unknown at the cordon", Cordon, Record(run: null), Facts(Now), null, Warm, ReturnVerdict.Wait, "waiting for an operator", null },
        { "no record: today's run is the baseline", Cordon, null, Facts(Now), null, Warm, ReturnVerdict.Wait, "no repair evidence yet", null },
        { "record of an older cordon is ignored", Cordon, Record() with { CordonedAt = CordonAt.AddDays(-3), RepairedAt = CordonAt.AddDays(-2) }, Facts(Now, run: "run-1"),
            null, Warm, ReturnVerdict.Wait, "no repair evidence yet", null },
        { "new run: evidence, soak starts now", Cordon, Record(), Facts(Now), null, Warm, ReturnVerdict.Wait, "30 min left", Now },
        { "evidence but stale samples", Cordon, Record(repairedAt: Now.AddMinutes(-40)), Facts(Now.AddSeconds(-20)), null, Warm, ReturnVerdict.Wait, "not healthy", null },
        { "soak broken by a lost GPU", Cordon, Record(repairedAt: Now.AddMinutes(-40), soak: Now.AddMinutes(-20)),
            Facts(Now) with { Latest = Facts(Now).Latest! with { Gpus = [.. Facts(Now).Latest!.Gpus.Select(g => g.Index == 3 ? g with { Lost = true } : g)] } },
            null, Warm, ReturnVerdict.Wait, "soak broken: GPU 3 lost", null },
        { "soak broken by an open incident", Cordon, Record(repairedAt: Now.AddMinutes(-40), soak: Now.AddMinutes(-35)), Facts(Now) with { OpenIncidents = ["inc-9"] },
            null, Warm, ReturnVerdict.Wait, "soak broken: open incident inc-9", null },
        { "29 min healthy", Cordon, Record(repairedAt: Now.AddMinutes(-40), soak: Now.AddMinutes(-29)), Facts(Now), null, Warm, ReturnVerdict.Wait, "1 min left", Now.AddMinutes(-29) },
        { "30 min healthy: return", Cordon, Record(repairedAt: Now.AddMinutes(-40), soak: Now.AddMinutes(-30)), Facts(Now), null, Warm, ReturnVerdict.Return, "healthy for 30 min",
            Now.AddMinutes(-30) },
        { "flap between evaluations restarts at the clear", Cordon, Record(repairedAt: Now.AddMinutes(-40), soak: Now.AddMinutes(-35)), Facts(Now, conditionSince: Now.AddMinutes(-4)),
            null, Warm, ReturnVerdict.Wait, "26 min left", Now.AddMinutes(-4) },
        { "sample gap restarts at the resume", Cordon, Record(repairedAt: Now.AddMinutes(-40), soak: Now.AddMinutes(-35)), Facts(Now, reportingSince: Now.AddMinutes(-2)),
            null, Warm, ReturnVerdict.Wait, "28 min left", Now.AddMinutes(-2) },
        { "soak never starts before the repair", Cordon, Record(repairedAt: Now.AddMinutes(-5), soak: Now.AddMinutes(-50)), Facts(Now), null, Warm, ReturnVerdict.Wait, "25 min left",
            Now.AddMinutes(-5) },
        { "soaked but the guard holds", Cordon, Record(repairedAt: Now.AddMinutes(-40), soak: Now.AddMinutes(-31)), Facts(Now), "circuit breaker refused", Warm, ReturnVerdict.Hold,
            "circuit breaker", Now.AddMinutes(-31) },
        { "controller restart, samples continued", Cordon, Record(repairedAt: Now.AddMinutes(-40), soak: Now.AddMinutes(-31), lastHealthy: Now.AddMinutes(-3)),
            Facts(Now, reportingSince: Now.AddMinutes(-3).AddSeconds(20), conditionSince: Now.AddMinutes(-3).AddSeconds(20)), null, First, ReturnVerdict.Return, "returned", Now.AddMinutes(-31) },
        { "controller restart after a long outage restarts the soak", Cordon, Record(repairedAt: Now.AddMinutes(-40), soak: Now.AddMinutes(-31), lastHealthy: Now.AddMinutes(-20)),
            Facts(Now, reportingSince: Now.AddMinutes(-1), conditionSince: Now.AddMinutes(-1)), null, First, ReturnVerdict.Wait, "29 min left", Now.AddMinutes(-1) },
        { "the excused start stays excused on later looks", Cordon, Record(repairedAt: Now.AddMinutes(-40), soak: Now.AddMinutes(-31), lastHealthy: Now.AddMinutes(-1)),
            Facts(Now, reportingSince: Now.AddMinutes(-3).AddSeconds(20), conditionSince: Now.AddMinutes(-3).AddSeconds(20)), null, (false, Now.AddMinutes(-3).AddSeconds(20)),
            ReturnVerdict.Return, "returned", Now.AddMinutes(-31) },
        { "a later gap is not excused", Cordon, Record(repairedAt: Now.AddMinutes(-40), soak: Now.AddMinutes(-31), lastHealthy: Now.AddMinutes(-1)),
            Facts(Now, reportingSince: Now.AddMinutes(-1), conditionSince: Now.AddMinutes(-3).AddSeconds(20)), null, (false, Now.AddMinutes(-3).AddSeconds(20)),
            ReturnVerdict.Wait, "29 min left", Now.AddMinutes(-1) },
        { "a gap is a gap on a warm controller", Cordon, Record(repairedAt: Now.AddMinutes(-40), soak: Now.AddMinutes(-31), lastHealthy: Now.AddMinutes(-3)),
            Facts(Now, reportingSince: Now.AddMinutes(-3).AddSeconds(20)), null, Warm, ReturnVerdict.Wait, "left", Now.AddMinutes(-3).AddSeconds(20) },
    };

    private const string BootA = "6f1c9a52-3a4e-4d7b-9a51-0b6c2f0d1e11";
    private const string BootB = "c2d4e6f8-1a3b-4c5d-8e7f-90a1b2c3d4e5";

    /// <summary>The node now runs <paramref name="run"/> and reports boot id <paramref name="boot"/>; the record holds run-1 and boot <paramref name="bootAtCordon"/>.</summary>
    private static (RepairRecord Record, NodeFacts Facts) Boots(string? bootAtCordon, string? boot, string run)
    {
        var facts = Facts(Now, run: run);
        return (Record() with { BootAtCordon = bootAtCordon }, facts with { Latest = facts.Latest! with { BootId = boot } });
    }

    public static TheoryData<string, string?, string?, string, string?, string> BootCases() => new()
    {
        // name, boot id at the cordon, boot id now, agent run now (run-1 at the cordon), repair kind found (null: none), reason or detail
        { "rebooted (and so a new agent run)", BootA, BootB, "run-2", ReturnToServicePolicy.Reboot, $"boot id {BootA} -> {BootB}" },
        { "agent restarted, same boot: not a repair", BootA, BootA, "run-2", null, "an agent restart alone is not one" },
        { "same boot, same run", BootA, BootA, "run-1", null, "a reboot of the node" },
        { "no boot id at the cordon: the agent run decides", null, BootB, "run-2", ReturnToServicePolicy.AgentRestart, "agent run run-1 -> run-2" },
        { "agent stopped sending one: the agent run decides", BootA, null, "run-2", ReturnToServicePolicy.AgentRestart, "agent run run-1 -> run-2" },
    };

    [Theory]
    [MemberData(nameof(BootCases))]
    public void A_reboot_is_the_evidence_of_repair_where_the_boot_id_is_known(string name, string? bootAtCordon, string? boot, string run, string? kind, string text)
    {
        var (record, facts) = Boots(bootAtCordon, boot, run);

        var d = ReturnToServicePolicy.Evaluate(Cordon, record, facts, null, false, null, Now, O);

        Assert.True(kind == d.Next.RepairKind, $"{name}: repair kind {d.Next.RepairKind ?? "none"} ({d.Reason})");
        Assert.Equal(ReturnVerdict.Wait, d.Verdict); // evidence starts the soak; it never returns the node at once
        Assert.True((kind is null ? d.Reason : d.Next.RepairDetail!).Contains(text, StringComparison.Ordinal), $"{name}: '{d.Reason}' / '{d.Next.RepairDetail}' lacks '{text}'");
        Assert.Equal(kind is null ? null : Now, d.Next.RepairedAt);
    }

    [Fact]
    public void Without_a_record_the_boot_id_seen_now_is_the_baseline()
    {
        var facts = Facts(Now, run: "run-2");
        facts = facts with { Latest = facts.Latest! with { BootId = BootB } };

        var d = ReturnToServicePolicy.Evaluate(Cordon, null, facts, null, false, null, Now, O);

        Assert.Equal((BootB, "run-2", (string?)null), (d.Next.BootAtCordon, d.Next.RunAtCordon, d.Next.RepairKind));
    }

    public static TheoryData<string, CordonRecord, ReturnVerdict?, RepairRecord?, bool, string> StatusCases() => new()
    {
        // name, cordon, last verdict (null: not evaluated yet), record in that decision, enabled, expected state
        { "operator cordon", Cordon with { Operator = "alice" }, ReturnVerdict.Manual, Record(), true, "manual" },
        { "operator cordon while disabled", Cordon with { Operator = "alice" }, null, null, false, "manual" },
        { "feature off", Cordon, null, Record(), false, "disabled" },
        { "not looked at yet", Cordon, null, Record(), true, "not_evaluated" },
        { "no evidence", Cordon, ReturnVerdict.Wait, Record(), true, "awaiting_repair" },
        { "repaired, failing the check", Cordon, ReturnVerdict.Wait, Record(repairedAt: Now.AddMinutes(-5)), true, "unhealthy" },
        { "soaking", Cordon, ReturnVerdict.Wait, Record(repairedAt: Now.AddMinutes(-5), soak: Now.AddMinutes(-4)), true, "soaking" },
        { "held by the guard", Cordon, ReturnVerdict.Hold, Record(repairedAt: Now.AddMinutes(-50), soak: Now.AddMinutes(-40)), true, "held" },
        { "returning", Cordon, ReturnVerdict.Return, Record(repairedAt: Now.AddMinutes(-50), soak: Now.AddMinutes(-40)), true, "returning" },
    };

    [Theory]
    [MemberData(nameof(StatusCases))]
    public void Status_says_where_the_way_back_stands(string name, CordonRecord cordon, ReturnVerdict? verdict, RepairRecord? record, bool enabled, string state)
    {
        var last = verdict is { } v ? new ReturnDecision(v, record!, $"reason of {name}") : null;

        var status = ReturnToServicePolicy.Status(cordon, record, last, last is null ? null : Now, enabled);

        Assert.True(state == status.State, $"{name}: {status.State}");
        // The evaluation's own words where there was one; FleetWatch's explanation otherwise.
        Assert.Equal(state is "manual" or "disabled" or "not_evaluated" ? "explained" : $"reason of {name}",
            status.Reason == last?.Reason ? status.Reason : status.Reason is { Length: > 0 } ? "explained" : null);
        Assert.Equal((record?.RepairKind, record?.SoakStart), (status.RepairKind, status.SoakStart));
    }

    private static readonly (bool, DateTimeOffset?) Warm = (false, null);
    private static readonly (bool, DateTimeOffset?) First = (true, null);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Evaluate(string name, CordonRecord cordon, RepairRecord? record, NodeFacts facts, string? guard, (bool First, DateTimeOffset? Excused) look, ReturnVerdict verdict,
        string reason, DateTimeOffset? soakStart)
    {
        var time = new FakeTimeProvider(Now);
        var d = ReturnToServicePolicy.Evaluate(cordon, record, facts, guard, look.First, look.Excused, time.GetUtcNow(), O);
        Assert.True(verdict == d.Verdict, $"{name}: expected {verdict}, got {d.Verdict} ({d.Reason})");
        Assert.True(d.Reason.Contains(reason, StringComparison.Ordinal), $"{name}: reason '{d.Reason}' lacks '{reason}'");
        if (verdict != ReturnVerdict.Manual)
        {
            Assert.Equal(soakStart, d.Next.SoakStart);
        }
    }

    [Fact]
    public void Scenario_EvidenceSoakFlapSoakReturn_OverAFakeClock()
    {
        var time = new FakeTimeProvider(CordonAt.AddMinutes(5));
        RepairRecord? record = Record();
        var reporting = CordonAt.AddMinutes(-30);
        ReturnDecision Step(NodeFacts? f = null)
        {
            var d = ReturnToServicePolicy.Evaluate(Cordon, record, f ?? Facts(time.GetUtcNow(), reportingSince: reporting), null, false, null, time.GetUtcNow(), O);
            record = d.Next;
            return d;
        }

        Assert.Equal(ReturnVerdict.Wait, Step(Facts(time.GetUtcNow(), run: "run-1")).Verdict); // same run: nothing
        Assert.Null(record!.RepairedAt);
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(ReturnVerdict.Wait, Step().Verdict); // the agent came back as run-2
        var repairedAt = time.GetUtcNow();
        Assert.Equal((ReturnToServicePolicy.AgentRestart, "agent run run-1 -> run-2"), (record.RepairKind, record.RepairDetail));
        for (var i = 0; i < 20; i++)
        {
            time.Advance(TimeSpan.FromMinutes(1));
            Assert.Equal(ReturnVerdict.Wait, Step().Verdict);
        }

        // The node's samples stop for a minute and resume: the next evaluation sees the new ReportingSince.
        time.Advance(TimeSpan.FromMinutes(1));
        reporting = time.GetUtcNow().AddSeconds(-10);
        var broken = Step();
        Assert.Equal((ReturnVerdict.Wait, reporting), (broken.Verdict, broken.Next.SoakStart));
        time.Advance(TimeSpan.FromMinutes(29));
        Assert.Equal(ReturnVerdict.Wait, Step().Verdict);
        time.Advance(TimeSpan.FromSeconds(50));
        var done = Step();
        Assert.Equal(ReturnVerdict.Return, done.Verdict);
        Assert.Equal(repairedAt, record.RepairedAt);
    }

    private static RemediationAction Act(string kind, DateTimeOffset at, string? detail = null, string op = "fleetwatch", string? job = "j1") =>
        Audit.Of(null, at, kind, "gpu-r1", job, null, null, "r", null, op, ActionStates.Done, detail);

    public static TheoryData<string, RemediationAction[], RemediationAction[], DateTimeOffset?, string?> GuardCases() => new()
    {
        { "quiet", [Act("cordon", CordonAt)], [], null, null },
        { "breaker refused a cordon 10 min ago", [], [], Now.AddMinutes(-10), "circuit breaker" },
        { "breaker 40 min ago is past the storm window", [], [], Now.AddMinutes(-40), null },
        { "named suspect since the cordon", [Act("page", CordonAt.AddSeconds(1), "suspect_node")], [], null, "suspect" },
        { "suspect before this cordon does not count", [Act("page", CordonAt.AddDays(-1), "suspect_node")], [], null, null },
        { "job storming", [], [Act("page", Now.AddMinutes(-5), "restart_storm")], null, "storming" },
        { "job halted without progress", [], [Act("halt", Now.AddMinutes(-5), "no_progress")], null, "no_progress" },
        { "old storm", [], [Act("page", Now.AddHours(-2), "restart_storm")], null, null },
        { "returned twice today", [Act("uncordon", Now.AddHours(-20)), Act("uncordon", Now.AddHours(-3))], [], null, "returned automatically 2 times" },
        { "operator uncordons do not count", [Act("uncordon", Now.AddHours(-20), op: "alice"), Act("uncordon", Now.AddHours(-3))], [], null, null },
        { "yesterday's returns do not count", [Act("uncordon", Now.AddHours(-30)), Act("uncordon", Now.AddHours(-3))], [], null, null },
    };

    [Theory]
    [MemberData(nameof(GuardCases))]
    public void Guard(string name, RemediationAction[] nodeActions, RemediationAction[] jobActions, DateTimeOffset? breaker, string? expected)
    {
        var hold = ReturnToServicePolicy.Guard(Cordon, nodeActions, jobActions, breaker, Now, O);
        if (expected is null)
        {
            Assert.True(hold is null, $"{name}: expected no hold, got '{hold}'");
        }
        else
        {
            Assert.True(hold?.Contains(expected, StringComparison.Ordinal) == true, $"{name}: expected '{expected}', got '{hold ?? "no hold"}'");
        }
    }
}
