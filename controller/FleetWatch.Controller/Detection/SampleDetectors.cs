using FleetWatch.Contracts;

namespace FleetWatch.Controller.Detection;

/// <summary>
/// Rules evaluated on each node sample against the previous one and the node's <see cref="NodeDetectionState"/>
/// (research/gpu-health-anchors.md section 7; rule numbers below are that table's). Pure: time comes from the
/// sample, state is passed in. Counters are compared cumulative-to-cumulative: a counter that went down was reset
/// (driver reload, GPU reset) and never fires; a saturated counter's increase is unknown, never negative. A null
/// value is "not supported / not readable": the rule reports nothing (Unknown), never a fault and never healthy.
/// Conditions are reported active on every sample while they hold and clear once, on the transition.
/// </summary>
public static partial class SampleDetectors
{
    // research/gpu-health-anchors.md section 1.6 (nvml.h clock-event reasons).
    private const ulong ClockEventGpuIdle = 0x1;
    private const ulong ClockEventHwSlowdown = 0x8;
    private const ulong ClockEventHwThermal = 0x40;
    private const ulong ClockEventHwPowerBrake = 0x80;

    // Rule 23: DCGM MonitorPcie replays per lane per minute by generation (Gen1..Gen6), from a 1e-12 BER.
    private static readonly double[] PcieReplayPerLanePerMinute = [0.15, 0.3, 0.48, 0.96, 1.92, 3.84];

    /// <summary>Evaluates with no memory of earlier samples beyond <paramref name="previous"/> (rates see one interval only).</summary>
    public static void Evaluate(NodeSample? previous, NodeSample current, DetectionOptions options, List<Finding> output) =>
        Evaluate(previous, current, new NodeDetectionState(), options, output);

    /// <summary>Evaluates one sample; <paramref name="state"/> is the node's detector memory, updated in place.</summary>
    public static void Evaluate(NodeSample? previous, NodeSample current, NodeDetectionState state, DetectionOptions options, List<Finding> output)
    {
        state.Begin(current.Time, options.NodeUnknownAfter);
        var context = new Context(current, previous?.Time, state, options, output);
        foreach (var gpu in current.Gpus)
        {
            EvaluateGpu(context, Find(previous, gpu.Index, gpu.Uuid), gpu);
        }

        EvaluateNode(context, current);
        EvaluatePeers(context, current);
        EvaluateNvLinks(context, previous, current);
        EvaluateIbPorts(context, previous, current);
        state.End(current.Node, current.Time, output);
    }

