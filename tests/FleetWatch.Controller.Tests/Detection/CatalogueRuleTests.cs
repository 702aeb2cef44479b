using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using static FleetWatch.Controller.Tests.Detection.SampleBuilder;

namespace FleetWatch.Controller.Tests.Detection;

/// <summary>
/// Table tests of the catalogue rules 10, 13, 24, 26, 28, 30, 31, 36 and 37 (research/gpu-health-anchors.md section 7):
/// each drives one node second by second through <see cref="SampleDetectors"/> and checks when a rule fires, at what
/// severity, and that it clears again when the signal does (nothing sticky).
/// </summary>
public sealed class CatalogueRuleTests
{
    private static readonly DetectionOptions Options = new();

    /// <summary>A busy H100-like GPU with every field of the new rules readable and healthy.</summary>
    internal static GpuSample Busy(int index) => Gpu(index) with
    {
        PowerW = 600, PowerLimitW = 700, UtilizationPct = 97, SmClockMHz = 1980, ClockEventReasons = 0x4,
        PcieLinkGen = 5, PcieLinkWidth = 16, PcieMaxLinkGen = 5, PcieMaxLinkWidth = 16, RecoveryAction = 0,
        RemappedRowsUncorrectable = 0, ThermalViolationNs = 0,
    };

    internal static NodeSample Node8(Func<int, GpuSample, GpuSample>? change = null) =>
        Node(0, 0, [.. Enumerable.Range(0, 8).Select(i => change?.Invoke(i, Busy(i)) ?? Busy(i))]);

    /// <summary>Runs samples 0..seconds-1; returns (second, finding) for every finding of the rule prefix.</summary>
    internal static List<(int Second, Finding Finding)> Drive(int seconds, Func<int, NodeSample> sampleAt, string rulePrefix, DetectionOptions? options = null)
    {
        var state = new NodeDetectionState();
        NodeSample? previous = null;
        var all = new List<(int, Finding)>();
        for (var s = 0; s < seconds; s++)
        {
            var sample = sampleAt(s) with { Sequence = s + 1, Time = T0.AddSeconds(s) };
            var output = new List<Finding>();
            SampleDetectors.Evaluate(previous, sample, state, options ?? Options, output);
            all.AddRange(output.Where(f => f.Rule.StartsWith(rulePrefix, StringComparison.Ordinal)).Select(f => (s, f)));
            previous = sample;
        }

        return all;
    }

    private static int? FirstActive(List<(int Second, Finding Finding)> all) => all.FirstOrDefault(x => x.Finding.Active).Finding is null ? null : all.First(x => x.Finding.Active).Second;

    private static int? ClearedAt(List<(int Second, Finding Finding)> all) => all.LastOrDefault(x => !x.Finding.Active) is { Finding: not null } c && c.Second > (FirstActive(all) ?? int.MaxValue) ? c.Second : null;

    [Theory]
    [InlineData(0, null, null)]
    [InlineData(1, Severity.High, "reset_gpu")]
    [InlineData(2, Severity.Critical, "restart_node")]
    [InlineData(3, Severity.Warning, "drain_p2p")]
    [InlineData(4, Severity.High, "drain_and_reset_gpu")]
    [InlineData(9, Severity.Warning, "follow_recovery_action")]
    public void Rule_10_recovery_action_by_value_and_clears_at_zero(int value, Severity? severity, string? action)
    {
        var all = Drive(20, s => Node8((i, g) => i == 2 && s is >= 5 and < 12 ? g with { RecoveryAction = value } : g), "recovery_action");

        var active = all.Where(x => x.Finding.Active).ToList();
        if (severity is null)
        {
            Assert.Empty(active);
            return;
        }

        Assert.Equal(5, active[0].Second);
        Assert.Equal((severity.Value, action, (int?)2), (active[0].Finding.Severity, active[0].Finding.Action, active[0].Finding.Gpu));
        Assert.Equal(12, ClearedAt(all));
    }

