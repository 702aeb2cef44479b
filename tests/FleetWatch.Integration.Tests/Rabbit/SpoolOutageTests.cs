using System.Collections.Concurrent;
using FleetWatch.Contracts;
using FleetWatch.Integration.Tests.Support;
using MassTransit;

namespace FleetWatch.Integration.Tests.Rabbit;

/// <summary>
/// Never lose a sample: RabbitMQ is stopped for 30 s (rabbitmqctl stop_app) while an agent publishes; the agent
/// is restarted during the outage with a non-empty spool; after start_app every sequence number of every agent
/// run arrives (duplicates allowed: the controller deduplicates by node and sequence number). Run for both transports
/// behind the spool: the shipped Native AOT node agent (the RabbitMQ client, one node reading the fake NVML and fixture
/// sysfs) and the simulated fleet on the MassTransit bus (three nodes).
/// </summary>
[Collection("rabbitmq")]
public sealed class SpoolOutageTests
{
    /// <summary>The boot id the native agent reads (a fixture file: the test machine's own would do, but this one is known).</summary>
    private const string FixtureBootId = "3e1f0c2a-7b4d-4e8f-9a6b-5c4d3e2f1a0b";

    /// <summary>Boot ids the sink saw, by agent run (null: the sample had none).</summary>
    private static readonly ConcurrentDictionary<string, string?> BootIds = new();