    private static void EvaluateGpu(in Context c, GpuSample? before, GpuSample gpu)
    {
        var g = gpu.Index;

        // Rule 1: NVML GPU_IS_LOST is the fallen-off-the-bus signal even when no Xid line was seen.
        c.State.Observe(g, ConditionRule.GpuLost, gpu.Lost);
        if (c.State.Report(new SignalKey(Signal.GpuLost, g), gpu.Lost))
        {
            c.Add(g, "gpu_lost", gpu.Lost, Severity.Critical, "gpu_fell_off_bus", "restart_node", $"NVML reports GPU {g} ({gpu.Uuid}) lost");
        }

        if (gpu.Lost)
        {
            return; // nothing else is readable: every other signal of this GPU is Unknown and keeps its state
        }

        // Rule 2: any increase of the volatile uncorrected (double-bit) ECC counter. An event: the condition reads True
        // while the incident manager holds the event finding (EventHold), then False.
        var dbeIncrease = Increase(before?.EccUncorrectedVolatile, gpu.EccUncorrectedVolatile);
        c.State.Observe(g, ConditionRule.EccDoubleBit,
            dbeIncrease is null ? null : c.State.Recent(new SignalKey(Signal.EccDbe, g), dbeIncrease > 0, c.Time, c.Options.EventHold));
        if (dbeIncrease is > 0 and var dbe)
        {
            c.Output.Add(new Finding(c.Node, g, "ecc_dbe", FindingKind.Event, true, Severity.Critical, "ecc_double_bit", "drain_and_reset_gpu",
                $"double-bit ECC errors +{dbe} (volatile total {gpu.EccUncorrectedVolatile})", c.Time));
        }

        // Rule 11: row-remap failure.
        c.State.Observe(g, ConditionRule.RowRemapFailure, gpu.RemapFailure);
        if (gpu.RemapFailure is { } failure && c.State.Report(new SignalKey(Signal.RemapFailure, g), failure))
        {
            c.Add(g, "row_remap_failure", failure, Severity.Critical, "row_remap_failure", "reset_gpu", "row remapping failed (NVML remapped rows failureOccurred)");
        }

        // Rule 12: a remap is pending; it takes effect at the next GPU reset, which also clears the flag (not sticky).
        c.State.Observe(g, ConditionRule.RowRemapPending, gpu.RemapPending);
        if (gpu.RemapPending is { } pending && c.State.Report(new SignalKey(Signal.RemapPending, g), pending))
        {
            c.Add(g, "row_remap_pending", pending, Severity.Warning, "row_remap_pending", "reset_gpu_at_next_drain", "row remap pending: reset the GPU at the next drain window");
        }

        EvaluateRemappedRows(c, gpu);
        EvaluateRetiredPages(c, gpu);
        EvaluateTemperature(c, gpu);
        EvaluateSlowdown(c, gpu);
        EvaluateThermalViolation(c, before, gpu);
        EvaluateRecoveryAction(c, gpu);
        EvaluatePower(c, gpu);
        EvaluateUnrepairableMemory(c, gpu);
        EvaluateFabric(c, gpu);
        EvaluateInforom(c, gpu);

        // Rule 17: SBE storm, as a rate of the volatile corrected-ECC counter.
        var sbeKey = new SignalKey(Signal.SbeRate, g);
        c.State.Observe(g, ConditionRule.EccSbeRate, gpu.EccCorrectedVolatile is null ? null : false);
        if (Track(c, sbeKey, before?.EccCorrectedVolatile, gpu.EccCorrectedVolatile, saturated: false) is { } sbe)
        {
            var rate = sbe.PerSecond(c.Time, c.ObservedSince, c.Options.RateMinimumSpan);
            var storm = rate >= c.Options.SbeStormPerSecond;
            c.State.Observe(g, ConditionRule.EccSbeRate, storm);
            if (c.State.Report(sbeKey, storm))
            {
                c.Add(g, "ecc_sbe_rate", storm, Severity.Warning, "ecc_sbe_storm", "trend", $"single-bit ECC errors at {rate:F1}/s over {Seconds(sbe)} (storm at {c.Options.SbeStormPerSecond}/s)");
            }

            c.State.Prune(sbeKey, c.Time);
        }

        EvaluatePcie(c, before, gpu);
        EvaluatePcieWidth(c, gpu);
    }

    private static void EvaluateRetiredPages(in Context c, GpuSample gpu)
    {
        var g = gpu.Index;

        // Rule 15: SBE + DBE retired pages at the DCGM limit (pre-Ampere page retirement).
        c.State.Observe(g, ConditionRule.RetiredPages, gpu.RetiredPagesSbe is null && gpu.RetiredPagesDbe is null ? null : false);
        if (gpu.RetiredPagesSbe is not null || gpu.RetiredPagesDbe is not null)
        {
            var pages = (gpu.RetiredPagesSbe ?? 0) + (gpu.RetiredPagesDbe ?? 0);
            var over = pages >= c.Options.RetiredPagesLimit;
            c.State.Observe(g, ConditionRule.RetiredPages, over);
            if (c.State.Report(new SignalKey(Signal.RetiredPages, g), over))
            {
                c.Add(g, "retired_pages", over, Severity.Critical, "retired_pages_limit", "isolate_gpu",
                    $"{pages} retired pages (SBE {gpu.RetiredPagesSbe?.ToString() ?? "?"}, DBE {gpu.RetiredPagesDbe?.ToString() ?? "?"}; limit {c.Options.RetiredPagesLimit})");
            }
        }

        // Rule 16: a page retirement waits for the next driver reload.
        c.State.Observe(g, ConditionRule.RetiredPagesPending, gpu.RetiredPagesPending);
        if (gpu.RetiredPagesPending is { } pending && c.State.Report(new SignalKey(Signal.RetiredPagesPending, g), pending))
        {
            c.Add(g, "retired_pages_pending", pending, Severity.Warning, "retired_pages_pending", "reset_gpu_at_next_drain", "page retirement pending: reset the GPU at the next drain window");
        }
    }

