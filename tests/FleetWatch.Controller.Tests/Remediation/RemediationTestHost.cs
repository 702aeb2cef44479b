using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Security.Claims;
using FleetWatch.Contracts;
using FleetWatch.Controller.Remediation;
using FleetWatch.Controller.Remediation.Scheduling;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Controller.Tests.Remediation;

/// <summary>A scheduler adapter that records calls (stands in for Slurm, which the slurm helper's tests run for real).</summary>
public sealed class RecordingSchedulerAdapter(string name = "slurm") : ISchedulerAdapter
{
    public ConcurrentQueue<string> Calls { get; } = new();

    public string Name => name;

    public Task<SchedulerResult> DrainAsync(string node, string reason, CancellationToken ct)
    {
        Calls.Enqueue($"drain {node} {reason}");
        return Task.FromResult(new SchedulerResult(true, $"{name}: drained {node}"));
    }

    public Task<SchedulerResult> ResumeAsync(string node, CancellationToken ct)
    {
        Calls.Enqueue($"resume {node}");
        return Task.FromResult(new SchedulerResult(true, $"{name}: resumed {node}"));
    }

    public Task<SchedulerResult> RequeueAsync(string schedulerJobId, IReadOnlyList<string> excludedNodes, CancellationToken ct)
    {
        Calls.Enqueue($"requeue {schedulerJobId} exclude={string.Join(",", excludedNodes)}");
        return Task.FromResult(new SchedulerResult(true, $"{name}: requeued {schedulerJobId}"));
    }
}

/// <summary>Messages remediation published, as a job, the scheduler side and the pager would receive them.</summary>
public sealed class Recorded
{
    public ConcurrentQueue<RestoreFromCheckpoint> Restores { get; } = new();
    public ConcurrentQueue<RemediationHalted> Halts { get; } = new();
    public ConcurrentQueue<CordonNode> Cordons { get; } = new();

    /// <summary>Bodies POSTed to the test host's /test-hook (a job launcher's webhook).</summary>
    public ConcurrentQueue<string> Webhooks { get; } = new();
}

public sealed class RecordingConsumer(Recorded recorded) : IConsumer<RestoreFromCheckpoint>, IConsumer<RemediationHalted>, IConsumer<CordonNode>
{
    public Task Consume(ConsumeContext<RestoreFromCheckpoint> context)
    {
        recorded.Restores.Enqueue(context.Message);
        return Task.CompletedTask;
    }

    public Task Consume(ConsumeContext<RemediationHalted> context)
    {
        recorded.Halts.Enqueue(context.Message);
        return Task.CompletedTask;
    }

    public Task Consume(ConsumeContext<CordonNode> context)
    {
        recorded.Cordons.Enqueue(context.Message);
        return Task.CompletedTask;
    }
}

/// <summary>
/// Component tier: a real Kestrel host on a loopback port with the real remediation registrations, MassTransit's
/// in-memory transport, the HTTP API at /api/v1 and a SQLite store (a file when the test needs two hosts).
/// The header X-Test-Operator stands in for the lead's authentication (it sets the user name).
/// </summary>
public sealed class RemediationTestHost : IAsyncDisposable
{
    private RemediationTestHost(WebApplication app, Uri baseUrl, RecordingSchedulerAdapter slurm, Recorded recorded)
    {
        App = app;
        BaseUrl = baseUrl;
        Slurm = slurm;
        Recorded = recorded;
        Client = new HttpClient { BaseAddress = baseUrl };
    }

    public WebApplication App { get; }
    public Uri BaseUrl { get; }
    public HttpClient Client { get; }
    public RecordingSchedulerAdapter Slurm { get; }
    public Recorded Recorded { get; }
    public RestoreOrchestrator Orchestrator => App.Services.GetRequiredService<RestoreOrchestrator>();
    public RemediationStore Store => App.Services.GetRequiredService<RemediationStore>();

    public static readonly Dictionary<string, string?> TwoDomainSpares = new()
    {
        ["FleetWatch:Remediation:Spares:0:Node"] = "spare-b1",
        ["FleetWatch:Remediation:Spares:0:Domain"] = "nvl-b",
        ["FleetWatch:Remediation:Spares:0:Rack"] = "rack-2",
        ["FleetWatch:Remediation:Spares:1:Node"] = "spare-a1",
        ["FleetWatch:Remediation:Spares:1:Domain"] = "nvl-a",
        ["FleetWatch:Remediation:Spares:1:Rack"] = "rack-1",
    };

    /// <summary>Starts a host; <paramref name="fullController"/> adds the controller's ingest, detection and incident path (AddFleetController and its consumers).</summary>
    public static async Task<RemediationTestHost> StartAsync(IReadOnlyDictionary<string, string?>? settings = null, string? dbPath = null, TimeProvider? time = null,
        bool fullController = false)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel().UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var config = new Dictionary<string, string?>(TwoDomainSpares)
        {
            ["FleetWatch:Storage:Path"] = dbPath ?? ":memory:",
            // The spare self-check reads the controller's fleet state; a remediation-only host has none, so every spare
            // would be "no data". Hosts with the full controller keep the production default and feed spare samples.
            ["FleetWatch:Remediation:CheckSpares"] = fullController ? "true" : "false",
        };
        foreach (var (k, v) in settings ?? new Dictionary<string, string?>())
        {
            config[k] = v;
        }

