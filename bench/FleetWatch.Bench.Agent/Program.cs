// Agent footprint on one GPU node: the real agent process in hardware mode with the fake libnvidia-ml.so.1
// (8 GPUs × 18 NVLinks), a fixture sysfs tree with 8 InfiniBand ports, a kmsg file, and 8 ranks reporting a step
// per second to the step endpoint; publishing to the local RabbitMQ. Prints CPU per tick and resident memory.
// The first minutes of a .NET process are dominated by tiered JIT (call counting, tier-1 and OSR recompiles); a
// node agent runs for weeks, so the figure that matters is after the warm-up (--warmup, default 120 s).
// Usage: dotnet run -c Release --project bench/FleetWatch.Bench.Agent -- [--seconds 60] [--warmup 120] [--env NAME=VALUE ...]
//        [--binary PATH]: run that agent executable (the Native AOT fleetwatch-agent) instead of `dotnet fleetwatch.dll agent`.
using System.Diagnostics;
using FleetWatch.Bench;
using System.Globalization;
using System.Text;

var seconds = 60;
var warmup = 120;
var extraEnv = new List<(string, string)>();
string? binary = null;
for (var i = 0; i < args.Length; i++)
{
    if (args[i] == "--seconds")
    {
        seconds = int.Parse(args[++i], CultureInfo.InvariantCulture);
    }
    else if (args[i] == "--warmup")
    {
        warmup = int.Parse(args[++i], CultureInfo.InvariantCulture);
    }
    else if (args[i] == "--binary")
    {
        binary = Path.GetFullPath(args[++i]);
    }
    else if (args[i] == "--env")
    {
        var kv = args[++i].Split('=', 2);
        extraEnv.Add((kv[0], kv[1]));
    }
}

var root = BenchProcess.RepositoryRoot();
var dll = Path.Combine(root, "artifacts", "cli", "fleetwatch.dll");
if (binary is null ? !File.Exists(dll) : !File.Exists(binary))
{
    Console.Error.WriteLine(binary is null ? $"{dll} not found: run ./fleetwatch --help once to build it" : $"{binary} not found");
    return 2;
}

var work = Directory.CreateTempSubdirectory("fw-agent-bench-").FullName;
var nvml = Path.Combine(work, "libnvidia-ml.so.1");
BenchProcess.Run("gcc", true, "-shared", "-fPIC", "-O2", "-o", nvml, Path.Combine(root, "tests", "FleetWatch.Agent.Tests", "Native", "fake_nvml.c"));
var ib = Path.Combine(work, "infiniband");
for (var d = 0; d < 8; d++)
{
    var port = Path.Combine(ib, $"mlx5_{d}", "ports", "1");
    Directory.CreateDirectory(Path.Combine(port, "counters"));
    Directory.CreateDirectory(Path.Combine(port, "hw_counters"));
    File.WriteAllText(Path.Combine(port, "state"), "4: ACTIVE\n");
    File.WriteAllText(Path.Combine(port, "phys_state"), "5: LinkUp\n");
    File.WriteAllText(Path.Combine(port, "rate"), "400 Gb/sec (4X NDR)\n");
    foreach (var c in new[] { "symbol_error", "link_error_recovery", "link_downed", "port_rcv_errors", "port_rcv_remote_physical_errors", "port_rcv_switch_relay_errors", "port_xmit_discards", "port_xmit_constraint_errors", "port_rcv_constraint_errors", "local_link_integrity_errors", "excessive_buffer_overrun_errors", "VL15_dropped", "port_xmit_data", "port_rcv_data", "port_xmit_packets", "port_rcv_packets", "unicast_xmit_packets", "unicast_rcv_packets", "port_xmit_wait" })
    {
        File.WriteAllText(Path.Combine(port, "counters", c), "12345\n");
    }

    foreach (var c in new[] { "out_of_buffer", "out_of_sequence", "packet_seq_err", "local_ack_timeout_err", "rnr_nak_retry_err" })
    {
        File.WriteAllText(Path.Combine(port, "hw_counters", c), "0\n");
    }
}

