using System.Collections.Concurrent;
using FleetWatch.Contracts;
using FleetWatch.Integration.Tests.Support;
using MassTransit;

namespace FleetWatch.Integration.Tests.Rabbit;

/// <summary>
/// Never lose a sample: RabbitMQ is stopped for 30 s (rabbitmqctl stop_app) while an agent publishes; the agent
/// is restarted during the outage with a non-empty spool; after start_app every sequence number of every agent
/// run arrives (duplicates allowed: the controller deduplicates by node and sequence number).
/// </summary>
[Collection("rabbitmq")]
public sealed class SpoolOutageTests
{
    private sealed class Sink(ConcurrentBag<(string Run, string Node, long Seq)> seen) : IConsumer<NodeSample>
    {
        public Task Consume(ConsumeContext<NodeSample> context)
        {
            seen.Add((context.Message.AgentRun ?? "", context.Message.Node, context.Message.Sequence));
            return Task.CompletedTask;
        }
    }

    [Fact]
    public async Task Broker_outage_and_agent_restart_lose_no_sequence_number()
    {
        var vhost = await RabbitAdmin.CreateVirtualHostAsync("fw-spool");
        var spool = Directory.CreateTempSubdirectory("fw-spool-").FullName;
        var seen = new ConcurrentBag<(string Run, string Node, long Seq)>();
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
        string[] AgentArgs() =>
        [
            "agent", "--urls", "http://127.0.0.1:0", .. Services.RabbitArgs(vhost),
            "--FleetWatch:Simulation:Enabled=true", "--FleetWatch:Simulation:Nodes=3", "--FleetWatch:Simulation:DemoFaults=false",
            "--FleetWatch:Agent:Tick=00:00:00.200", $"--FleetWatch:Agent:Spool:Path={spool}",
            "--FleetWatch:Agent:Spool:PublishTimeout=00:00:01", "--FleetWatch:Agent:Spool:RetryInterval=00:00:00.500",
        ];
        var stopped = false;
        try
        {
            await using var first = FleetWatchProcess.Start(AgentArgs());
            await Wait.UntilAsync(() => seen.Count >= 30, TimeSpan.FromSeconds(60), "samples flowing", () => first.Output);

            await RabbitAdmin.RunAsync("stop_app");
            stopped = true;
            var outageStart = DateTime.UtcNow;
            await Task.Delay(TimeSpan.FromSeconds(8));
            await first.TerminateAsync(TimeSpan.FromSeconds(60));
            var spooledFiles = Directory.GetFiles(spool, "*.jsonl");
            Assert.NotEmpty(spooledFiles); // restarted with a non-empty spool

            await using var second = FleetWatchProcess.Start(AgentArgs());
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
            await Wait.UntilAsync(() => Complete(seen), TimeSpan.FromSeconds(90), "every sequence number of both runs at the sink");
            await WaitQuietAsync(seen);

            var runs = seen.GroupBy(s => (s.Run, s.Node)).ToList();
            var summary = string.Join("; ", runs.Select(r => $"{r.Key.Run}/{r.Key.Node}: {r.Count()} msgs, max seq {r.Max(x => x.Seq)}"));
            Assert.True(runs.Count == 6, $"expected 2 agent runs × 3 nodes, got {summary}\n--- first ---\n{first.Output}\n--- second ---\n{second.Output}"); // 2 agent runs × 3 nodes
            foreach (var run in runs)
            {
                var seqs = run.Select(s => s.Seq).ToHashSet();
                var missing = Enumerable.Range(1, (int)seqs.Max()).Where(i => !seqs.Contains(i)).ToList();
                Assert.True(missing.Count == 0, $"run {run.Key.Run} node {run.Key.Node}: missing {string.Join(",", missing.Take(20))} of 1..{seqs.Max()}");
            }

            Assert.True(runs.Sum(r => r.Select(s => s.Seq).Distinct().Count()) > 6 * 30, "the outage window held samples");
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
        }
    }

    /// <summary>Two agent runs × three nodes, each with every sequence number from 1 to its highest.</summary>
    private static bool Complete(ConcurrentBag<(string Run, string Node, long Seq)> seen)
    {
        var groups = seen.ToArray().GroupBy(s => (s.Run, s.Node)).ToList();
        return groups.Count == 6 && groups.All(g => g.Select(s => s.Seq).Distinct().Count() == g.Max(s => s.Seq));
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
