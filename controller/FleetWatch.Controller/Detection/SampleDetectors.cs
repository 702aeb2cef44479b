using FleetWatch.Contracts;

namespace FleetWatch.Controller.Detection;

/// <summary>
/// Rules evaluated on each node sample against the previous one (research/gpu-health-anchors.md section 7).
/// Pure: time comes from the sample. Counters are compared cumulative-to-cumulative: a counter that went
/// down was reset (driver reload, GPU reset) and never fires.
/// </summary>
public static class SampleDetectors
{
    public static void Evaluate(NodeSample? previous, NodeSample current, DetectionOptions options, List<Finding> output)
    {
        var time = current.Time;
        foreach (var gpu in current.Gpus)
        {
            var before = Find(previous, gpu.Index, gpu.Uuid);
            EvaluateGpu(current.Node, before, gpu, time, options, output);
        }

        EvaluateNvLinks(previous, current, output);
        EvaluateIbPorts(current, output);
    }

    private static void EvaluateGpu(string node, GpuSample? before, GpuSample gpu, DateTimeOffset time, DetectionOptions options, List<Finding> output)
    {
        // Rule 1: NVML GPU_IS_LOST is the fallen-off-the-bus signal even when no Xid line was seen.
        output.Add(new Finding(node, gpu.Index, "gpu_lost", FindingKind.Condition, gpu.Lost, Severity.Critical, "gpu_fell_off_bus", "restart_node",
            $"NVML reports GPU {gpu.Index} ({gpu.Uuid}) lost", time));
        if (gpu.Lost)
        {
            return; // nothing else is readable
        }

        // Rule 2: any increase of the volatile uncorrected (double-bit) ECC counter.
        if (Increase(before?.EccUncorrectedVolatile, gpu.EccUncorrectedVolatile) is > 0 and var dbe)
        {
            output.Add(new Finding(node, gpu.Index, "ecc_dbe", FindingKind.Event, true, Severity.Critical, "ecc_double_bit", "drain_and_reset_gpu",
                $"double-bit ECC errors +{dbe} (volatile total {gpu.EccUncorrectedVolatile})", time));
        }

        // Rule 11: row-remap failure.
        if (gpu.RemapFailure is { } failure)
        {
            output.Add(new Finding(node, gpu.Index, "row_remap_failure", FindingKind.Condition, failure, Severity.Critical, "row_remap_failure", "reset_gpu",
                "row remapping failed (NVML remapped rows failureOccurred)", time));
        }

        // Rule 27: at or above the slowdown threshold → warning; within the margin of shutdown → critical.
        if (gpu.TemperatureC is { } temperature)
        {
            var slowdown = gpu.SlowdownTemperatureC ?? options.DefaultSlowdownTemperatureC;
            var critical = gpu.ShutdownTemperatureC is { } shutdown && temperature >= shutdown - options.CriticalMarginBelowShutdownC;
            output.Add(new Finding(node, gpu.Index, "over_temperature", FindingKind.Condition, temperature >= slowdown,
                critical ? Severity.Critical : Severity.Warning, "over_temperature", "check_cooling",
                $"GPU temperature {temperature} °C (slowdown {slowdown} °C)", time));
        }
    }

    private static void EvaluateNvLinks(NodeSample? previous, NodeSample current, List<Finding> output)
    {
        foreach (var link in current.NvLinks)
        {
            // Rule 20: a link reported inactive. NOT_SUPPORTED (null) is "no NVLink here", never a fault.
            if (link.Up is { } up)
            {
                var gpuLost = current.Gpus.FirstOrDefault(g => g.Index == link.GpuIndex)?.Lost == true;
                output.Add(new Finding(current.Node, link.GpuIndex, $"nvlink_down:{link.Link}", FindingKind.Condition, !up && !gpuLost,
                    Severity.Critical, "nvlink_down", "drain_and_reset_gpu", $"NVLink {link.Link} of GPU {link.GpuIndex} is inactive", current.Time));
            }

            var before = previous?.NvLinks.FirstOrDefault(l => l.GpuIndex == link.GpuIndex && l.Link == link.Link);
            // Rule 18: replay or recovery errors, Δ ≥ 1 → high.
            var replay = Increase(before?.ReplayErrors, link.ReplayErrors) ?? 0;
            var recovery = Increase(before?.RecoveryErrors, link.RecoveryErrors) ?? 0;
            if (replay + recovery > 0)
            {
                output.Add(new Finding(current.Node, link.GpuIndex, $"nvlink_replay:{link.Link}", FindingKind.Event, true, Severity.High, "nvlink_errors",
                    "drain_at_checkpoint", $"NVLink {link.Link} of GPU {link.GpuIndex}: replay +{replay}, recovery +{recovery}", current.Time));
            }
        }
    }

    private static void EvaluateIbPorts(NodeSample current, List<Finding> output)
    {
        foreach (var port in current.IbPorts)
        {
            if (port.State is null)
            {
                continue;
            }

            // Rule 36: state other than ACTIVE (sysfs-class-infiniband "4: ACTIVE").
            var down = !port.State.Contains("ACTIVE", StringComparison.OrdinalIgnoreCase);
            output.Add(new Finding(current.Node, null, $"ib_down:{port.Device}/{port.Port}", FindingKind.Condition, down, Severity.Critical,
                "ib_link_down", "drain_node", $"InfiniBand {port.Device} port {port.Port} is {port.State}", current.Time));
        }
    }

    /// <summary>Increase of a cumulative counter; null when unknown (no previous value, not supported, or reset).</summary>
    public static long? Increase(long? before, long? now) =>
        before is { } b && now is { } n && n >= b ? n - b : null;

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
}