    private static void EvaluateTemperature(in Context c, GpuSample gpu)
    {
        // Rule 27: at or above the slowdown threshold → warning; within the margin of shutdown → critical.
        if (gpu.TemperatureC is not { } temperature)
        {
            return;
        }

        var slowdown = gpu.SlowdownTemperatureC ?? c.Options.DefaultSlowdownTemperatureC;
        var hot = temperature >= slowdown;
        c.State.Observe(gpu.Index, ConditionRule.OverTemperature, hot);
        if (c.State.Report(new SignalKey(Signal.OverTemperature, gpu.Index), hot))
        {
            var critical = gpu.ShutdownTemperatureC is { } shutdown && temperature >= shutdown - c.Options.CriticalMarginBelowShutdownC;
            c.Add(gpu.Index, "over_temperature", hot, critical ? Severity.Critical : Severity.Warning, "over_temperature", "check_cooling",
                $"GPU temperature {temperature} °C (slowdown {slowdown} °C)");
        }
    }

    private static void EvaluateSlowdown(in Context c, GpuSample gpu)
    {
        // Rule 25: HW slowdown / HW thermal / power brake while the GPU is not idle, sustained. SW power cap (0x4,
        // rule 29) is the normal state of a busy GPU and is never looked at here.
        if (gpu.ClockEventReasons is not { } reasons)
        {
            return;
        }

        var key = new SignalKey(Signal.HwSlowdown, gpu.Index);
        var bits = reasons & (ClockEventHwSlowdown | ClockEventHwThermal | ClockEventHwPowerBrake);
        var since = c.State.Since(key, bits != 0 && (reasons & ClockEventGpuIdle) == 0, c.Time);
        // Each sample stands for the interval before it: n samples one second apart show n seconds of slowdown.
        var interval = c.PreviousTime is { } previous && previous < c.Time ? c.Time - previous : TimeSpan.Zero;
        var lasted = since is { } s ? c.Time - s + interval : TimeSpan.Zero;
        var sustained = since is not null && lasted >= c.Options.HwSlowdownSustained;
        c.State.Observe(gpu.Index, ConditionRule.HwSlowdown, sustained);
        if (c.State.Report(key, sustained))
        {
            var severity = lasted >= c.Options.HwSlowdownHighAfter ? Severity.High : Severity.Warning;
            c.Add(gpu.Index, "hw_slowdown", sustained, severity, "hw_slowdown", "check_cooling_and_power",
                $"clock-event reasons 0x{reasons:x} (HW slowdown/thermal/power brake) for {lasted.TotalSeconds:F0} s while busy");
        }
    }

    private static void EvaluatePcie(in Context c, GpuSample? before, GpuSample gpu)
    {
        // Rule 23: replays over the window above ceil(perLane(gen) × lanes) per minute (DCGM MonitorPcie).
        var key = new SignalKey(Signal.PcieReplay, gpu.Index);
        c.State.Observe(gpu.Index, ConditionRule.PcieReplay, gpu.PcieReplayCounter is null ? null : false);
        if (Track(c, key, before?.PcieReplayCounter, gpu.PcieReplayCounter, saturated: false) is not { } window)
        {
            return;
        }

        var generation = Math.Clamp(gpu.PcieLinkGen ?? c.Options.DefaultPcieGeneration, 1, PcieReplayPerLanePerMinute.Length);
        var lanes = gpu.PcieLinkWidth is > 0 and var w ? w : c.Options.DefaultPcieLanes;
        var limitPerMinute = Math.Ceiling(PcieReplayPerLanePerMinute[generation - 1] * lanes);
        var replays = window.Sum(c.Time);
        var limit = limitPerMinute * window.Window.TotalMinutes;
        var storm = replays > limit;
        c.State.Observe(gpu.Index, ConditionRule.PcieReplay, storm);
        if (c.State.Report(key, storm))
        {
            c.Add(gpu.Index, "pcie_replay", storm, Severity.Warning, "pcie_replay_rate", "diagnose_pcie",
                $"{replays:F0} PCIe replays in {Seconds(window)} (limit {limit:F0}: Gen{generation} x{lanes})");
        }

        c.State.Prune(key, c.Time);
    }