var kmsg = Path.Combine(work, "kmsg");
File.WriteAllText(kmsg, "6,1,1000,-;Linux version (bench)\n");
var info = new ProcessStartInfo(binary ?? "dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
foreach (var a in (binary is null ? new[] { dll, "agent" } : []).Concat(
[
    "--urls", "http://127.0.0.1:0", "--FleetWatch:Bus:Transport=RabbitMq", "--FleetWatch:Agent:NodeName=bench-node",
    $"--FleetWatch:Nvml:LibraryPath={nvml}", $"--FleetWatch:Agent:Infiniband:Root={ib}", $"--FleetWatch:Agent:Kmsg:Path={kmsg}",
    $"--FleetWatch:Agent:Kmsg:StatePath={Path.Combine(work, "kmsg.state")}", "--FleetWatch:Agent:Kmsg:BootIdPath=",
    $"--FleetWatch:Agent:Spool:Path={Path.Combine(work, "spool")}", "--FleetWatch:Agent:Steps:Port=19478",
]))
{
    info.ArgumentList.Add(a);
}

info.Environment["Logging__LogLevel__Default"] = "Warning";
foreach (var (k, v) in extraEnv)
{
    info.Environment[k] = v;
}

using var agent = Process.Start(info)!;
string? agentUrl = null;
agent.OutputDataReceived += (_, e) =>
{
    // "FleetWatch agent listening on http://127.0.0.1:PORT" (the CLI says "FleetWatch Agent listening on ...")
    if (e.Data?.IndexOf(" listening on ", StringComparison.OrdinalIgnoreCase) is >= 0 and var at)
    {
        agentUrl ??= e.Data[(at + " listening on ".Length)..].Trim();
    }
};
agent.ErrorDataReceived += (_, _) => { };
agent.BeginOutputReadLine();
agent.BeginErrorReadLine();
using var http = new HttpClient { BaseAddress = new Uri("http://127.0.0.1:19478"), Timeout = TimeSpan.FromSeconds(2) };
var step = 0;
async Task ReportStepsAsync()
{
    // 8 ranks, one step per second each, the way fleetwatch_steps.py batches them.
    var body = new StringBuilder("[");
    for (var r = 0; r < 8; r++)
    {
        body.Append(CultureInfo.InvariantCulture, $"{{\"job\":\"bench\",\"rank\":{r},\"step\":{step},\"duration_ms\":1000,\"peer_group\":\"pp0\",\"gpu\":{r},\"sections\":{{\"forward\":400,\"backward\":550}}}}");
        body.Append(r < 7 ? "," : "]");
    }

    step++;
    try
    {
        using var content = new StringContent(body.ToString(), Encoding.UTF8, "application/json");
        using var response = await http.PostAsync("/v1/steps", content);
    }
    catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
    {
        // not up yet, or the shared machine stalled the 2 s request: the next step reports again
    }
}

Console.WriteLine($"# agent footprint: 8 GPUs x 18 NVLinks (fake NVML), 8 IB ports (fixture sysfs), 8 ranks reporting steps, 1 s tick, {seconds} s after {warmup} s warm-up, {Environment.ProcessorCount} cores{string.Concat(extraEnv.Select(e => $", {e.Item1}={e.Item2}"))}");
for (var s = 0; s < warmup; s++)
{
    await ReportStepsAsync();
    await Task.Delay(1000); // warm-up: JIT, connections
}

var (cpu0, _) = BenchProcess.Measure(agent.Id);
Console.WriteLine($"warm-up CPU: {cpu0 / Math.Max(1, warmup) * 100:F2} % of one core over the first {warmup} s (start-up and tiered JIT)");
var rss = new List<long>();
var detail = new List<(long Rss, long Pss, long Anon)>();
var start = Stopwatch.GetTimestamp();
for (var s = 0; s < seconds; s++)
{
    await ReportStepsAsync();
    await Task.Delay(1000);
    rss.Add(BenchProcess.Measure(agent.Id).RssKb);
    detail.Add(BenchProcess.MemoryDetail(agent.Id));
}

var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
var (cpu1, _) = BenchProcess.Measure(agent.Id);
var cpu = cpu1 - cpu0;
Console.WriteLine($"CPU: {cpu / elapsed * 100:F2} % of one core = {cpu / elapsed * 1000:F1} ms per 1 s tick (process total, sampling + publishing + step endpoint + runtime)");
Console.WriteLine($"RSS: mean {rss.Average() / 1024:F1} MiB, max {rss.Max() / 1024:F1} MiB");
Console.WriteLine($"PSS: mean {detail.Average(d => d.Pss) / 1024:F1} MiB; anonymous (heap, stacks, JIT code): mean {detail.Average(d => d.Anon) / 1024:F1} MiB, max {detail.Max(d => d.Anon) / 1024:F1} MiB");
if (agentUrl is not null)
{
    // Proof that the agent did its work while measured: what it published and what it had to spool instead.
    using var metricsClient = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
    var metrics = await metricsClient.GetStringAsync($"{agentUrl.TrimEnd('/')}/metrics");
    foreach (var line in metrics.Split('\n').Where(l => l.StartsWith("fleetwatch_agent_samples_published_total", StringComparison.Ordinal)
        || l.StartsWith("fleetwatch_agent_steps_published_total", StringComparison.Ordinal) || l.StartsWith("fleetwatch_agent_spool_pending", StringComparison.Ordinal)))
    {
        Console.WriteLine($"agent /metrics: {line}");
    }
}

agent.Kill(true);
agent.WaitForExit();
Directory.Delete(work, recursive: true);
return 0;



