using System.Text;
using FleetWatch.Contracts;
using FleetWatch.Integration.Tests.Support;
using MassTransit;
using RabbitMQ.Client;

namespace FleetWatch.Integration.Tests.Rabbit;

/// <summary>
/// Integration tier: agent and controller as separate processes through the real RabbitMQ (started by
/// scripts/test.sh), alerts to a real loopback webhook receiver.
/// </summary>
[Collection("rabbitmq")]
public sealed class RabbitSpineTests
{
    [Fact]
    public async Task Faults_travel_agent_to_rabbitmq_to_controller_to_webhook_and_bad_messages_go_to_the_error_queue()
    {
        var vhost = await RabbitAdmin.CreateVirtualHostAsync("fw-spine");
        try
        {
            await using var receiver = await LoopbackReceiver.StartAsync();
            await using var controller = FleetWatchProcess.Start(
            [
                "controller", "--urls", "http://127.0.0.1:0", .. Services.RabbitArgs(vhost),
                "--FleetWatch:Detection:NodeUnknownAfter=00:00:02", "--FleetWatch:Detection:NodeSilentAfter=00:00:04",
                "--FleetWatch:Alerting:Webhooks:0:Name=oncall", $"--FleetWatch:Alerting:Webhooks:0:Url={receiver.Url("/hook")}",
            ]);
            await using var agent = FleetWatchProcess.Start(
            [
                "agent", "--urls", "http://127.0.0.1:0", .. Services.RabbitArgs(vhost),
                "--FleetWatch:Simulation:Enabled=true", "--FleetWatch:Simulation:Nodes=4", "--FleetWatch:Simulation:DemoFaults=false",
                $"--FleetWatch:Agent:Spool:Path={Path.Combine(Path.GetTempPath(), vhost)}",
            ]);
            string Logs() => $"\n--- controller ---\n{controller.Output}\n--- agent ---\n{agent.Output}";

            var bus = MassTransit.Bus.Factory.CreateUsingRabbitMq(cfg => cfg.Host(Services.RabbitHost, (ushort)Services.RabbitPort, vhost, h =>
            {
                h.Username("guest");
                h.Password("guest");
            }));
            await bus.StartAsync();
            try
            {
                await using var connection = await RabbitAdmin.ConnectAsync(vhost);
                // Wait until the controller consumes and the agent's command queue exists.
                await Wait.UntilAsync(() => RabbitAdmin.ReadyAsync(connection, "fleetwatch-telemetry").Result >= 0 && controller.Output.Length >= 0 && !agent.HasExited && !controller.HasExited,
                    TimeSpan.FromSeconds(60), "controller and agent up", Logs);
                await Task.Delay(TimeSpan.FromSeconds(4)); // a few samples: nodes are known and healthy

                await bus.Publish(new InjectSimulatedFault { Node = "gpu0002", Kind = SimulatedFaultKind.Xid, Gpu = 3, Xid = 79 });
                await Wait.UntilAsync(() => HasPost(receiver, "gpu0002", "gpu_fell_off_bus"), TimeSpan.FromSeconds(30), "Xid 79 alert", Logs);

                // Node silence is found by the Quartz sweep on the controller.
                await bus.Publish(new InjectSimulatedFault { Node = "gpu0001", Kind = SimulatedFaultKind.NodeSilent, For = TimeSpan.FromMinutes(5) });
                await Wait.UntilAsync(() => HasPost(receiver, "gpu0001", "node_silent"), TimeSpan.FromSeconds(30), "node silent alert", Logs);

                // Bad input: garbage bytes and a sample that parses but lies. Both land in the error queue.
                await using (var channel = await connection.CreateChannelAsync())
                {
                    var props = new BasicProperties { ContentType = "application/vnd.masstransit+json", Persistent = true };
                    await channel.BasicPublishAsync("", "fleetwatch-telemetry", false, props, Encoding.UTF8.GetBytes("{ this is not json"));
                }

                await bus.Publish(new NodeSample
                {
                    Node = "gpu0003",
                    Sequence = 1,
                    AgentRun = "liar",
                    Time = DateTimeOffset.UtcNow,
                    Gpus = [new GpuSample { Index = 99, Uuid = "GPU-x" }],
                });
                await Wait.UntilAsync(() => RabbitAdmin.ReadyAsync(connection, "fleetwatch-telemetry_error").Result >= 2, TimeSpan.FromSeconds(30),
                    "two messages in fleetwatch-telemetry_error", Logs);

                // The consumer kept going: a new fault still gets through.
                await bus.Publish(new InjectSimulatedFault { Node = "gpu0003", Kind = SimulatedFaultKind.EccDbe, Gpu = 1, For = TimeSpan.FromSeconds(3) });
                await Wait.UntilAsync(() => HasPost(receiver, "gpu0003", "ecc_double_bit"), TimeSpan.FromSeconds(30), "DBE alert after bad input", Logs);
                Assert.False(controller.HasExited, Logs());
                Assert.Equal(1, receiver.Posts.Count(p => IsPost(p.Json, "gpu0002", "gpu_fell_off_bus")));

                // The samples came through the one-pass reader (the garbage through MassTransit's, into the error queue).
                var url = System.Text.RegularExpressions.Regex.Match(controller.Output, @"FleetWatch Controller listening on (http://\S+)").Groups[1].Value;
                using var http = new HttpClient { BaseAddress = new Uri(url) };
                var onePass = System.Text.RegularExpressions.Regex.Match(await http.GetStringAsync("/metrics"), @"fleetwatch_controller_samples_one_pass_total (\d+)");
                Assert.True(onePass.Success && long.Parse(onePass.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) > 10, $"one-pass samples: '{onePass.Value}'");
            }
            finally
            {
                await bus.StopAsync();
            }
        }
        finally
        {
            await RabbitAdmin.DeleteVirtualHostAsync(vhost);
        }
    }

    private static bool HasPost(LoopbackReceiver receiver, string node, string category) => receiver.Posts.Any(p => IsPost(p.Json, node, category));

    private static bool IsPost(System.Text.Json.JsonElement body, string node, string category)
    {
        var labels = body.GetProperty("alerts")[0].GetProperty("labels");
        return body.GetProperty("status").GetString() == "firing"
            && labels.GetProperty("node").GetString() == node
            && labels.GetProperty("category").GetString() == category;
    }
}
