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

    /// <summary>
    /// Window of the counter-rate rules (NVLink, PCIe, SBE, InfiniBand). DCGM's health watches use 60 s for PCIe and
    /// NVLink (research/gpu-health-anchors.md sections 1.1 and 6.3).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:10", "01:00:00")]
    public TimeSpan RateWindow { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// A rate is never averaged over less than this, so one error in the first second after a start is not read as
    /// "one per second" (DCGM needs a minute of data before its PCIe/thermal/power watches answer, section 1.1).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan RateMinimumSpan { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Rule 18: NVLink replay or recovery errors per minute at or above which the link is high severity. DCGM
    /// fails on any increase (MAX_NVLINK_ERROR 1, DcgmGPUHardwareLimits.h).
    /// </summary>
    [Range(0.001, 1_000_000)]
    public double NvLinkReplayPerMinute { get; set; } = 1;

    /// <summary>
    /// Rule 19: NVLink CRC (flit or data) errors per second that make the link high severity: DCGM's
    /// MAX_NVLINK_CRC_ERROR 100.0 ("RM has informed us that CRC errors only matter at rates of 100+ per second").
    /// </summary>
    [Range(0.001, 1_000_000)]
    public double NvLinkCrcHighPerSecond { get; set; } = 100;

    /// <summary>
    /// Rule 19, warning tier: CRC errors per second averaged over the window. DCGM warns on any increase; a link at
    /// 0.01–0.05/s is far below the level RM cares about and normal in large fleets (replay README, benign cases),
    /// so FleetWatch warns only at 1/s (heuristic).
    /// </summary>
    [Range(0.001, 1_000_000)]
    public double NvLinkCrcWarningPerSecond { get; set; } = 1;

    /// <summary>PCIe generation assumed when NVML does not report one (H100 SXM: Gen5, replay README).</summary>
    [Range(1, 6)]
    public int DefaultPcieGeneration { get; set; } = 5;

    /// <summary>PCIe lanes assumed when NVML does not report the width (x16, replay README).</summary>
    [Range(1, 32)]
    public int DefaultPcieLanes { get; set; } = 16;

    /// <summary>
    /// Rule 25: a HW slowdown, HW thermal or power-brake clock-event bit (0x8, 0x40, 0x80) set on a GPU that is not
    /// idle for this long is a warning; shorter episodes are normal transients (NVSentinel#890).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan HwSlowdownSustained { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Rule 25: a slowdown that persists this long becomes high severity (catalogue heuristic: &gt; 10 min).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan HwSlowdownHighAfter { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Rule 17: corrected (single-bit) ECC errors per second averaged over the window that make an SBE storm.
    /// DCGM's MAX_SBE_RATE is 10 but its header calls that a "dummy value"; a healthy HBM GPU sees a handful of
    /// corrected errors a day, so a sustained 1/s (86,400 a day) is a storm by any measure (heuristic). Xid 92 is
    /// the driver's own storm report.
    /// </summary>
    [Range(0.001, 1_000_000)]
    public double SbeStormPerSecond { get; set; } = 1;

    /// <summary>Rule 15: retired pages (SBE + DBE) at or above this are critical (DCGM MAX_RETIRED_PAGES 63).</summary>
    [Range(1, 100_000)]
    public int RetiredPagesLimit { get; set; } = 63;

    /// <summary>
    /// Rule 38: InfiniBand sysfs error counters watched as rates; null means <see cref="DefaultIbErrorCounters"/>.
    /// (Null rather than a pre-filled list because the configuration binder appends to a pre-filled list: a
    /// configured list replaces the default instead.)
    /// </summary>
    public IReadOnlyList<string>? IbErrorCounters { get; set; }

    /// <summary>
    /// The counters of rule 38 (GCM check-ib-counters). port_xmit_wait is congestion (ticks waiting for credits), not
    /// an error, and is deliberately absent (research/straggler-restore-anchors.md section 1.3).
    /// </summary>
    public static IReadOnlyList<string> DefaultIbErrorCounters { get; } =
    [
        "symbol_error", "link_error_recovery", "port_rcv_errors", "local_link_integrity_errors",
        "excessive_buffer_overrun_errors", "port_xmit_discards",
    ];

    /// <summary>The InfiniBand error counters in effect.</summary>
    public IReadOnlyList<string> EffectiveIbErrorCounters => IbErrorCounters ?? DefaultIbErrorCounters;

    /// <summary>Rule 38: errors per second on one counter, averaged over the window, that count as an error rate.</summary>
    [Range(0.001, 1_000_000)]
    public double IbErrorsPerSecond { get; set; } = 1;

    /// <summary>Rule 38 says "sustained": the rate must stay at or above the threshold this long (heuristic).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan IbErrorsSustained { get; set; } = TimeSpan.FromSeconds(30);
}
