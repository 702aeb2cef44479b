using FleetWatch.Agent.Sources.Nvml;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Tests.Nvml;

/// <summary>The agent's real NVML P/Invoke path against the fake libnvidia-ml.so.1. The library state is process-wide: one class, run in order.</summary>
[Collection("nvml")]
public sealed class NvmlGpuSourceTests
{
    private static NvmlGpuSource NewSource(TimeSpan? timeout = null)
    {
        FakeNvml.Reset();
        return new NvmlGpuSource(Options.Create(new NvmlOptions { LibraryPath = FakeNvml.Path, ReadTimeout = timeout ?? TimeSpan.FromSeconds(5) }));
    }

    [Fact]
    public void Disposing_twice_shuts_down_once_and_does_not_throw()
    {
        // The container disposes the source once per registration it was resolved through (IGpuSource, IGpuPciMap): a
        // second Dispose used to queue work on the completed watchdog and abort the agent on SIGTERM (exit 134).
        var source = NewSource();
        Assert.Equal(8, source.Read(CancellationToken.None).Gpus.Count);

        source.Dispose();
        source.Dispose();
    }

    [Fact]
    public void Reads_every_gpu_and_nvlink_with_units_converted()
    {
        using var source = NewSource();
        var reading = source.Read(CancellationToken.None);

        Assert.Equal(8, reading.Gpus.Count);
        var gpu = reading.Gpus[2];
        Assert.Equal("GPU-fa4e0000-0000-0000-0000-000000000002", gpu.Uuid);
        Assert.Equal("00000000:38:00.0", gpu.PciBusId);
        Assert.Equal("Fake H100 80GB HBM3", gpu.Name);
        Assert.Equal(42, gpu.TemperatureC); // from nvmlDeviceGetTemperatureV (the deprecated call would say 142)
        Assert.Equal(47, gpu.MemoryTemperatureC); // field value 82
        Assert.Equal(0, gpu.RecoveryAction); // field value 230
        Assert.Equal(5_000_000_002L, gpu.ThermalViolationNs); // field 270 (unsigned long long ns); 269 is NOT_SUPPORTED and left out
        Assert.Equal((90, 92), (gpu.SlowdownTemperatureC, gpu.ShutdownTemperatureC));
        Assert.Equal(602.0, gpu.PowerW); // milliwatts → watts
        Assert.Equal(700.0, gpu.PowerLimitW);
        Assert.Equal(97, gpu.UtilizationPct);
        Assert.Equal(61_440, gpu.MemoryUsedMiB);
        Assert.Equal(0x4UL, gpu.ClockEventReasons);
        Assert.Equal((5, 16, 5, 16), (gpu.PcieLinkGen, gpu.PcieLinkWidth, gpu.PcieMaxLinkGen, gpu.PcieMaxLinkWidth));
        Assert.Equal(1, gpu.RemappedRowsCorrectable);
        Assert.False(gpu.RemapFailure);
        Assert.False(gpu.Lost);
        // Page retirement is NOT_SUPPORTED on this GPU: null, not zero, and not an error.
        Assert.Null(gpu.RetiredPagesDbe);
        Assert.Null(gpu.RetiredPagesPending);
        Assert.Equal(8 * 18, reading.NvLinks.Count);
        var link = reading.NvLinks.Single(l => l.GpuIndex == 1 && l.Link == 4);
        Assert.Equal((true, 4L, 14L, 24L, 34L), (link.Up, link.ReplayErrors, link.RecoveryErrors, link.CrcFlitErrors, link.CrcDataErrors));
        Assert.Equal(0, source.Errors);
        Assert.Equal("fake-570.00", source.DriverVersion);
    }

    [Fact]
    public void Recovery_action_comes_from_field_values()
    {
        using var source = NewSource();
        FakeNvml.Set("recovery", 2); // NODE_REBOOT

        Assert.All(source.Read(CancellationToken.None).Gpus, g => Assert.Equal(2, g.RecoveryAction));
    }

    [Fact]
    public async Task Nvml_xid_event_is_published_with_the_gpu_identity()
    {
        using var source = NewSource();
        var events = new NvmlXidEventSource(source, Microsoft.Extensions.Options.Options.Create(new FleetWatch.Agent.Sampling.SamplingOptions { NodeName = "n7" }),
            TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<NvmlXidEventSource>.Instance);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        FakeNvml.Set("event_xid", 79);
        FakeNvml.Set("event_gpu", 4);

        await foreach (var xid in events.WatchAsync(cts.Token))
        {
            Assert.Equal(("n7", 79, 4, "xid", FleetWatch.Contracts.XidSource.NvmlEvent), (xid.Node, xid.Xid!.Value, xid.GpuIndex!.Value, xid.Kind, xid.Source));
            Assert.Equal("GPU-fa4e0000-0000-0000-0000-000000000004", xid.GpuUuid);
            return;
        }

        Assert.Fail("no NVML event arrived");
    }

    [Fact]
    public void Pcie_card_without_nvlink_is_not_a_fault()
    {
        using var source = NewSource();
        FakeNvml.Set("nvlinks", 0);

        var reading = source.Read(CancellationToken.None);

        Assert.Empty(reading.NvLinks);
        Assert.Equal(0, source.Errors);
    }

    [Fact]
    public void Gpu_is_lost_marks_that_gpu_lost_with_its_last_known_identity()
    {
        using var source = NewSource();
        source.Read(CancellationToken.None);
        FakeNvml.Set("lost_index", 3);

        var reading = source.Read(CancellationToken.None);

        var lost = reading.Gpus[3];
        Assert.True(lost.Lost);
        Assert.Equal("GPU-fa4e0000-0000-0000-0000-000000000003", lost.Uuid);
        Assert.Null(lost.TemperatureC); // nothing else readable: unknown, not zero
        Assert.All(reading.Gpus.Where(g => g.Index != 3), g => Assert.False(g.Lost));
        Assert.DoesNotContain(reading.NvLinks, l => l.GpuIndex == 3);
    }

    [Fact]
    public void A_hanging_call_is_reported_as_a_driver_hang_and_sampling_recovers()
    {
        using var source = NewSource(TimeSpan.FromMilliseconds(300));
        FakeNvml.Set("count", 1);
        FakeNvml.Set("hang_ms", 1500);

        Assert.Throws<NvmlHangException>(() => source.Read(CancellationToken.None));
        var again = Assert.Throws<NvmlHangException>(() => source.Read(CancellationToken.None));
        Assert.Contains("still stuck", again.Message);
        Assert.Equal(1, source.Hangs);

        FakeNvml.Set("hang_ms", 0);
        Thread.Sleep(2000); // the stuck call returns
        Assert.Single(source.Read(CancellationToken.None).Gpus);
    }

    [Fact]
    public void Driver_not_loaded_is_a_clear_error()
    {
        using var source = NewSource();
        FakeNvml.Set("init_fail", 1);

        var ex = Assert.Throws<NvmlUnavailableException>(() => source.Read(CancellationToken.None));
        Assert.Contains("DriverNotLoaded", ex.Message);
    }
}
