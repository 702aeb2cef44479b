using FleetWatch.Contracts;

namespace FleetWatch.Controller.Detection;

/// <summary>
/// The rest of the sample-driven catalogue (research/gpu-health-anchors.md section 7, rule numbers from that table):
/// recovery action (10), uncorrectable remapped rows (13), PCIe downtraining (24), thermal violation time (26), power
/// (28, including the comparison of a busy GPU with its busy node peers for power and SM clock), missing GPUs (30),
/// NVML/driver hang (31), InfiniBand rate (36) and flaps (37). Same contract as the rest of the class: pure, time
/// from the sample, null is Unknown.
/// </summary>
public static partial class SampleDetectors
{
    private const ulong ExplainedSlowdown = ClockEventHwSlowdown | ClockEventHwThermal | ClockEventHwPowerBrake;

    private static void EvaluateRecoveryAction(in Context c, GpuSample gpu)
    {
        // Rule 10: NVML field 230 (NVML_FI_DEV_GET_GPU_RECOVERY_ACTION); Xid 154 announces the change. Act on the value:
        // 1 GPU reset → high, 2 node reboot → critical, 3 drain P2P → warning, 4 drain and reset → high. The driver sets it
        // back to 0 after the action, which clears the condition.
        if (gpu.RecoveryAction is not { } action)
        {
            return;
        }

        var asked = action != 0;
        c.State.Observe(gpu.Index, ConditionRule.RecoveryAction, asked);
        if (c.State.Report(new SignalKey(Signal.RecoveryAction, gpu.Index), asked))
        {
            var (severity, what) = action switch
            {
                1 => (Severity.High, "reset_gpu"),
                2 => (Severity.Critical, "restart_node"),
                3 => (Severity.Warning, "drain_p2p"),
                4 => (Severity.High, "drain_and_reset_gpu"),
                _ => (Severity.Warning, "follow_recovery_action"),
            };
            c.Output.Add(new Finding(c.Node, gpu.Index, "recovery_action", FindingKind.Condition, asked, severity, "recovery_action", what,
                $"NVML GPU recovery action {action} ({RecoveryActionName(action)})", c.Time));
        }
    }

    private static string RecoveryActionName(int action) => action switch
    {
        0 => "none",
        1 => "GPU reset",
        2 => "node reboot",
        3 => "drain P2P",
        4 => "drain and reset",
        _ => "unknown value",
    };

    private static void EvaluateRemappedRows(in Context c, GpuSample gpu)
    {
        // Rule 13: rows remapped for uncorrectable errors at DCGM's limit (512): the bank is running out of spare rows.
        if (gpu.RemappedRowsUncorrectable is not { } rows)
        {
            return;
        }

        var high = rows >= c.Options.UncorrectableRemappedRowsLimit;
        c.State.Observe(gpu.Index, ConditionRule.RemappedRows, high);
        if (c.State.Report(new SignalKey(Signal.RemappedRows, gpu.Index), high))
        {
            c.Add(gpu.Index, "remapped_rows", high, Severity.Warning, "remapped_rows_high", "triage_rma",
                $"{rows} rows remapped for uncorrectable errors (limit {c.Options.UncorrectableRemappedRowsLimit})");
        }
    }

    private static void EvaluateThermalViolation(in Context c, GpuSample? before, GpuSample gpu)
    {
        // Rule 26: time spent in thermal slowdown as a share of the window. DCGM warns on any nanosecond (DCGM#270: a
        // false positive under load); the catalogue prefers more than 5 % of the window.
        if (gpu.ThermalViolationNs is null)
        {
            return;
        }

        var key = new SignalKey(Signal.ThermalViolation, gpu.Index);
        c.State.Observe(gpu.Index, ConditionRule.ThermalViolation, false);
        if (Track(c, key, before?.ThermalViolationNs, gpu.ThermalViolationNs, saturated: false) is not { } window)
        {
            return;
        }

        var fraction = window.PerSecond(c.Time, c.ObservedSince, c.Options.RateMinimumSpan) / 1e9;
        var hot = fraction > c.Options.ThermalViolationFraction;
        c.State.Observe(gpu.Index, ConditionRule.ThermalViolation, hot);
        if (c.State.Report(key, hot))
        {
            c.Add(gpu.Index, "thermal_violation", hot, Severity.Warning, "thermal_violation", "check_cooling",
                $"thermal slowdown {fraction:P1} of the last {Seconds(window)} (warn above {c.Options.ThermalViolationFraction:P0})");
        }

        c.State.Prune(key, c.Time);
    }

