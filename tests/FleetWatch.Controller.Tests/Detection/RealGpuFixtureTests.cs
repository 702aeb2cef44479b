using System.Text.Json;
using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;

namespace FleetWatch.Controller.Tests.Detection;

/// <summary>
/// A reading of a real NVIDIA H200 (driver 580.159.04) taken with the agent's NVML source (tools/NvmlProbe) on the
/// lent GPU machine; nvidia-smi's view of the same GPU is beside it. An idle, healthy GPU must raise nothing.
/// </summary>
public sealed class RealGpuFixtureTests
{
    private static string Fixture(string name)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "FleetWatch.sln")))
        {
            dir = dir.Parent;
        }

        return Path.Combine(dir?.FullName ?? throw new InvalidOperationException("FleetWatch.sln not found"), "tests", "FleetWatch.Agent.Tests", "Fixtures", "nvml", name);
    }

    [Fact]
    public void Real_h200_reading_matches_nvidia_smi_and_raises_no_finding()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixture("h200-nvml-probe.json")));
        var gpus = doc.RootElement.GetProperty("Gpus").Deserialize<List<GpuSample>>()!;
        var gpu = Assert.Single(gpus);
        var smi = File.ReadAllLines(Fixture("h200-nvidia-smi.csv"))[1].Split(", ");

        Assert.Equal(smi[1], gpu.Uuid);
        Assert.Equal(smi[2], gpu.PciBusId);
        Assert.Equal(int.Parse(smi[3], System.Globalization.CultureInfo.InvariantCulture), gpu.TemperatureC);
        Assert.Equal(double.Parse(smi[4].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture), gpu.PowerW!.Value, 0.5);
        Assert.Equal(0, doc.RootElement.GetProperty("errors").GetInt32());

        var sample = new NodeSample { Node = "h200", Sequence = 2, Time = DateTimeOffset.UnixEpoch, Gpus = gpus };
        var output = new List<Finding>();
        SampleDetectors.Evaluate(sample with { Sequence = 1 }, sample, new DetectionOptions(), output);
        Assert.DoesNotContain(output, f => f.Active);
    }
}