    private static void EvaluateNvLinks(in Context c, NodeSample? previous, NodeSample current)
    {
        var links = current.NvLinks;
        var before = previous?.NvLinks;
        for (var i = 0; i < links.Count; i++)
        {
            var link = links[i];

            // Rule 20: a link reported inactive. NOT_SUPPORTED (null) is "no NVLink here", never a fault; a lost GPU
            // takes its links down with it and is reported as lost.
            if (link.Up is { } up)
            {
                var down = !up && !GpuLost(current, link.GpuIndex);
                c.State.Observe(link.GpuIndex, ConditionRule.NvLinkDown, down);
                if (c.State.Report(new SignalKey(Signal.NvLinkDown, link.GpuIndex, link.Link), down))
                {
                    c.Add(link.GpuIndex, $"nvlink_down:{link.Link}", down, Severity.Critical, "nvlink_down", "drain_and_reset_gpu",
                        $"NVLink {link.Link} of GPU {link.GpuIndex} is inactive");
                }
            }

            // Samples list links in the same order every tick; fall back to a search when they do not.
            var old = before is not null && i < before.Count && before[i].GpuIndex == link.GpuIndex && before[i].Link == link.Link
                ? before[i]
                : before?.FirstOrDefault(l => l.GpuIndex == link.GpuIndex && l.Link == link.Link);

            // Rule 18: replay or recovery errors, at or above NvLinkReplayPerMinute over the window → high.
            var replayKey = new SignalKey(Signal.NvLinkReplay, link.GpuIndex, link.Link);
            var replay = Track(c, replayKey, old?.ReplayErrors, link.ReplayErrors, saturated: false);
            var recovery = Track(c, replayKey with { Counter = "recovery" }, old?.RecoveryErrors, link.RecoveryErrors, saturated: false);
            c.State.Observe(link.GpuIndex, ConditionRule.NvLinkErrors, link.ReplayErrors is null && link.RecoveryErrors is null ? null : false);
            if (replay is not null || recovery is not null)
            {
                var replays = replay?.Sum(c.Time) ?? 0;
                var recoveries = recovery?.Sum(c.Time) ?? 0;
                var minutes = (replay ?? recovery)!.Window.TotalMinutes;
                var failing = replays + recoveries >= c.Options.NvLinkReplayPerMinute * minutes;
                c.State.Observe(link.GpuIndex, ConditionRule.NvLinkErrors, failing);
                if (c.State.Report(replayKey, failing))
                {
                    c.Add(link.GpuIndex, $"nvlink_replay:{link.Link}", failing, Severity.High, "nvlink_errors", "drain_at_checkpoint",
                        $"NVLink {link.Link} of GPU {link.GpuIndex}: {replays:F0} replays, {recoveries:F0} recoveries in {minutes * 60:F0} s");
                }

                c.State.Prune(replayKey, c.Time);
                c.State.Prune(replayKey with { Counter = "recovery" }, c.Time);
            }

            // Rule 19: CRC errors (flit + data) per second over the window: ≥ 100/s high, ≥ 1/s warning.
            var crcKey = new SignalKey(Signal.NvLinkCrc, link.GpuIndex, link.Link);
            var flit = Track(c, crcKey, old?.CrcFlitErrors, link.CrcFlitErrors, saturated: false);
            var data = Track(c, crcKey with { Counter = "data" }, old?.CrcDataErrors, link.CrcDataErrors, saturated: false);
            c.State.Observe(link.GpuIndex, ConditionRule.NvLinkCrc, link.CrcFlitErrors is null && link.CrcDataErrors is null ? null : false);
            if (flit is not null || data is not null)
            {
                var rate = (flit?.PerSecond(c.Time, c.ObservedSince, c.Options.RateMinimumSpan) ?? 0)
                    + (data?.PerSecond(c.Time, c.ObservedSince, c.Options.RateMinimumSpan) ?? 0);
                var failing = rate >= c.Options.NvLinkCrcWarningPerSecond;
                c.State.Observe(link.GpuIndex, ConditionRule.NvLinkCrc, failing);
                if (c.State.Report(crcKey, failing))
                {
                    var severity = rate >= c.Options.NvLinkCrcHighPerSecond ? Severity.High : Severity.Warning;
                    c.Add(link.GpuIndex, $"nvlink_crc:{link.Link}", failing, severity, "nvlink_crc", "drain_at_checkpoint",
                        $"NVLink {link.Link} of GPU {link.GpuIndex}: CRC errors at {rate:F1}/s (high at {c.Options.NvLinkCrcHighPerSecond}/s)");
                }

                c.State.Prune(crcKey, c.Time);
                c.State.Prune(crcKey with { Counter = "data" }, c.Time);
            }
        }
    }

