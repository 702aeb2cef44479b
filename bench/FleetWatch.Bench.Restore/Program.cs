// Restore latency: from an injected Xid 79 on a GPU of a running job to (1) the job receiving RestoreFromCheckpoint and
// (2) the controller seeing the job's first step after the restore, p50/p99, while a simulated fleet (default 1,250
// nodes x 8 GPUs = 10,000 GPUs, 18 NVLinks per GPU, 8 IB ports per node) sends one NodeSample per node per second
// through the same controller. One process, MassTransit's in-memory transport (no broker hop), SQLite store in a
// temporary file, the controller's real consumers, detectors, incident manager and notifier, and remediation's
// consumers. The simulated job restarts in zero time (it acknowledges and reports its next steps at once), so (2) - (1)
// is the controller's own share of the verification path, not a job's real restart cost (process start, checkpoint load).
// Usage: dotnet run -c Release --project bench/FleetWatch.Bench.Restore -- [--nodes 1250] [--jobs 20] [--injections 40] [--interval-ms 1500]
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using FleetWatch.Contracts;
using FleetWatch.Controller;
using FleetWatch.Controller.Remediation;
using FleetWatch.Controller.Replay;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

var nodes = Arg("--nodes", 1250);
var jobs = Arg("--jobs", 20);
var injections = Arg("--injections", 40);
var intervalMs = Arg("--interval-ms", 1500);
const int SpareEvery = 25; // 4 % of the nodes are spares
const int DomainSize = 16;

var loadBefore = LoadAverage();
var db = Path.Combine(Path.GetTempPath(), $"fw-bench-restore-{Guid.NewGuid():N}.db");
var settings = new Dictionary<string, string?>
{
    ["FleetWatch:Storage:Path"] = db,
    ["FleetWatch:Remediation:VerifyTimeout"] = "00:10:00",
};
var spareNodes = Enumerable.Range(0, nodes).Where(i => i % SpareEvery == SpareEvery - 1).ToArray();
for (var s = 0; s < spareNodes.Length; s++)
{
    settings[$"FleetWatch:Remediation:Spares:{s}:Node"] = ReplayFleet.NodeName(spareNodes[s]);
    settings[$"FleetWatch:Remediation:Spares:{s}:Domain"] = Domain(spareNodes[s]);
}

var builder = Host.CreateApplicationBuilder();
builder.Logging.ClearProviders();
builder.Configuration.AddInMemoryCollection(settings);
builder.Services.AddFleetController(builder.Configuration);
builder.Services.AddRemediation(builder.Configuration);
var restores = new ConcurrentDictionary<string, (RestoreFromCheckpoint Command, long At)>();
builder.Services.AddSingleton(restores);
builder.Services.AddMassTransit(x =>
{
    x.AddFleetControllerConsumers();
    x.AddRemediationConsumers();
    x.AddConsumer<BenchJob>();
    x.UsingInMemory((context, cfg) => cfg.ConfigureEndpoints(context));
});
using var host = builder.Build();
await host.StartAsync();
var bus = host.Services.GetRequiredService<IBus>();
var orchestrator = host.Services.GetRequiredService<RestoreOrchestrator>();
var registry = host.Services.GetRequiredService<JobRegistry>();