    private static void EvaluatePower(in Context c, GpuSample gpu)
    {
        // Rule 28: a power reading that was available and is gone (DCGM POWER_UNREADABLE) is a warning; a reading outside
        // the plausible band is critical (a dead sensor or a power-delivery fault). Never readable is Unknown (NOT_SUPPORTED).
        var unreadableKey = new SignalKey(Signal.PowerUnreadable, gpu.Index);
        var readable = gpu.PowerW is not null;
        if (!c.State.Seen(unreadableKey, readable))
        {
            return;
        }

        c.State.Observe(gpu.Index, ConditionRule.Power, !readable);
        if (c.State.Report(unreadableKey, !readable))
        {
            c.Add(gpu.Index, "power_unreadable", !readable, Severity.Warning, "power_unreadable", "restart_node",
                "NVML power reading unavailable on a GPU that reported it before");
        }

        if (gpu.PowerW is not { } watts)
        {
            return;
        }

        var outside = watts < c.Options.PowerMinW || watts > c.Options.PowerMaxW;
        c.State.Observe(gpu.Index, ConditionRule.Power, outside);
        if (c.State.Report(new SignalKey(Signal.PowerBand, gpu.Index), outside))
        {
            c.Add(gpu.Index, "power_band", outside, Severity.Critical, "power_out_of_band", "check_power_delivery",
                $"power reading {watts:F0} W outside {c.Options.PowerMinW:F0}–{c.Options.PowerMaxW:F0} W");
        }
    }

    private static void EvaluatePcieWidth(in Context c, GpuSample gpu)
    {
        // Rule 24 (NVSentinel#890): the link trained below its generation or width while the GPU is busy. An idle GPU
        // drops its link speed to save power, so idle samples neither raise nor clear the condition. Without NVML's
        // maximum width, the widest link of the node's GPUs is the reference (peer comparison).
        if (gpu.PcieLinkGen is not { } gen || gpu.PcieLinkWidth is not { } width || gpu.UtilizationPct is not { } util)
        {
            return;
        }

        var key = new SignalKey(Signal.PcieDowntrained, gpu.Index);
        var maxWidth = gpu.PcieMaxLinkWidth ?? PeerMaxWidth(c.Current);
        var maxGen = gpu.PcieMaxLinkGen ?? gen;
        if (util < c.Options.BusyUtilizationPct)
        {
            c.State.Observe(gpu.Index, ConditionRule.PcieDowntrained, c.State.IsActive(key));
            return;
        }

        var since = c.State.Since(key, gen < maxGen || width < maxWidth, c.Time);
        var downtrained = since is { } s && c.Time - s + c.Interval >= c.Options.PcieDowntrainedSustained;
        c.State.Observe(gpu.Index, ConditionRule.PcieDowntrained, downtrained);
        if (c.State.Report(key, downtrained))
        {
            c.Add(gpu.Index, "pcie_downtrained", downtrained, Severity.Warning, "pcie_downtrained", "reseat_gpu",
                $"PCIe link at Gen{gen} x{width}, capable of Gen{maxGen} x{maxWidth}, while {util} % busy");
        }
    }

    private static int PeerMaxWidth(NodeSample sample)
    {
        var max = 0;
        foreach (var g in sample.Gpus)
        {
            if (g.PcieLinkWidth is { } w && w > max)
            {
                max = w;
            }
        }

        return max;
    }

