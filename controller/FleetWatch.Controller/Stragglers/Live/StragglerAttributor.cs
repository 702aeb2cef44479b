using System.Globalization;
using FleetWatch.Contracts;

namespace FleetWatch.Controller.Stragglers.Live;

/// <summary>Where a straggler's slowness most likely comes from (issue 5 item 3; research/straggler-restore-anchors.md section 5.2).</summary>
public enum StragglerCause
{
    /// <summary>No node signal explains it (or no data): the finding says so, it never guesses.</summary>
    Unknown,

    /// <summary>The rank's GPU is throttled (hardware slowdown, thermal, power brake or cap) or lost.</summary>
    Compute,

    /// <summary>NVLink or InfiniBand errors, a link down, or congestion on the node's fabric ports.</summary>
    Network,

    /// <summary>The host side: the GPU's PCIe link runs below its width, or the HCA drops for want of receive buffers (slow CPU).</summary>
    Host,
}

/// <summary>The cause with the evidence behind it, in words an operator reads in the incident.</summary>
/// <param name="Cause">The label.</param>
/// <param name="Evidence">Each signal that counted, strongest first.</param>
public sealed record StragglerAttribution(StragglerCause Cause, IReadOnlyList<string> Evidence)
{
    /// <summary>The lower-case label: <c>compute</c>, <c>network</c>, <c>host</c> or <c>unknown</c>.</summary>
    public string Label => Cause.ToString().ToLowerInvariant();

    /// <summary>"cause: compute (GPU 3 clock event HW slowdown (0x8))".</summary>
    public string Describe() => Evidence.Count == 0 ? $"cause: {Label}" : $"cause: {Label} ({string.Join("; ", Evidence)})";
}

/// <summary>
/// Labels a flagged rank's likely cause from its node's telemetry: the latest <see cref="NodeSample"/> and an earlier one
/// of the same agent run (for counter deltas). A pure function (STYLE.md rule 11). Order of strength: a hardware clock
/// event on the rank's GPU is direct proof the GPU runs slow, so it wins; then fabric errors; then host signals; a software
/// power cap alone is a weak compute hint (it is normal under load, gpu-health-anchors.md section 1.6) and ranks last.
/// </summary>
public static class StragglerAttributor
{
    /// <summary>Clock-event bits that mean the GPU is slowed by hardware or cooling (gpu-health-anchors.md section 1.6).</summary>
    private static readonly (ulong Bit, string Name)[] HardSlowdownBits =
    [
        (0x8, "HW slowdown"),
        (0x40, "HW thermal slowdown"),
        (0x80, "HW power brake"),
        (0x20, "SW thermal slowdown"),
    ];

    private const ulong SwPowerCap = 0x4;

    /// <summary>IB error counters (sysfs <c>counters/</c> names, section 1.3) that point at a bad link or port.</summary>
    private static readonly string[] IbErrorCounters =
    [
        "symbol_error", "link_error_recovery", "link_downed", "port_rcv_errors", "port_rcv_remote_physical_errors",
        "port_xmit_discards", "local_link_integrity_errors", "excessive_buffer_overrun_errors",
    ];