// The fleet: one tick of samples from the replay simulator (benign noise), re-sent every second with the next sequence
// number and the wall-clock time (counters stand still: generating fresh noise for 10,000 GPUs would compete with the
// controller for the same cores and measure the generator).
var scenario = ReplayScenario.Parse($$"""{"fleet": {"nodes": {{nodes}}, "gpus_per_node": 8, "nvlinks_per_gpu": 18, "ib_ports_per_node": 8, "tick_s": 1}, "duration_s": 100000, "seed": 3, "faults": []}""");
var fleet = new ReplayFleet(scenario);
var first = fleet.Next();
var pci = first.Samples.ToDictionary(s => s.Node, s => s.Gpus.Select(g => g.PciBusId).ToArray());
using var stop = new CancellationTokenSource();
var run = Stopwatch.StartNew();
var tickLag = new List<double>();
long sequence = 0;
var ticks = Task.Run(async () =>
{
    using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
    while (await timer.WaitForNextTickAsync(stop.Token).ConfigureAwait(false))
    {
        var watch = Stopwatch.StartNew();
        var now = DateTimeOffset.UtcNow;
        sequence++;
        await Task.WhenAll(first.Samples.Select(s => bus.Publish(s with { Time = now, Sequence = s.Sequence + sequence }, stop.Token))).ConfigureAwait(false);
        lock (tickLag)
        {
            tickLag.Add(watch.Elapsed.TotalMilliseconds);
        }
    }
});

// Jobs on every non-spare node, each with a complete checkpoint at step 100 and a first step done.
var workers = Enumerable.Range(0, nodes).Where(i => i % SpareEvery != SpareEvery - 1).ToArray();
var perJob = workers.Length / jobs;
for (var j = 0; j < jobs; j++)
{
    var jobNodes = workers.Skip(j * perJob).Take(perJob).ToArray();
    var ranks = jobNodes.SelectMany((n, k) => Enumerable.Range(0, 8).Select(g => new JobRank(k * 8 + g, ReplayFleet.NodeName(n), g, Domain(n)))).ToArray();
    await bus.Publish(new JobRegistered { JobId = Job(j), Ranks = ranks, Scheduler = "none" });
    await bus.Publish(new CheckpointSaved { JobId = Job(j), Step = 100, Uri = $"s3://ckpt/{Job(j)}/step_100", Shards = ranks.Length, RanksCovered = [.. ranks.Select(r => r.Rank)] });
    await bus.Publish(new JobStepReported { JobId = Job(j), Step = 101 });
}

var setup = Stopwatch.StartNew();
while (Enumerable.Range(0, jobs).Any(j => registry.Get(Job(j))?.FirstStepAt is null))
{
    if (setup.Elapsed > TimeSpan.FromSeconds(60))
    {
        Console.Error.WriteLine("jobs did not register within 60 s");
        return 1;
    }

    await Task.Delay(50);
}

await Task.Delay(TimeSpan.FromSeconds(5)); // let the fleet reach its steady state

var toCommand = new List<double>();
var toFirstStep = new List<double>();
var checkpointStep = new Dictionary<string, long>();
for (var i = 0; i < injections; i++)
{
    var job = Job(i % jobs);
    var record = registry.Get(job)!;
    var rank = record.Ranks[(i * 37 + 11) % record.Ranks.Count];
    var t0 = Stopwatch.GetTimestamp();
    await bus.Publish(new GpuXidObserved
    {
        Node = rank.Node, Time = DateTimeOffset.UtcNow, Xid = 79, GpuIndex = rank.GpuIndex, PciBusId = pci.GetValueOrDefault(rank.Node)?[rank.GpuIndex],
        Message = "GPU has fallen off the bus.", Source = XidSource.Kmsg,
    });

    var deadline = Stopwatch.StartNew();
    (RestoreFromCheckpoint Command, long At) got;
    while (!restores.TryRemove(job, out got))
    {
        if (deadline.Elapsed > TimeSpan.FromSeconds(30))
        {
            Console.Error.WriteLine($"injection {i}: no RestoreFromCheckpoint for {job} within 30 s (node {rank.Node})");
            return 1;
        }

        await Task.Delay(1);
    }

    toCommand.Add(Stopwatch.GetElapsedTime(t0, got.At).TotalMilliseconds);
    while (orchestrator.InFlight(job) is { FirstStepAt: null } or { State: CycleStates.Sent })
    {
        await Task.Delay(1);
    }

    toFirstStep.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
    while (orchestrator.InFlight(job) is not null && deadline.Elapsed < TimeSpan.FromSeconds(30))
    {
        await Task.Delay(5);
    }

    // The restored job goes on and writes a newer checkpoint, so the storm guard sees progress.
    var next = checkpointStep[job] = (checkpointStep.TryGetValue(job, out var c) ? c : 100) + 50;
    var now = registry.Get(job)!;
    await bus.Publish(new CheckpointSaved { JobId = job, Step = next, Uri = $"s3://ckpt/{job}/step_{next}", Shards = now.Ranks.Count, RanksCovered = [.. now.Ranks.Select(r => r.Rank)] });
    await bus.Publish(new JobStepReported { JobId = job, Step = next + 1 });
    await Task.Delay(intervalMs);
}

