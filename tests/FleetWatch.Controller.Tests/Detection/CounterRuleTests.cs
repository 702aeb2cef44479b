using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using static FleetWatch.Controller.Tests.Detection.SampleBuilder;

namespace FleetWatch.Controller.Tests.Detection;

/// <summary>
/// Table tests of the windowed and sustained rules: each case drives one node's samples, second by second, through
/// <see cref="SampleDetectors"/> with one <see cref="NodeDetectionState"/>, and checks when the rule first fires
/// (or that it never does, for the benign cases of the replay README).
/// </summary>
public sealed class CounterRuleTests
{
    private static readonly DetectionOptions Options = new();

    /// <summary>Runs <paramref name="seconds"/> samples; returns the first second a finding of <paramref name="rulePrefix"/> was active, its severity, and every finding.</summary>
    private static (int? FirstActive, Severity? Severity, List<(int Second, Finding Finding)> All) Drive(int seconds, Func<int, NodeSample> sampleAt, string rulePrefix, NodeDetectionState? state = null)
    {
        state ??= new NodeDetectionState();
        NodeSample? previous = null;
        int? first = null;
        Severity? severity = null;
        var all = new List<(int, Finding)>();
        for (var s = 0; s < seconds; s++)
        {
            var sample = sampleAt(s) with { Sequence = s + 1, Time = T0.AddSeconds(s) };
            var output = new List<Finding>();
            SampleDetectors.Evaluate(previous, sample, state, Options, output);
            foreach (var f in output.Where(f => f.Rule.StartsWith(rulePrefix, StringComparison.Ordinal)))
            {
                all.Add((s, f));
                if (f.Active)
                {
                    first ??= s;
                    severity = severity is { } sv && sv > f.Severity ? sv : f.Severity;
                }
            }

            previous = sample;
        }

        return (first, severity, all);
    }

    private static NodeSample WithLink(int second, double flitPerS = 0, double dataPerS = 0, double replayPerS = 0, double recoveryPerS = 0, int from = 10, int until = int.MaxValue)
    {
        var active = Math.Clamp(second, from, until) - from;
        return Node(0, 0, Gpu(0)) with
        {
            NvLinks =
            [
                new NvLinkSample
                {
                    GpuIndex = 0, Link = 4, Up = true,
                    CrcFlitErrors = (long)(flitPerS * active), CrcDataErrors = (long)(dataPerS * active),
                    ReplayErrors = (long)(replayPerS * active), RecoveryErrors = (long)(recoveryPerS * active),
                },
            ],
        };
    }

    public static TheoryData<string, double, double, double, double, int?, Severity?> NvLinkCases => new()
    {
        // name, flit/s, data/s, replay/s, recovery/s → first active second (fault starts at 10), severity
        { "replay 5/s: high at once (rule 18)", 0, 0, 5, 0, 11, Severity.High },
        { "recovery 0.1/s = 6/min: high at the first recovery", 0, 0, 0, 0.1, 20, Severity.High },
        { "CRC data 150/s: high within 90 s (rule 19, DCGM 100/s)", 0, 150, 0, 0, 11, Severity.High },
        { "CRC flit 5/s: warning only (averaged over the 13 s observed)", 5, 0, 0, 0, 13, Severity.Warning },
        { "CRC flit 0.01/s: quiet (benign)", 0.01, 0, 0, 0, null, null },
        { "CRC data 0.05/s: quiet (benign)", 0, 0.05, 0, 0, null, null },
        { "no errors: quiet", 0, 0, 0, 0, null, null },
    };

    [Theory]
    [MemberData(nameof(NvLinkCases))]
    public void Nvlink_error_rates(string name, double flit, double data, double replay, double recovery, int? firstActive, Severity? severity)
    {
        var (first, sev, _) = Drive(900, s => WithLink(s, flit, data, replay, recovery), "nvlink_");

        Assert.True(firstActive == first, $"{name}: first active at {first}, expected {firstActive}");
        Assert.True(severity == sev, $"{name}: severity {sev}, expected {severity}");
        if (firstActive is { } at && name.Contains("150", StringComparison.Ordinal))
        {
            Assert.True(at - 10 <= 90, name);
        }
    }

