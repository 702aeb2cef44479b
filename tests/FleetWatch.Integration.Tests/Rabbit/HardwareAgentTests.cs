using FleetWatch.Integration.Tests.Support;

namespace FleetWatch.Integration.Tests.Rabbit;

/// <summary>
/// The agent in hardware mode: the real NVML P/Invoke path (fake libnvidia-ml.so.1), the kmsg watcher on a
/// kmsg-format file, IB sysfs from a fixture tree; through the real RabbitMQ to the controller and a webhook. Run twice:
/// as the shipped Native AOT <c>fleetwatch-agent</c> and as <c>fleetwatch agent</c> (the same host, JIT-compiled); both
/// publish with the RabbitMQ client in MassTransit's envelope, which the controller's MassTransit consumers must accept.
/// </summary>
[Collection("rabbitmq")]
public sealed class HardwareAgentTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Kernel_log_xid79_by_pci_id_becomes_an_alert_on_the_right_gpu(bool native)
    {
        var vhost = await RabbitAdmin.CreateVirtualHostAsync("fw-hw");
        var dir = Directory.CreateTempSubdirectory("fw-hw-");
        try
        {
            var kmsg = Path.Combine(dir.FullName, "kmsg");
            await File.WriteAllTextAsync(kmsg, "6,100,1000,-;Linux version 6.1.0 (fixture)\n");
            await using var receiver = await LoopbackReceiver.StartAsync();
            await using var controller = FleetWatchProcess.Start(
            [
                "controller", "--urls", "http://127.0.0.1:0", .. Services.RabbitArgs(vhost),
                "--FleetWatch:Alerting:Webhooks:0:Name=oncall", $"--FleetWatch:Alerting:Webhooks:0:Url={receiver.Url("/hook")}",
            ]);
            string[] agentArgs =
            [
                "--urls", "http://127.0.0.1:0", .. Services.RabbitArgs(vhost),
                "--FleetWatch:Agent:NodeName=hw-node-1",
                $"--FleetWatch:Nvml:LibraryPath={Path.Combine(AppContext.BaseDirectory, "native", "libnvidia-ml.so.1")}",
                $"--FleetWatch:Agent:Infiniband:Root={Path.Combine(Repo.Root, "tests", "FleetWatch.Agent.Tests", "Fixtures", "infiniband", "cx7")}",
                $"--FleetWatch:Agent:Kmsg:Path={kmsg}",
                $"--FleetWatch:Agent:Kmsg:StatePath={Path.Combine(dir.FullName, "kmsg.state")}",
                "--FleetWatch:Agent:Kmsg:BootIdPath=",
                $"--FleetWatch:Agent:Spool:Path={Path.Combine(dir.FullName, "spool")}",
                "--FleetWatch:Agent:Steps:Port=0",
            ];
            await using var agent = native ? FleetWatchProcess.StartNativeAgent(agentArgs) : FleetWatchProcess.Start(["agent", .. agentArgs]);
            string Logs() => $"\n--- controller ---\n{controller.Output}\n--- agent ---\n{agent.Output}";
            await using var connection = await RabbitAdmin.ConnectAsync(vhost);
            await Wait.UntilAsync(() => RabbitAdmin.ReadyAsync(connection, "fleetwatch-xid").Result >= 0, TimeSpan.FromSeconds(60), "controller queues", Logs);
            await Task.Delay(TimeSpan.FromSeconds(4)); // NVML read at least once: the PCI → GPU map is known

            // The fake NVML puts GPU 2 at PCI 00000000:38:00.0; the kernel names it by PCI id only.
            await File.AppendAllTextAsync(kmsg, "3,101,2000,-;NVRM: Xid (PCI:0000:38:00): 79, pid=1234, name=python, GPU has fallen off the bus.\n");

            await Wait.UntilAsync(() => receiver.Posts.Any(p => Label(p.Json, "category") == "gpu_fell_off_bus"), TimeSpan.FromSeconds(30), "Xid 79 alert", Logs);
            var post = receiver.Posts.First(p => Label(p.Json, "category") == "gpu_fell_off_bus").Json;
            Assert.Equal("hw-node-1", Label(post, "node"));
            Assert.Equal("2", Label(post, "gpu"));
            Assert.DoesNotContain(receiver.Posts, p => Label(p.Json, "category") == "ib_link_down"); // the cx7 fixture ports are ACTIVE

            // The agent's own surface: readiness, and /metrics with dcgm-exporter names from the real NVML path.
            var url = System.Text.RegularExpressions.Regex.Match(agent.Output, @"FleetWatch Agent listening on (http://\S+)").Groups[1].Value;
            using var http = new HttpClient { BaseAddress = new Uri(url) };
            Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync("/healthz/ready")).StatusCode);
            var metrics = await http.GetStringAsync("/metrics");
            Assert.Contains("DCGM_FI_DEV_GPU_TEMP{gpu=\"2\",UUID=\"GPU-fa4e0000-0000-0000-0000-000000000002\"", metrics);
            Assert.Contains("DCGM_FI_DEV_XID_ERRORS{gpu=\"2\"", metrics);
            Assert.Matches(@"DCGM_FI_DEV_XID_ERRORS\{gpu=""2""[^}]*\} 79", metrics);
            Assert.Matches(@"fleetwatch_ib_port_active\{device=""mlx5_0"",port=""1""[^}]*\} 1", metrics);
            Assert.Contains("fleetwatch_agent_kmsg_events_total 1", metrics);
        }
        finally
        {
            dir.Delete(recursive: true);
            await RabbitAdmin.DeleteVirtualHostAsync(vhost);
        }
    }

    private static string? Label(System.Text.Json.JsonElement body, string name) =>
        body.GetProperty("alerts")[0].GetProperty("labels").TryGetProperty(name, out var v) ? v.GetString() : null;
}
