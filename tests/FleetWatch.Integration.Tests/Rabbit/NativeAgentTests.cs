using System.Text.RegularExpressions;
using FleetWatch.Integration.Tests.Support;

namespace FleetWatch.Integration.Tests.Rabbit;

/// <summary>
/// The shipped Native AOT <c>fleetwatch-agent</c>: configuration binding (source-generated), validation (data annotations
/// without the JIT) and the HTTP surface work in the compiled binary as they do in the JIT-compiled host, and the shipped
/// configuration file starts it.
/// </summary>
[Collection("rabbitmq")]
public sealed partial class NativeAgentTests
{
    [Theory]
    [InlineData("--FleetWatch:Agent:Tick=00:00:00.001", "FleetWatch:Agent:Tick = '00:00:00.0010000': The field Tick must be between 00:00:00.050 and 00:10:00.")]
    [InlineData("--FleetWatch:Agent:Spool:MaxBytes=12", "FleetWatch:Agent:Spool:MaxBytes = '12'")]
    [InlineData("--FleetWatch:Bus:RabbitMq:Port=70000", "FleetWatch:Bus:RabbitMq:Port = '70000'")]
    [InlineData("--FleetWatch:Agent:Steps:ListenAddress=0.0.0.0", "FleetWatch:Agent:Steps:ListenAddress = '0.0.0.0': must be a loopback address")]
    [InlineData("--FleetWatch:Simulation:Enabled=true", "FleetWatch:Simulation:Enabled = 'true'")]
    [InlineData("--FleetWatch:Bus:Transport=InMemory", "FleetWatch:Bus:Transport = 'InMemory'")]
    [InlineData("--FleetWatch:Agent:Tick=soon", "FleetWatch:Agent:Tick")]
    public async Task Bad_setting_exits_2_naming_key_and_value(string setting, string expected)
    {
        var dir = Directory.CreateTempSubdirectory("fw-native-bad-");
        try
        {
            await using var agent = FleetWatchProcess.StartNativeAgent(
                "--urls", "http://127.0.0.1:0", $"--FleetWatch:Agent:Spool:Path={Path.Combine(dir.FullName, "spool")}",
                $"--FleetWatch:Agent:Kmsg:StatePath={Path.Combine(dir.FullName, "kmsg.state")}", "--FleetWatch:Agent:Steps:Port=0", setting);
            await agent.WaitForExitAsync(TimeSpan.FromSeconds(30));

            Assert.True(agent.ExitCode == 2, $"exit {agent.ExitCode}\n{agent.Output}");
            Assert.Contains("fleetwatch-agent: configuration error:", agent.Output);
            Assert.Contains(expected, agent.Output);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Shipped_config_starts_under_memory_deny_write_execute_reads_the_fake_gpus_and_stops_cleanly_on_sigterm()
    {
        var vhost = await RabbitAdmin.CreateVirtualHostAsync("fw-native");
        var dir = Directory.CreateTempSubdirectory("fw-native-");
        try
        {
            var kmsg = Path.Combine(dir.FullName, "kmsg");
            await File.WriteAllTextAsync(kmsg, "6,1,1000,-;Linux version 6.1.0 (fixture)\n");
            // deploy/config/agent.json as shipped; only what points at this machine instead of a GPU node is overridden. Under
            // Memory-Deny-Write-Execute, as the systemd unit runs it.
            await using var agent = FleetWatchProcess.StartNativeAgentWithoutWriteExecute(
            [
                "--config", Path.Combine(Repo.Root, "deploy", "config", "agent.json"),
                "--urls", "http://127.0.0.1:0", .. Services.RabbitArgs(vhost),
                "--FleetWatch:Bus:RabbitMq:Username=guest", "--FleetWatch:Bus:RabbitMq:Password=guest",
                "--FleetWatch:Agent:NodeName=native-node",
                $"--FleetWatch:Nvml:LibraryPath={Path.Combine(AppContext.BaseDirectory, "native", "libnvidia-ml.so.1")}",
                $"--FleetWatch:Agent:Infiniband:Root={Path.Combine(Repo.Root, "tests", "FleetWatch.Agent.Tests", "Fixtures", "infiniband", "cx7")}",
                $"--FleetWatch:Agent:Kmsg:Path={kmsg}", $"--FleetWatch:Agent:Kmsg:StatePath={Path.Combine(dir.FullName, "kmsg.state")}",
                "--FleetWatch:Agent:Kmsg:BootIdPath=", $"--FleetWatch:Agent:Spool:Path={Path.Combine(dir.FullName, "spool")}",
                "--FleetWatch:Agent:Steps:Port=0",
            ]);
            await Wait.UntilAsync(() => ListeningOn().IsMatch(agent.Output) || agent.HasExited, TimeSpan.FromSeconds(30), "agent listening", () => agent.Output);
            Assert.False(agent.HasExited, agent.Output);
            using var http = new HttpClient { BaseAddress = new Uri(ListeningOn().Match(agent.Output).Groups[1].Value) };

            await Wait.UntilAsync(() => http.GetAsync("/healthz/ready").Result.IsSuccessStatusCode, TimeSpan.FromSeconds(30), "ready", () => agent.Output);
            // Ready means a sample was taken; its publish (confirmed by the broker) may still be in flight.
            await Wait.UntilAsync(() => Published().IsMatch(http.GetStringAsync("/metrics").Result), TimeSpan.FromSeconds(30), "a sample published", () => agent.Output);
            var metrics = await http.GetStringAsync("/metrics");
            Assert.Contains("DCGM_FI_DEV_GPU_TEMP{gpu=\"0\",UUID=\"GPU-fa4e0000-0000-0000-0000-000000000000\"", metrics);
            Assert.Contains("fleetwatch_agent_spool_pending 0", metrics);
            Assert.Equal("Healthy", await http.GetStringAsync("/healthz"));
            Assert.Equal("live", await http.GetStringAsync("/healthz/live"));

            // The step endpoint (its own loopback port): a report is taken, a bad one refused with the field named.
            using var steps = new HttpClient { BaseAddress = new Uri(StepsOn().Match(agent.Output).Groups[1].Value) };
            using (var ok = await steps.PostAsync("/v1/steps", Json("""{"job":"j","rank":0,"step":1,"gpu":0,"duration_ms":950}""")))
            {
                Assert.Equal(System.Net.HttpStatusCode.Accepted, ok.StatusCode);
                Assert.Equal("""{"accepted":1}""", await ok.Content.ReadAsStringAsync());
            }

            using (var bad = await steps.PostAsync("/v1/steps", Json("""{"job":"j","rank":-1,"step":1,"gpu":0,"duration_ms":950}""")))
            {
                Assert.Equal(System.Net.HttpStatusCode.BadRequest, bad.StatusCode);
                Assert.Contains("rank", await bad.Content.ReadAsStringAsync());
            }

            Assert.Contains("\"accepted\":1", await steps.GetStringAsync("/v1/steps/status"));

            await agent.TerminateAsync(TimeSpan.FromSeconds(30));
            Assert.True(agent.ExitCode == 0, $"exit {agent.ExitCode}\n{agent.Output}");
        }
        finally
        {
            dir.Delete(recursive: true);
            await RabbitAdmin.DeleteVirtualHostAsync(vhost);
        }
    }

    [Fact]
    public async Task Memory_deny_write_execute_is_enforced_a_jit_runtime_cannot_run_under_it()
    {
        // The control for the test above: the same wrapper stops the JIT-compiled CLI (the JIT needs memory that is written,
        // then executed), so an agent that runs under it really runs without writable-executable memory.
        var dotnet = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, "dotnet")).First(File.Exists);
        await using var cli = FleetWatchProcess.StartProgram(Path.Combine(AppContext.BaseDirectory, "native", "mdwe_exec"),
            [Path.GetFullPath(dotnet), Path.Combine(AppContext.BaseDirectory, "fleetwatch.dll"), "--help"]);
        await cli.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.True(cli.ExitCode is not 0 and not 3 and not 4, $"exit {cli.ExitCode} (3: kernel without PR_SET_MDWE)\n{cli.Output}");
    }

    private static StringContent Json(string body) => new(body, System.Text.Encoding.UTF8, "application/json");

    [GeneratedRegex(@"FleetWatch Agent listening on (http://\S+)")]
    private static partial Regex ListeningOn();

    [GeneratedRegex(@"fleetwatch_agent_samples_published_total [1-9]")]
    private static partial Regex Published();

    [GeneratedRegex(@"Step endpoint listening on (http://\S+)")]
    private static partial Regex StepsOn();
}
