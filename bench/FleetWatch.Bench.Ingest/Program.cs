// Ingest benchmark through the real RabbitMQ: a simulated fleet (agent process) → RabbitMQ → controller process.
// Prints samples/s accepted by the controller, its CPU and RSS, the telemetry queue depth over time, and the
// latency from an injected Xid 79 to the webhook POST (p50/p99).
// Usage: dotnet run -c Release --project bench/FleetWatch.Bench.Ingest -- [--nodes 1250] [--seconds 60] [--injections 20]
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
var web = WebApplication.CreateSlimBuilder();
web.Logging.ClearProviders();
web.WebHost.UseUrls("http://127.0.0.1:0");
var receiver = web.Build();
receiver.MapPost("/hook", async (HttpContext ctx) =>
{
    var at = DateTime.UtcNow;
    using var doc = await JsonDocument.ParseAsync(ctx.Request.Body);
    var alert = doc.RootElement.GetProperty("alerts")[0];
    if (alert.GetProperty("status").GetString() == "firing" && alert.GetProperty("labels").TryGetProperty("node", out var node))
    {
        arrivals.TryAdd(node.GetString()!, at);
    }

    return Results.Ok();
});
await receiver.StartAsync();
var hookUrl = receiver.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/hook";

string[] Bus(string role, params string[] more) =>
    [dll, role, "--FleetWatch:Bus:Transport=RabbitMq", $"--FleetWatch:Bus:RabbitMq:VirtualHost={vhost}", .. more];
var controllerPort = 15081;
using var controller = Start(Bus("controller", "--urls", $"http://127.0.0.1:{controllerPort}",
    "--FleetWatch:Alerting:Webhooks:0:Name=bench", $"--FleetWatch:Alerting:Webhooks:0:Url={hookUrl}"));
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
var injected = new Dictionary<string, DateTime>();
var start = DateTime.UtcNow;
var (cpu0, _) = BenchProcess.Measure(controller.Id);
var accepted0 = await Accepted();
var depths = new List<long>();
var rss = new List<long>();
var interval = Math.Max(1, seconds / Math.Max(1, injections));
for (var s = 1; s <= seconds; s++)
{
    await Task.Delay(1000);
    depths.Add(await Depth());
    rss.Add(BenchProcess.Measure(controller.Id).RssKb);
    if (s % interval == 0 && injected.Count < injections)
    {
        var node = $"gpu{(injected.Count * 37) % nodes:D4}";
        injected[node] = DateTime.UtcNow;
        await bus.Publish(new InjectSimulatedFault { Node = node, Kind = SimulatedFaultKind.Xid, Gpu = injected.Count % 8, Xid = 79 });
    }
}

var elapsed = (DateTime.UtcNow - start).TotalSeconds;
var (cpu1, _) = BenchProcess.Measure(controller.Id);
var accepted1 = await Accepted();
await Task.Delay(3000);
var latencies = injected.Where(kv => arrivals.ContainsKey(kv.Key)).Select(kv => (arrivals[kv.Key] - kv.Value).TotalMilliseconds).Order().ToList();
var rate = (accepted1 - accepted0) / elapsed;
Console.WriteLine($"samples accepted by the controller: {rate:F0}/s (offered {nodes}/s), GPU samples/s: {rate * 8:F0}");
Console.WriteLine($"controller CPU: {(cpu1 - cpu0) / elapsed * 100:F0} % of one core; RSS max {rss.Max() / 1024} MiB");
Console.WriteLine($"telemetry queue depth: first {depths.First()}, max {depths.Max()}, last {depths.Last()} (growing: {depths.Last() > depths.First() + nodes})");
Console.WriteLine(latencies.Count == 0
    ? $"Xid 79 → webhook: no alert arrived for {injected.Count} injections"
    : $"Xid 79 → webhook POST over {latencies.Count}/{injected.Count} injections: p50 {Pct(latencies, 50):F0} ms, p99 {Pct(latencies, 99):F0} ms, max {latencies.Max():F0} ms");
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

