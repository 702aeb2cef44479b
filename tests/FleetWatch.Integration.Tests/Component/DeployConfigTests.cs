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
        { "dashboard.json", Role.Dashboard },
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
    public async Task Systemd_unit_passes_systemd_analyze_verify()
    {
        var shipped = Path.Combine(Repo.Root, "deploy", "systemd", "fleetwatch-agent.service");
        var text = await File.ReadAllTextAsync(shipped);
        Assert.Contains("ExecStart=/opt/fleetwatch/fleetwatch-agent ", text);
        // systemd-analyze checks that ExecStart's program exists: the unit as shipped, pointing at the Native AOT agent built here.
        var dir = Directory.CreateTempSubdirectory("fw-unit-");
        var unit = Path.Combine(dir.FullName, "fleetwatch-agent.service");
        await File.WriteAllTextAsync(unit, text.Replace("/opt/fleetwatch/fleetwatch-agent", FleetWatchProcess.NativeAgentPath, StringComparison.Ordinal));
        var info = new System.Diagnostics.ProcessStartInfo("systemd-analyze", ["verify", unit]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = System.Diagnostics.Process.Start(info)!;
        var output = await p.StandardOutput.ReadToEndAsync() + await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        dir.Delete(recursive: true);

        // Any complaint about our unit (unknown key, bad value) fails; systemd's notes about other units do not.
        var ours = output.Split('\n').Where(l => l.Contains("fleetwatch-agent.service", StringComparison.Ordinal)).ToList();
        Assert.True(p.ExitCode == 0 && ours.Count == 0, $"systemd-analyze verify: exit {p.ExitCode}\n{output}");
        Assert.Contains("Type=notify", text);
        Assert.Contains("NoNewPrivileges=yes", text);
        Assert.Contains("MemoryDenyWriteExecute=yes", text); // backed by NativeAgentTests running the agent under PR_SET_MDWE
    }

    [Fact]
    public async Task DaemonSet_configmap_binds_and_validates()
    {
        var yaml = await File.ReadAllTextAsync(Path.Combine(Repo.Root, "deploy", "kubernetes", "fleetwatch-agent-daemonset.yaml"));
        // The ConfigMap's agent.json block: the indented lines after "agent.json: |" up to the document end.
        var lines = yaml.Split('\n');
        var start = Array.FindIndex(lines, l => l.TrimEnd() == "  agent.json: |") + 1;
        var json = string.Join('\n', lines.Skip(start).TakeWhile(l => l.StartsWith("    ", StringComparison.Ordinal)));
        var file = Path.Combine(Path.GetTempPath(), $"fw-daemonset-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(file, json);
        try
        {
            await using var app = FleetWatchHost.Build(Role.Agent, ["--config", file]);
            app.Services.GetRequiredService<IStartupValidator>().Validate();
            Assert.Contains("hostPath: { path: /dev/kmsg", yaml);
            Assert.Contains("tolerations:", yaml);
            Assert.Contains("limits: { cpu: 200m, memory: 256Mi }", yaml);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void Every_file_in_deploy_config_is_covered()
    {
        var shipped = Directory.GetFiles(Path.Combine(Repo.Root, "deploy", "config"), "*.json").Select(f => (string?)Path.GetFileName(f)).Order().ToList();
        var tested = Files.Select(row => (string?)row[0]).Order().ToList();

        Assert.Equal(shipped, tested);
    }
}
