using FleetWatch.Agent.Sources.Infiniband;
using FleetWatch.Agent.Tests.Kmsg;
using FleetWatch.Contracts;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Tests.Infiniband;

public sealed class SysfsInfinibandSourceTests
{
    private static SysfsInfinibandSource Source(string root) =>
        new(Options.Create(new SysfsInfinibandOptions { Root = root }), NullLogger<SysfsInfinibandSource>.Instance);

    private static string Fixture(string name) => Path.Combine(XidTestPaths.Fixtures, "infiniband", name);

    [Fact]
    public void ConnectX7_with_extended_counters_reads_state_rate_counters_and_hw_counters()
    {
        var source = Source(Fixture("cx7"));
        var ports = source.Read();

        Assert.Equal(["mlx5_0", "mlx5_1"], ports.Select(p => p.Device));
        var p = ports[0];
        Assert.Equal(1, p.Port);
        Assert.Equal("ACTIVE", p.State);
        Assert.Equal("LinkUp", p.PhysState);
        Assert.Equal(400.0, p.RateGbps);
        // Raw 4-byte words, not bytes (documented on SysfsInfinibandSource).
        Assert.Equal(912345678901234, p.Counters["port_xmit_data"]);
        Assert.Equal(912345678901234 * 4, IbCounterWidths.DataWordsToBytes(p.Counters["port_xmit_data"]));
        Assert.Equal(123, p.Counters["multicast_xmit_packets"]);
        Assert.Equal(1, p.Counters["link_downed"]);
        Assert.Equal(7, p.Counters["local_ack_timeout_err"]);
        Assert.Equal(1234567, p.Counters["rx_read_requests"]);
        Assert.False(p.Counters.ContainsKey("lifespan"), "hw_counters/lifespan is a setting, not a counter");
        Assert.Empty(p.SaturatedCounters);
        Assert.Equal(0, source.SkippedFiles);

        // A 64-bit counter pinned at 2^64-1 is saturated, and clamped to long.MaxValue in the sample.
        var q = ports[1];
        Assert.Equal(long.MaxValue, q.Counters["port_xmit_data"]);
        Assert.Equal(["port_xmit_data"], q.SaturatedCounters);
        Assert.Equal(17, q.Counters["symbol_error"]);
    }

    [Fact]
    public void Old_card_with_32_bit_data_counters_reports_the_pinned_ones_as_saturated()
    {
        var ports = Source(Fixture("old32")).Read();

        Assert.Equal([1, 2], ports.Select(p => p.Port));
        Assert.Equal(56.0, ports[0].RateGbps);
        Assert.Equal(4294967295, ports[0].Counters["port_xmit_data"]);
        Assert.Equal(["port_rcv_packets", "port_xmit_data"], ports[0].SaturatedCounters);
        Assert.Equal(2.5, ports[1].RateGbps);
        Assert.Empty(ports[1].SaturatedCounters);
    }

    [Fact]
    public void Down_port_reports_its_state_and_keeps_its_counters()
    {
        var p = Assert.Single(Source(Fixture("down")).Read());
        Assert.Equal(("mlx5_2", 1, "DOWN", "Disabled", 10.0), (p.Device, p.Port, p.State, p.PhysState, p.RateGbps));
        Assert.Equal(4, p.Counters["link_downed"]);
    }

    [Fact]
    public void Error_counters_at_their_width_maximum_are_saturated_and_one_below_is_not()
    {
        var p = Assert.Single(Source(Fixture("saturated")).Read());
        Assert.Equal(["excessive_buffer_overrun_errors", "link_downed", "symbol_error"], p.SaturatedCounters);
        Assert.Equal(254, p.Counters["link_error_recovery"]);
        Assert.Equal(14, p.Counters["local_link_integrity_errors"]);
        Assert.Equal("LinkErrorRecovery", p.PhysState);
    }

    [Fact]
    public void Garbage_files_are_skipped_and_counted_never_thrown()
    {
        var source = Source(Fixture("garbage"));
        var p = Assert.Single(source.Read());

        Assert.Equal("mlx5_4", p.Device);
        Assert.Null(p.State);          // "ACTIVE" without "<id>: "
        Assert.Equal("LinkUp", p.PhysState);
        Assert.Null(p.RateGbps);       // "fast"
        foreach (var bad in new[] { "port_xmit_data", "port_rcv_data", "port_xmit_packets", "port_rcv_packets", "symbol_error", "port_xmit_wait" })
        {
            Assert.False(p.Counters.ContainsKey(bad), bad);
        }

        Assert.Equal(3, p.Counters["port_xmit_discards"]);
        // state, rate, and the six bad counters.
        Assert.Equal(8, source.SkippedFiles);
        source.Read();
        Assert.Equal(16, source.SkippedFiles);
    }

    [Fact]
    public void Missing_root_gives_no_ports()
    {
        var source = Source(Path.Combine(Path.GetTempPath(), "fleetwatch-no-such-ib-" + Guid.NewGuid().ToString("N")));
        Assert.Empty(source.Read());
        Assert.Empty(source.Read());
    }

    [Fact]
    public void Device_folders_reached_through_symlinks_are_read_like_the_real_sysfs_class()
    {
        // /sys/class/infiniband/<dev> entries are symlinks into /sys/devices.
        var root = Directory.CreateTempSubdirectory("fleetwatch-ib-").FullName;
        try
        {
            Directory.CreateSymbolicLink(Path.Combine(root, "mlx5_9"), Path.Combine(Fixture("down"), "mlx5_2"));
            var p = Assert.Single(Source(root).Read());
            Assert.Equal(("mlx5_9", "DOWN"), (p.Device, p.State));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void Counters_can_be_switched_off_so_a_fast_tick_sends_no_PMA_MADs()
    {
        var source = new SysfsInfinibandSource(
            Options.Create(new SysfsInfinibandOptions { Root = Fixture("cx7"), ReadCounters = false }), NullLogger<SysfsInfinibandSource>.Instance);
        var p = source.Read()[0];
        Assert.False(p.Counters.ContainsKey("symbol_error"));
        Assert.True(p.Counters.ContainsKey("out_of_sequence"));
    }

    [Theory]
    [InlineData("", false)]
    [InlineData("  ", false)]
    [InlineData("/sys/class/infiniband", true)]
    public void Options_validator_rejects_an_empty_root(string root, bool ok)
    {
        var result = new SysfsInfinibandOptionsValidator().Validate(null, new SysfsInfinibandOptions { Root = root });
        Assert.Equal(ok, result.Succeeded);
        if (!ok)
        {
            Assert.Contains("FleetWatch:Agent:Infiniband:Root", result.FailureMessage, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Samples_fit_the_contract_types()
    {
        IReadOnlyList<IbPortSample> ports = Source(Fixture("cx7")).Read();
        Assert.All(ports, p => Assert.All(p.Counters.Values, v => Assert.True(v >= 0)));
    }
}