    private static void EvaluateIbPorts(in Context c, NodeSample? previous, NodeSample current)
    {
        // Rule 36's reference rate: the configured one, else the node's fastest active port (computed once per sample).
        var expectedRate = current.IbPorts.Count == 0 ? 0 : c.Options.IbExpectedRateGbps ?? FastestActivePort(current);
        foreach (var port in current.IbPorts)
        {
            // Rule 36: state other than ACTIVE (sysfs-class-infiniband "4: ACTIVE"). No state read is Unknown.
            if (port.State is not null)
            {
                var down = !port.State.Contains("ACTIVE", StringComparison.OrdinalIgnoreCase);
                c.State.Observe(-1, ConditionRule.IbDown, down);
                if (c.State.Report(new SignalKey(Signal.IbDown, -1, port.Port, port.Device), down))
                {
                    c.Output.Add(new Finding(c.Node, null, $"ib_down:{port.Device}/{port.Port}", FindingKind.Condition, down, Severity.Critical,
                        "ib_link_down", "drain_node", $"InfiniBand {port.Device} port {port.Port} is {port.State}", c.Time));
                }
            }

            EvaluateIbRate(c, expectedRate, port);
            if (port.Counters.Count == 0)
            {
                continue;
            }

            var old = FindPort(previous, port);
            EvaluateIbFlap(c, old, port);
            foreach (var counter in c.Options.EffectiveIbErrorCounters)
            {
                EvaluateIbCounter(c, old, port, counter);
            }
        }
    }

    private static void EvaluateIbCounter(in Context c, IbPortSample? old, IbPortSample port, string counter)
    {
        // Rule 38: an error counter rising at ≥ IbErrorsPerSecond in every interval for IbErrorsSustained (a short
        // burst during link training is not sustained); it clears once the window's average falls below the rate.
        // Saturated counters (PortCounters peg at all-ones) give no rate: the last verdict holds until a reset.
        if (!port.Counters.TryGetValue(counter, out var value))
        {
            return;
        }

        var key = new SignalKey(Signal.IbErrors, -1, port.Port, port.Device, counter);
        c.State.Observe(-1, ConditionRule.IbErrors, false);
        long? before = old is not null && old.Counters.TryGetValue(counter, out var b) ? b : null;
        var saturated = port.SaturatedCounters.Contains(counter);
        if (Track(c, key, before, value, saturated) is not { } window)
        {
            return;
        }

        var interval = c.PreviousTime is { } previousTime ? (c.Time - previousTime).TotalSeconds : 0;
        var above = saturated
            ? window.LastAbove
            : interval > 0 && Increase(before, value) is { } increase && increase / interval >= c.Options.IbErrorsPerSecond;
        window.LastAbove = above;
        window.AboveSince = above ? window.AboveSince ?? c.Time : null;
        var rate = window.PerSecond(c.Time, c.ObservedSince, c.Options.RateMinimumSpan);
        var sustained = (window.AboveSince is { } since && c.Time - since >= c.Options.IbErrorsSustained)
            || (c.State.IsActive(key) && (saturated || rate >= c.Options.IbErrorsPerSecond));
        c.State.Observe(-1, ConditionRule.IbErrors, sustained);
        if (c.State.Report(key, sustained))
        {
            c.Output.Add(new Finding(c.Node, null, $"ib_errors:{port.Device}/{port.Port}:{counter}", FindingKind.Condition, sustained, Severity.Warning,
                "ib_errors", "ticket_network", $"InfiniBand {port.Device} port {port.Port} {counter} at {rate:F1}/s{(saturated ? " (counter saturated)" : "")}", c.Time));
        }

        if (!saturated)
        {
            c.State.Prune(key, c.Time);
        }
    }

