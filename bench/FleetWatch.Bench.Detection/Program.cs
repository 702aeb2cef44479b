// Detector throughput: node samples from the replay's simulated fleet (8 GPUs, 18 NVLinks per GPU, 8 IB ports per
// node, benign noise plus faults) evaluated through the full rule catalogue and the incident manager by the
// controller's own DetectionEngine, on one thread. Samples are generated first, so only detection is timed.
// Also times the pure detectors alone (no fleet state, no incident manager), an 800,000-line Xid flood through
// DetectionEngine.OnXid, and every public replay scenario end to end (generation + detection), as `fleetwatch replay` runs it.
// Usage: dotnet run -c Release --project bench/FleetWatch.Bench.Detection -- [--nodes 256] [--seconds 120]
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using FleetWatch.Agent.Publishing;
using FleetWatch.Contracts;
using FleetWatch.Controller;
using FleetWatch.Controller.Ingest;
using MassTransit;
using MassTransit.Serialization;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Fleet;
using FleetWatch.Controller.Replay;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

var nodes = Arg("--nodes", 256);
var seconds = Arg("--seconds", 120);

// A fleet with one fault of each counter-driven kind every few nodes, so windows and conditions are exercised.
string[] kinds =
[
    """{"kind": "nvlink_errors", "gpu": 1, "link": 3, "counter": "crc_data", "per_s": 150}""",
    """{"kind": "nvlink_errors", "gpu": 2, "link": 5, "counter": "replay", "per_s": 1}""",
    """{"kind": "ib_errors", "port": 2, "counter": "symbol_error", "per_s": 20}""",
    """{"kind": "pcie_replay", "gpu": 3, "per_s": 3}""",
    """{"kind": "hw_slowdown", "gpu": 4}""",
    """{"kind": "ecc_sbe", "gpu": 5, "per_s": 50}""",
];
var faults = Enumerable.Range(0, nodes / 4).Select(i => kinds[i % kinds.Length].Replace("{", $$"""{"at_s": {{10 + (i % 60)}}, "node": {{i * 4}}, """, StringComparison.Ordinal));
var json = $$"""{"fleet": {"nodes": {{nodes}}, "gpus_per_node": 8, "nvlinks_per_gpu": 18, "ib_ports_per_node": 8, "tick_s": 1}, "duration_s": {{seconds}}, "seed": 1, "faults": [{{string.Join(",", faults)}}]}""";
var scenario = ReplayScenario.Parse(json);

var generate = Stopwatch.StartNew();
var events = ReplayRunner.Schedule(scenario, TimeSpan.FromSeconds(1)).ToList();
generate.Stop();
var samples = events.Count(e => e.Kind == ReplayEventKind.Sample);

// Pass 1 runs on freshly jitted (tier-0) code, as a short `fleetwatch replay` does; pass 2 is the steady state of
// a long-running controller. Each pass uses a fresh engine (fresh fleet state and incident manager).
for (var pass = 1; pass <= 2; pass++)
{
    var services = new ServiceCollection();
    services.AddDetection(new ConfigurationBuilder().Build());
    using var provider = services.BuildServiceProvider();
    var engine = provider.GetRequiredService<DetectionEngine>();
    GC.Collect();
    var cpu = Process.GetCurrentProcess().TotalProcessorTime;
    var watch = Stopwatch.StartNew();
    var changes = 0;
    foreach (var e in events)
    {
        changes += e.Kind switch
        {
            ReplayEventKind.Sample => engine.OnSample(e.Sample!, e.Time, out _).Count,
            ReplayEventKind.Xid => engine.OnXid(e.Xid!, e.Time).Count,
            _ => engine.Sweep(e.Time).Count,
        };
    }

    watch.Stop();
    var used = Process.GetCurrentProcess().TotalProcessorTime - cpu;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"detection pass {pass} ({(pass == 1 ? "cold" : "warm")}): {nodes} nodes x {seconds} s = {samples} node samples ({samples * 8} GPU samples, {samples * 144} NVLink and {samples * 8} IB port readings) in {watch.Elapsed.TotalSeconds:F2} s wall, {used.TotalSeconds:F2} s CPU"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"detection pass {pass}: {samples / watch.Elapsed.TotalSeconds:F0} node samples/s, {samples * 8 / watch.Elapsed.TotalSeconds:F0} GPU samples/s on one thread ({watch.Elapsed.TotalMilliseconds * 1000 / samples:F1} us per node sample); by CPU time {samples * 8 / used.TotalSeconds:F0} GPU samples/s per core; {changes} incident changes"));
}

Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"generation of the samples: {generate.Elapsed.TotalSeconds:F2} s"));

