using FleetWatch.Contracts;
using InfluxDB.Client.Api.Domain;
using InfluxDB.Client.Writes;

namespace FleetWatch.Controller.Telemetry;

/// <summary>
/// Maps a node sample to InfluxDB points: measurement <c>gpu</c> (one point per GPU, NVLink counters summed per
/// GPU so a 10,000-GPU fleet writes 10,000 GPU points/s, not 180,000 link points), and <c>ib</c> per port.
/// VictoriaMetrics names the series <c>{measurement}_{field}</c>, e.g. <c>gpu_temp</c>.
/// </summary>
public static class SamplePoints
{
    public static void Append(NodeSample sample, List<PointData> output)
    {
        var time = sample.Time.UtcDateTime;
        foreach (var gpu in sample.Gpus)
        {
            var p = PointData.Measurement("gpu")
                .Tag("node", sample.Node)
                .Tag("gpu", gpu.Index.ToString(System.Globalization.CultureInfo.InvariantCulture))
                .Tag("uuid", gpu.Uuid)
                .Field("lost", gpu.Lost ? 1L : 0L)
                .Timestamp(time, WritePrecision.Ns);
            p = Add(p, "temp", gpu.TemperatureC);
            p = Add(p, "power_w", gpu.PowerW);
            p = Add(p, "util", gpu.UtilizationPct);
            p = Add(p, "mem_used_mib", gpu.MemoryUsedMiB);
            p = Add(p, "sm_clock_mhz", gpu.SmClockMHz);
            p = Add(p, "ecc_sbe", gpu.EccCorrectedVolatile);
            p = Add(p, "ecc_dbe", gpu.EccUncorrectedVolatile);
            p = Add(p, "pcie_replay", gpu.PcieReplayCounter);
            long replay = 0, crc = 0;
            foreach (var link in sample.NvLinks)
            {
                if (link.GpuIndex == gpu.Index)
                {
                    replay += (link.ReplayErrors ?? 0) + (link.RecoveryErrors ?? 0);
                    crc += (link.CrcFlitErrors ?? 0) + (link.CrcDataErrors ?? 0);
                }
            }

            p = p.Field("nvlink_replay", replay).Field("nvlink_crc", crc);
            output.Add(p);
        }

        foreach (var port in sample.IbPorts)
        {
            var p = PointData.Measurement("ib")
                .Tag("node", sample.Node)
                .Tag("device", port.Device)
                .Tag("port", port.Port.ToString(System.Globalization.CultureInfo.InvariantCulture))
                .Field("active", port.State?.Contains("ACTIVE", StringComparison.OrdinalIgnoreCase) == true ? 1L : 0L)
                .Timestamp(time, WritePrecision.Ns);
            foreach (var (name, value) in port.Counters)
            {
                p = p.Field(name, value);
            }

            output.Add(p);
        }
    }

    private static PointData Add(PointData p, string field, long? value) => value is { } v ? p.Field(field, v) : p;

    private static PointData Add(PointData p, string field, int? value) => value is { } v ? p.Field(field, (long)v) : p;

    private static PointData Add(PointData p, string field, double? value) => value is { } v ? p.Field(field, v) : p;
}