    [Theory]
    [InlineData(511, false)]
    [InlineData(512, true)]
    [InlineData(4000, true)]
    public void Rule_13_uncorrectable_remapped_rows_at_512(int rows, bool fires)
    {
        var all = Drive(3, _ => Node8((i, g) => i == 1 ? g with { RemappedRowsUncorrectable = rows } : g), "remapped_rows");

        Assert.Equal(fires, all.Exists(x => x.Finding.Active && x.Finding.Severity == Severity.Warning && x.Finding.Category == "remapped_rows_high"));
    }

    public static TheoryData<string, int, int, int, int?, bool> PcieCases => new()
    {
        // name, gen, width, util, max width (null: NVML did not say; peers decide), fires
        { "x8 of x16 while busy", 5, 8, 97, 16, true },
        { "Gen4 of Gen5 while busy", 4, 16, 97, 16, true },
        { "full link", 5, 16, 97, 16, false },
        { "idle GPU dropped its link speed (power saving)", 1, 16, 0, 16, false },
        { "x8 while peers are x16 and NVML gives no max", 5, 8, 97, null, true },
    };

    [Theory]
    [MemberData(nameof(PcieCases))]
    public void Rule_24_pcie_downtrained_while_busy_and_sustained(string name, int gen, int width, int util, int? maxWidth, bool fires)
    {
        var all = Drive(60, s => Node8((i, g) => i == 3 && s >= 5
            ? g with { PcieLinkGen = gen, PcieLinkWidth = width, UtilizationPct = util, PcieMaxLinkWidth = maxWidth }
            : g), "pcie_downtrained");

        Assert.True(fires == (FirstActive(all) is not null), name);
        if (fires)
        {
            // Sustained: 30 s after the first downtrained sample (5 s), not on it.
            Assert.InRange(FirstActive(all)!.Value, 33, 35);
        }
    }

    [Fact]
    public void Rule_24_idle_samples_neither_raise_nor_clear()
    {
        // Downtrained while busy from 5 s; the GPU idles 50-70 s (still downtrained: ignored), is busy and healthy again from 70 s.
        var all = Drive(90, s => Node8((i, g) => i != 3 || s < 5 ? g
            : s < 50 ? g with { PcieLinkWidth = 8 }
            : s < 70 ? g with { PcieLinkWidth = 4, UtilizationPct = 0 }
            : g), "pcie_downtrained");

        Assert.Contains(all, x => x.Finding.Active && x.Second == 49);
        Assert.DoesNotContain(all, x => !x.Finding.Active && x.Second is >= 50 and < 70);
        Assert.Equal(70, ClearedAt(all));
    }

    [Theory]
    [InlineData(0.02, false)]
    [InlineData(0.10, true)]
    [InlineData(1.0, true)]
    public void Rule_26_thermal_violation_as_a_share_of_the_window(double share, bool fires)
    {
        var all = Drive(90, s => Node8((i, g) => i == 4 ? g with { ThermalViolationNs = (long)(Math.Max(0, s - 5) * share * 1e9) } : g), "thermal_violation");

        Assert.Equal(fires, FirstActive(all) is not null);
    }

    [Fact]
    public void Rule_26_without_the_field_is_unknown_never_healthy()
    {
        var state = new NodeDetectionState();
        var output = new List<Finding>();
        SampleDetectors.Evaluate(null, Node8((_, g) => g with { ThermalViolationNs = null }) with { Time = T0 }, state, Options, output);

        Assert.All(state.Conditions("n1").Where(c => c.Rule == "thermal_violation"), c => Assert.Equal(ConditionStatus.Unknown, c.Status));
    }

    [Fact]
    public void Rule_28_power_unreadable_after_it_was_readable_is_a_warning()
    {
        var all = Drive(12, s => Node8((i, g) => i == 5 && s is >= 4 and < 8 ? g with { PowerW = null } : g), "power_unreadable");

        Assert.Equal(4, FirstActive(all));
        Assert.Equal(Severity.Warning, all.First(x => x.Finding.Active).Finding.Severity);
        Assert.Equal(8, ClearedAt(all));
    }