    [Fact]
    public void Crc_at_150_per_second_reaches_high_within_90_seconds_of_a_fresh_start()
    {
        var (_, _, all) = Drive(200, s => WithLink(s, dataPerS: 150, from: 0), "nvlink_crc");

        var high = all.First(x => x.Finding.Active && x.Finding.Severity == Severity.High);
        Assert.True(high.Second <= 90, $"high at {high.Second} s");
    }

    [Fact]
    public void Nvlink_replay_condition_clears_once_after_the_window_and_its_state_is_dropped()
    {
        var state = new NodeDetectionState();
        var (_, _, all) = Drive(200, s => WithLink(s, replayPerS: 5, from: 10, until: 40), "nvlink_replay", state);

        var clears = all.Where(x => !x.Finding.Active).ToList();
        var lastActive = all.Last(x => x.Finding.Active).Second;
        var clear = Assert.Single(clears, x => x.Second > 0);
        Assert.True(clear.Second > lastActive, "cleared after the last active report");
        Assert.InRange(clear.Second, 40 + 50, 40 + 65); // the window (60 s, 5 s buckets) drains
        Assert.Equal(0, state.WindowCount);
        Assert.Equal(0, state.ActiveCount);
    }

    [Fact]
    public void Healthy_links_report_their_clear_state_once_then_nothing()
    {
        var (_, _, all) = Drive(30, s => WithLink(s), "nvlink_down");

        Assert.All(all, x => Assert.Equal(0, x.Second));
        Assert.DoesNotContain(all, x => x.Finding.Active);
    }

    [Fact]
    public void Counter_reset_never_fires()
    {
        // A GPU reset zeroes the volatile counters: 9000 → 0 is no increase.
        var (first, _, _) = Drive(60, s => WithLink(0) with
        {
            NvLinks = [new NvLinkSample { GpuIndex = 0, Link = 4, Up = true, ReplayErrors = s < 30 ? 9000 : 0, CrcDataErrors = s < 30 ? 90_000 : 0 }],
        }, "nvlink_");

        Assert.Null(first);
    }

    private static NodeSample WithPort(int second, string counter, double perS, int from = 10, int until = int.MaxValue, int width = 32)
    {
        var active = Math.Clamp(second, from, until) - from;
        var value = (long)(perS * active);
        var max = (1L << width) - 1;
        return Node(0, 0, Gpu(0)) with
        {
            IbPorts =
            [
                new IbPortSample
                {
                    Device = "mlx5_3", Port = 1, State = "4: ACTIVE",
                    Counters = new Dictionary<string, long> { [counter] = Math.Min(value, max), ["port_xmit_data"] = second * 1_000_000_000L },
                    SaturatedCounters = value >= max ? [counter] : [],
                },
            ],
        };
    }

    public static TheoryData<string, string, double, int, int, int?> IbCases => new()
    {
        // name, counter, per second, duration, width → first active second (fault starts at 10)
        { "symbol_error 20/s sustained: warning within 120 s", "symbol_error", 20, 240, 16, 41 },
        { "link_error_recovery 20/s saturates its 8 bits after 13 s and stays flagged", "link_error_recovery", 20, 240, 8, 41 },
        { "port_rcv_errors 1/s (the README's threshold)", "port_rcv_errors", 1, 240, 16, 41 },
        { "port_xmit_wait 20000/s is congestion: never", "port_xmit_wait", 20_000, 600, 32, null },
        { "symbol_error 0.1/s: quiet", "symbol_error", 0.1, 600, 16, null },
        { "symbol_error 20/s for 15 s: a burst, not sustained", "symbol_error", 20, 15, 16, null },
    };

