using FleetWatch.Contracts;
using FleetWatch.Controller.Stragglers.Live;

namespace FleetWatch.Controller.Tests.Stragglers.Live;

/// <summary>Table tests of the node-signal attribution: each row is a node state and the label it must give the rank on GPU 2.</summary>
public sealed class StragglerAttributorTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 29, 12, 0, 0, TimeSpan.Zero);
    private static readonly AttributionThresholds Defaults = new();

    private static GpuSample Gpu(int index, ulong reasons = 0, int width = 16, bool lost = false) => new()
    {
        Index = index,
        Uuid = $"GPU-{index}",
        ClockEventReasons = reasons,
        PcieLinkWidth = width,
        PcieMaxLinkWidth = 16,
        Lost = lost,
    };

    private static NodeSample Node(int seconds, GpuSample? gpu2 = null, long nvlinkReplay = 0, bool nvlinkUp = true,
        Dictionary<string, long>? ib = null, string ibState = "ACTIVE", string run = "r1", IReadOnlyList<string>? saturated = null) => new()
    {
        Node = "n1",
        Sequence = seconds,
        AgentRun = run,
        Time = T0.AddSeconds(seconds),
        Gpus = [Gpu(0), Gpu(1), gpu2 ?? Gpu(2), Gpu(3)],
        NvLinks = [new NvLinkSample { GpuIndex = 2, Link = 4, Up = nvlinkUp, ReplayErrors = nvlinkReplay, CrcFlitErrors = 0 },
                   new NvLinkSample { GpuIndex = 3, Link = 4, Up = true, ReplayErrors = nvlinkReplay * 100 }],
        IbPorts = [new IbPortSample { Device = "mlx5_0", Port = 1, State = ibState, Counters = ib ?? [], SaturatedCounters = saturated ?? [] }],
    };

    public static TheoryData<string, NodeSample?, NodeSample?, StragglerCause, string> Cases => new()
    {
        { "no telemetry", null, null, StragglerCause.Unknown, "no telemetry" },
        { "healthy node, no baseline", Node(60), null, StragglerCause.Unknown, "no earlier sample" },
        { "healthy node with baseline", Node(60), Node(0), StragglerCause.Unknown, "no throttling" },
        { "HW slowdown", Node(60, Gpu(2, reasons: 0x8)), null, StragglerCause.Compute, "HW slowdown (0x8)" },
        { "HW thermal", Node(60, Gpu(2, reasons: 0x40)), null, StragglerCause.Compute, "HW thermal slowdown (0x40)" },
        { "power brake", Node(60, Gpu(2, reasons: 0x80)), null, StragglerCause.Compute, "HW power brake (0x80)" },
        { "power cap only: weak compute", Node(60, Gpu(2, reasons: 0x4)), Node(0), StragglerCause.Compute, "software power cap" },
        { "idle bit is not a cause", Node(60, Gpu(2, reasons: 0x1)), Node(0), StragglerCause.Unknown, "no throttling" },
        { "GPU lost", Node(60, Gpu(2, lost: true)), null, StragglerCause.Compute, "lost" },
        { "NVLink replay errors on its GPU", Node(60, nvlinkReplay: 7), Node(0), StragglerCause.Network, "NVLink 4: 7 CRC/replay/recovery errors in 60 s" },
        { "NVLink errors need a baseline", Node(60, nvlinkReplay: 7), null, StragglerCause.Unknown, "no earlier sample" },
        { "NVLink down", Node(60, nvlinkUp: false), null, StragglerCause.Network, "NVLink 4 down" },
        { "IB symbol errors over the threshold", Node(60, ib: new() { ["symbol_error"] = 50 }), Node(0, ib: new() { ["symbol_error"] = 10 }), StragglerCause.Network, "symbol_error +40" },
        { "IB symbol errors at the threshold do not count", Node(60, ib: new() { ["symbol_error"] = 20 }), Node(0, ib: new() { ["symbol_error"] = 10 }), StragglerCause.Unknown, "no throttling" },
        { "IB congestion", Node(60, ib: new() { ["port_xmit_wait"] = 900_000 }), Node(0, ib: new() { ["port_xmit_wait"] = 1_000 }), StragglerCause.Network, "congestion" },
        { "IB port down", Node(60, ibState: "DOWN"), null, StragglerCause.Network, "mlx5_0/1 DOWN" },
        { "IB out_of_buffer: slow host", Node(60, ib: new() { ["out_of_buffer"] = 3 }), Node(0, ib: new() { ["out_of_buffer"] = 0 }), StragglerCause.Host, "out_of_buffer +3" },
        { "PCIe width below max", Node(60, Gpu(2, width: 8)), null, StragglerCause.Host, "PCIe link x8 of x16" },
        { "counter reset is not a negative delta", Node(60, ib: new() { ["symbol_error"] = 0 }), Node(0, ib: new() { ["symbol_error"] = 60_000 }), StragglerCause.Unknown, "no throttling" },
        { "saturated counter gives no delta", Node(60, ib: new() { ["symbol_error"] = 65_535 }, saturated: ["symbol_error"]), Node(0, ib: new() { ["symbol_error"] = 10 }), StragglerCause.Unknown, "no throttling" },
        { "agent restarted: no delta across runs", Node(60, nvlinkReplay: 7, run: "r2"), Node(0), StragglerCause.Unknown, "no earlier sample" },
        { "compute wins over network, both shown", Node(60, Gpu(2, reasons: 0x8), nvlinkReplay: 3), Node(0), StragglerCause.Compute, "NVLink 4: 3" },
        { "network wins over host", Node(60, Gpu(2, width: 8), nvlinkUp: false), null, StragglerCause.Network, "PCIe link x8" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Labels_the_cause_from_the_node_signals(string name, NodeSample? latest, NodeSample? baseline, StragglerCause cause, string evidence)
    {
        var attribution = StragglerAttributor.Attribute(latest, baseline, gpu: 2, Defaults);

        Assert.True(cause == attribution.Cause, $"{name}: {attribution.Describe()}");
        Assert.Contains(evidence, attribution.Describe(), StringComparison.Ordinal);
        Assert.StartsWith($"cause: {cause.ToString().ToLowerInvariant()}", attribution.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void Signals_of_other_gpus_are_not_evidence()
    {
        // GPU 3 throttles and its NVLink errs; the rank is on GPU 2.
        var latest = Node(60, nvlinkReplay: 5) with { Gpus = [Gpu(2), Gpu(3, reasons: 0x8)] };
        var baseline = Node(0) with { NvLinks = [new NvLinkSample { GpuIndex = 3, Link = 4, Up = true, ReplayErrors = 0 }] };
        var attribution = StragglerAttributor.Attribute(latest, baseline, gpu: 2, Defaults);
        Assert.Equal(StragglerCause.Unknown, attribution.Cause);
    }

    [Fact]
    public void Thresholds_come_from_the_options()
    {
        var latest = Node(60, ib: new() { ["port_xmit_wait"] = 1_500 });
        var baseline = Node(0, ib: new() { ["port_xmit_wait"] = 0 });
        Assert.Equal(StragglerCause.Network, StragglerAttributor.Attribute(latest, baseline, 2, Defaults).Cause);
        Assert.Equal(StragglerCause.Unknown, StragglerAttributor.Attribute(latest, baseline, 2, new AttributionThresholds { IbXmitWaitDelta = 2_000 }).Cause);
    }
}