    [Fact]
    public void Rule_28_power_never_readable_is_quiet()
    {
        var all = Drive(5, _ => Node8((i, g) => i == 5 ? g with { PowerW = null } : g), "power");

        Assert.DoesNotContain(all, x => x.Finding.Active);
    }

    [Theory]
    [InlineData(0.0, true)]
    [InlineData(5, true)]
    [InlineData(60, false)]
    [InlineData(1400, false)]
    [InlineData(2000, true)]
    public void Rule_28_power_outside_the_band_is_critical(double watts, bool fires)
    {
        var all = Drive(3, _ => Node8((i, g) => i == 6 ? g with { PowerW = watts, UtilizationPct = 0 } : g), "power_band");

        Assert.Equal(fires, all.Exists(x => x.Finding.Active && x.Finding.Severity == Severity.Critical));
    }

    public static TheoryData<string, double, int, ulong, int, bool, bool> PeerCases => new()
    {
        // name, power, sm clock, clock-event reasons, util, power fires, clock fires
        { "healthy busy GPU", 600, 1980, 0x4, 97, false, false },
        { "power cap is normal under load", 700, 1755, 0x4, 97, false, false },
        { "busy GPU at 150 W among 600 W peers (hang signature)", 150, 1980, 0x4, 100, true, false },
        { "silently slow clock", 600, 1100, 0x0, 97, false, true },
        { "slow clock explained by HW slowdown (rule 25's business)", 600, 900, 0x8, 97, false, false },
        { "slow clock explained by HW thermal", 600, 1100, 0x40, 97, false, false },
        { "idle GPU is not compared", 80, 300, 0x1, 0, false, false },
    };

    [Theory]
    [MemberData(nameof(PeerCases))]
    public void Rule_28_peers_under_the_same_load(string name, double power, int clock, ulong reasons, int util, bool powerFires, bool clockFires)
    {
        var all = Drive(80, s => Node8((i, g) => i == 7 && s >= 5 ? g with { PowerW = power, SmClockMHz = clock, ClockEventReasons = reasons, UtilizationPct = util } : g), "");

        Assert.True(powerFires == all.Exists(x => x.Finding.Active && x.Finding.Category == "power_below_peers"), $"{name}: power");
        Assert.True(clockFires == all.Exists(x => x.Finding.Active && x.Finding.Category == "clock_below_peers"), $"{name}: clock");
        if (powerFires || clockFires)
        {
            // Sustained for PeerSustained (60 s) from the first low sample at 5 s.
            Assert.InRange(all.First(x => x.Finding.Active && x.Finding.Category.EndsWith("_below_peers", StringComparison.Ordinal)).Second, 63, 65);
        }
    }

    [Fact]
    public void Rule_28_a_low_power_gpu_that_goes_idle_clears_instead_of_sticking()
    {
        // Low under load from 5 s (fires at ~65 s); the job dies at 100 s and the GPU idles.
        var all = Drive(110, s => Node8((i, g) => i == 7 && s >= 5 ? g with { PowerW = s < 100 ? 150 : 80, UtilizationPct = s < 100 ? 100 : 0 } : g), "power_peers");

        Assert.InRange(FirstActive(all)!.Value, 63, 65);
        Assert.Equal(100, ClearedAt(all));
    }

    [Fact]
    public void Rule_28_peers_need_enough_busy_peers()
    {
        // Only 3 GPUs (2 peers each, fewer than PeerMinimumGpus 3): no comparison at all.
        var all = Drive(80, s => Node(0, 0, Busy(0), Busy(1), Busy(2) with { PowerW = 100 }), "power_peers");

        Assert.DoesNotContain(all, x => x.Finding.Active);
    }

