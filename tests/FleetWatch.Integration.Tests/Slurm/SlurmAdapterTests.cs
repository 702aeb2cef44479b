using FleetWatch.Controller.Remediation.Scheduling;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace FleetWatch.Integration.Tests.Slurm;

/// <summary>The Slurm adapter against a real slurmctld and three slurmd on loopback.</summary>
public sealed class SlurmAdapterTests(SlurmCluster cluster) : IClassFixture<SlurmCluster>, IAsyncLifetime
{
    private readonly SlurmSchedulerAdapter _slurm = Adapter(cluster);

    public Task InitializeAsync() => cluster.ResetAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    internal static SlurmSchedulerAdapter Adapter(SlurmCluster cluster, Action<SlurmOptions>? configure = null)
    {
        var options = new SlurmOptions { Enabled = true, ScontrolPath = "/usr/bin/scontrol", SlurmConf = cluster.ConfigPath, RequeueSettleTimeout = TimeSpan.FromSeconds(20) };
        configure?.Invoke(options);
        return new SlurmSchedulerAdapter(Options.Create(options), TimeProvider.System, NullLogger<SlurmSchedulerAdapter>.Instance);
    }

    [Fact]
    public async Task Drain_sets_the_reason_sinfo_shows_and_a_repeat_changes_nothing()
    {
        var result = await _slurm.DrainAsync("gpu003", "incident inc-42: Xid 79 (GPU fallen off the bus) on gpu003 GPU 5", CancellationToken.None);

        Assert.True(result.Ok, result.Detail);
        var reasons = await cluster.DrainReasonsAsync();
        Assert.Equal("fleetwatch: incident inc-42: Xid 79 (GPU fallen off the bus) on gpu003 GPU 5", reasons["gpu003"]);
        Assert.Equal("drain", (await cluster.NodeStatesAsync())["gpu003"]);
        var state = await _slurm.GetNodeStateAsync("gpu003", CancellationToken.None);
        Assert.True(state is { Found: true, Drained: true }, state.ToString());
        Assert.Contains("DRAIN", state.State, StringComparison.Ordinal);
        Assert.Equal(reasons["gpu003"], state.Reason);

        var again = await _slurm.DrainAsync("gpu003", "incident inc-43: Xid 48", CancellationToken.None);
        Assert.True(again.Ok, again.Detail);
        Assert.Contains("already drained", again.Detail, StringComparison.Ordinal);
        Assert.Equal(reasons["gpu003"], (await cluster.DrainReasonsAsync())["gpu003"]);
    }

