using System.ComponentModel.DataAnnotations;

namespace FleetWatch.Controller.Detection;

/// <summary>Thresholds of the detectors (section <c>FleetWatch:Detection</c>). Sources: research/gpu-health-anchors.md section 7.</summary>
public sealed class DetectionOptions
{
    public const string Section = "FleetWatch:Detection";

    /// <summary>A node with no sample for this long has condition Unknown (no data is never healthy).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan NodeUnknownAfter { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// A node with no sample for this long is critical (node silent). Rule 34 uses 300 s for trainer heartbeats;
    /// an agent at a 1 s tick that misses 30 ticks is down or cut off, and the replay bar wants it within 60 s.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:02", "02:00:00")]
    public TimeSpan NodeSilentAfter { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Degrees below the shutdown threshold at which over-temperature is critical (rule 27: within 5 °C).</summary>
    [Range(0, 30)]
    public int CriticalMarginBelowShutdownC { get; set; } = 5;

    /// <summary>Slowdown threshold used when NVML does not report one (H100/A100 class: 90 °C, replay README).</summary>
    [Range(50, 120)]
    public int DefaultSlowdownTemperatureC { get; set; } = 90;

    /// <summary>An event finding (one Xid, one counter increase) stays active this long after its last occurrence.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan EventHold { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How often the time-driven rules run (silent nodes, event expiry, incident resolution).</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:01:00")]
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromSeconds(1);
}