    /// <summary>Attributes a straggler on GPU <paramref name="gpu"/> of the node whose telemetry is given.</summary>
    /// <param name="latest">The node's newest sample; null when the controller has none.</param>
    /// <param name="baseline">An earlier sample of the same node, for deltas; ignored unless older and of the same agent run.</param>
    /// <param name="gpu">The rank's GPU index.</param>
    /// <param name="thresholds">Delta thresholds.</param>
    public static StragglerAttribution Attribute(NodeSample? latest, NodeSample? baseline, int gpu, AttributionThresholds thresholds)
    {
        ArgumentNullException.ThrowIfNull(thresholds);
        if (latest is null)
        {
            return new StragglerAttribution(StragglerCause.Unknown, ["no telemetry from the node"]);
        }

        if (baseline is not null && (baseline.Time >= latest.Time || !string.Equals(baseline.AgentRun, latest.AgentRun, StringComparison.Ordinal)))
        {
            // Same sample, or the agent restarted (counters restarted too): no delta.
            baseline = null;
        }

        var compute = new List<string>();
        var weakCompute = new List<string>();
        var network = new List<string>();
        var host = new List<string>();
        var g = latest.Gpus.FirstOrDefault(x => x.Index == gpu);
        if (g is null)
        {
            // No GPU data is not evidence of health; the fabric can still explain it.
        }
        else if (g.Lost)
        {
            compute.Add($"GPU {gpu} lost (fallen off the bus)");
        }
        else
        {
            if (g.ClockEventReasons is { } reasons)
            {
                foreach (var (bit, name) in HardSlowdownBits)
                {
                    if ((reasons & bit) != 0)
                    {
                        compute.Add(string.Create(CultureInfo.InvariantCulture, $"GPU {gpu} clock event {name} (0x{bit:x})"));
                    }
                }

                if ((reasons & SwPowerCap) != 0)
                {
                    weakCompute.Add($"GPU {gpu} at its software power cap (0x4), often normal under load");
                }
            }

            if (g.PcieLinkWidth is { } width && g.PcieMaxLinkWidth is { } max && width < max)
            {
                host.Add($"GPU {gpu} PCIe link x{width} of x{max}");
            }
        }

        var span = baseline is null ? "" : string.Create(CultureInfo.InvariantCulture, $" in {(latest.Time - baseline.Time).TotalSeconds:0} s");
        foreach (var link in latest.NvLinks)
        {
            if (link.GpuIndex != gpu)
            {
                continue;
            }

            if (link.Up == false)
            {
                network.Add($"GPU {gpu} NVLink {link.Link} down");
                continue;
            }

            var before = baseline?.NvLinks.FirstOrDefault(l => l.GpuIndex == gpu && l.Link == link.Link);
            if (before is null)
            {
                continue;
            }

            var errors = Delta(link.CrcFlitErrors, before.CrcFlitErrors) + Delta(link.CrcDataErrors, before.CrcDataErrors)
                + Delta(link.ReplayErrors, before.ReplayErrors) + Delta(link.RecoveryErrors, before.RecoveryErrors);
            if (errors > thresholds.NvLinkErrorDelta)
            {
                network.Add($"GPU {gpu} NVLink {link.Link}: {errors} CRC/replay/recovery errors{span}");
            }
        }

        foreach (var port in latest.IbPorts)
        {
            var name = $"IB {port.Device}/{port.Port}";
            if (port.State is { } state && !state.Contains("ACTIVE", StringComparison.OrdinalIgnoreCase))
            {
                network.Add($"{name} {state}");
                continue;
            }

            var before = baseline?.IbPorts.FirstOrDefault(p => p.Device == port.Device && p.Port == port.Port);
            if (before is null)
            {
                continue;
            }

            foreach (var counter in IbErrorCounters)
            {
                var d = CounterDelta(port, before, counter);
                if (d > thresholds.IbErrorDelta)
                {
                    network.Add($"{name} {counter} +{d}{span}");
                }
            }

            if (CounterDelta(port, before, "port_xmit_wait") is var wait && wait > thresholds.IbXmitWaitDelta)
            {
                network.Add($"{name} port_xmit_wait +{wait}{span} (congestion)");
            }

            if (CounterDelta(port, before, "out_of_buffer") is var oob && oob > thresholds.IbOutOfBufferDelta)
            {
                host.Add($"{name} out_of_buffer +{oob}{span} (receiver host too slow)");
            }
        }

        if (compute.Count > 0)
        {
            return new StragglerAttribution(StragglerCause.Compute, [.. compute, .. network, .. host, .. weakCompute]);
        }

        if (network.Count > 0)
        {
            return new StragglerAttribution(StragglerCause.Network, [.. network, .. host, .. weakCompute]);
        }

        if (host.Count > 0)
        {
            return new StragglerAttribution(StragglerCause.Host, [.. host, .. weakCompute]);
        }

        if (weakCompute.Count > 0)
        {
            return new StragglerAttribution(StragglerCause.Compute, weakCompute);
        }

        return new StragglerAttribution(StragglerCause.Unknown,
            [baseline is null ? "no throttling, link or host signal on the node (no earlier sample for error rates)" : "no throttling, link or host signal on the node"]);
    }

    /// <summary>A counter's growth; 0 when either side is missing, saturated, or it went back (a reset: unknown, never negative).</summary>
    private static long CounterDelta(IbPortSample now, IbPortSample before, string counter)
    {
        if (now.SaturatedCounters.Contains(counter) || before.SaturatedCounters.Contains(counter)
            || !now.Counters.TryGetValue(counter, out var a) || !before.Counters.TryGetValue(counter, out var b))
        {
            return 0;
        }

        return a >= b ? a - b : 0;
    }

    private static long Delta(long? now, long? before) => now is { } a && before is { } b && a >= b ? a - b : 0;
}
