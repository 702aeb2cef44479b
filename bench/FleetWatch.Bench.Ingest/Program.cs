// Ingest benchmark through the real RabbitMQ: a simulated fleet (agent process) → RabbitMQ → controller process.
// Prints samples/s accepted by the controller, its CPU and RSS, the telemetry queue depth over time, and the
// detection latency per fault class, from the injection to the webhook receiver's POST (p50/p99): Xid-driven (Xid 79,
// its own lane), counter-driven (ECC DBE counter, NVLink replay counter: the next sample plus the rule's window),
// state-driven (IB link down) and time-driven (node silent: NodeSilentAfter, 30 s).
// Usage: dotnet run -c Release --project bench/FleetWatch.Bench.Ingest -- [--nodes 1250] [--seconds 60] [--injections 20] [--settle]
// (--injections is per fault class)
using System.Collections.Concurrent;
using System.Diagnostics;
using FleetWatch.Bench;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using FleetWatch.Contracts;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;

var nodes = Arg("--nodes", 1250);
var seconds = Arg("--seconds", 60);
var injections = Arg("--injections", 20);
var settle = args.Contains("--settle");
var verbose = args.Contains("--verbose"); // print every alert the receiver gets
var root = BenchProcess.RepositoryRoot();
var dll = Path.Combine(root, "artifacts", "cli", "fleetwatch.dll");
if (!File.Exists(dll))
{
    Console.Error.WriteLine($"{dll} not found: run ./fleetwatch --help once to build it");
    return 2;
}