    /// <summary>
    /// Adds a counter's increase since the previous sample to its window (created on the first increase) and returns
    /// the window, or null when the counter has not moved within a window. A saturated counter adds only the part
    /// that is certain (up to its ceiling) and keeps its window.
    /// </summary>
    private static RateWindow? Track(in Context c, SignalKey key, long? before, long? now, bool saturated)
    {
        if (Increase(before, now) is > 0 and var increase && c.PreviousTime is { } previousTime)
        {
            var window = c.State.GetOrAddWindow(key, c.Options.RateWindow);
            window.Add(c.Time, increase, previousTime);
            return window;
        }

        if (saturated)
        {
            return c.State.GetOrAddWindow(key, c.Options.RateWindow);
        }

        // Most counters never move: skip the lookup while the node holds no window at all.
        return c.State.WindowCount == 0 ? null : c.State.Window(key);
    }

    /// <summary>Increase of a cumulative counter; null when unknown (no previous value, not supported, or reset).</summary>
    public static long? Increase(long? before, long? now) =>
        before is { } b && now is { } n && n >= b ? n - b : null;

    private static string Seconds(RateWindow window) => $"{window.Window.TotalSeconds:F0} s";

    private static bool GpuLost(NodeSample sample, int index)
    {
        foreach (var g in sample.Gpus)
        {
            if (g.Index == index)
            {
                return g.Lost;
            }
        }

        return false;
    }

    private static IbPortSample? FindPort(NodeSample? previous, IbPortSample port)
    {
        if (previous is null)
        {
            return null;
        }

        foreach (var p in previous.IbPorts)
        {
            if (p.Port == port.Port && p.Device == port.Device)
            {
                return p;
            }
        }

        return null;
    }

    private static GpuSample? Find(NodeSample? previous, int index, string uuid)
    {
        if (previous is null)
        {
            return null;
        }

        foreach (var g in previous.Gpus)
        {
            // A different UUID at the same index is a different GPU (swapped board): no delta across it.
            if (g.Index == index)
            {
                return g.Uuid == uuid ? g : null;
            }
        }

        return null;
    }

    /// <summary>What every rule of one evaluation needs; a struct so evaluating allocates only the findings.</summary>
    private readonly record struct Context(NodeSample Current, DateTimeOffset? PreviousTime, NodeDetectionState State, DetectionOptions Options, List<Finding> Output)
    {
        public string Node => Current.Node;

        public DateTimeOffset Time => Current.Time;

        /// <summary>How long the current sample stands for: the interval since the previous one (zero for the first).</summary>
        public TimeSpan Interval => PreviousTime is { } previous && previous < Time ? Time - previous : TimeSpan.Zero;

        public DateTimeOffset ObservedSince => State.ObservedSince ?? Time;

        public void Add(int gpu, string rule, bool active, Severity severity, string category, string action, string message) =>
            Output.Add(new Finding(Node, gpu, rule, FindingKind.Condition, active, severity, category, action, message, Time));
    }
}
