using System.Collections;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Remediation;
using FleetWatch.Controller.Remediation.JobSimulator;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace FleetWatch.Controller.Tests.Remediation;

/// <summary>Component tier: the whole restore loop in one process (real HTTP, in-memory bus, SQLite), without Slurm.</summary>
public sealed class RestoreLoopTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "fw-restore-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Fact]
    public async Task Xid79_OnTheJobsNode_CordonsRestoresOnSameDomainSpare_AndTheSimulatorResumes()
    {
        await using var host = await RemediationTestHost.StartAsync();
        var output = new StringWriter();
        var args = new[]
        {
            "--controller", host.BaseUrl.ToString(), "--job", "train-1", "--nodes", "gpu-a1,gpu-a2", "--steps", "80", "--step-ms", "15",
            "--checkpoint-every", "10", "--checkpoint-dir", _dir, "--scheduler", "slurm", "--scheduler-job-id", "4242", "--domain", "nvl-a", "--rack", "rack-1",
        };
        var errors = new StringWriter();
        using var gate = new StepGate();
        var sim = Task.Run(() => JobSimTool.RunAsync(args, output, errors, new Hashtable(), gate, CancellationToken.None));

        // Wait until the job has a complete checkpoint past step 20 on disk and in the inventory, then hold its steps
        // until the controller has decided the restore: on a loaded machine the 80 quick steps could otherwise end
        // before the restore exists, and the job would never be told to resume.
        var registry = host.App.Services.GetRequiredService<JobRegistry>();
        await RemediationTestHost.WaitUntil(() => registry.Get("train-1") is { LastStep: >= 25 }, "the simulated job to pass step 25");
        gate.Close();

        // The Xid 79 incident the controller opens for this GPU (category and action from the shipped Xid table).
        var rule = XidCatalog.LoadEmbedded().Lookup(79);
        var incident = RemediationTestHost.Incident("inc-79", "gpu-a1", 3, rule.Category, rule.Action, rule.Severity, DateTimeOffset.UnixEpoch);
        var expectedStep = CheckpointSelector.Select(host.Orchestrator.Inventory(registry.Get("train-1")!), Enumerable.Range(0, 16).ToArray())!.Step;
        await host.PublishAsync(new IncidentOpened(incident));

        await RemediationTestHost.WaitUntil(() => !host.Recorded.Restores.IsEmpty && !host.Recorded.Cordons.IsEmpty, "the bus commands to reach their consumer");
        gate.Open();
        Assert.True(await sim == 0, $"job-sim failed: {errors}");
        var restore = Assert.Single(host.Recorded.Restores);
        Assert.Equal(("train-1", 1L, "hardware", "inc-79"), (restore.JobId, restore.Cycle, restore.Reason, restore.IncidentId));
        Assert.Equal(["gpu-a1"], restore.ExcludedNodes);
        Assert.Equal(["spare-a1"], restore.Spares); // the same-domain spare, although spare-b1 is listed first
        Assert.Equal(["spare-a1", "gpu-a2"], restore.Nodes);
        Assert.True(restore.Checkpoint.Step >= expectedStep, $"restored step {restore.Checkpoint.Step} older than the newest complete {expectedStep} seen before the fault");
        Assert.StartsWith("file://", restore.Checkpoint.Uri, StringComparison.Ordinal);

        // The simulator resumed from exactly that step, on the spare.
        Assert.True(output.ToString().Contains($"resumed cycle 1 from step {restore.Checkpoint.Step} on spare-a1,gpu-a2", StringComparison.Ordinal),
            $"the simulator did not resume from step {restore.Checkpoint.Step} on spare-a1,gpu-a2; its log:\n{output}{errors}");

        // Cordon in FleetWatch's state, drain in the scheduler naming the incident, requeue excluding the node.
        Assert.Equal("gpu-a1", Assert.Single(await host.Client.GetFromJsonAsync<List<CordonRecord>>("cordons") ?? []).Node);
        Assert.Contains(host.Slurm.Calls, c => c.StartsWith("drain gpu-a1 fleetwatch inc-79:", StringComparison.Ordinal));
        Assert.Contains("requeue 4242 exclude=gpu-a1", host.Slurm.Calls);
        Assert.Equal("gpu-a1", Assert.Single(host.Recorded.Cordons).Node);

        // The action log shows the cordon and the restore, done (the restored run made its verification steps).
        var actions = await host.ActionsAsync("?job=train-1");
        var done = Assert.Single(actions, a => a.Kind == "restore");
        Assert.Equal((ActionStates.Done, "inc-79", "fleetwatch"), (done.State, done.IncidentId, done.Operator));
        var cordon = Assert.Single(await host.ActionsAsync("?node=gpu-a1"), a => a.Kind == "cordon");
        Assert.Equal(ActionStates.Done, cordon.State);
        var cycle = Assert.Single(host.Orchestrator.Cycles("train-1"));
        Assert.Equal(CycleStates.Healthy, cycle.State);
        Assert.NotNull(cycle.AckedAt);

        // The job's ranks follow it onto the spare; the finished job returns the spare to the pool.
        Assert.DoesNotContain(registry.Get("train-1")!.Ranks, r => r.Node == "gpu-a1");
        Assert.Equal(8, registry.Get("train-1")!.Ranks.Count(r => r.Node == "spare-a1"));
        var spares = await host.Client.GetFromJsonAsync<List<SpareView>>("spares");
        Assert.Equal("free", spares!.Single(s => s.Node == "spare-a1").State); // job finished: returned to the pool
        Assert.Equal("free", spares!.Single(s => s.Node == "spare-b1").State);
    }

    [Fact]
    public async Task SoftwareFault_RestartsInPlace_WithoutSpareOrCordon()
    {
        await using var host = await RemediationTestHost.StartAsync();
        await host.RegisterAsync("sw-1", ["gpu-a1", "gpu-a2"]);
        await host.CheckpointAsync("sw-1", 50, 16);
        await host.StepAsync("sw-1", 55);

        await host.PublishAsync(new IncidentOpened(RemediationTestHost.Incident("inc-94", "gpu-a2", 5, "memory_contained", "restart_app", Severity.Warning, DateTimeOffset.UnixEpoch)));
        await RemediationTestHost.WaitUntil(() => !host.Recorded.Restores.IsEmpty, "RestoreFromCheckpoint");

        var restore = Assert.Single(host.Recorded.Restores);
        Assert.Equal(("software", 50L), (restore.Reason, restore.Checkpoint.Step));
        Assert.Empty(restore.Spares);
        Assert.Empty(restore.ExcludedNodes);
        Assert.Equal(["gpu-a1", "gpu-a2"], restore.Nodes);
        Assert.Empty(host.Store.Cordons());
        Assert.Empty(host.Store.SpareUse());
        Assert.DoesNotContain(host.Slurm.Calls, c => c.StartsWith("drain", StringComparison.Ordinal));
        Assert.Contains("requeue 4242 exclude=", host.Slurm.Calls);
        Assert.Equal("restart", Assert.Single(await host.ActionsAsync()).Kind);
    }

    [Fact]
    public async Task FailureBeforeTheFirstStep_IsNotRestarted_ButTheNodeIsCordoned()
    {
        await using var host = await RemediationTestHost.StartAsync();
        await host.RegisterAsync("new-1", ["gpu-a1"]);
        await host.CheckpointAsync("new-1", 0, 8);

        await host.PublishAsync(new IncidentOpened(RemediationTestHost.Incident("inc-1", "gpu-a1", 0, "gpu_fell_off_bus", "restart_node", Severity.Critical, DateTimeOffset.UnixEpoch)));
        await RemediationTestHost.WaitUntil(() => !host.Recorded.Halts.IsEmpty, "RemediationHalted");

        Assert.Equal(("before_first_step", true), (host.Recorded.Halts.Single().Kind, host.Recorded.Halts.Single().Halted));
        Assert.Empty(host.Recorded.Restores);
        Assert.Single(host.Store.Cordons());
    }

    [Fact]
    public async Task AHalt_IsPagedAsItsOwnIncident_AndThePageIsNeverRemediated()
    {
        await using var host = await RemediationTestHost.StartAsync(fullController: true);
        await host.RegisterAsync("new-2", ["gpu-a1"]);
        await host.CheckpointAsync("new-2", 0, 8);

        await host.PublishAsync(new IncidentOpened(RemediationTestHost.Incident("inc-x", "gpu-a1", 0, "gpu_fell_off_bus", "restart_node", Severity.Critical, DateTimeOffset.UnixEpoch)));
        var incidents = host.App.Services.GetRequiredService<FleetWatch.Controller.Incidents.IncidentManager>();
        await RemediationTestHost.WaitUntil(() => incidents.Open().Any(i => i.Category == RemediationPager.Category), "the remediation_halted incident");

        var page = Assert.Single(incidents.Open(), i => i.Category == RemediationPager.Category);
        Assert.Equal(("job/new-2", RemediationPager.Action), (page.Node, page.Action));
        Assert.True(page.Severity >= Severity.Warning);
        Assert.Contains(page.Findings, f => f.Rule == "remediation:before_first_step");
        // The page reached the remediation consumer too (it is a normal incident) and was left alone.
        await Task.Delay(500);
        Assert.DoesNotContain(host.Store.Cordons(), c => c.Node.StartsWith("job/", StringComparison.Ordinal));
        Assert.Empty(host.Recorded.Restores);
    }

    [Fact]
    public async Task StormGuard_HaltsAJobWhoseCheckpointDoesNotAdvance_AndPages()
    {
        await using var host = await RemediationTestHost.StartAsync();
        await host.RegisterAsync("loop-1", ["gpu-a1", "gpu-a2"], scheduler: "none");
        await host.CheckpointAsync("loop-1", 100, 16);
        await host.StepAsync("loop-1", 101);

        // The job crashes again and again (software), never writing a newer checkpoint.
        for (var i = 1; i <= 5; i++)
        {
            await host.PublishAsync(new IncidentOpened(RemediationTestHost.Incident($"inc-{i}", "gpu-a2", 1, "app_error", "restart_app", Severity.Warning, DateTimeOffset.UnixEpoch)));
            var expected = i;
            await RemediationTestHost.WaitUntil(() => host.Recorded.Restores.Any(r => r.IncidentId == $"inc-{expected}") || host.Recorded.Halts.Any(h => h.IncidentId == $"inc-{expected}" && h.Halted),
                $"incident {i} handled");
            await host.StepAsync("loop-1", 104); // each restart makes its verification steps, then dies
        }

        // Cycles 1..3 restart (cycle 1 from 100, cycles 2-3 without progress); the 4th would be the 3rd without progress.
        Assert.Equal([1L, 2L, 3L], host.Recorded.Restores.Select(r => r.Cycle).Order());
        var halt = Assert.Single(host.Recorded.Halts, h => h.Kind == "no_progress");
        Assert.True(halt.Halted);
        Assert.Equal(Severity.Critical, halt.Severity);
        Assert.Contains("not advanced over 3 restart cycles", halt.Message, StringComparison.Ordinal);
        Assert.Contains(await host.ActionsAsync("?job=loop-1"), a => a.Kind == "halt" && a.IncidentId == "inc-5");
        // The suspect-node rule saw gpu-a2 end three consecutive short runs.
        Assert.Contains(host.Recorded.Halts, h => h.Kind == "suspect_node" && h.Nodes.SequenceEqual(["gpu-a2"]));
    }

    [Fact]
    public async Task CircuitBreaker_RefusesToCordonMoreThanHalfTheFleet_AndPages()
    {
        await using var host = await RemediationTestHost.StartAsync(new Dictionary<string, string?> { ["FleetWatch:Remediation:FleetSize"] = "4" });
        await host.RegisterAsync("big-1", ["n1", "n2", "n3", "n4"], scheduler: "none");
        await host.CheckpointAsync("big-1", 10, 32);
        await host.StepAsync("big-1", 11);

        for (var i = 1; i <= 3; i++)
        {
            await host.PublishAsync(new IncidentOpened(RemediationTestHost.Incident($"inc-{i}", $"n{i}", null, "node_silent", "check_node", Severity.Critical, DateTimeOffset.UnixEpoch)));
            var n = i;
            await RemediationTestHost.WaitUntil(() => host.Store.Actions($"n{n}", null, 10).Count > 0, $"node n{i} handled");
        }

        await RemediationTestHost.WaitUntil(() => host.Recorded.Halts.Any(h => h.Kind == "circuit_breaker"), "the circuit-breaker page");
        Assert.Equal(["n1", "n2"], host.Store.Cordons().Select(c => c.Node).Order());
        var breaker = Assert.Single(host.Recorded.Halts, h => h.Kind == "circuit_breaker");
        Assert.Equal(["n3"], breaker.Nodes);
        Assert.Equal((ActionStates.Failed, "cordon"), (host.Store.Actions("n3", null, 10).Single().State, host.Store.Actions("n3", null, 10).Single().Kind));
        Assert.DoesNotContain(host.Recorded.Restores, r => r.IncidentId == "inc-3");

        // Operators can still cordon by hand only through the same breaker.
        using var manual = await host.Client.PostAsync("nodes/n4/cordon", null);
        Assert.Equal(HttpStatusCode.Conflict, manual.StatusCode);
    }

    [Fact]
    public async Task FailedVerification_MarksTheCheckpointBad_AndFallsBackToThePreviousComplete()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 29, 0, 0, 0, TimeSpan.Zero));
        await using var host = await RemediationTestHost.StartAsync(new Dictionary<string, string?> { ["FleetWatch:Remediation:VerifyTimeout"] = "00:05:00" }, time: time);
        await host.RegisterAsync("fb-1", ["gpu-a1", "gpu-a2"]);
        foreach (var step in new[] { 10, 20, 30 })
        {
            await host.CheckpointAsync("fb-1", step, 16);
        }

        await host.StepAsync("fb-1", 31);
        await host.Orchestrator.OnIncidentAsync(RemediationTestHost.Incident("inc-x", "gpu-a1", 2, "gpu_fell_off_bus", "restart_node", Severity.Critical, time.GetUtcNow()), default);
        Assert.Equal(30, host.Orchestrator.Cycles("fb-1").Single().CheckpointStep);

        // The run restored from 30 reports a NaN step: fall back at once to 20.
        await host.StepAsync("fb-1", 31, healthy: false);
        var cycles = host.Orchestrator.Cycles("fb-1");
        Assert.Equal([(1L, CycleStates.Failed), (2L, CycleStates.Sent)], cycles.Select(c => (c.Cycle, c.State)));
        Assert.Equal((20L, "fallback"), (cycles[1].CheckpointStep, cycles[1].Kind));
        Assert.Equal(["gpu-a1"], cycles[1].Excluded);
        Assert.Empty(cycles[1].Spares); // the spare chosen in cycle 1 is already in the job

        // The fallback is not acknowledged within the verification timeout: 20 is bad too, restore 10.
        time.Advance(TimeSpan.FromMinutes(6));
        await host.Orchestrator.SweepAsync(default);
        cycles = host.Orchestrator.Cycles("fb-1");
        Assert.Equal(10, cycles[^1].CheckpointStep);
        var inventory = host.Store.Checkpoints("fb-1");
        Assert.Equal([20L, 30L], inventory.Where(c => c.BadReason is not null).Select(c => c.Step));
        var actions = host.Store.Actions(null, "fb-1", 100);
        Assert.Equal(2, actions.Count(a => a.Kind == "mark_bad"));
        Assert.Equal(2, actions.Count(a => a.Kind == "fallback"));

        // The restored run from 10 makes its steps: healthy.
        await host.StepAsync("fb-1", 13);
        Assert.Equal(CycleStates.Healthy, host.Orchestrator.Cycles("fb-1")[^1].State);
    }

    [Fact]
    public async Task ControllerRestart_NeverRepeatsAnActionInFlight()
    {
        var db = Path.Combine(_dir, "controller.db");
        Directory.CreateDirectory(_dir);
        var incident = RemediationTestHost.Incident("inc-r", "gpu-a1", 4, "ecc_double_bit", "drain_and_reset_gpu", Severity.Critical, DateTimeOffset.UnixEpoch);
        await using (var first = await RemediationTestHost.StartAsync(dbPath: db))
        {
            // No spares for this job, so its ranks stay on the failed node and the redelivered incident still maps to it.
            await first.RegisterAsync("rs-1", ["gpu-a1", "gpu-a2"], sparePolicy: "none");
            await first.CheckpointAsync("rs-1", 40, 16);
            await first.StepAsync("rs-1", 42);
            await first.PublishAsync(new IncidentOpened(incident));
            await RemediationTestHost.WaitUntil(() => !first.Recorded.Restores.IsEmpty, "the first controller's RestoreFromCheckpoint");
            Assert.Single(first.Slurm.Calls, c => c.StartsWith("drain", StringComparison.Ordinal));
        }

        // A second controller process on the same file receives the same incident again (redelivery, or re-published
        // after its own restart) and an update of it.
        await using var second = await RemediationTestHost.StartAsync(dbPath: db);
        await second.PublishAsync(new IncidentOpened(incident));
        await second.PublishAsync(new IncidentUpdated(incident with { Severity = Severity.Critical }));
        await second.Orchestrator.OnIncidentAsync(incident, default); // and directly, to be sure it was processed

        Assert.Empty(second.Recorded.Restores);
        Assert.Empty(second.Slurm.Calls);
        var actions = await second.ActionsAsync();
        Assert.Single(actions, a => a.Kind == "restore");
        Assert.Single(actions, a => a.Kind == "cordon");
        var cycle = Assert.Single(second.Orchestrator.Cycles("rs-1"));
        Assert.Equal(CycleStates.Sent, cycle.State);

        // The in-flight cycle survives: the second controller completes its verification.
        var plan = await second.Client.GetFromJsonAsync<RestorePlan>("jobs/rs-1/restore");
        Assert.Equal((1L, 40L), (plan!.Cycle, plan.Checkpoint.Step));
        using (var ack = await second.Client.PostAsJsonAsync("jobs/rs-1/restore/ack", new AckBody(1)))
        {
            Assert.Equal(HttpStatusCode.NoContent, ack.StatusCode);
        }

        await second.StepAsync("rs-1", 41);
        await second.StepAsync("rs-1", 42);
        Assert.Equal(CycleStates.Acknowledged, second.Orchestrator.Cycles("rs-1")[0].State);
        await second.StepAsync("rs-1", 43); // VerifySteps = 3 past checkpoint 40
        Assert.Equal(CycleStates.Healthy, second.Orchestrator.Cycles("rs-1")[0].State);
        Assert.Equal(ActionStates.Done, second.Store.Actions(null, "rs-1", 10).Single(a => a.Kind == "restore").State);
    }

    [Fact]
    public async Task ExhaustedSparePool_Pages_AndRestartsWithoutASpare()
    {
        // Spares: spare-a1 in nvl-a, spare-b1 in nvl-b; the job takes only same-domain spares.
        await using var host = await RemediationTestHost.StartAsync();
        await host.RegisterAsync("ex-1", ["gpu-a1", "gpu-a2", "gpu-a3"], sparePolicy: "same_domain_only");
        await host.CheckpointAsync("ex-1", 7, 24);
        await host.StepAsync("ex-1", 8);

        await host.Orchestrator.OnIncidentAsync(RemediationTestHost.Incident("inc-1", "gpu-a1", 0, "gpu_fell_off_bus", "restart_node", Severity.Critical, DateTimeOffset.UnixEpoch), default);
        await host.Orchestrator.OnIncidentAsync(RemediationTestHost.Incident("inc-2", "gpu-a2", 0, "gpu_fell_off_bus", "restart_node", Severity.Critical, DateTimeOffset.UnixEpoch), default);
        await RemediationTestHost.WaitUntil(() => host.Recorded.Restores.Count == 2 && host.Recorded.Halts.Any(h => h.Kind == "spares_exhausted"), "two restores and the page");

        Assert.Equal(["spare-a1"], host.Recorded.Restores.Single(r => r.Cycle == 1).Spares);
        var second = host.Recorded.Restores.Single(r => r.Cycle == 2);
        Assert.Empty(second.Spares);
        Assert.Equal(["gpu-a1", "gpu-a2"], second.ExcludedNodes);
        Assert.Equal(["spare-a1", "gpu-a3"], second.Nodes);
        var page = host.Recorded.Halts.Single(h => h.Kind == "spares_exhausted");
        Assert.Equal(["gpu-a2"], page.Nodes);
        Assert.False(page.Halted);
        Assert.Equal(CycleStates.Failed, host.Orchestrator.Cycles("ex-1")[0].State); // superseded by cycle 2
    }

    [Fact]
    public async Task SoftwareIncidentEscalatingToHardware_StillReplacesTheNode()
    {
        await using var host = await RemediationTestHost.StartAsync();
        await host.RegisterAsync("esc-1", ["gpu-a1", "gpu-a2"]);
        await host.CheckpointAsync("esc-1", 60, 16);
        await host.StepAsync("esc-1", 61);
        var soft = RemediationTestHost.Incident("inc-e", "gpu-a2", 1, "memory_contained", "restart_app", Severity.Warning, DateTimeOffset.UnixEpoch);
        await host.Orchestrator.OnIncidentAsync(soft, default);
        await host.Orchestrator.OnIncidentAsync(soft, default); // the same update again: nothing new
        await host.Orchestrator.OnIncidentAsync(soft with { Severity = Severity.Critical, Category = "memory_uncontained", Action = "reset_gpu" }, default);

        var cycles = host.Orchestrator.Cycles("esc-1");
        Assert.Equal([("software", CycleStates.Failed), ("hardware", CycleStates.Sent)], cycles.Select(c => (c.Kind, c.State)));
        Assert.Equal(["spare-a1"], cycles[1].Spares);
        Assert.Equal(["gpu-a2"], cycles[1].Excluded);
    }

    [Fact]
    public async Task JobStartedAgainBySlurm_ResumesFromTheChosenCheckpoint_OnTheNodesSlurmGaveIt()
    {
        await using var host = await RemediationTestHost.StartAsync();
        var env = new Hashtable { ["SLURM_JOB_ID"] = "900", ["SLURM_RESTART_COUNT"] = "0" };
        var first = await JobSimTool.RunAsync(["--controller", host.BaseUrl.ToString(), "--nodes", "node-a,node-b", "--gpus-per-node", "2", "--steps", "25",
            "--step-ms", "0", "--checkpoint-every", "10", "--checkpoint-dir", _dir, "--domain", "nvl-a", "--poll-every", "0"], TextWriter.Null, TextWriter.Null, env, null, default);
        Assert.Equal(0, first);
        // The batch job's last run ended; pretend it was still running when node-a failed.
        var registry = host.App.Services.GetRequiredService<JobRegistry>();
        registry.Update("slurm-900", j => j with { FinishedAt = null });
        await host.Orchestrator.OnIncidentAsync(RemediationTestHost.Incident("inc-s", "node-a", 1, "gpu_fell_off_bus", "restart_node", Severity.Critical, DateTimeOffset.UnixEpoch), default);
        Assert.Contains("requeue 900 exclude=node-a", host.Slurm.Calls);
        Assert.Contains(host.Slurm.Calls, c => c.StartsWith("drain node-a fleetwatch inc-s:", StringComparison.Ordinal));

        // Slurm starts the batch script again, on node-c and node-b.
        env["SLURM_RESTART_COUNT"] = "1";
        env["SLURMD_NODENAME"] = "node-c";
        var output = new StringWriter();
        var second = await JobSimTool.RunAsync(["--controller", host.BaseUrl.ToString(), "--nodes", "node-c,node-b", "--gpus-per-node", "2", "--steps", "30",
            "--step-ms", "0", "--checkpoint-every", "10", "--checkpoint-dir", _dir], output, TextWriter.Null, env, null, default);

        Assert.Equal(0, second);
        Assert.Contains("resumed cycle 1 from step 20 on node-c,node-b", output.ToString(), StringComparison.Ordinal);
        Assert.Equal(CycleStates.Healthy, host.Orchestrator.Cycles("slurm-900").Single().State);
        Assert.Equal(["node-c", "node-b"], registry.Get("slurm-900")!.Nodes);
        Assert.True(File.Exists(Path.Combine(_dir, "slurm-900", "step_30", CheckpointDirectoryScanner.CompletionMarker)));
    }

    [Fact]
    public async Task AgentStepTimings_VerifyTheRestoredRun_OldReportsDoNot()
    {
        await using var host = await RemediationTestHost.StartAsync();
        await host.RegisterAsync("st-1", ["gpu-a1", "gpu-a2"], scheduler: "none");
        await host.CheckpointAsync("st-1", 200, 16);
        await host.StepAsync("st-1", 205);
        await host.Orchestrator.OnIncidentAsync(RemediationTestHost.Incident("inc-t", "gpu-a2", 0, "gpu_fell_off_bus", "restart_node", Severity.Critical, DateTimeOffset.UnixEpoch), default);
        var started = host.Orchestrator.InFlight("st-1")!.StartedAt;

        StepTimingsBatch Batch(long step, DateTimeOffset end) => new()
        {
            Node = "gpu-a1",
            Time = end,
            Steps = [.. Enumerable.Range(0, 8).Select(r => new StepTimings { Job = "st-1", Rank = r, Node = "gpu-a1", Gpu = r, Step = step, PeerGroup = "dp", DurationMs = 900, EndTime = end })],
        };

        // A late report of the failed run (step 206 ended before the restore) is not progress of the restored run.
        await host.PublishAsync(Batch(206, started.AddSeconds(-1)));
        await host.PublishAsync(Batch(201, started.AddSeconds(1)));
        await RemediationTestHost.WaitUntil(() => host.Orchestrator.InFlight("st-1")?.FirstStepAt is not null, "the first step after restore");
        Assert.Equal(CycleStates.Acknowledged, host.Store.Cycles("st-1").Single().State);
        await host.PublishAsync(Batch(203, started.AddSeconds(3)));
        await RemediationTestHost.WaitUntil(() => host.Store.Cycles("st-1").Single().State == CycleStates.Healthy, "the restored run verified by step timings");
    }

    [Fact]
    public async Task XidObserved_ThroughTheControllersOwnDetection_RestoresTheJob_AndCallsItsWebhook()
    {
        await using var host = await RemediationTestHost.StartAsync(fullController: true);
        await host.RegisterAsync("real-1", ["gpu-a1", "gpu-a2"], webhookUrl: new Uri(host.BaseUrl, "/test-hook").ToString());
        await host.CheckpointAsync("real-1", 500, 16);
        await host.StepAsync("real-1", 507);
        // The spare reports healthy (the self-check admits only a spare with fresh, clean telemetry).
        await host.SampleAsync(RemediationTestHost.Healthy("spare-a1", 1, DateTimeOffset.UtcNow));

        // What the agent's kmsg watcher sends for "NVRM: Xid (PCI:0000:3b:00): 79, pid=..., GPU has fallen off the bus."
        await host.PublishAsync(new GpuXidObserved
        {
            Node = "gpu-a2", Time = DateTimeOffset.UtcNow, Xid = 79, GpuIndex = 6, PciBusId = "0000:3b:00", Message = "GPU has fallen off the bus.", Source = XidSource.Kmsg,
        });
        await RemediationTestHost.WaitUntil(() => !host.Recorded.Restores.IsEmpty && !host.Recorded.Webhooks.IsEmpty, "RestoreFromCheckpoint on the bus and at the webhook");

        var restore = Assert.Single(host.Recorded.Restores);
        Assert.Equal((500L, "hardware"), (restore.Checkpoint.Step, restore.Reason));
        Assert.Equal(["gpu-a2"], restore.ExcludedNodes);
        Assert.Equal(["spare-a1"], restore.Spares);
        Assert.StartsWith("inc-", restore.IncidentId, StringComparison.Ordinal);
        var hook = JsonDocument.Parse(Assert.Single(host.Recorded.Webhooks)).RootElement;
        Assert.Equal(("real-1", 1, 500), (hook.GetProperty("jobId").GetString(), hook.GetProperty("cycle").GetInt32(), hook.GetProperty("checkpoint").GetProperty("step").GetInt32()));
        var action = host.Store.Actions(null, "real-1", 10).Single(a => a.Kind == "restore");
        Assert.Contains("webhook: HTTP 200", action.Detail, StringComparison.Ordinal);
        Assert.Contains("xid:79", action.Evidence, StringComparison.Ordinal);
    }

    /// <summary>Holds the simulated job's step reports while closed (the job waits as a slow rank would); everything else passes.</summary>
    private sealed class StepGate() : DelegatingHandler(new SocketsHttpHandler())
    {
        private volatile TaskCompletionSource _open = Opened();

        public void Close() => _open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Open() => _open.TrySetResult();

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.Method == HttpMethod.Post && request.RequestUri!.AbsolutePath.EndsWith("/steps", StringComparison.Ordinal))
            {
                await _open.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            }

            return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }

        private static TaskCompletionSource Opened()
        {
            var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            open.SetResult();
            return open;
        }
    }
}