var vhost = $"fw-bench-{Guid.NewGuid():N}"[..20];
BenchProcess.Run("rabbitmqctl", false, "add_vhost", vhost);
BenchProcess.Run("rabbitmqctl", false, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*");

// Webhook receiver: arrival time per node label.
var arrivals = new ConcurrentDictionary<string, DateTime>();
// The alert's startsAt is the controller's clock when it opened the incident (same machine, same clock): it splits
// the latency into transport (command to the simulating agent, its publish, the broker, the consumer) and the
// controller's own share (incident opened → receiver's POST).
var openedAt = new ConcurrentDictionary<string, DateTime>();
var web = WebApplication.CreateSlimBuilder();
web.Logging.ClearProviders();
web.WebHost.UseUrls("http://127.0.0.1:0");
var receiver = web.Build();
receiver.MapPost("/hook", async (HttpContext ctx) =>
{
    var at = DateTime.UtcNow;
    using var doc = await JsonDocument.ParseAsync(ctx.Request.Body);
    var alert = doc.RootElement.GetProperty("alerts")[0];
    if (verbose)
    {
        Console.WriteLine($"  [{at:HH:mm:ss.fff}] {alert.GetProperty("status").GetString()} {alert.GetProperty("labels").GetRawText()}");
    }

    if (alert.GetProperty("status").GetString() == "firing" && alert.GetProperty("labels").TryGetProperty("node", out var node))
    {
        if (arrivals.TryAdd(node.GetString()!, at) && alert.TryGetProperty("startsAt", out var startsAt) && startsAt.TryGetDateTime(out var opened))
        {
            openedAt[node.GetString()!] = opened.ToUniversalTime();
        }
    }

    return Results.Ok();
});
await receiver.StartAsync();
var hookUrl = receiver.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/hook";

string[] Bus(string role, params string[] more) =>
    [dll, role, "--FleetWatch:Bus:Transport=RabbitMq", $"--FleetWatch:Bus:RabbitMq:VirtualHost={vhost}", .. more];
var controllerPort = 15081;
// A store of its own: incidents persist, and a previous run's (nodes gone silent when it stopped) would inhibit this one's.
var store = Path.Combine(Path.GetTempPath(), vhost + "-controller.db");
// --controller-arg KEY=VALUE (repeatable) passes configuration to the controller, e.g. FleetWatch:Bus:RabbitMq:ConcurrentMessageLimit=16.
var controllerArgs = args.Select((a, i) => (a, i)).Where(x => x.a == "--controller-arg" && x.i + 1 < args.Length).Select(x => "--" + args[x.i + 1]).ToArray();
using var controller = Start(Bus("controller", [.. controllerArgs, "--urls", $"http://127.0.0.1:{controllerPort}", $"--FleetWatch:Storage:Path={store}",
    "--FleetWatch:Alerting:Webhooks:0:Name=bench", $"--FleetWatch:Alerting:Webhooks:0:Url={hookUrl}"]));
await Task.Delay(5000);
using var agent = Start(Bus("agent", "--urls", "http://127.0.0.1:0", "--FleetWatch:Simulation:Enabled=true",
    $"--FleetWatch:Simulation:Nodes={nodes}", "--FleetWatch:Simulation:DemoFaults=false", "--FleetWatch:Agent:MaxPublishesInFlight=256",
    $"--FleetWatch:Agent:Spool:Path={Path.Combine(Path.GetTempPath(), vhost)}"));

var bus = MassTransit.Bus.Factory.CreateUsingRabbitMq(cfg => cfg.Host("127.0.0.1", 5672, vhost, h => { h.Username("guest"); h.Password("guest"); }));
await bus.StartAsync();
await using var connection = await new ConnectionFactory { VirtualHost = vhost }.CreateConnectionAsync();
using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{controllerPort}") };

Console.WriteLine($"# ingest benchmark: {nodes} nodes x 8 GPUs ({nodes * 8} GPUs) at a 1 s tick, {seconds} s, {Environment.ProcessorCount} cores");
await Task.Delay(10_000); // warm-up: JIT, queues declared, first ticks
if (settle)
{
    // Steady state: the controller starts behind (JIT, first ticks) with a backlog of samples; a counter fault
    // injected then waits behind it. Wait until less than one tick of samples is queued (bounded), then measure.
    var settleStart = DateTime.UtcNow;
    long depth;
    while ((depth = await Depth()) > nodes && (DateTime.UtcNow - settleStart).TotalSeconds < 300)
    {
        await Task.Delay(1000);
    }

    Console.WriteLine($"settled: telemetry queue {depth} after {(DateTime.UtcNow - settleStart).TotalSeconds:F0} s (--settle)");
}

// Fault classes, injected round-robin on distinct nodes; each class's latencies are reported separately.
(string Class, Func<string, int, InjectSimulatedFault> Make)[] classes =
[
    ("xid 79 (Xid lane)", (n, k) => new InjectSimulatedFault { Node = n, Kind = SimulatedFaultKind.Xid, Gpu = k % 8, Xid = 79 }),
    ("ecc dbe (counter)", (n, k) => new InjectSimulatedFault { Node = n, Kind = SimulatedFaultKind.EccDbe, Gpu = k % 8 }),
    ("nvlink replay (counter)", (n, k) => new InjectSimulatedFault { Node = n, Kind = SimulatedFaultKind.NvLinkErrors, Gpu = k % 8, Link = k % 18 }),
    ("ib link down (state)", (n, k) => new InjectSimulatedFault { Node = n, Kind = SimulatedFaultKind.IbLinkDown, Port = 1 + (k % 8) }),
    ("node silent (30 s rule)", (n, _) => new InjectSimulatedFault { Node = n, Kind = SimulatedFaultKind.NodeSilent, For = TimeSpan.FromSeconds(90) }),
];
var injected = new Dictionary<string, (DateTime At, string Class)>();
var start = DateTime.UtcNow;
var (cpu0, _) = BenchProcess.Measure(controller.Id);
var accepted0 = await Accepted();
var depths = new List<long>();
var rss = new List<long>();
var total = injections * classes.Length;
var perSecond = Math.Max(1, (int)Math.Ceiling(total / (double)Math.Max(1, seconds - 5)));
for (var s = 1; s <= seconds; s++)
{
    await Task.Delay(1000);
    depths.Add(await Depth());
    rss.Add(BenchProcess.Measure(controller.Id).RssKb);
    for (var i = 0; i < perSecond && injected.Count < total; i++)
    {
        var k = injected.Count;
        var node = $"gpu{(k * 37) % nodes:D4}";
        var (name, make) = classes[k % classes.Length];
        injected[node] = (DateTime.UtcNow, name);
        await bus.Publish(make(node, k));
    }
}

var elapsed = (DateTime.UtcNow - start).TotalSeconds;
var (cpu1, _) = BenchProcess.Measure(controller.Id);
var accepted1 = await Accepted();
// The node-silent rule needs NodeSilentAfter (30 s) after the last sample: wait for the stragglers, bounded.
for (var wait = 0; wait < 45 && injected.Keys.Any(n => !arrivals.ContainsKey(n)); wait++)
{
    await Task.Delay(1000);
}

var rate = (accepted1 - accepted0) / elapsed;
Console.WriteLine($"samples accepted by the controller: {rate:F0}/s (offered {nodes}/s), GPU samples/s: {rate * 8:F0}");
Console.WriteLine($"controller CPU: {(cpu1 - cpu0) / elapsed * 100:F0} % of one core; RSS max {rss.Max() / 1024} MiB");
Console.WriteLine($"telemetry queue depth: first {depths.First()}, max {depths.Max()}, last {depths.Last()} (growing: {depths.Last() > depths.First() + nodes})");
Console.WriteLine("detection latency, injection → webhook POST, per fault class:");
foreach (var (name, _) in classes)
{
    var mine = injected.Where(kv => kv.Value.Class == name).ToList();
    var latencies = mine.Where(kv => arrivals.ContainsKey(kv.Key)).Select(kv => (arrivals[kv.Key] - kv.Value.At).TotalMilliseconds).Order().ToList();
    Console.WriteLine(latencies.Count == 0
        ? $"  {name,-24} no alert arrived for {mine.Count} injections"
        : $"  {name,-24} {latencies.Count}/{mine.Count} arrived: p50 {Pct(latencies, 50):F0} ms, p99 {Pct(latencies, 99):F0} ms, max {latencies.Max():F0} ms");
    var own = mine.Where(kv => arrivals.ContainsKey(kv.Key) && openedAt.ContainsKey(kv.Key)).Select(kv => (arrivals[kv.Key] - openedAt[kv.Key]).TotalMilliseconds).Order().ToList();
    var transport = mine.Where(kv => openedAt.ContainsKey(kv.Key)).Select(kv => (openedAt[kv.Key] - kv.Value.At).TotalMilliseconds).Order().ToList();
    if (own.Count > 0)
    {
        Console.WriteLine($"  {"",-24}   injection → incident opened p50 {Pct(transport, 50):F0} / p99 {Pct(transport, 99):F0} ms; incident opened → POST p50 {Pct(own, 50):F0} / p99 {Pct(own, 99):F0} ms");
    }
}
await bus.StopAsync();
agent.Kill(true);
controller.Kill(true);
BenchProcess.Run("rabbitmqctl", false, "delete_vhost", vhost);
await receiver.StopAsync();
return 0;

async Task<long> Accepted()
{
    var status = await http.GetFromJsonAsync<JsonElement>("/api/controller/status");
    return status.GetProperty("samplesAccepted").GetInt64();
}

async Task<long> Depth()
{
    await using var ch = await connection.CreateChannelAsync();
    return (await ch.QueueDeclarePassiveAsync("fleetwatch-telemetry")).MessageCount;
}

static double Pct(List<double> sorted, int p) => sorted[Math.Clamp((int)Math.Ceiling(p / 100.0 * sorted.Count) - 1, 0, sorted.Count - 1)];


static Process Start(string[] args)
{
    var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
    foreach (var a in args)
    {
        info.ArgumentList.Add(a);
    }

    info.Environment["Logging__LogLevel__Default"] = "Warning";
    var p = Process.Start(info)!;
    p.OutputDataReceived += (_, _) => { };
    p.ErrorDataReceived += (_, _) => { };
    p.BeginOutputReadLine();
    p.BeginErrorReadLine();
    return p;
}


int Arg(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}

