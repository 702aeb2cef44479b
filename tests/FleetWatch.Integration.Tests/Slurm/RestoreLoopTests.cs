using System.Globalization;
using System.Net.Http.Json;
using FleetWatch.Cli.Hosting;
using FleetWatch.Contracts;
using FleetWatch.Controller;
using FleetWatch.Controller.Remediation;
using FleetWatch.Controller.Remediation.Scheduling;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace FleetWatch.Integration.Tests.Slurm;

/// <summary>
/// Issue 6's loop end to end with a real Slurm: a simulated training job (<c>fleetwatch job-sim</c>) runs as a
/// requeueable Slurm batch job on gpu001 and reports steps and checkpoints to the controller's API; an Xid 79 on gpu001
/// reaches the controller as the agent would send it while the job hangs (suspended); the controller opens an incident,
/// drains gpu001 in Slurm with a reason naming the incident, requeues the job away from gpu001, and the job restarts on the spare gpu002 from the
/// newest complete checkpoint (not from a newer, incomplete one the "latest" tracker points at); the action log at
/// <c>GET /api/v1/actions</c> shows the cordon and the restore.
/// </summary>
public sealed class RestoreLoopTests(SlurmCluster cluster, ITestOutputHelper output) : IClassFixture<SlurmCluster>, IAsyncLifetime
{
    private const int StepMs = 100;

    private const int CheckpointEvery = 10;

    public Task InitializeAsync() => cluster.ResetAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Xid79_drains_the_node_in_slurm_and_the_job_restarts_on_the_spare_from_the_newest_complete_checkpoint()
    {
        await using var controller = await StartControllerAsync();
        using var api = new HttpClient { BaseAddress = controller.Api };
        var checkpoints = Path.Combine(cluster.Directory, "checkpoints");
        var marks = Path.Combine(cluster.Directory, "loop-marks.txt");
        var script = Path.Combine(cluster.Directory, "loop-job.sh");
        await File.WriteAllTextAsync(script, $"""
            #!/bin/bash
            #SBATCH --requeue
            #SBATCH --job-name=fw-train
            #SBATCH --output={cluster.Directory}/loop-job-%j.out
            {SlurmCluster.MarkStart(marks)}
            exec {Dotnet()} {Path.Combine(AppContext.BaseDirectory, "fleetwatch.dll")} job-sim --controller {controller.Api} \
              --checkpoint-dir {checkpoints} --steps 100000 --step-ms {StepMs} --checkpoint-every {CheckpointEvery} --gpus-per-node 8 --poll-every 0
            """);
        var slurmJob = await cluster.SubmitAsync(script);
        var job = $"slurm-{slurmJob}";
        var registry = controller.App.Services.GetRequiredService<JobRegistry>();
        long Step() => registry.Get(job)?.LastStep ?? 0;
        string Output() => $"job output: {ReadOrEmpty(Path.Combine(cluster.Directory, $"loop-job-{slurmJob}.out"))}";

        await cluster.WaitAsync(() => Task.FromResult(Step() > 2 * CheckpointEvery), TimeSpan.FromSeconds(60), $"job {job} past its second checkpoint; {Output()}");
        Assert.Equal("gpu001 0", SlurmCluster.Lines(marks)[0]);
        // A GPU that fell off the bus hangs the job: suspend it (SIGSTOP), so nothing changes on disk from here on and the
        // newest complete checkpoint is known exactly, however slow the machine.
        await cluster.RunAsync("/usr/bin/scontrol", ["suspend", slurmJob]);
        await cluster.WaitAsync(async () => await cluster.JobFieldAsync(slurmJob, "JobState") == "SUSPENDED", TimeSpan.FromSeconds(20), "the job suspended");
        await Task.Delay(500); // requests the job had in flight when it stopped land first
        var jobDir = Path.Combine(checkpoints, job);
        var newestComplete = CompleteSteps(jobDir).Max();
        Assert.True(newestComplete >= 2 * CheckpointEvery, $"complete checkpoints: {string.Join(",", CompleteSteps(jobDir))}");
        // A crash during a save leaves a checkpoint directory without its completion marker and a tracker that lies.
        var torn = newestComplete + CheckpointEvery;
        Directory.CreateDirectory(Path.Combine(jobDir, $"step_{torn}"));
        await File.WriteAllTextAsync(Path.Combine(jobDir, $"step_{torn}", "shard_0.bin"), "partial");
        await File.WriteAllTextAsync(Path.Combine(jobDir, "latest"), torn.ToString(CultureInfo.InvariantCulture));

        var clock = System.Diagnostics.Stopwatch.StartNew();
        await controller.App.Services.GetRequiredService<IBus>().Publish(new GpuXidObserved
        {
            Node = "gpu001",
            Time = DateTimeOffset.UtcNow,
            Xid = 79,
            Kind = "xid",
            GpuIndex = 3,
            PciBusId = "00000000:3B:00.0",
            Message = "NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.",
            Source = XidSource.Kmsg,
        });

        // The job's second start: on the spare, restarted once by Slurm.
        await cluster.WaitAsync(() => Task.FromResult(SlurmCluster.Lines(marks).Length >= 2), TimeSpan.FromSeconds(60), $"the requeued job's second start; {Output()}");
        var restarted = clock.Elapsed;
        Assert.Equal("gpu002 1", SlurmCluster.Lines(marks)[1]);
        var reasons = await cluster.DrainReasonsAsync();
        var actions = await ActionsAsync(api);
        var cordon = Assert.Single(actions, a => a.Kind == "cordon");
        Assert.Equal(("gpu001", ActionStates.Done), (cordon.Node, cordon.State));
        Assert.NotNull(cordon.IncidentId);
        Assert.StartsWith($"fleetwatch {cordon.IncidentId}: ", reasons["gpu001"], StringComparison.Ordinal);
        Assert.Contains("gpu_fell_off_bus", reasons["gpu001"], StringComparison.Ordinal);
        Assert.Equal("gpu001", await cluster.JobFieldAsync(slurmJob, "ExcNodeList"));

        // The restarted job resumes from the newest complete checkpoint and the controller sees it healthy.
        await cluster.WaitAsync(async () => (await ActionsAsync(api)).Any(a => a.Kind == "restore" && a.State == ActionStates.Done), TimeSpan.FromSeconds(60),
            $"the restore verified healthy; {Output()}");
        // Figures for the README, not assertions: wall time on this machine; the restart includes Slurm's kill of the old
        // process and the start of a new dotnet process for the job.
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Xid 79 -> batch job started again on the spare: {restarted.TotalSeconds:F1} s; -> restore verified (3 steps past the checkpoint): {clock.Elapsed.TotalSeconds:F1} s"));
        using var plan = await api.GetAsync($"jobs/{job}/restore");
        var restore = (await plan.Content.ReadFromJsonAsync<RestorePlan>())!;
        Assert.Equal((1L, newestComplete), (restore.Cycle, restore.Checkpoint.Step));
        Assert.Equal(["gpu001"], restore.ExcludedNodes);
        Assert.Equal(["gpu002"], restore.Spares);
        Assert.All(registry.Get(job)!.Ranks, r => Assert.Equal("gpu002", r.Node));
        Assert.Contains($"resumed cycle 1 from step {newestComplete} on gpu002", Output(), StringComparison.Ordinal);
        var restoreAction = Assert.Single(await ActionsAsync(api), a => a.Kind == "restore");
        Assert.Equal((job, cordon.IncidentId), (restoreAction.JobId, restoreAction.IncidentId));
        // Verified: the detail of a done restore is the step that proved the run healthy (the requeue itself shows in Slurm below).
        Assert.Matches("^step [0-9]+ reached$", restoreAction.Detail);
        Assert.Equal("RUNNING", await cluster.JobFieldAsync(slurmJob, "JobState"));
        Assert.Equal("gpu002", await cluster.JobFieldAsync(slurmJob, "BatchHost"));
    }

