using System.Collections;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using FleetWatch.Contracts;
using FleetWatch.Controller.Remediation;
using FleetWatch.Controller.Remediation.JobSimulator;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Tests.Remediation;

/// <summary>Component tier: the HTTP API's answers, the audit of operator actions, option validation, the job-sim verb's exit codes.</summary>
public sealed class RemediationApiTests
{
    [Theory]
    [InlineData("""{"ranks":[{"rank":0,"node":"n1","gpuIndex":0}]}""", "jobId")]
    [InlineData("""{"jobId":"j","ranks":[]}""", "ranks: must list")]
    [InlineData("""{"jobId":"j","ranks":[{"rank":0,"node":"n1","gpuIndex":0},{"rank":0,"node":"n2","gpuIndex":0}]}""", "rank 0 is listed twice")]
    [InlineData("""{"jobId":"j","ranks":[{"rank":0,"node":"n1","gpuIndex":0}],"scheduler":"pbs"}""", "scheduler: must be slurm, kubernetes or none, got 'pbs'")]
    [InlineData("""{"jobId":"j","ranks":[{"rank":0,"node":"n1","gpuIndex":0}],"sparePolicy":"any"}""", "sparePolicy")]
    [InlineData("""{"jobId":"j","ranks":[{"rank":0,"node":"n1","gpuIndex":0}],"webhookUrl":"ftp://x"}""", "webhookUrl")]
    [InlineData("""{"jobId": 12""", "body:")]
    public async Task PostJobs_BadBody_Is400_NamingTheField(string body, string error)
    {
        await using var host = await RemediationTestHost.StartAsync();
        using var response = await host.Client.PostAsync("jobs", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Contains(error, json.RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownJob_Is404_Everywhere()
    {
        await using var host = await RemediationTestHost.StartAsync();
        Assert.Equal(HttpStatusCode.NotFound, (await host.Client.GetAsync("jobs/nope")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await host.Client.GetAsync("jobs/nope/restore")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await host.Client.PostAsJsonAsync("jobs/nope/steps", new StepBody(1))).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await host.Client.PostAsync("nodes/n9/uncordon", null)).StatusCode);
    }

    [Fact]
    public async Task Registry_MapsGpusToJobs_AndReportsTheSelectedCheckpoint()
    {
        await using var host = await RemediationTestHost.StartAsync();
        await host.RegisterAsync("j1", ["n1", "n2"]);
        await host.RegisterAsync("j2", ["n3"]);
        await host.CheckpointAsync("j1", 10, 16);
        using (var partial = await host.Client.PostAsJsonAsync("jobs/j1/checkpoints", new CheckpointBody(20, "s3://x/20", 1, [0, 1, 2])))
        {
            partial.EnsureSuccessStatusCode();
        }

        var registry = host.App.Services.GetRequiredService<JobRegistry>();
        Assert.Equal("j1", registry.JobOf("n2", 7));
        Assert.Equal("j2", registry.JobOf("n3", 0));
        Assert.Null(registry.JobOf("n4", 0));

        var view = await host.Client.GetFromJsonAsync<JsonElement>("jobs/j1");
        Assert.Equal(10, view.GetProperty("selected").GetProperty("step").GetInt64());
        Assert.Equal(2, view.GetProperty("checkpoints").GetArrayLength());
        Assert.Equal(2, (await host.Client.GetFromJsonAsync<JsonElement>("jobs")).GetArrayLength());

        using (var bad = await host.Client.PostAsJsonAsync("jobs/j1/checkpoints", new CheckpointBody(-1, "u", 1, [0])))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        }

        // The job ends: its GPUs are free.
        (await host.Client.PostAsync("jobs/j1/finished", null)).EnsureSuccessStatusCode();
        Assert.Null(registry.JobOf("n2", 7));
    }

    [Fact]
    public async Task JobWebhookUrl_IsASecret_NeverInTheApiAnswers()
    {
        await using var host = await RemediationTestHost.StartAsync();
        const string secret = "http://launcher.example:8080/hooks/token-5f3a9c";
        await host.RegisterAsync("j1", ["n1"], webhookUrl: secret);
        var one = await host.Client.GetStringAsync("jobs/j1");
        var all = await host.Client.GetStringAsync("jobs");
        Assert.DoesNotContain("token-5f3a9c", one, StringComparison.Ordinal);
        Assert.DoesNotContain("token-5f3a9c", all, StringComparison.Ordinal);
        Assert.True(JsonDocument.Parse(one).RootElement.GetProperty("job").GetProperty("hasWebhook").GetBoolean(), one);
        // The orchestrator still has it.
        Assert.Equal(secret, host.App.Services.GetRequiredService<JobRegistry>().Get("j1")?.WebhookUrl);
    }

    [Fact]
    public async Task Detection_AsksTheJobRegistry_WhichJobUsedAGpu()
    {
        await using var host = await RemediationTestHost.StartAsync(fullController: true);
        await host.RegisterAsync("j7", ["n5"]);
        var resolver = host.App.Services.GetRequiredService<FleetWatch.Controller.Detection.IGpuJobResolver>();
        Assert.IsType<JobRegistry>(resolver);
        Assert.Equal("j7", resolver.JobOf("n5", 3));
        Assert.Null(resolver.JobOf("n6", 3));
    }

    [Fact]
    public async Task JobRegisteredOnTheBus_IsTheSameAsThePost()
    {
        await using var host = await RemediationTestHost.StartAsync();
        await host.PublishAsync(new JobRegistered { JobId = "bus-1", Ranks = [new JobRank(0, "nb", 1)] });
        await host.PublishAsync(new CheckpointSaved { JobId = "bus-1", Step = 5, Uri = "u", Shards = 1, RanksCovered = [0] });
        var registry = host.App.Services.GetRequiredService<JobRegistry>();
        await RemediationTestHost.WaitUntil(() => registry.JobOf("nb", 1) == "bus-1" && host.Store.Checkpoints("bus-1").Count == 1, "the bus registration");
        await host.PublishAsync(new JobStepReported { JobId = "bus-1", Step = 6 });
        await RemediationTestHost.WaitUntil(() => registry.Get("bus-1")!.FirstStepAt is not null, "the bus step");
        await host.PublishAsync(new JobFinished { JobId = "bus-1" });
        await RemediationTestHost.WaitUntil(() => registry.JobOf("nb", 1) is null, "the bus finish");
    }

    [Fact]
    public async Task OperatorCordonAndUncordon_AreAuditedWithTheOperator_AndReachTheScheduler()
    {
        await using var host = await RemediationTestHost.StartAsync(new Dictionary<string, string?> { ["FleetWatch:Remediation:NodeScheduler"] = "slurm" });
        await host.RegisterAsync("j1", ["n1", "n2", "n3"]);
        using (var request = new HttpRequestMessage(HttpMethod.Post, "nodes/n2/cordon") { Content = JsonContent.Create(new OperatorBody("fan noise")) })
        {
            request.Headers.Add("X-Test-Operator", "alice");
            (await host.Client.SendAsync(request)).EnsureSuccessStatusCode();
        }

        var cordon = Assert.Single(await host.Client.GetFromJsonAsync<List<CordonRecord>>("cordons") ?? []);
        Assert.Equal(("n2", "fan noise", "alice"), (cordon.Node, cordon.Reason, cordon.Operator));
        var spares = await host.Client.GetFromJsonAsync<List<SpareView>>("spares");
        Assert.Equal(["spare-b1", "spare-a1"], spares!.Select(s => s.Node));
        Assert.All(spares!, s => Assert.Equal("free", s.State));

        using (var request = new HttpRequestMessage(HttpMethod.Post, "nodes/n2/uncordon") { Content = JsonContent.Create(new OperatorBody("repaired")) })
        {
            request.Headers.Add("X-Test-Operator", "bob");
            (await host.Client.SendAsync(request)).EnsureSuccessStatusCode();
        }

        Assert.Empty(host.Store.Cordons());
        var actions = await host.ActionsAsync("?node=n2");
        Assert.Equal(["uncordon", "cordon"], actions.Select(a => a.Kind));
        Assert.Equal(("bob", "repaired", ActionStates.Done), (actions[0].Operator, actions[0].Reason, actions[0].State));
        Assert.Equal("alice", actions[1].Operator);
        Assert.Equal(["drain n2 fleetwatch: fan noise", "resume n2"], host.Slurm.Calls);
        Assert.Single(await host.ActionsAsync("?node=n2&limit=1"));
        Assert.Equal(HttpStatusCode.BadRequest, (await host.Client.GetAsync("actions?limit=0")).StatusCode);
    }

    [Fact]
    public async Task NoSchedulerAdapter_IsRecorded_AndTheBusCommandStillGoesOut()
    {
        await using var host = await RemediationTestHost.StartAsync();
        await host.RegisterAsync("k1", ["k-node-1", "k-node-2"], scheduler: "kubernetes");
        await host.CheckpointAsync("k1", 3, 16);
        await host.StepAsync("k1", 4);
        await host.Orchestrator.OnIncidentAsync(RemediationTestHost.Incident("inc-k", "k-node-1", 0, "gpu_fell_off_bus", "restart_node", Severity.Critical, DateTimeOffset.UnixEpoch), default);
        await RemediationTestHost.WaitUntil(() => !host.Recorded.Restores.IsEmpty && !host.Recorded.Cordons.IsEmpty, "the bus commands");

        var actions = host.Store.Actions(null, null, 10);
        Assert.Contains("no scheduler adapter 'kubernetes'", actions.Single(a => a.Kind == "cordon").Detail, StringComparison.Ordinal);
        Assert.Contains("kubernetes requeue: ok: no scheduler adapter 'kubernetes'", actions.Single(a => a.Kind == "restore").Detail, StringComparison.Ordinal);
        Assert.Empty(host.Slurm.Calls);
    }

    [Theory]
    [InlineData("Spares:0:Node", "", "FleetWatch:Remediation:Spares:0:Node = '': must be set and unique")]
    [InlineData("MaxCordonedShare", "1.5", "FleetWatch:Remediation:MaxCordonedShare = '1.5'")]
    [InlineData("VerifySteps", "0", "FleetWatch:Remediation:VerifySteps = '0'")]
    [InlineData("StormWindow", "00:05:00", "FleetWatch:Remediation:StormWindow = '00:05:00': must not be shorter than ShortCycle")]
    public void BadOption_FailsAtStart_WithKeyAndValue(string key, string value, string message)
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["FleetWatch:Storage:Path"] = ":memory:",
            [$"FleetWatch:Remediation:{key}"] = value,
        }).Build();
        using var provider = new ServiceCollection().AddLogging().AddRemediation(config).BuildServiceProvider();
        var e = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<RemediationOptions>>().Value);
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "--job", "x" }, "--controller is required")]
    [InlineData(new[] { "--controller", "ftp://h", "--job", "x" }, "absolute http(s) URL")]
    [InlineData(new[] { "--controller", "http://h" }, "--job is required outside Slurm")]
    [InlineData(new[] { "--controller", "http://h", "--job", "x", "--steps", "-3" }, "--steps must be an integer")]
    [InlineData(new[] { "--controller", "http://h", "--job", "x", "--colour", "red" }, "unknown option --colour")]
    public async Task JobSim_BadArguments_Exit2(string[] args, string message)
    {
        var stderr = new StringWriter();
        Assert.Equal(2, await JobSimTool.RunAsync(args, TextWriter.Null, stderr, new Hashtable(), null, CancellationToken.None));
        Assert.Contains(message, stderr.ToString(), StringComparison.Ordinal);
        Assert.Single(stderr.ToString().Trim().Split('\n'));
    }

    [Fact]
    public void JobSim_InsideSlurm_TakesJobNodeAndRestartFromTheEnvironment()
    {
        var env = new Hashtable { ["SLURM_JOB_ID"] = "77", ["SLURMD_NODENAME"] = "node-b", ["SLURM_RESTART_COUNT"] = "1" };
        var o = JobSimTool.Parse(["--controller", "http://127.0.0.1:5000"], env);
        Assert.Equal(("slurm-77", "slurm", "77", true), (o.JobId, o.Scheduler, o.SchedulerJobId, o.Restarted));
        Assert.Equal(["node-b"], o.Nodes);
        Assert.Equal("http://127.0.0.1:5000/api/v1/", o.Controller.ToString());
        Assert.False(JobSimTool.Parse(["--controller", "http://h/", "--job", "j"], new Hashtable { ["SLURM_RESTART_COUNT"] = "0" }).Restarted);
    }

    [Fact]
    public async Task JobSim_UnreachableController_Exit2()
    {
        var stderr = new StringWriter();
        // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
        var code = await JobSimTool.RunAsync(["--controller", "http://127.0.0.1:9", "--job", "x", "--nodes", "n1"], TextWriter.Null, stderr, new Hashtable(), null,
            CancellationToken.None);
        Assert.Equal(2, code);
        Assert.StartsWith("job-sim: controller http://127.0.0.1:9/api/v1/", stderr.ToString(), StringComparison.Ordinal);
    }
}
