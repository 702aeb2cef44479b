using FleetWatch.Agent.Sources.Nvml;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace FleetWatch.Agent.Tests.Nvml;

/// <summary>
/// Rules 14, 21 and 35 read through the real P/Invoke path against the fake libnvidia-ml.so.1: the unrepairable-memory flag,
/// the GPU fabric info (state, status, health mask, summary) and InfoROM validation, including NOT_SUPPORTED (null, never a
/// fault). Same collection as <see cref="NvmlGpuSourceTests"/>: the fake's script is process-wide.
/// </summary>
[Collection("nvml")]
public sealed class NvmlHealthReadTests
{
    // nvml.h healthMask fields (2 bits each; 1 true, 2 false), incorrect configuration at bit 8 (1 none). The fake's values.
    private const long HealthyMask = 2 | 2 << 2 | 2 << 4 | 2 << 6 | 1 << 8;
    private const long DegradedRouteUnhealthyMask = 1 | 2 << 2 | 1 << 4 | 2 << 6 | 1 << 8;

    private static NvmlGpuSource NewSource(FakeTimeProvider? time = null, TimeSpan? inforomInterval = null)
    {
        FakeNvml.Reset();
        return new NvmlGpuSource(Options.Create(new NvmlOptions
        {
            LibraryPath = FakeNvml.Path,
            InforomValidationInterval = inforomInterval ?? TimeSpan.FromMinutes(1),
        }), time ?? new FakeTimeProvider());
    }

    [Fact]
    public void Fabric_struct_versions_match_nvml_h()
    {
        // nvml.h: #define nvmlGpuFabricInfo_v2 0x02000024, nvmlGpuFabricInfo_v3 0x3000028 (40-byte struct, C padding).
        Assert.Equal(0x3000028u, NvmlGpuFabricInfo.Version3);
        Assert.Equal(0x2000024u, NvmlGpuFabricInfo.Version2);
    }

    [Fact]
    public void Healthy_defaults_are_read_as_values_not_nulls()
    {
        using var source = NewSource();

        var gpus = source.Read(CancellationToken.None).Gpus;

        Assert.All(gpus, g =>
        {
            Assert.Equal((false, true), (g.UnrepairableMemory, g.InforomValid));
            Assert.Equal((3, 0, HealthyMask, 1), (g.FabricState, g.FabricStatus, g.FabricHealthMask, g.FabricHealthSummary));
        });
        Assert.Equal(0, source.Errors);
    }

    public static TheoryData<string, string, long, Action<FleetWatch.Contracts.GpuSample>> Faults => new()
    {
        { "corrupt InfoROM", "inforom", 1, g => Assert.False(g.InforomValid) },
        { "unrepairable memory", "unrepairable", 1, g => Assert.True(g.UnrepairableMemory) },
        { "degraded bandwidth, route unhealthy", "fabric", 1, g => Assert.Equal((3, DegradedRouteUnhealthyMask, 2), (g.FabricState, g.FabricHealthMask, g.FabricHealthSummary)) },
        { "fabric registration in progress", "fabric", 3, g => Assert.Equal(2, g.FabricState) },
        { "fabric registration failed", "fabric", 5, g => Assert.Equal((3, 999), (g.FabricState, g.FabricStatus)) },
    };

    [Theory]
    [MemberData(nameof(Faults))]
    public void A_fault_on_one_gpu_is_read_on_that_gpu_only(string name, string key, long value, Action<FleetWatch.Contracts.GpuSample> check)
    {
        using var source = NewSource();
        FakeNvml.Set("health_gpu", 5);
        FakeNvml.Set(key, value);

        var gpus = source.Read(CancellationToken.None).Gpus;

        check(gpus[5]);
        Assert.All(gpus.Where(g => g.Index != 5), g => Assert.Equal((false, true, 3, 1), (g.UnrepairableMemory, g.InforomValid, g.FabricState, g.FabricHealthSummary)));
        Assert.True(source.Errors == 0, name); // a corrupt InfoROM is a reading, not an NVML error
    }

    [Theory]
    [InlineData("inforom", 2)]
    [InlineData("unrepairable", 2)]
    [InlineData("fabric", 2)] // NOT_SUPPORTED returned: no NVSwitch fabric (PCIe card, H200 NVL)
    [InlineData("fabric", 4)] // call succeeds, state NVML_GPU_FABRIC_STATE_NOT_SUPPORTED
    public void Not_supported_is_null_and_not_an_error(string key, long value)
    {
        using var source = NewSource();
        FakeNvml.Set(key, value);

        var gpu = source.Read(CancellationToken.None).Gpus[0];

        switch (key)
        {
            case "inforom":
                Assert.Null(gpu.InforomValid);
                break;
            case "unrepairable":
                Assert.Null(gpu.UnrepairableMemory);
                break;
            default:
                Assert.Equal((null, null, null, null), (gpu.FabricState, gpu.FabricStatus, gpu.FabricHealthMask, gpu.FabricHealthSummary));
                break;
        }

        Assert.Equal(0, source.Errors);
        Assert.False(gpu.Lost);
    }

    [Fact]
    public void Driver_with_fabric_info_v2_only_gives_the_mask_without_a_summary()
    {
        using var source = NewSource();
        FakeNvml.Set("fabric_v2_only", 1);
        FakeNvml.Set("fabric", 1);

        var first = source.Read(CancellationToken.None).Gpus[0];
        var second = source.Read(CancellationToken.None).Gpus[0];

        foreach (var gpu in new[] { first, second })
        {
            Assert.Equal((3, DegradedRouteUnhealthyMask), (gpu.FabricState, gpu.FabricHealthMask));
            Assert.Null(gpu.FabricHealthSummary);
        }

        Assert.Equal(0, source.Errors);
    }

    [Fact]
    public void Inforom_is_validated_once_per_interval_and_the_verdict_repeats_in_between()
    {
        var time = new FakeTimeProvider();
        using var source = NewSource(time);

        Assert.All(source.Read(CancellationToken.None).Gpus, g => Assert.True(g.InforomValid));
        Assert.Equal(8, FakeNvml.InforomCalls);

        // Corrupted after the validation: the next reads within the minute repeat "valid" without touching the flash.
        FakeNvml.Set("inforom", 1);
        time.Advance(TimeSpan.FromSeconds(59));
        Assert.All(source.Read(CancellationToken.None).Gpus, g => Assert.True(g.InforomValid));
        Assert.Equal(8, FakeNvml.InforomCalls);

        time.Advance(TimeSpan.FromSeconds(1));
        Assert.All(source.Read(CancellationToken.None).Gpus, g => Assert.False(g.InforomValid));
        Assert.Equal(16, FakeNvml.InforomCalls);
    }

    [Fact]
    public void A_lost_gpu_is_validated_again_when_it_comes_back()
    {
        var time = new FakeTimeProvider();
        using var source = NewSource(time);
        FakeNvml.Set("count", 2);
        source.Read(CancellationToken.None);
        FakeNvml.Set("lost_index", 1);

        var lost = source.Read(CancellationToken.None).Gpus[1];
        Assert.True(lost.Lost);
        Assert.Null(lost.InforomValid); // only identity is known while lost

        FakeNvml.Set("lost_index", -1);
        var calls = FakeNvml.InforomCalls;
        Assert.True(source.Read(CancellationToken.None).Gpus[1].InforomValid);
        Assert.Equal(calls + 1, FakeNvml.InforomCalls); // GPU 1 again at once; GPU 0 still within its minute
    }
}