stop.Cancel();
try
{
    await ticks;
}
catch (OperationCanceledException)
{
}

var accepted = host.Services.GetRequiredService<FleetWatch.Controller.Fleet.FleetMetrics>().Accepted;
var store = host.Services.GetRequiredService<RemediationStore>();
var actions = store.Actions(null, null, 10_000);
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"fleet: {nodes} nodes x 8 GPUs = {nodes * 8} GPUs at a 1 s tick ({tickLag.Count} ticks; publishing a tick took p50 {P(tickLag, 50):F0} ms, max {tickLag.DefaultIfEmpty().Max():F0} ms; {accepted} samples accepted in {run.Elapsed.TotalSeconds:F0} s = {accepted / run.Elapsed.TotalSeconds:F0}/s); {jobs} jobs, {spareNodes.Length} spares; in-memory bus, SQLite file store"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"Xid 79 -> RestoreFromCheckpoint received by the job: p50 {P(toCommand, 50):F1} ms, p99 {P(toCommand, 99):F1} ms, max {toCommand.Max():F1} ms ({toCommand.Count} injections)"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"Xid 79 -> controller sees the first step after restore (zero-time job restart): p50 {P(toFirstStep, 50):F1} ms, p99 {P(toFirstStep, 99):F1} ms, max {toFirstStep.Max():F1} ms"));
Console.WriteLine($"machine: {Environment.ProcessorCount} cores, load average {loadBefore} at start, {LoadAverage()} at end (other processes share the cores)");
Console.WriteLine($"actions: {actions.Count(a => a.Kind == "cordon")} cordons, {actions.Count(a => a.Kind == "restore" && a.State == ActionStates.Done)} restores done, " +
    $"{actions.Count(a => a.Kind == "page")} pages, {store.SpareUse().Count} spares in use");
Console.WriteLine("cordon reasons: " + string.Join(", ", actions.Where(a => a.Kind == "cordon")
    .GroupBy(a => a.Reason.Split(' ')[0]).Select(g => $"{g.Key} x{g.Count()}")));
await host.StopAsync();
File.Delete(db);
return 0;

static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";

static string Job(int j) => $"job-{j:D3}";

static string Domain(int node) => $"nvl-{node / DomainSize}";

static double P(List<double> values, int percentile)
{
    if (values.Count == 0)
    {
        return 0;
    }

    var sorted = values.Order().ToArray();
    var rank = (int)Math.Ceiling(percentile / 100.0 * sorted.Length) - 1;
    return sorted[Math.Clamp(rank, 0, sorted.Length - 1)];
}

int Arg(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}

/// <summary>The job side: records when the command arrived, acknowledges, and runs its next steps at once.</summary>
internal sealed class BenchJob(ConcurrentDictionary<string, (RestoreFromCheckpoint, long)> restores) : IConsumer<RestoreFromCheckpoint>
{
    public async Task Consume(ConsumeContext<RestoreFromCheckpoint> context)
    {
        var at = Stopwatch.GetTimestamp();
        var m = context.Message;
        restores[m.JobId] = (m, at);
        await context.Publish(new RestoreAcknowledged { JobId = m.JobId, Cycle = m.Cycle });
        for (var s = 1; s <= 3; s++)
        {
            await context.Publish(new JobStepReported { JobId = m.JobId, Step = m.Checkpoint.Step + s });
        }
    }
}
