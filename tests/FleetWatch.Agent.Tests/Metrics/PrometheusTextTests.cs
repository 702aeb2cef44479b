using System.Diagnostics;
using FleetWatch.Agent.Metrics;
using FleetWatch.Contracts;

namespace FleetWatch.Agent.Tests.Metrics;

public sealed class PrometheusTextTests
{
    private static NodeSample Sample() => new()
    {
        Node = "gpu-node-\"7\"",
        Sequence = 1,
        Time = DateTimeOffset.UnixEpoch,
        Gpus =
        [
            new GpuSample { Index = 0, Uuid = "GPU-a", PciBusId = "00000000:18:00.0", Name = "NVIDIA H100 80GB HBM3", TemperatureC = 41, PowerW = 612.5, EccUncorrectedVolatile = 2, RemapFailure = false, MemoryTotalMiB = 81559, MemoryUsedMiB = 60000,
                UnrepairableMemory = false, InforomValid = false, FabricState = 3, FabricStatus = 0, FabricHealthMask = 0x199, FabricHealthSummary = 2 },
            new GpuSample { Index = 1, Uuid = "GPU-b", Lost = true },
        ],
        NvLinks = [new NvLinkSample { GpuIndex = 0, Link = 0, Up = true, ReplayErrors = 3 }, new NvLinkSample { GpuIndex = 0, Link = 1, Up = true, ReplayErrors = 4 }],
        IbPorts = [new IbPortSample { Device = "mlx5_0", Port = 1, State = "4: ACTIVE", RateGbps = 400, Counters = new Dictionary<string, long> { ["symbol_error"] = 65535 }, SaturatedCounters = ["symbol_error"] }],
    };

    private static readonly AgentCounter[] Counters = [new("fleetwatch_agent_samples_published_total", "Samples published.", true, 12)];

    [Fact]
    public void Uses_dcgm_exporter_names_and_labels_and_skips_unknown_values()
    {
        var text = PrometheusText.Render(Sample(), new Dictionary<int, int> { [0] = 79 }, Counters);

        Assert.Contains("DCGM_FI_DEV_GPU_TEMP{gpu=\"0\",UUID=\"GPU-a\",pci_bus_id=\"00000000:18:00.0\",device=\"nvidia0\",modelName=\"NVIDIA H100 80GB HBM3\",Hostname=\"gpu-node-\\\"7\\\"\"} 41\n", text);
        Assert.Contains("DCGM_FI_DEV_POWER_USAGE{gpu=\"0\"", text);
        Assert.Contains("} 612.5\n", text);
        Assert.Contains("DCGM_FI_DEV_XID_ERRORS{gpu=\"0\"", text);
        Assert.Contains("DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL{gpu=\"0\"", text);
        Assert.Contains("} 7\n", text); // 3 + 4 summed per GPU
        Assert.DoesNotContain("DCGM_FI_DEV_GPU_TEMP{gpu=\"1\"", text); // lost GPU: no value, not 0
        Assert.Contains("fleetwatch_gpu_lost{gpu=\"1\"", text);
        Assert.Contains("fleetwatch_ib_port_sysfs_saturated{device=\"mlx5_0\",port=\"1\",Hostname=\"gpu-node-\\\"7\\\"\",counter=\"symbol_error\"} 1\n", text);
        Assert.Matches("DCGM_FI_DEV_INFOROM_CONFIG_VALID\\{gpu=\"0\"[^}]*\\} 0\n", text); // corrupt InfoROM
        Assert.Matches("DCGM_FI_DEV_MEMORY_UNREPAIRABLE_FLAG\\{gpu=\"0\"[^}]*\\} 0\n", text);
        Assert.Matches("DCGM_FI_DEV_FABRIC_HEALTH_MASK\\{gpu=\"0\"[^}]*\\} 409\n", text);
        Assert.Matches("fleetwatch_gpu_fabric_state\\{gpu=\"0\"[^}]*\\} 3\n", text);
        Assert.DoesNotContain("fleetwatch_gpu_fabric_health{gpu=\"1\"", text); // not read: absent, not 0
        Assert.Contains("# TYPE fleetwatch_agent_samples_published_total counter\nfleetwatch_agent_samples_published_total 12\n", text);
    }

    [Fact]
    public async Task Exposition_passes_promtool_check_metrics()
    {
        var text = PrometheusText.Render(Sample(), new Dictionary<int, int>(), Counters);
        var (code, output) = await Promtool.CheckAsync(text);

        Promtool.AssertClean(code, output, text);
    }
}

/// <summary>Runs Debian's promtool (package prometheus, installed by scripts/test.sh).</summary>
public static class Promtool
{
    public static async Task<(int Code, string Output)> CheckAsync(string exposition)
    {
        if (!File.Exists("/usr/bin/promtool"))
        {
            throw new InvalidOperationException("/usr/bin/promtool is missing: scripts/test.sh installs the Debian package 'prometheus'");
        }

        var info = new ProcessStartInfo("/usr/bin/promtool", ["check", "metrics"]) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(info)!;
        await p.StandardInput.WriteAsync(exposition);
        p.StandardInput.Close();
        var output = await p.StandardOutput.ReadToEndAsync() + await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, output);
    }

    /// <summary>
    /// Parses cleanly (promtool exits 1 on a parse error) and the only lint finding is the camelCase warning about
    /// dcgm-exporter's own label names (UUID, modelName, Hostname), kept on purpose so existing dashboards work.
    /// promtool 2.42 has no switch to turn single lint rules off, so the test reads its findings.
    /// </summary>
    public static void AssertClean(int code, string output, string input)
    {
        var findings = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var other = findings.Where(f => !f.EndsWith("label names should be written in 'snake_case' not 'camelCase'", StringComparison.Ordinal)).ToList();
        Assert.True(code is 0 or 3 && other.Count == 0, $"promtool check metrics: exit {code}\n{string.Join('\n', other)}\n--- input ---\n{input}");
    }
}