    private static void EvaluateNode(in Context c, NodeSample sample)
    {
        // Rule 31: the agent's watchdog around NVML (NvmlWatchdog) or a driver that does not load leaves the GPU list
        // empty and says why; a GPU source that does not answer is a driver hang until proven otherwise → reboot.
        var failed = sample.GpuSourceError is not null;
        c.State.Observe(-1, ConditionRule.GpuSource, failed);
        if (c.State.Report(new SignalKey(Signal.GpuSource, -1), failed))
        {
            c.Output.Add(new Finding(c.Node, null, "gpu_source", FindingKind.Condition, failed, Severity.Critical, "gpu_driver_unresponsive", "restart_node",
                $"the agent cannot read the GPUs: {sample.GpuSourceError ?? "reading again"}", c.Time));
        }

        if (failed)
        {
            return; // every GPU is Unknown: none is "missing" while the source itself is down
        }

        // Rule 30 (GCM check_gpu_num; dcgm-exporter#348: a fallen GPU just disappears from the list): every GPU of the
        // inventory must be in the sample. The inventory is ExpectedGpusPerNode, or every index the node ever reported.
        ulong present = 0;
        foreach (var g in sample.Gpus)
        {
            if (g.Index is >= 0 and < 64)
            {
                present |= 1UL << g.Index;
            }
        }

        c.State.KnownGpus |= present;
        var expected = c.State.KnownGpus;
        if (c.Options.ExpectedGpusPerNode is { } n)
        {
            expected |= n >= 64 ? ulong.MaxValue : (1UL << n) - 1;
        }

        var count = System.Numerics.BitOperations.PopCount(present);
        var total = System.Numerics.BitOperations.PopCount(expected);
        for (var i = 0; i < 64 && expected >> i != 0; i++)
        {
            if ((expected & (1UL << i)) == 0)
            {
                continue;
            }

            var missing = (present & (1UL << i)) == 0;
            c.State.Observe(i, ConditionRule.GpuMissing, missing);
            if (c.State.Report(new SignalKey(Signal.GpuMissing, i), missing))
            {
                c.Add(i, "gpu_missing", missing, Severity.Critical, "gpu_missing", "restart_node",
                    $"GPU {i} is not in the GPU list ({count} of {total} GPUs present)");
            }
        }
    }

    private static void EvaluatePeers(in Context c, NodeSample sample)
    {
        // Rule 28, peer form: a busy GPU far below its busy node peers' median under the same load. Power far below is the
        // "util 100 % but power very low" signature (NVIDIA/nccl#968); an SM clock far below with no HW slowdown, thermal or
        // power-brake bit (rule 25 reports those) is a silently slow GPU (NVSentinel#890). Idle GPUs are not compared.
        var gpus = sample.Gpus;
        if (gpus.Count > 64)
        {
            return;
        }

        Span<double> power = stackalloc double[gpus.Count];
        Span<double> clock = stackalloc double[gpus.Count];
        int powers = 0, clocks = 0;
        for (var i = 0; i < gpus.Count; i++)
        {
            var g = gpus[i];
            if (Busy(c, g))
            {
                if (g.PowerW is { } p)
                {
                    power[powers++] = p;
                }

                if (g.SmClockMHz is { } m)
                {
                    clock[clocks++] = m;
                }
            }
        }

        power = power[..powers];
        clock = clock[..clocks];
        power.Sort();
        clock.Sort();
        for (var i = 0; i < gpus.Count; i++)
        {
            var g = gpus[i];
            if (g.Lost)
            {
                continue;
            }

            var busy = Busy(c, g);
            PeerRule(c, g.Index, busy ? g.PowerW : null, power, c.Options.PeerPowerFraction, Signal.PowerPeers, ConditionRule.PowerPeers, true,
                "power_peers", "power_below_peers", "W");
            var explained = g.ClockEventReasons is { } r && (r & ExplainedSlowdown) != 0;
            PeerRule(c, g.Index, busy ? g.SmClockMHz : null, clock, c.Options.PeerClockFraction, Signal.ClockPeers, ConditionRule.ClockPeers, !explained,
                "clock_peers", "clock_below_peers", "MHz");
            if (!busy && g.UtilizationPct is not null)
            {
                // An idle GPU has nothing to compare: not anomalous, and not "no data" either.
                c.State.Observe(g.Index, ConditionRule.PowerPeers, false);
                c.State.Observe(g.Index, ConditionRule.ClockPeers, false);
            }
        }
    }

    private static bool Busy(in Context c, GpuSample g) => !g.Lost && g.UtilizationPct is { } u && u >= c.Options.BusyUtilizationPct;

    /// <summary>Compares one GPU's value with the median of its peers (the sorted busy values, itself removed once).</summary>
    private static void PeerRule(in Context c, int gpu, double? value, ReadOnlySpan<double> sortedBusy, double fraction, Signal signal, ConditionRule rule,
        bool eligible, string ruleName, string category, string unit)
    {
        // Not comparable (the GPU idles or is unreadable, too few busy peers): an earlier verdict clears rather than sticks.
        var comparable = value is not null && sortedBusy.Length - 1 >= c.Options.PeerMinimumGpus;
        var v = value ?? 0;
        var median = comparable ? MedianWithout(sortedBusy, v) : 0;
        var key = new SignalKey(signal, gpu);
        var since = c.State.Since(key, comparable && eligible && v < fraction * median, c.Time);
        var low = since is { } s && c.Time - s + c.Interval >= c.Options.PeerSustained;
        if (comparable)
        {
            c.State.Observe(gpu, rule, low);
        }

        if (c.State.Report(key, low))
        {
            c.Add(gpu, ruleName, low, Severity.Warning, category, "run_diagnostics", comparable
                ? $"{v:F0} {unit} under load against a median of {median:F0} {unit} on {sortedBusy.Length - 1} busy peers (below {fraction:P0})"
                : $"{unit} no longer comparable with busy peers");
        }
    }