// The pure rule catalogue alone, warm: each node's samples in order with its own detector memory.
{
    var options = new DetectionOptions();
    var states = new Dictionary<string, (NodeDetectionState State, NodeSample? Previous)>(StringComparer.Ordinal);
    var output = new List<Finding>();
    var sampleList = events.Where(e => e.Kind == ReplayEventKind.Sample).Select(e => e.Sample!).ToList();
    long findings = 0;
    var cpu = Process.GetCurrentProcess().TotalProcessorTime;
    var watch = Stopwatch.StartNew();
    foreach (var sample in sampleList)
    {
        var (state, previous) = states.TryGetValue(sample.Node, out var s) ? s : (new NodeDetectionState(), null);
        output.Clear();
        SampleDetectors.Evaluate(previous, sample, state, options, output);
        findings += output.Count;
        states[sample.Node] = (state, sample);
    }

    watch.Stop();
    var used = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
    // On a shared machine wall time includes waiting for a core; CPU time is what the rules cost.
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"rule catalogue alone: {sampleList.Count * 8 / used:F0} GPU samples/s per core by CPU time ({used * 1e6 / sampleList.Count:F1} us CPU per node sample; wall {sampleList.Count * 8 / watch.Elapsed.TotalSeconds:F0}/s), {findings} findings"));
}

// Reading samples off the wire: the envelopes agents publish, through MassTransit's deserializer (envelope parsed to
// a JsonDocument, then the NodeSample from it) and through the controller's one-pass reader. Three rounds each, warm.
{
    var wire = new JsonSerializerOptions(JsonSerializerDefaults.Web) { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, TypeInfoResolver = new DefaultJsonTypeInfoResolver() };
    var typeInfo = (JsonTypeInfo<NodeSample>)wire.GetTypeInfo(typeof(NodeSample));
    var bodies = events.Where(e => e.Kind == ReplayEventKind.Sample).Take(20_000)
        .Select(e => RabbitMqPublisher.Envelope(e.Sample!, typeInfo, Guid.NewGuid(), e.Time, "rabbitmq://bench/agent", "rabbitmq://bench/FleetWatch.Contracts:NodeSample")).ToList();
    var onePass = new NodeSampleEnvelopeDeserializer();
    (string Name, Func<MessageBody, NodeSample?> Read)[] readers =
    [
        ("MassTransit's deserializer", b => SystemTextJsonMessageSerializer.Instance.Deserialize(b, EmptyHeaders.Instance).TryGetMessage<NodeSample>(out var s) ? s : null),
        ("one-pass reader", b => onePass.Deserialize(b, EmptyHeaders.Instance).TryGetMessage<NodeSample>(out var s) ? s : null),
    ];
    for (var round = 1; round <= 3; round++)
    {
        foreach (var (name, read) in readers)
        {
            var allocated = GC.GetAllocatedBytesForCurrentThread();
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var gpus = 0L;
            foreach (var body in bodies)
            {
                gpus += read(new BytesMessageBody(body))!.Gpus.Count;
            }

            var used = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
            allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
            if (round == 3)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"wire read, {name}: {used * 1e6 / bodies.Count:F1} us CPU per node sample ({bodies.Count / used:F0} samples/s per core), {allocated / bodies.Count / 1024.0:F1} KiB allocated per sample, envelope {bodies.Average(b => b.Length) / 1024:F1} KiB, {gpus} GPUs read"));
            }
        }
    }
}

// An Xid flood (NVSentinel#1120): 800,000 identical lines through the engine, one counted finding.
{
    var services = new ServiceCollection();
    services.AddDetection(new ConfigurationBuilder().Build());
    using var provider = services.BuildServiceProvider();
    var engine = provider.GetRequiredService<DetectionEngine>();
    var t0 = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    var changes = 0;
    var allocated = GC.GetAllocatedBytesForCurrentThread();
    var cpu = Process.GetCurrentProcess().TotalProcessorTime;
    var watch = Stopwatch.StartNew();
    for (var i = 0; i < 800_000; i++)
    {
        var time = t0.AddTicks(i * 1_000L);
        changes += engine.OnXid(new GpuXidObserved { Node = "n1", Time = time, Xid = 95, GpuIndex = 3, Source = XidSource.Kmsg, Message = "Uncontained" }, time).Count;
    }

    watch.Stop();
    allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
    var used = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"Xid flood: 800,000 lines in {used * 1000:F0} ms CPU ({800_000 / used:F0} lines/s per core; wall {watch.Elapsed.TotalMilliseconds:F0} ms, {allocated / 800_000.0:F0} bytes allocated per line incl. the line itself), {changes} incident changes"));
}

var corpus = Path.Combine(FindRoot(), "..", "shared", "bench-data", "replay", "public");
if (Directory.Exists(corpus))
{
    foreach (var file in Directory.GetFiles(corpus, "P*.json").Where(f => !f.EndsWith(".expect.json", StringComparison.Ordinal)).Order())
    {
        var s = ReplayScenario.Parse(File.ReadAllText(file));
        var t = Stopwatch.StartNew();
        var report = ReplayRunner.Run(s);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"replay {Path.GetFileName(file)}: {s.Fleet.Nodes} nodes x {s.DurationSeconds:F0} s virtual in {t.Elapsed.TotalSeconds:F2} s ({s.DurationSeconds / t.Elapsed.TotalSeconds:F0}x real time), {report.Incidents.Count} incidents, {report.AlertsSent} alerts"));
    }
}

return 0;

int Arg(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}

static string FindRoot()
{
    var dir = new DirectoryInfo(AppContext.BaseDirectory);
    while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "FleetWatch.sln")))
    {
        dir = dir.Parent;
    }

    return dir?.FullName ?? throw new InvalidOperationException("FleetWatch.sln not found");
}