    /// <summary>
    /// The controller as the controller role composes it for this loop (detection and incidents, remediation, the Slurm
    /// adapter, the remediation API at /api/v1), on the in-memory bus and a loopback port. Unauthenticated: the job
    /// simulator in the batch job reaches it without a key.
    /// </summary>
    private async Task<ControllerHost> StartControllerAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["FleetWatch:Bus:Transport"] = "InMemory",
            ["FleetWatch:Storage:Path"] = ":memory:",
            ["FleetWatch:Schedulers:Slurm:Enabled"] = "true",
            ["FleetWatch:Schedulers:Slurm:ScontrolPath"] = "/usr/bin/scontrol",
            ["FleetWatch:Schedulers:Slurm:SlurmConf"] = cluster.ConfigPath,
            ["FleetWatch:Remediation:NodeScheduler"] = "slurm",
            ["FleetWatch:Remediation:Spares:0:Node"] = "gpu002",
            // No agent samples the spare in this cluster; the spare self-check would find "no data" and refuse it.
            ["FleetWatch:Remediation:CheckSpares"] = "false",
            ["FleetWatch:Remediation:FleetSize"] = "3",
            ["FleetWatch:Remediation:VerifySteps"] = "3",
            ["FleetWatch:Remediation:VerifyTimeout"] = "00:01:00",
            ["FleetWatch:Remediation:CheckpointRoot"] = cluster.Directory,
        });
        builder.Services.AddFleetController(builder.Configuration);
        builder.Services.AddRemediation(builder.Configuration);
        builder.Services.AddSchedulerAdapters(builder.Configuration);
        builder.Services.AddFleetWatchBus(builder.Configuration, bus =>
        {
            bus.AddFleetControllerConsumers();
            bus.AddRemediationConsumers();
        });
        var app = builder.Build();
        app.MapGroup("/api/v1").MapRemediationApi();
        // MassTransit keeps the last bus's logger factory in a static; give it this host's.
        LogContext.ConfigureCurrentLogContext(app.Services.GetRequiredService<ILoggerFactory>());
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new ControllerHost(app, new Uri(address.TrimEnd('/') + "/api/v1/"));
    }

    private static async Task<List<RemediationAction>> ActionsAsync(HttpClient api) =>
        (await api.GetFromJsonAsync<List<RemediationAction>>("actions"))!;

    /// <summary>The dotnet host running these tests (the batch job inherits no guarantee that PATH has one).</summary>
    private static string Dotnet() =>
        Environment.ProcessPath is { } path && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path : "dotnet";

    /// <summary>Steps of the checkpoint directories that carry the completion marker.</summary>
    private static long[] CompleteSteps(string jobDir) =>
        Directory.GetDirectories(jobDir, "step_*")
            .Where(d => File.Exists(Path.Combine(d, CheckpointDirectoryScanner.CompletionMarker)))
            .Select(d => long.Parse(Path.GetFileName(d)["step_".Length..], CultureInfo.InvariantCulture))
            .ToArray();

    private static string ReadOrEmpty(string path) => File.Exists(path) ? File.ReadAllText(path) : "(none yet)";

    private sealed record ControllerHost(WebApplication App, Uri Api) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await App.StopAsync();
            await App.DisposeAsync();
        }
    }
}