    /// <summary>Median of a sorted span with one occurrence of <paramref name="self"/> left out.</summary>
    private static double MedianWithout(ReadOnlySpan<double> sorted, double self)
    {
        var skip = sorted.IndexOf(self);
        var n = sorted.Length - 1;
        var upper = n / 2;
        var hi = sorted[skip >= 0 && upper >= skip ? upper + 1 : upper];
        if (n % 2 == 1)
        {
            return hi;
        }

        var lower = upper - 1;
        return (sorted[skip >= 0 && lower >= skip ? lower + 1 : lower] + hi) / 2;
    }

    private static void EvaluateIbRate(in Context c, double expected, IbPortSample port)
    {
        // Rule 36, rate form (GCM check_iblink): an active port below the expected rate (configured, or the node's fastest
        // active port) trained down: a bad cable or transceiver halves the node's bandwidth without taking the link down.
        // A port that is down has no rate to judge (rule 36's state form reports it): the rate condition is clear.
        var active = IsActive(port);
        if (port.State is null || (active && port.RateGbps is null))
        {
            return;
        }

        var rate = port.RateGbps ?? 0;
        var slow = active && rate < expected;
        c.State.Observe(-1, ConditionRule.IbRate, slow);
        if (c.State.Report(new SignalKey(Signal.IbRate, -1, port.Port, port.Device), slow))
        {
            c.Output.Add(new Finding(c.Node, null, $"ib_rate:{port.Device}/{port.Port}", FindingKind.Condition, slow, Severity.Critical,
                "ib_rate_degraded", "drain_node", $"InfiniBand {port.Device} port {port.Port} at {rate:F0} Gb/s, expected {expected:F0} Gb/s", c.Time));
        }
    }

    private static bool IsActive(IbPortSample port) => port.State?.Contains("ACTIVE", StringComparison.OrdinalIgnoreCase) == true;

    private static double FastestActivePort(NodeSample sample)
    {
        double max = 0;
        foreach (var p in sample.IbPorts)
        {
            if (IsActive(p) && p.RateGbps is { } r && r > max)
            {
                max = r;
            }
        }

        return max;
    }

    private static void EvaluateIbFlap(in Context c, IbPortSample? old, IbPortSample port)
    {
        // Rule 37: link_downed rose (sysfs-class-infiniband: times the link error recovery process failed and the link went
        // down). A flap between two samples is invisible to the state read of rule 36; the counter keeps it. One flap in the
        // window warns; IbFlapCriticalCount flaps are critical (Health Validation rdma_linkflap_fatal).
        if (!port.Counters.TryGetValue("link_downed", out var downed))
        {
            return;
        }

        var key = new SignalKey(Signal.IbFlap, -1, port.Port, port.Device);
        long? before = old is not null && old.Counters.TryGetValue("link_downed", out var b) ? b : null;
        if (Increase(before, downed) is > 0 and var increase && c.PreviousTime is { } previousTime)
        {
            c.State.GetOrAddWindow(key, c.Options.IbFlapWindow).Add(c.Time, increase, previousTime);
        }

        var window = c.State.WindowCount == 0 ? null : c.State.Window(key);
        var flaps = window?.Sum(c.Time) ?? 0;
        var flapping = flaps >= 1;
        c.State.Observe(-1, ConditionRule.IbFlap, flapping);
        if (c.State.Report(key, flapping))
        {
            var critical = flaps >= c.Options.IbFlapCriticalCount;
            c.Output.Add(new Finding(c.Node, null, $"ib_flap:{port.Device}/{port.Port}", FindingKind.Condition, flapping, critical ? Severity.Critical : Severity.Warning,
                "ib_link_flap", critical ? "drain_node" : "ticket_network",
                $"InfiniBand {port.Device} port {port.Port} went down {flaps:F0} time(s) in {c.Options.IbFlapWindow.TotalMinutes:F0} min", c.Time));
        }

        c.State.Prune(key, c.Time);
    }
}
