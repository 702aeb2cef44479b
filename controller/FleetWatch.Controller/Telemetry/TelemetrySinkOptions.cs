using System.ComponentModel.DataAnnotations;
using FleetWatch.Common;

namespace FleetWatch.Controller.Telemetry;

/// <summary>InfluxDB v2 write endpoint for telemetry history (section <c>FleetWatch:Telemetry</c>).</summary>
public sealed class TelemetrySinkOptions
{
    public const string Section = "FleetWatch:Telemetry";

    /// <summary>Off by default (all-in-one needs no external service).</summary>
    public bool Enabled { get; set; }

    /// <summary>Base URL of an InfluxDB 2.x/3.x or VictoriaMetrics server (it serves <c>/api/v2/write</c>).</summary>
    public string Url { get; set; } = "http://127.0.0.1:8428";

    /// <summary>API token; a secret, never logged. VictoriaMetrics accepts any.</summary>
    public string Token { get; set; } = "fleetwatch";

    [Required]
    public string Organization { get; set; } = "fleetwatch";

    [Required]
    public string Bucket { get; set; } = "fleetwatch";

    /// <summary>Samples buffered in memory while the server is slow or away; the oldest are dropped (and counted) beyond it.</summary>
    [Range(1, 10_000_000)]
    public int BufferSamples { get; set; } = 20_000;

    /// <summary>Points per write request (research/deps-and-limits.md: batches of 5,000 reach ~150,000 points/s here).</summary>
    [Range(1, 100_000)]
    public int BatchPoints { get; set; } = 5_000;

    /// <summary>A partial batch is written after this long.</summary>
    [TimeSpanRange("00:00:00.010", "00:01:00")]
    public TimeSpan FlushInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Attempts per batch before it is dropped (and counted).</summary>
    [Range(1, 100)]
    public int MaxAttempts { get; set; } = 5;

    /// <summary>Compress write bodies (about 4× smaller, deps-and-limits.md).</summary>
    public bool Gzip { get; set; } = true;
}