    [Theory]
    [MemberData(nameof(IbCases))]
    public void Ib_error_counter_rates(string name, string counter, double perS, int duration, int width, int? firstActive)
    {
        var (first, severity, _) = Drive(400, s => WithPort(s, counter, perS, until: 10 + duration, width: width), "ib_errors");

        Assert.True(firstActive == first, $"{name}: first active at {first}, expected {firstActive}");
        if (first is not null)
        {
            Assert.Equal(Severity.Warning, severity);
            Assert.True(first - 10 <= 120, name);
        }
    }

    private static NodeSample WithPcie(int second, double perS, int? gen = 5, int? width = 16, int from = 10) =>
        Node(0, 0, Gpu(0) with { PcieReplayCounter = (long)(perS * (Math.Max(second, from) - from)), PcieLinkGen = gen, PcieLinkWidth = width });

    public static TheoryData<string, double, int?, int?, bool> PcieCases => new()
    {
        // DCGM MonitorPcie: replays per minute above ceil(perLane(gen) × lanes).
        { "3/s on Gen5 x16 (limit 31/min): warning", 3, 5, 16, true },
        { "0.4/s = 24/min on Gen5 x16: under 31, quiet", 0.4, 5, 16, false },
        { "0.4/s = 24/min on Gen4 x16 (limit ceil(15.36) = 16): warning", 0.4, 4, 16, true },
        { "0.4/s with generation and width unknown: Gen5 x16 assumed, quiet", 0.4, null, null, false },
        { "no replays: quiet", 0, 5, 16, false },
    };

    [Theory]
    [MemberData(nameof(PcieCases))]
    public void Pcie_replay_rate_against_the_lane_budget(string name, double perS, int? gen, int? width, bool fires)
    {
        var (first, severity, _) = Drive(300, s => WithPcie(s, perS, gen, width), "pcie_replay");

        Assert.True(fires == first.HasValue, $"{name}: first active {first}");
        if (fires)
        {
            Assert.Equal(Severity.Warning, severity);
            Assert.True(first - 10 <= 120, name);
        }
    }

    [Fact]
    public void Pcie_counter_not_supported_is_silence_not_a_fault()
    {
        var (first, _, all) = Drive(60, s => Node(0, 0, Gpu(0) with { PcieReplayCounter = null }), "pcie_replay");

        Assert.Null(first);
        Assert.Empty(all);
    }

    public static TheoryData<string, ulong?, int, int?, Severity?> SlowdownCases => new()
    {
        // name, clock-event reasons, seconds set (from 10) → first active second, highest severity within 15 min
        { "HW slowdown 0x8 for 590 s: warning after 60 samples", 0x8, 590, 69, Severity.Warning },
        { "HW thermal 0x40 for 700 s: high after 10 min", 0x40, 700, 69, Severity.High },
        { "power brake 0x80 for 90 s: warning", 0x80, 90, 69, Severity.Warning },
        { "HW slowdown for exactly 60 s: warning", 0x8, 60, 69, Severity.Warning },
        { "HW slowdown for 20 s: quiet (benign)", 0x8, 20, null, null },
        { "HW slowdown for 59 s: quiet", 0x8, 59, null, null },
        { "SW power cap 0x4 for 900 s: never (rule 29)", 0x4, 900, null, null },
        { "HW slowdown while idle (0x1): quiet", 0x9, 600, null, null },
        { "reasons not readable: Unknown, nothing", null, 900, null, null },
    };

    [Theory]
    [MemberData(nameof(SlowdownCases))]
    public void Hw_slowdown_must_be_sustained_while_busy(string name, ulong? reasons, int duration, int? firstActive, Severity? severity)
    {
        var (first, sev, _) = Drive(900, s => Node(0, 0, Gpu(0) with
        {
            ClockEventReasons = reasons is null ? null : s >= 10 && s < 10 + duration ? reasons : 0x4,
        }), "hw_slowdown");

        Assert.True(firstActive == first, $"{name}: first active at {first}, expected {firstActive}");
        Assert.True(severity == sev, $"{name}: severity {sev}, expected {severity}");
    }

