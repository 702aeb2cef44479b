using FleetWatch.Cli.Hosting;
using Microsoft.Extensions.Options;

namespace FleetWatch.Integration.Tests.Component;

/// <summary>Bad configuration fails at start, naming the key and the value.</summary>
public sealed class ConfigurationTests
{
    [Theory]
    [InlineData("--FleetWatch:Agent:Tick=00:00:00.001", "FleetWatch:Agent:Tick", "00:00:00.001")]
    [InlineData("--FleetWatch:Simulation:Nodes=0", "FleetWatch:Simulation:Nodes", "0")]
    [InlineData("--FleetWatch:Detection:NodeSilentAfter=00:00:05", "FleetWatch:Detection:NodeSilentAfter", "00:00:05")]
    [InlineData("--FleetWatch:Alerting:Webhooks:0:Url=not-a-url", "FleetWatch:Alerting:Webhooks:0:Url", "not-a-url")]
    public async Task Invalid_option_fails_start_with_key_and_value(string arg, string key, string value)
    {
        var args = new List<string> { "--urls", "http://127.0.0.1:0", "--FleetWatch:Simulation:DemoFaults=false", arg };
        if (arg.Contains("Webhooks", StringComparison.Ordinal))
        {
            args.Add("--FleetWatch:Alerting:Webhooks:0:Name=x");
        }

        await using var app = FleetWatchHost.Build(Role.AllInOne, [.. args]);
        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());

        Assert.Contains(key, ex.Message);
        Assert.Contains($"'{value}", ex.Message);
    }

    [Fact]
    public void Unknown_transport_names_key_and_value()
    {
        var ex = Assert.ThrowsAny<InvalidOperationException>(() => FleetWatchHost.Build(Role.Controller, ["--FleetWatch:Bus:Transport=Kafka"]));

        Assert.Contains("FleetWatch:Bus:Transport", ex.Message);
        Assert.Contains("Kafka", ex.Message);
    }

    [Fact]
    public async Task Cli_reports_configuration_errors_with_exit_code_2()
    {
        var stderr = new StringWriter();
        var code = await FleetWatch.Cli.Verbs.RunAsync(["controller", "--FleetWatch:Bus:Transport=Kafka"], TextWriter.Null, stderr);

        Assert.Equal(2, code);
        Assert.Contains("FleetWatch:Bus:Transport", stderr.ToString());
    }
}