    [Fact]
    public async Task Resume_returns_a_drained_node_to_service_and_a_repeat_is_ok()
    {
        Assert.True((await _slurm.DrainAsync("gpu002", "incident inc-7", CancellationToken.None)).Ok);

        var result = await _slurm.ResumeAsync("gpu002", CancellationToken.None);

        Assert.True(result.Ok, result.Detail);
        await cluster.WaitAsync(async () => (await cluster.NodeStatesAsync())["gpu002"] == "idle", TimeSpan.FromSeconds(10), "gpu002 idle after resume");
        Assert.DoesNotContain("gpu002", (await cluster.DrainReasonsAsync()).Keys);
        var again = await _slurm.ResumeAsync("gpu002", CancellationToken.None);
        Assert.True(again.Ok, again.Detail);
        Assert.Contains("already in service", again.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_reason_that_already_names_fleetwatch_is_not_prefixed_twice_and_stays_resumable()
    {
        // CordonService writes "fleetwatch <incident>: <what>".
        var drain = await _slurm.DrainAsync("gpu002", "fleetwatch inc-9: gpu_fell_off_bus (restart_node) on gpu002 GPU 3", CancellationToken.None);

        Assert.True(drain.Ok, drain.Detail);
        Assert.Equal("fleetwatch inc-9: gpu_fell_off_bus (restart_node) on gpu002 GPU 3", (await cluster.DrainReasonsAsync())["gpu002"]);
        var resume = await _slurm.ResumeAsync("gpu002", CancellationToken.None);
        Assert.True(resume.Ok, resume.Detail);
    }

    [Fact]
    public async Task A_node_an_administrator_drained_keeps_its_reason_and_is_never_resumed()
    {
        await cluster.RunAsync("/usr/bin/scontrol", ["update", "nodename=gpu002", "state=drain", "reason=PSU replacement, ticket 1234"]);

        var drain = await _slurm.DrainAsync("gpu002", "incident inc-9", CancellationToken.None);
        var resume = await _slurm.ResumeAsync("gpu002", CancellationToken.None);

        Assert.True(drain.Ok, drain.Detail);
        Assert.Contains("by someone else", drain.Detail, StringComparison.Ordinal);
        Assert.False(resume.Ok, resume.Detail);
        Assert.Equal("PSU replacement, ticket 1234", (await cluster.DrainReasonsAsync())["gpu002"]);
        Assert.Equal("drain", (await cluster.NodeStatesAsync())["gpu002"]);
    }

    [Fact]
    public async Task Values_from_telemetry_are_arguments_never_syntax()
    {
        // A reason that would be shell or scontrol syntax if it were ever spliced into a command line.
        var hostile = "x\"; scontrol update nodename=gpu002 state=drain reason=pwned; $(touch /tmp/fw-pwned)\nstate=resume 'quoted'";

        var drained = await _slurm.DrainAsync("gpu003", hostile, CancellationToken.None);
        var range = await _slurm.DrainAsync("gpu[001-003]", "incident", CancellationToken.None);
        var spaced = await _slurm.DrainAsync("gpu001 state=resume", "incident", CancellationToken.None);
        var list = await _slurm.RequeueAsync("1,2", [], CancellationToken.None);
        var badExcluded = await _slurm.RequeueAsync("1", ["gpu[001-003]"], CancellationToken.None);

        Assert.True(drained.Ok, drained.Detail);
        Assert.Equal("fleetwatch: " + hostile.Replace('\n', ' '), (await cluster.DrainReasonsAsync())["gpu003"]);
        Assert.False(File.Exists("/tmp/fw-pwned"));
        Assert.All([range, spaced, list, badExcluded], r => Assert.StartsWith("refused:", r.Detail, StringComparison.Ordinal));
        var states = await cluster.NodeStatesAsync();
        Assert.Equal("idle", states["gpu001"]);
        Assert.Equal("idle", states["gpu002"]);
    }

    [Fact]
    public async Task Unknown_nodes_and_jobs_and_a_missing_scontrol_fail_with_what_went_wrong()
    {
        var node = await _slurm.DrainAsync("gpu999", "incident", CancellationToken.None);
        var job = await _slurm.RequeueAsync("999999", [], CancellationToken.None);
        var state = await _slurm.GetNodeStateAsync("gpu999", CancellationToken.None);
        var missing = await Adapter(cluster, o => o.ScontrolPath = "/nonexistent/scontrol").DrainAsync("gpu001", "incident", CancellationToken.None);

        Assert.False(node.Ok);
        Assert.Contains("does not know node gpu999", node.Detail, StringComparison.Ordinal);
        Assert.False(job.Ok);
        Assert.Contains("does not know job 999999", job.Detail, StringComparison.Ordinal);
        Assert.False(state.Found);
        Assert.False(missing.Ok);
        Assert.Contains("/nonexistent/scontrol", missing.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Requeue_restarts_the_job_on_a_spare_after_its_node_is_drained(bool suspended)
    {
        var marks = Path.Combine(cluster.Directory, $"requeue-marks-{suspended}.txt");
        var script = Path.Combine(cluster.Directory, "requeue-job.sh");
        await File.WriteAllTextAsync(script, $"""
            #!/bin/bash
            #SBATCH --requeue
            #SBATCH --job-name=fw-requeue
            #SBATCH --output={cluster.Directory}/requeue-job-%j.out
            {SlurmCluster.MarkStart(marks)}
            exec sleep 600
            """);
        var jobId = await cluster.SubmitAsync(script);
        await cluster.WaitAsync(() => Task.FromResult(SlurmCluster.Lines(marks).Length == 1), TimeSpan.FromSeconds(15), "the job's first start");
        Assert.Equal("gpu001 0", SlurmCluster.Lines(marks)[0]);
        if (suspended)
        {
            // A hung job an administrator stopped: Slurm holds it when it is requeued.
            await cluster.RunAsync("/usr/bin/scontrol", ["suspend", jobId]);
            await cluster.WaitAsync(async () => await cluster.JobFieldAsync(jobId, "JobState") == "SUSPENDED", TimeSpan.FromSeconds(15), "the job suspended");
        }

        Assert.True((await _slurm.DrainAsync("gpu001", "incident inc-1: Xid 79 on gpu001", CancellationToken.None)).Ok);
        var result = await _slurm.RequeueAsync(jobId, ["gpu001"], CancellationToken.None);

        Assert.True(result.Ok, result.Detail);
        Assert.Contains("requeued", result.Detail, StringComparison.Ordinal);
        Assert.Equal(suspended, result.Detail.Contains("hold lifted", StringComparison.Ordinal));
        await cluster.WaitAsync(() => Task.FromResult(SlurmCluster.Lines(marks).Length == 2), TimeSpan.FromSeconds(15), "the job's restart");
        var restart = SlurmCluster.Lines(marks)[1].Split(' ');
        Assert.Equal("gpu002", restart[0]);
        Assert.Equal("1", restart[1]);
        Assert.Equal("gpu001", await cluster.JobFieldAsync(jobId, "ExcNodeList"));
        Assert.Equal("RUNNING", await cluster.JobFieldAsync(jobId, "JobState"));
    }
}