        builder.Configuration.AddInMemoryCollection(config);
        if (time is not null)
        {
            builder.Services.AddSingleton(time);
        }

        var slurm = new RecordingSchedulerAdapter();
        var recorded = new Recorded();
        if (fullController)
        {
            builder.Services.AddFleetController(builder.Configuration);
        }

        builder.Services.AddRemediation(builder.Configuration);
        builder.Services.AddSingleton<ISchedulerAdapter>(slurm);
        builder.Services.AddSingleton(recorded);
        builder.Services.AddMassTransit(x =>
        {
            if (fullController)
            {
                x.AddFleetControllerConsumers();
            }

            x.AddRemediationConsumers();
            x.AddConsumer<RecordingConsumer>();
            x.UsingInMemory((context, cfg) => cfg.ConfigureEndpoints(context));
        });
        var app = builder.Build();
        app.Use((context, next) =>
        {
            if (context.Request.Headers.TryGetValue("X-Test-Operator", out var who))
            {
                context.User = new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, who.ToString())], "test"));
            }

            return next(context);
        });
        app.MapGroup("/api/v1").MapRemediationApi();
        app.MapPost("/test-hook", async (HttpRequest request) =>
        {
            using var reader = new StreamReader(request.Body);
            recorded.Webhooks.Enqueue(await reader.ReadToEndAsync());
            return Results.Ok();
        });
        // MassTransit keeps the last bus's logger factory in a static; a host started after another was disposed
        // must hand it its own, or bus creation touches the disposed one.
        LogContext.ConfigureCurrentLogContext(app.Services.GetRequiredService<ILoggerFactory>());
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new RemediationTestHost(app, new Uri(address.TrimEnd('/') + "/api/v1/"), slurm, recorded);
    }

    /// <summary>Feeds a sample through the controller's own detection path (full-controller hosts), as the telemetry consumer does.</summary>
    public Task SampleAsync(NodeSample sample) =>
        App.Services.GetRequiredService<FleetWatch.Controller.Fleet.DetectionPipeline>().OnSampleAsync(sample, CancellationToken.None);

    /// <summary>A healthy 8-GPU sample of <paramref name="node"/> from agent run <paramref name="run"/>.</summary>
    public static NodeSample Healthy(string node, long sequence, DateTimeOffset at, string run = "run-1", Func<GpuSample, GpuSample>? gpu = null) => new()
    {
        Node = node, Sequence = sequence, AgentRun = run, Time = at,
        Gpus = Enumerable.Range(0, 8).Select(i => new GpuSample { Index = i, Uuid = $"GPU-{node}-{i}", TemperatureC = 45 })
            .Select(g => gpu is null ? g : gpu(g)).ToArray(),
    };

    public Task PublishAsync<T>(T message)
        where T : class =>
        App.Services.GetRequiredService<IBus>().Publish(message);

    /// <summary>Registers a job of <paramref name="nodes"/> x 8 GPUs over HTTP (nodes in domain nvl-a, rack-1).</summary>
    public async Task RegisterAsync(string job, string[] nodes, string scheduler = "slurm", string sparePolicy = "same_domain_first", string? webhookUrl = null)
    {
        var ranks = nodes.SelectMany((n, i) => Enumerable.Range(0, 8).Select(g => new JobRank(i * 8 + g, n, g, "nvl-a", "rack-1"))).ToArray();
        using var r = await Client.PostAsJsonAsync("jobs", new JobRegistered
        {
            JobId = job, Ranks = ranks, Scheduler = scheduler, SchedulerJobId = scheduler == "none" ? null : "4242", SparePolicy = sparePolicy,
            WebhookUrl = webhookUrl,
        });
        r.EnsureSuccessStatusCode();
    }

    public async Task CheckpointAsync(string job, long step, int ranks)
    {
        using var r = await Client.PostAsJsonAsync($"jobs/{job}/checkpoints", new CheckpointBody(step, $"s3://ckpt/{job}/step_{step}", ranks, Enumerable.Range(0, ranks).ToArray()));
        r.EnsureSuccessStatusCode();
    }

    public async Task StepAsync(string job, long step, bool healthy = true)
    {
        using var r = await Client.PostAsJsonAsync($"jobs/{job}/steps", new StepBody(step, healthy));
        r.EnsureSuccessStatusCode();
    }

    public async Task<List<RemediationAction>> ActionsAsync(string query = "") =>
        (await Client.GetFromJsonAsync<List<RemediationAction>>("actions" + query))!;

    public static IncidentSnapshot Incident(string id, string node, int? gpu, string category, string action, Severity severity, DateTimeOffset at) => new()
    {
        Id = id,
        Node = node,
        GpuIndex = gpu,
        Severity = severity,
        Category = category,
        Action = action,
        OpenedAt = at,
        Findings = [new FindingInfo { Rule = category, Severity = severity, Message = $"{category} on {node}", GpuIndex = gpu, FirstSeen = at, LastSeen = at }],
    };

    /// <summary>Polls until the condition holds; fails with <paramref name="what"/> after <paramref name="timeout"/> (bounded wait).</summary>
    public static async Task WaitUntil(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = Environment.TickCount64 + (long)(timeout ?? TimeSpan.FromSeconds(15)).TotalMilliseconds;
        while (!condition())
        {
            Assert.True(Environment.TickCount64 < deadline, $"timed out waiting for {what}");
            await Task.Delay(20);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