    private sealed class Sink(ConcurrentBag<(string Run, string Node, long Seq)> seen) : IConsumer<NodeSample>
    {
        public Task Consume(ConsumeContext<NodeSample> context)
        {
            seen.Add((context.Message.AgentRun ?? "", context.Message.Node, context.Message.Sequence));
            BootIds[context.Message.AgentRun ?? ""] = context.Message.BootId;
            return Task.CompletedTask;
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Broker_outage_and_agent_restart_lose_no_sequence_number(bool native)
    {
        var nodes = native ? 1 : 3;
        var vhost = await RabbitAdmin.CreateVirtualHostAsync("fw-spool");
        var spool = Directory.CreateTempSubdirectory("fw-spool-").FullName;
        var seen = new ConcurrentBag<(string Run, string Node, long Seq)>();
        var bus = await StartSinkAsync(vhost, seen);
        var kmsg = Path.Combine(spool, "..", $"{Path.GetFileName(spool)}.kmsg");
        FleetWatchProcess StartAgent() => native
            ? FleetWatchProcess.StartNativeAgent(NativeAgentArgs(vhost, spool, kmsg))
            : FleetWatchProcess.Start(
            [
                "agent", .. CommonArgs(vhost, spool),
                "--FleetWatch:Simulation:Enabled=true", $"--FleetWatch:Simulation:Nodes={nodes}", "--FleetWatch:Simulation:DemoFaults=false",
            ]);
        var stopped = false;
        try
        {
            await using var first = StartAgent();
            await Wait.UntilAsync(() => seen.Count >= 10 * nodes, TimeSpan.FromSeconds(60), "samples flowing", () => first.Output);

            await RabbitAdmin.RunAsync("stop_app");
            stopped = true;
            var outageStart = DateTime.UtcNow;
            await Task.Delay(TimeSpan.FromSeconds(8));
            await first.TerminateAsync(TimeSpan.FromSeconds(60));
            var spooledFiles = Directory.GetFiles(spool, "*.jsonl");
            Assert.NotEmpty(spooledFiles); // restarted with a non-empty spool

            await using var second = StartAgent();
            var rest = TimeSpan.FromSeconds(30) - (DateTime.UtcNow - outageStart);
            if (rest > TimeSpan.Zero)
            {
                await Task.Delay(rest);
            }

            await RabbitAdmin.RunAsync("start_app");
            stopped = false;
            await Wait.UntilAsync(() => Directory.GetFiles(spool, "*.jsonl").Length == 0, TimeSpan.FromSeconds(120), "spool drained", () => second.Output);
            await Task.Delay(TimeSpan.FromSeconds(2));
            await second.TerminateAsync(TimeSpan.FromSeconds(30));
            // The replayed messages sit in the sink's durable queue until the sink's own bus has reconnected after the
            // broker restart (MassTransit backs off): wait, bounded, until every run's sequence is complete, then settle.
            await Wait.UntilAsync(() => Complete(seen, 2 * nodes), TimeSpan.FromSeconds(90), "every sequence number of both runs at the sink");
            await WaitQuietAsync(seen);

            var runs = seen.GroupBy(s => (s.Run, s.Node)).ToList();
            var summary = string.Join("; ", runs.Select(r => $"{r.Key.Run}/{r.Key.Node}: {r.Count()} msgs, max seq {r.Max(x => x.Seq)}"));
            Assert.True(runs.Count == 2 * nodes, $"expected 2 agent runs × {nodes} nodes, got {summary}\n--- first ---\n{first.Output}\n--- second ---\n{second.Output}");
            foreach (var run in runs)
            {
                var seqs = run.Select(s => s.Seq).ToHashSet();
                var missing = Enumerable.Range(1, (int)seqs.Max()).Where(i => !seqs.Contains(i)).ToList();
                Assert.True(missing.Count == 0, $"run {run.Key.Run} node {run.Key.Node}: missing {string.Join(",", missing.Take(20))} of 1..{seqs.Max()}");
            }

            Assert.True(runs.Sum(r => r.Select(s => s.Seq).Distinct().Count()) > 2 * nodes * 30, "the outage window held samples");

            // Both runs of the native agent sent the node's boot id, the same one (an agent restart is not a reboot); the
            // simulated fleet sends none.
            Assert.All(runs.Select(r => r.Key.Run).Distinct(), run => Assert.Equal(native ? FixtureBootId : null, BootIds[run]));
        }
        finally
        {
            if (stopped)
            {
                await RabbitAdmin.RunAsync("start_app");
            }

            await bus.StopAsync();
            await RabbitAdmin.DeleteVirtualHostAsync(vhost);
            Directory.Delete(spool, recursive: true);
            File.Delete(kmsg);
            File.Delete($"{kmsg}.state");
            File.Delete($"{kmsg}.boot_id");
        }
    }

    [Fact]
    public async Task Broker_blocking_publishers_memory_alarm_spools_and_drains_with_no_sequence_lost()
    {
        // A memory alarm (vm_memory_high_watermark 0) makes RabbitMQ block every publishing connection: the TCP socket
        // stops being read, publishes hang, no error comes back. The agent must notice (connection.blocked, confirm timeout),
        // spool, and replay once the alarm clears.
        var vhost = await RabbitAdmin.CreateVirtualHostAsync("fw-block");
        var spool = Directory.CreateTempSubdirectory("fw-block-").FullName;
        var kmsg = Path.Combine(spool, "..", $"{Path.GetFileName(spool)}.kmsg");
        var seen = new ConcurrentBag<(string Run, string Node, long Seq)>();
        var bus = await StartSinkAsync(vhost, seen);
        var alarm = false;
        try
        {
            await using var agent = FleetWatchProcess.StartNativeAgent([.. NativeAgentArgs(vhost, spool, kmsg), "--FleetWatch:Bus:RabbitMq:ConfirmTimeout=00:00:01"]);
            await Wait.UntilAsync(() => seen.Count >= 10, TimeSpan.FromSeconds(60), "samples flowing", () => agent.Output);

            await RabbitAdmin.RunAsync("set_vm_memory_high_watermark", "0");
            alarm = true;
            await Wait.UntilAsync(() => Directory.GetFiles(spool, "*.jsonl").Length > 0, TimeSpan.FromSeconds(60), "the agent spooling while blocked", () => agent.Output);
            await Task.Delay(TimeSpan.FromSeconds(5));
            await RabbitAdmin.RunAsync("set_vm_memory_high_watermark", "0.4");
            alarm = false;

            await Wait.UntilAsync(() => Directory.GetFiles(spool, "*.jsonl").Length == 0, TimeSpan.FromSeconds(120), "spool drained", () => agent.Output);
            await agent.TerminateAsync(TimeSpan.FromSeconds(30));
            await Wait.UntilAsync(() => Complete(seen, 1), TimeSpan.FromSeconds(60), "every sequence number at the sink", () => agent.Output);
            Assert.Contains("RabbitMQ blocks publishing", agent.Output);
            Assert.True(seen.Select(x => x.Seq).Distinct().Count() > 25, "the blocked window held samples"); // ≥ 5 s at a 200 ms tick
        }
        finally
        {
            if (alarm)
            {
                await RabbitAdmin.RunAsync("set_vm_memory_high_watermark", "0.4");
            }

            await bus.StopAsync();
            await RabbitAdmin.DeleteVirtualHostAsync(vhost);
            Directory.Delete(spool, recursive: true);
            File.Delete(kmsg);
            File.Delete($"{kmsg}.state");
            File.Delete($"{kmsg}.boot_id");
        }
    }

    /// <summary>A MassTransit consumer of <see cref="NodeSample"/> on its own queue: what the controller would receive.</summary>
    private static async Task<IBusControl> StartSinkAsync(string vhost, ConcurrentBag<(string Run, string Node, long Seq)> seen)
    {
        var bus = MassTransit.Bus.Factory.CreateUsingRabbitMq(cfg =>
        {
            cfg.Host(Services.RabbitHost, (ushort)Services.RabbitPort, vhost, h =>
            {
                h.Username("guest");
                h.Password("guest");
            });
            cfg.ReceiveEndpoint("spool-test-sink", e => e.Consumer(() => new Sink(seen)));
        });
        await bus.StartAsync();
        return bus;
    }

    private static string[] CommonArgs(string vhost, string spool) =>
    [
        "--urls", "http://127.0.0.1:0", .. Services.RabbitArgs(vhost),
        "--FleetWatch:Agent:Tick=00:00:00.200", $"--FleetWatch:Agent:Spool:Path={spool}",
        "--FleetWatch:Agent:Spool:PublishTimeout=00:00:01", "--FleetWatch:Agent:Spool:RetryInterval=00:00:00.500",
    ];

    /// <summary>The Native AOT agent on one node: fake NVML, the ConnectX-7 sysfs fixture, a kmsg file (written here).</summary>
    private static string[] NativeAgentArgs(string vhost, string spool, string kmsg)
    {
        if (!File.Exists(kmsg))
        {
            File.WriteAllText(kmsg, "6,1,1000,-;Linux version 6.1.0 (fixture)\n");
            File.WriteAllText($"{kmsg}.boot_id", FixtureBootId + "\n");
        }

        return
        [
            .. CommonArgs(vhost, spool), "--FleetWatch:Agent:NodeName=spool-node", "--FleetWatch:Agent:Steps:Enabled=false",
            "--FleetWatch:Bus:RabbitMq:ReconnectInterval=00:00:00.500",
            $"--FleetWatch:Nvml:LibraryPath={Path.Combine(AppContext.BaseDirectory, "native", "libnvidia-ml.so.1")}",
            $"--FleetWatch:Agent:Infiniband:Root={Path.Combine(Repo.Root, "tests", "FleetWatch.Agent.Tests", "Fixtures", "infiniband", "cx7")}",
            $"--FleetWatch:Agent:Kmsg:Path={kmsg}", $"--FleetWatch:Agent:Kmsg:StatePath={kmsg}.state", $"--FleetWatch:Agent:Kmsg:BootIdPath={kmsg}.boot_id",
        ];
    }

    /// <summary>Every agent run × node seen, each with every sequence number from 1 to its highest.</summary>
    private static bool Complete(ConcurrentBag<(string Run, string Node, long Seq)> seen, int expected)
    {
        var groups = seen.ToArray().GroupBy(s => (s.Run, s.Node)).ToList();
        return groups.Count == expected && groups.All(g => g.Select(s => s.Seq).Distinct().Count() == g.Max(s => s.Seq));
    }

    private static async Task WaitQuietAsync(ConcurrentBag<(string, string, long)> seen)
    {
        var last = -1;
        while (seen.Count != last)
        {
            last = seen.Count;
            await Task.Delay(1500);
        }
    }
}