    public static TheoryData<string, double, bool> SbeCases => new()
    {
        { "50/s: SBE storm, warning (rule 17)", 50, true },
        { "10/s: DCGM's MAX_SBE_RATE", 10, true },
        { "1/s: the storm threshold", 1, true },
        { "1 per 1000 s: normal", 0.001, false },
        { "0.2/s: quiet", 0.2, false },
    };

    [Theory]
    [MemberData(nameof(SbeCases))]
    public void Sbe_rate(string name, double perS, bool fires)
    {
        var (first, severity, _) = Drive(400, s => Node(0, 0, Gpu(0) with { EccCorrectedVolatile = (long)(perS * Math.Max(0, s - 10)) }), "ecc_sbe_rate");

        Assert.True(fires == first.HasValue, $"{name}: first active {first}");
        if (fires)
        {
            Assert.Equal(Severity.Warning, severity);
            Assert.True(first - 10 <= 300, name);
        }
    }

    public static TheoryData<string, int?, int?, bool?, string?, Severity?> MemoryCases => new()
    {
        // name, retired SBE, retired DBE, pending → rule that fires, severity
        { "70 retired pages: limit reached (rule 15, DCGM 63)", 70, 0, false, "retired_pages", Severity.Critical },
        { "60 SBE + 3 DBE = 63: at the limit", 60, 3, false, "retired_pages", Severity.Critical },
        { "10 retired pages: quiet", 10, 0, false, null, null },
        { "retirement pending: warning (rule 16)", 2, 0, true, "retired_pages_pending", Severity.Warning },
        { "not supported (Ampere and later report row remapping): nothing", null, null, null, null, null },
    };

    [Theory]
    [MemberData(nameof(MemoryCases))]
    public void Retired_pages(string name, int? sbe, int? dbe, bool? pending, string? rule, Severity? severity)
    {
        var output = new List<Finding>();
        SampleDetectors.Evaluate(null, Node(1, 0, Gpu(0) with { RetiredPagesSbe = sbe, RetiredPagesDbe = dbe, RetiredPagesPending = pending }), Options, output);

        var active = output.Where(f => f.Active && f.Rule.StartsWith("retired_pages", StringComparison.Ordinal)).ToList();
        if (rule is null)
        {
            Assert.True(active.Count == 0, name);
        }
        else
        {
            var f = Assert.Single(active);
            Assert.Equal((rule, severity), (f.Rule, (Severity?)f.Severity));
        }
    }

    [Fact]
    public void Row_remap_pending_warns_and_clears_after_the_reset_not_sticky()
    {
        var (first, severity, all) = Drive(60, s => Node(0, 0, Gpu(0) with { RemapPending = s is >= 10 and < 30 }), "row_remap_pending");

        Assert.Equal(10, first);
        Assert.Equal(Severity.Warning, severity);
        Assert.Equal(20, all.Count(x => x.Finding.Active));
        Assert.Single(all, x => !x.Finding.Active && x.Second == 30);
        Assert.DoesNotContain(all, x => x.Second > 30);
    }

    [Fact]
    public void Row_remap_failure_is_critical()
    {
        var (first, severity, _) = Drive(20, s => Node(0, 0, Gpu(0, remapFailure: s >= 5)), "row_remap_failure");

        Assert.Equal((5, Severity.Critical), (first, severity));
    }

    [Fact]
    public void Lost_gpu_freezes_its_other_conditions_instead_of_clearing_them()
    {
        // Over-temperature active, then the GPU is lost: no data is Unknown, never a clear.
        var (_, _, all) = Drive(30, s => Node(0, 0, Gpu(0, temp: 95, lost: s >= 10)), "over_temperature");

        Assert.DoesNotContain(all, x => !x.Finding.Active && x.Second >= 10);
    }
}
