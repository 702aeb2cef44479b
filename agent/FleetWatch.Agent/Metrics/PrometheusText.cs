using System.Globalization;
using System.Text;
using FleetWatch.Contracts;
using static FleetWatch.Common.PrometheusExposition;

namespace FleetWatch.Agent.Metrics;

/// <summary>One agent-level counter or gauge for the exposition.</summary>
public sealed record AgentCounter(string Name, string Help, bool IsCounter, double Value);

/// <summary>
/// Prometheus text exposition (format 0.0.4) of one node's sample. GPU series use dcgm-exporter's metric names and
/// labels (etc/default-counters.csv, research/gpu-health-anchors.md section 1.7) so existing Grafana dashboards work
/// unchanged; they are typed gauge as the values are NVML's current readings. FleetWatch's own series are
/// <c>fleetwatch_*</c>. Pure.
/// </summary>
public static class PrometheusText
{
    private static readonly (string Name, string Help, Func<GpuSample, double?> Value)[] GpuSeries =
    [
        ("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", g => g.SmClockMHz),
        ("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz).", g => g.MemoryClockMHz),
        ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", g => g.TemperatureC),
        ("DCGM_FI_DEV_MEMORY_TEMP", "Memory temperature (in C).", g => g.MemoryTemperatureC),
        ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", g => g.PowerW),
        ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", g => g.UtilizationPct),
        ("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %).", g => g.MemoryUtilizationPct),
        ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", g => g.MemoryUsedMiB),
        ("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", g => g.MemoryTotalMiB - g.MemoryUsedMiB),
        ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "Total number of PCIe retries.", g => g.PcieReplayCounter),
        ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "Total number of single-bit volatile ECC errors.", g => g.EccCorrectedVolatile),
        ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "Total number of double-bit volatile ECC errors.", g => g.EccUncorrectedVolatile),
        ("DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", "Total number of single-bit persistent ECC errors.", g => g.EccCorrectedAggregate),
        ("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", "Total number of double-bit persistent ECC errors.", g => g.EccUncorrectedAggregate),
        ("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "Number of remapped rows for correctable errors.", g => g.RemappedRowsCorrectable),
        ("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "Number of remapped rows for uncorrectable errors.", g => g.RemappedRowsUncorrectable),
        ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "Whether remapping of rows has failed.", g => Flag(g.RemapFailure)),
        ("DCGM_FI_DEV_RETIRED_SBE", "Total number of retired pages due to single-bit errors.", g => g.RetiredPagesSbe),
        ("DCGM_FI_DEV_RETIRED_DBE", "Total number of retired pages due to double-bit errors.", g => g.RetiredPagesDbe),
        ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "Current clock event (throttle) reasons bit mask.", g => g.ClockEventReasons),
        ("DCGM_FI_DEV_PCIE_LINK_GEN", "Current PCIe link generation.", g => g.PcieLinkGen),
        ("DCGM_FI_DEV_PCIE_LINK_WIDTH", "Current PCIe link width.", g => g.PcieLinkWidth),
        // Rules 14, 21, 35 under their DCGM field names (dcgm_fields.h 1507, 84, 174; the health mask is in dcgm-exporter's
        // etc/default-counters.csv, commented out by default). The agent reads them through NVML.
        ("DCGM_FI_DEV_MEMORY_UNREPAIRABLE_FLAG", "Unrepairable memory flag (1 = unrepairable).", g => Flag(g.UnrepairableMemory)),
        ("DCGM_FI_DEV_INFOROM_CONFIG_VALID", "Whether the InfoROM is valid (0 = corrupt).", g => Flag(g.InforomValid)),
        ("DCGM_FI_DEV_FABRIC_HEALTH_MASK", "GPU fabric health status mask.", g => g.FabricHealthMask),
        // DCGM's FABRIC_MANAGER_STATUS (170) uses its own enum, not NVML's fabric state: FleetWatch's own names for NVML's
        // values. DCGM_FI_DEV_FABRIC_HEALTH_SUMMARY (175) would fail promtool's lint ("metric name should not include type
        // 'summary'"), so the summary is fleetwatch_gpu_fabric_health.
        ("fleetwatch_gpu_fabric_health", "NVML GPU fabric health summary (1 healthy, 2 unhealthy, 3 limited capacity).", g => g.FabricHealthSummary),
        ("fleetwatch_gpu_fabric_state", "NVML GPU fabric registration state (1 not started, 2 in progress, 3 completed).", g => g.FabricState),
        ("fleetwatch_gpu_fabric_status", "NVML return code of the GPU fabric registration (0 success).", g => g.FabricStatus),
    ];

    private static double? Flag(bool? value) => value is { } v ? (v ? 1 : 0) : null;

    public static string Render(NodeSample? sample, IReadOnlyDictionary<int, int> lastXid, IEnumerable<AgentCounter> agent)
    {
        var sb = new StringBuilder(16 * 1024);
        if (sample is not null)
        {
            foreach (var (name, help, value) in GpuSeries)
            {
                Header(sb, name, help, "gauge");
                foreach (var gpu in sample.Gpus)
                {
                    if (value(gpu) is { } v)
                    {
                        Line(sb, name, GpuLabels(sample, gpu), v);
                    }
                }
            }

            Header(sb, "DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered.", "gauge");
            foreach (var gpu in sample.Gpus)
            {
                Line(sb, "DCGM_FI_DEV_XID_ERRORS", GpuLabels(sample, gpu), lastXid.TryGetValue(gpu.Index, out var x) ? x : 0);
            }

            NvLink(sb, sample, "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "Total number of NVLink flow-control CRC errors.", l => l.CrcFlitErrors);
            NvLink(sb, sample, "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", "Total number of NVLink data CRC errors.", l => l.CrcDataErrors);
            NvLink(sb, sample, "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", "Total number of NVLink retries.", l => l.ReplayErrors);
            NvLink(sb, sample, "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL", "Total number of NVLink recovery errors.", l => l.RecoveryErrors);

            Header(sb, "fleetwatch_gpu_lost", "1 when NVML reports the GPU lost (GPU_IS_LOST).", "gauge");
            foreach (var gpu in sample.Gpus)
            {
                Line(sb, "fleetwatch_gpu_lost", GpuLabels(sample, gpu), gpu.Lost ? 1 : 0);
            }

            Header(sb, "fleetwatch_ib_port_active", "1 when the InfiniBand port state is ACTIVE.", "gauge");
            foreach (var port in sample.IbPorts)
            {
                Line(sb, "fleetwatch_ib_port_active", PortLabels(sample, port), port.State?.Contains("ACTIVE", StringComparison.OrdinalIgnoreCase) == true ? 1 : 0);
            }

            Header(sb, "fleetwatch_ib_port_rate_gbps", "InfiniBand port rate (Gb/s).", "gauge");
            foreach (var port in sample.IbPorts)
            {
                if (port.RateGbps is { } rate)
                {
                    Line(sb, "fleetwatch_ib_port_rate_gbps", PortLabels(sample, port), rate);
                }
            }

            Header(sb, "fleetwatch_ib_port_sysfs_value", "InfiniBand sysfs counter value (data counters in 4-byte words, as sysfs gives them).", "gauge");
            foreach (var port in sample.IbPorts)
            {
                foreach (var (counter, value) in port.Counters.OrderBy(c => c.Key, StringComparer.Ordinal))
                {
                    Line(sb, "fleetwatch_ib_port_sysfs_value", $"{PortLabels(sample, port)},counter=\"{Escape(counter)}\"", value);
                }
            }

            Header(sb, "fleetwatch_ib_port_sysfs_saturated", "1 when the counter sits at its width's maximum (its delta is unknown).", "gauge");
            foreach (var port in sample.IbPorts)
            {
                foreach (var counter in port.SaturatedCounters)
                {
                    Line(sb, "fleetwatch_ib_port_sysfs_saturated", $"{PortLabels(sample, port)},counter=\"{Escape(counter)}\"", 1);
                }
            }
        }

        foreach (var c in agent)
        {
            Header(sb, c.Name, c.Help, c.IsCounter ? "counter" : "gauge");
            Line(sb, c.Name, "", c.Value);
        }

        return sb.ToString();
    }

    private static void NvLink(StringBuilder sb, NodeSample sample, string name, string help, Func<NvLinkSample, long?> value)
    {
        Header(sb, name, help, "gauge");
        foreach (var gpu in sample.Gpus)
        {
            long total = 0;
            var any = false;
            foreach (var link in sample.NvLinks)
            {
                if (link.GpuIndex == gpu.Index && value(link) is { } v)
                {
                    total += v;
                    any = true;
                }
            }

            if (any)
            {
                Line(sb, name, GpuLabels(sample, gpu), total);
            }
        }
    }

    private static string GpuLabels(NodeSample sample, GpuSample gpu) =>
        $"gpu=\"{gpu.Index}\",UUID=\"{Escape(gpu.Uuid)}\",pci_bus_id=\"{Escape(gpu.PciBusId ?? "")}\",device=\"nvidia{gpu.Index}\",modelName=\"{Escape(gpu.Name ?? "")}\",Hostname=\"{Escape(sample.Node)}\"";

    private static string PortLabels(NodeSample sample, IbPortSample port) =>
        $"device=\"{Escape(port.Device)}\",port=\"{port.Port}\",Hostname=\"{Escape(sample.Node)}\"";
}