    [Fact]
    public void Rule_30_a_gpu_that_drops_out_of_the_list_is_missing_until_it_returns()
    {
        var all = Drive(20, s => s is >= 5 and < 10 ? Node(0, 0, [.. Enumerable.Range(0, 8).Where(i => i != 4).Select(Busy)]) : Node8(), "gpu_missing");

        var first = all.First(x => x.Finding.Active);
        Assert.Equal((5, 4, Severity.Critical), (first.Second, first.Finding.Gpu, first.Finding.Severity));
        Assert.Contains("7 of 8", first.Finding.Message);
        Assert.Equal(10, ClearedAt(all));
    }

    [Fact]
    public void Rule_30_inventory_from_options_catches_a_gpu_never_seen()
    {
        var options = new DetectionOptions { ExpectedGpusPerNode = 8 };
        var all = Drive(3, _ => Node(0, 0, [.. Enumerable.Range(0, 7).Select(Busy)]), "gpu_missing", options);

        Assert.Contains(all, x => x.Finding.Active && x.Finding.Gpu == 7);
        Assert.DoesNotContain(all, x => x.Finding.Active && x.Finding.Gpu != 7);
    }

    [Fact]
    public void Rule_31_gpu_source_error_is_critical_and_inhibits_missing_gpus()
    {
        var all = Drive(12, s => s is >= 3 and < 8 ? Node(0, 0) with { GpuSourceError = "NVML device read did not return within 5.0 s" } : Node8(), "");

        var hang = all.Where(x => x.Finding.Rule == "gpu_source").ToList();
        Assert.Equal(3, hang.First(x => x.Finding.Active).Second);
        Assert.Equal(("gpu_driver_unresponsive", Severity.Critical), (hang.First(x => x.Finding.Active).Finding.Category, hang.First(x => x.Finding.Active).Finding.Severity));
        Assert.Contains(hang, x => !x.Finding.Active && x.Second == 8);
        Assert.DoesNotContain(all, x => x.Finding.Active && x.Finding.Rule == "gpu_missing");
    }

    private static IbPortSample Port(int p, string state = "4: ACTIVE", double? rate = 400, long downed = 0) => new()
    {
        Device = $"mlx5_{p}", Port = 1, State = state, RateGbps = rate,
        Counters = new Dictionary<string, long> { ["link_downed"] = downed, ["symbol_error"] = 0 },
    };

    [Theory]
    [InlineData(400, null, false)]
    [InlineData(200, null, true)]
    [InlineData(200, 200.0, false)]
    [InlineData(400, 800.0, true)]
    public void Rule_36_ib_rate_below_expected(double rate, double? expected, bool fires)
    {
        var options = new DetectionOptions { IbExpectedRateGbps = expected };
        var all = Drive(3, _ => Node8() with { IbPorts = [Port(0), Port(1), Port(2, rate: rate), Port(3)] }, "ib_rate", options);

        Assert.Equal(fires, all.Exists(x => x.Finding.Active && x.Finding.Severity == Severity.Critical));
    }

    [Fact]
    public void Rule_37_ib_flaps_warn_once_and_go_critical_when_repeated_then_clear()
    {
        // Flaps at 10 s, 20 s, 30 s (the state read never sees the port down); quiet afterwards.
        var all = Drive(700, s => Node8() with { IbPorts = [Port(0), Port(1, downed: s >= 30 ? 3 : s >= 20 ? 2 : s >= 10 ? 1 : 0)] }, "ib_flap");

        Assert.Equal(10, FirstActive(all));
        Assert.Equal(Severity.Warning, all.First(x => x.Finding.Active).Finding.Severity);
        Assert.Contains(all, x => x.Second == 30 && x.Finding.Active && x.Finding.Severity == Severity.Critical);
        var cleared = ClearedAt(all);
        Assert.NotNull(cleared);
        Assert.InRange(cleared!.Value, 600, 700); // after the 10-minute flap window, not sticky
    }
}
