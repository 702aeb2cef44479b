using FleetWatch.Cli.Hosting;
using FleetWatch.Integration.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace FleetWatch.Integration.Tests.Component;

/// <summary>Every shipped configuration file loads through the real binder and validators (STYLE.md rule 14).</summary>
public sealed class DeployConfigTests
{
    public static TheoryData<string, Role> Files => new()
    {
        { "controller.json", Role.Controller },
        { "agent.json", Role.Agent },
        { "loadgen-agent.json", Role.Agent },
    };

    [Theory]
    [MemberData(nameof(Files))]
    public async Task Shipped_config_binds_and_validates(string file, Role role)
    {
        var path = Path.Combine(Repo.Root, "deploy", "config", file);
        await using var app = FleetWatchHost.Build(role, ["--config", path]);

        // Runs every ValidateOnStart validator without starting the host (no broker needed).
        app.Services.GetRequiredService<IStartupValidator>().Validate();
    }

    [Fact]
    public void Every_file_in_deploy_config_is_covered()
    {
        var shipped = Directory.GetFiles(Path.Combine(Repo.Root, "deploy", "config"), "*.json").Select(f => (string?)Path.GetFileName(f)).Order().ToList();
        var tested = Files.Select(row => (string?)row[0]).Order().ToList();

        Assert.Equal(shipped, tested);
    }
}
