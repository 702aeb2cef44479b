using System.Net;
using System.Net.Http.Json;
using FleetWatch.Contracts;
using FleetWatch.Controller.Fleet;
using FleetWatch.Controller.Remediation;
using FleetWatch.Integration.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace FleetWatch.Controller.Tests.Remediation;

/// <summary>
/// Component tier: automatic return to service through the real controller (samples through its detection path,
/// incidents, fleet state) and the real remediation services (cordon service, store, scheduler adapter call), with a
/// fake clock. The node reports every 4 s (the agent ticks every second; 4 s stays within the 5 s sample age).
/// </summary>
public sealed class ReturnToServiceTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 30, 0, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Tick = TimeSpan.FromSeconds(4);
    private readonly string _db = Path.Combine(Path.GetTempPath(), "fw-rts-" + Guid.NewGuid().ToString("N") + ".db");

    public void Dispose()
    {
        foreach (var f in new[] { _db, _db + "-wal", _db + "-shm" }.Where(File.Exists))
        {
            File.Delete(f);
        }
    }

    private static readonly Dictionary<string, string?> Settings = new()
    {
        ["FleetWatch:Remediation:ReturnToService:Enabled"] = "true",
        // The loop's own period; the test evaluates every minute itself (the loop may run too: evaluations are serialised).
        ["FleetWatch:Remediation:ReturnToService:Interval"] = "00:10:00",
        ["FleetWatch:Remediation:NodeScheduler"] = "slurm",
        ["FleetWatch:Remediation:FleetSize"] = "100",
    };

    /// <summary>Feeds the nodes' samples for <paramref name="duration"/>, sweeping detection and evaluating each minute; stops early once <paramref name="until"/> holds.</summary>
    private static async Task RunAsync(RemediationTestHost host, FakeTimeProvider time, TimeSpan duration, Func<DateTimeOffset, IEnumerable<NodeSample>> samples,
        Func<bool>? until = null)
    {
        var pipeline = host.App.Services.GetRequiredService<DetectionPipeline>();
        var returns = host.App.Services.GetRequiredService<NodeReturnService>();
        var end = time.GetUtcNow() + duration;
        var nextEvaluation = time.GetUtcNow();
        while (time.GetUtcNow() < end && until?.Invoke() != true)
        {
            time.Advance(Tick);
            foreach (var sample in samples(time.GetUtcNow()))
            {
                await host.SampleAsync(sample);
            }

            await pipeline.SweepAsync(default);
            if (time.GetUtcNow() >= nextEvaluation)
            {
                await returns.EvaluateAsync(default);
                nextEvaluation = time.GetUtcNow() + TimeSpan.FromMinutes(1);
            }
        }
    }

    private static bool Cordoned(RemediationTestHost host, string node) => host.Store.Cordons().Any(c => c.Node == node);

    [Fact]
    public async Task WithBootIds_AnAgentRestartIsNoRepair_ButAReboot_IsTheEvidence()
    {
        const string BootA = "0b8f5c1e-8d0a-4a49-9e57-3c2f6f7b9a10", BootB = "9d2e4a6b-1c3f-4e5a-8b7c-6d5e4f3a2b1c";
        var time = new FakeTimeProvider(T0);
        await using var host = await RemediationTestHost.StartAsync(Settings, time: time, fullController: true);
        long seq = 0;
        var (run, boot) = ("run-1", BootA);
        IEnumerable<NodeSample> Node(DateTimeOffset at) => [RemediationTestHost.Healthy("gpu-r1", ++seq, at, run) with { BootId = boot }];

        await RunAsync(host, time, TimeSpan.FromMinutes(1), Node);
        await host.Orchestrator.OnIncidentAsync(RemediationTestHost.Incident("inc-79", "gpu-r1", 5, "gpu_fell_off_bus", "restart_node", Severity.Critical, time.GetUtcNow()), default);
        var atCordon = Assert.Single(host.Store.Repairs(), r => r.Node == "gpu-r1");
        Assert.Equal(("run-1", BootA), (atCordon.RunAtCordon, atCordon.BootAtCordon));

        // The agent restarts (an upgrade) without a reboot: a new run, the same boot id. No evidence, however long.
        (run, seq) = ("run-2", 0);
        await RunAsync(host, time, TimeSpan.FromMinutes(35), Node);
        Assert.True(Cordoned(host, "gpu-r1"));
        Assert.Null(host.Store.Repairs().Single(r => r.Node == "gpu-r1").RepairedAt);
        Assert.DoesNotContain(host.Store.Actions("gpu-r1", null, 50), a => a.Kind == "repaired");
        var waiting = Assert.Single(await host.Client.GetFromJsonAsync<List<CordonView>>("cordons") ?? []).ReturnToService;
        Assert.Equal("awaiting_repair", waiting.State);
        Assert.Contains("an agent restart alone is not one", waiting.Reason, StringComparison.Ordinal);

        // The node reboots: two silent minutes, a new boot id and run. That is the evidence, and the soak starts.
        time.Advance(TimeSpan.FromMinutes(2));
        (run, boot, seq) = ("run-3", BootB, 0);
        await RunAsync(host, time, TimeSpan.FromMinutes(5), Node);
        var record = host.Store.Repairs().Single(r => r.Node == "gpu-r1");
        Assert.Equal((ReturnToServicePolicy.Reboot, $"boot id {BootA} -> {BootB}"), (record.RepairKind, record.RepairDetail));
        Assert.NotNull(record.SoakStart);
        Assert.Contains($"boot id {BootA} -> {BootB}", Assert.Single(host.Store.Actions("gpu-r1", null, 50), a => a.Kind == "repaired").Reason, StringComparison.Ordinal);
        Assert.True(Cordoned(host, "gpu-r1")); // still soaking
        var soaking = Assert.Single(await host.Client.GetFromJsonAsync<List<CordonView>>("cordons") ?? []);
        Assert.Equal(("gpu-r1", "soaking", ReturnToServicePolicy.Reboot, record.SoakStart), (soaking.Node, soaking.ReturnToService.State, soaking.ReturnToService.RepairKind,
            soaking.ReturnToService.SoakStart));
        Assert.Contains("min left", soaking.ReturnToService.Reason, StringComparison.Ordinal);
        Assert.NotNull(soaking.ReturnToService.EvaluatedAt);

        // The same on the controller's /metrics, every state present, in valid exposition format.
        var text = new System.Text.StringBuilder();
        ControllerMetricsText.WriteCordons(text, host.App.Services);
        var metrics = text.ToString();
        Assert.Contains("fleetwatch_cordoned_nodes{return_state=\"soaking\"} 1\n", metrics, StringComparison.Ordinal);
        Assert.Contains("fleetwatch_cordoned_nodes{return_state=\"awaiting_repair\"} 0\n", metrics, StringComparison.Ordinal);
        Assert.Equal(ReturnToServicePolicy.States.Count, metrics.Split('\n').Count(l => l.StartsWith("fleetwatch_cordoned_nodes{", StringComparison.Ordinal)));
        await Promtool.CheckMetricsAsync(metrics);
    }

    [Fact]
    public async Task CordonThenAgentRestartThenSoak_Uncordons_AndAFlapRestartsTheSoak_OperatorCordonStays()
    {
        var time = new FakeTimeProvider(T0);
        await using var host = await RemediationTestHost.StartAsync(Settings, time: time, fullController: true);
        long seq = 0, seqM = 0;
        var run = "run-1";
        Func<GpuSample, GpuSample>? gpuEdit = null;
        IEnumerable<NodeSample> Both(DateTimeOffset at) =>
            [RemediationTestHost.Healthy("gpu-r1", ++seq, at, run, gpuEdit), RemediationTestHost.Healthy("gpu-m1", ++seqM, at, run)];

        await RunAsync(host, time, TimeSpan.FromMinutes(1), Both);
        // FleetWatch cordons gpu-r1 for a hardware incident; an operator cordons gpu-m1 by hand.
        await host.Orchestrator.OnIncidentAsync(RemediationTestHost.Incident("inc-79", "gpu-r1", 5, "gpu_fell_off_bus", "restart_node", Severity.Critical, time.GetUtcNow()), default);
        using (var manual = new HttpRequestMessage(HttpMethod.Post, "nodes/gpu-m1/cordon"))
        {
            manual.Headers.Add("X-Test-Operator", "alice");
            (await host.Client.SendAsync(manual)).EnsureSuccessStatusCode();
        }

        Assert.Equal("run-1", Assert.Single(host.Store.Repairs(), r => r.Node == "gpu-r1").RunAtCordon);

        // 35 healthy minutes from the same agent run: no evidence of repair, it stays cordoned.
        await RunAsync(host, time, TimeSpan.FromMinutes(35), Both);
        Assert.True(Cordoned(host, "gpu-r1"));
        Assert.Null(host.Store.Repairs().Single(r => r.Node == "gpu-r1").RepairedAt);

        // Reboot: two silent minutes, then both agents come back as a new run.
        time.Advance(TimeSpan.FromMinutes(2));
        (run, seq, seqM) = ("run-2", 0, 0);
        await RunAsync(host, time, TimeSpan.FromMinutes(20), Both);
        Assert.True(Cordoned(host, "gpu-r1"));
        var evidence = Assert.Single(host.Store.Actions("gpu-r1", null, 50), a => a.Kind == "repaired");
        Assert.Contains("agent run run-1 -> run-2", evidence.Reason, StringComparison.Ordinal);
        Assert.NotNull(host.Store.Repairs().Single(r => r.Node == "gpu-r1").SoakStart);

        // A flap: one sample with GPU 5 off the bus, then healthy again. The soak restarts.
        gpuEdit = g => g.Index == 5 ? g with { Lost = true } : g;
        await RunAsync(host, time, Tick, Both);
        var flap = time.GetUtcNow();
        gpuEdit = null;
        await RunAsync(host, time, TimeSpan.FromMinutes(60), Both, until: () => !Cordoned(host, "gpu-r1"));

        Assert.False(Cordoned(host, "gpu-r1"), "gpu-r1 should have returned to service within 60 min of the flap");
        var back = Assert.Single(host.Store.Actions("gpu-r1", null, 50), a => a.Kind == "uncordon");
        var afterFlap = back.At - flap;
        // Not before a whole soak after the flap (without the restart it would have returned ~10 min after it), and not
        // much later: the flap's incident resolves within the detectors' event hold (5 min) and hold, evaluated each minute.
        Assert.InRange(afterFlap, TimeSpan.FromMinutes(30), TimeSpan.FromMinutes(38));
        Assert.Equal((CordonService.SystemOperator, ActionStates.Done), (back.Operator, back.State));
        Assert.Contains("returned to service: agent_restart repair", back.Reason, StringComparison.Ordinal);
        Assert.Contains("resume gpu-r1", host.Slurm.Calls);
        Assert.DoesNotContain(host.Store.Repairs(), r => r.Node == "gpu-r1");

        // The operator's cordon stays, however healthy and restarted the node is.
        Assert.True(Cordoned(host, "gpu-m1"));
        Assert.DoesNotContain("resume gpu-m1", host.Slurm.Calls);
    }

    [Fact]
    public async Task OperatorRepairedMark_IsEvidence_AndTheSoakSurvivesAControllerRestart()
    {
        var time = new FakeTimeProvider(T0);
        var settings = new Dictionary<string, string?>(Settings);
        long seq = 0;
        IEnumerable<NodeSample> Node(DateTimeOffset at) => [RemediationTestHost.Healthy("gpu-r2", ++seq, at)];
        DateTimeOffset soakStart;
        await using (var first = await RemediationTestHost.StartAsync(settings, _db, time, fullController: true))
        {
            await RunAsync(first, time, TimeSpan.FromMinutes(1), Node);
            await first.Orchestrator.OnIncidentAsync(RemediationTestHost.Incident("inc-1", "gpu-r2", null, "node_silent", "check_node", Severity.Critical, time.GetUtcNow()), default);
            Assert.Equal(HttpStatusCode.NotFound, (await first.Client.PostAsync("nodes/gpu-zz/repaired", null)).StatusCode);

            using var mark = new HttpRequestMessage(HttpMethod.Post, "nodes/gpu-r2/repaired") { Content = JsonContent.Create(new OperatorBody("replaced GPU 3 baseboard")) };
            mark.Headers.Add("X-Test-Operator", "bob");
            using var response = await first.Client.SendAsync(mark);
            response.EnsureSuccessStatusCode();
            var audit = Assert.Single(first.Store.Actions("gpu-r2", null, 20), a => a.Kind == "repaired");
            Assert.Equal(("bob", "replaced GPU 3 baseboard"), (audit.Operator, audit.Reason));

            await RunAsync(first, time, TimeSpan.FromMinutes(20), Node);
            var record = first.Store.Repairs().Single();
            Assert.Equal((ReturnToServicePolicy.OperatorMark, "bob"), (record.RepairKind, record.RepairedBy));
            soakStart = record.SoakStart!.Value;
            Assert.True(Cordoned(first, "gpu-r2"));
        }

        // A new controller process on the same store; the node kept reporting (its queue delivers on).
        await using var second = await RemediationTestHost.StartAsync(settings, _db, time, fullController: true);
        await RunAsync(second, time, TimeSpan.FromMinutes(20), Node, until: () => !Cordoned(second, "gpu-r2"));
        Assert.False(Cordoned(second, "gpu-r2"));
        var back = Assert.Single(second.Store.Actions("gpu-r2", null, 50), a => a.Kind == "uncordon");
        Assert.InRange(back.At - soakStart, TimeSpan.FromMinutes(30), TimeSpan.FromMinutes(31.5));
        Assert.Contains("operator repair", back.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RepairedMark_OnAnOperatorsCordon_IsRefused_AndDisabledReturnNeverUncordons()
    {
        var time = new FakeTimeProvider(T0);
        var settings = new Dictionary<string, string?>(Settings) { ["FleetWatch:Remediation:ReturnToService:Enabled"] = "false" };
        await using var host = await RemediationTestHost.StartAsync(settings, time: time, fullController: true);
        long seq = 0;
        using (var manual = new HttpRequestMessage(HttpMethod.Post, "nodes/gpu-m2/cordon"))
        {
            manual.Headers.Add("X-Test-Operator", "alice");
            (await host.Client.SendAsync(manual)).EnsureSuccessStatusCode();
        }

        Assert.Equal(HttpStatusCode.Conflict, (await host.Client.PostAsync("nodes/gpu-m2/repaired", null)).StatusCode);

        await host.Orchestrator.OnIncidentAsync(RemediationTestHost.Incident("inc-2", "gpu-r3", null, "node_silent", "check_node", Severity.Critical, time.GetUtcNow()), default);
        using var ok = await host.Client.PostAsync("nodes/gpu-r3/repaired", null);
        Assert.Contains("\"automaticReturn\":false", await ok.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        await RunAsync(host, time, TimeSpan.FromMinutes(40), at => [RemediationTestHost.Healthy("gpu-r3", ++seq, at, "run-9")]);
        Assert.True(Cordoned(host, "gpu-r3"));
        Assert.Empty(await host.App.Services.GetRequiredService<NodeReturnService>().EvaluateAsync(default));
    }
}
