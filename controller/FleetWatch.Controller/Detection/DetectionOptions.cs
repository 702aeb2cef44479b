using System.ComponentModel.DataAnnotations;
using FleetWatch.Common;

namespace FleetWatch.Controller.Detection;

/// <summary>Thresholds of the detectors (section <c>FleetWatch:Detection</c>). Sources: research/gpu-health-anchors.md section 7.</summary>
public sealed class DetectionOptions
{
    public const string Section = "FleetWatch:Detection";

    /// <summary>A node with no sample for this long has condition Unknown (no data is never healthy).</summary>
    [TimeSpanRange("00:00:01", "01:00:00")]
    public TimeSpan NodeUnknownAfter { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// A node with no sample for this long is critical (node silent). Rule 34 uses 300 s for trainer heartbeats;
    /// an agent at a 1 s tick that misses 30 ticks is down or cut off, and the replay bar wants it within 60 s.
    /// </summary>
    [TimeSpanRange("00:00:02", "02:00:00")]
    public TimeSpan NodeSilentAfter { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Degrees below the shutdown threshold at which over-temperature is critical (rule 27: within 5 °C).</summary>
    [Range(0, 30)]
    public int CriticalMarginBelowShutdownC { get; set; } = 5;

    /// <summary>Slowdown threshold used when NVML does not report one (H100/A100 class: 90 °C, replay README).</summary>
    [Range(50, 120)]
    public int DefaultSlowdownTemperatureC { get; set; } = 90;

    /// <summary>An event finding (one Xid, one counter increase) stays active this long after its last occurrence.</summary>
    [TimeSpanRange("00:00:01", "1.00:00:00")]
    public TimeSpan EventHold { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How often the time-driven rules run (silent nodes, event expiry, incident resolution).</summary>
    [TimeSpanRange("00:00:00.100", "00:01:00")]
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Window of the counter-rate rules (NVLink, PCIe, SBE, InfiniBand). DCGM's health watches use 60 s for PCIe and
    /// NVLink (research/gpu-health-anchors.md sections 1.1 and 6.3).
    /// </summary>
    [TimeSpanRange("00:00:10", "01:00:00")]
    public TimeSpan RateWindow { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// A rate is never averaged over less than this, so one error in the first second after a start is not read as
    /// "one per second" (DCGM needs a minute of data before its PCIe/thermal/power watches answer, section 1.1).
    /// </summary>
    [TimeSpanRange("00:00:01", "00:10:00")]
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
    [TimeSpanRange("00:00:01", "01:00:00")]
    public TimeSpan HwSlowdownSustained { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Rule 25: a slowdown that persists this long becomes high severity (catalogue heuristic: &gt; 10 min).</summary>
    [TimeSpanRange("00:00:01", "1.00:00:00")]
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
    [TimeSpanRange("00:00:00", "01:00:00")]
    public TimeSpan IbErrorsSustained { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Rule 13: uncorrectable remapped rows at or above this are a warning (DCGM DcgmGPUHardwareLimits.h, 512).</summary>
    [Range(1, 1_000_000)]
    public int UncorrectableRemappedRowsLimit { get; set; } = 512;

    /// <summary>
    /// A GPU at or above this utilisation is "busy": PCIe links train down and clocks drop when a GPU idles, so rules 24
    /// and 28 (peers) judge only busy GPUs (rule 24 says "while busy"; the 50 % line is a heuristic).
    /// </summary>
    [Range(1, 100)]
    public int BusyUtilizationPct { get; set; } = 50;

    /// <summary>Rule 24: a busy GPU's PCIe link below its maximum generation or width for this long is downtrained (NVSentinel#890; heuristic duration).</summary>
    [TimeSpanRange("00:00:00", "01:00:00")]
    public TimeSpan PcieDowntrainedSustained { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Rule 21: a GPU on an NVSwitch fabric whose registration with the fabric manager has not completed (not started or in
    /// progress) for this long counts as fabric-unhealthy: CUDA will not start on it, which is why DCGM's r1 readiness
    /// diagnostic checks the fabric manager and NVSentinel watches for it being down (research/gpu-health-anchors.md
    /// sections 1.4 and 5.1). Registration takes seconds after the fabric manager starts; the 10 minutes are FleetWatch's
    /// heuristic, long enough for a node's boot. Zero: never (a registration that does not complete stays Unknown).
    /// </summary>
    [TimeSpanRange("00:00:00", "1.00:00:00")]
    public TimeSpan FabricRegistrationTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Rule 26: share of the window the GPU spent in thermal slowdown (NVML field values 269 + 270, cumulative ns) above
    /// which it warns. DCGM warns on any nanosecond and users call it a false positive (DCGM#270); the catalogue prefers 5 %.
    /// </summary>
    [Range(0.0001, 1)]
    public double ThermalViolationFraction { get; set; } = 0.05;

    /// <summary>
    /// Rule 28: lowest plausible power reading of a GPU that is not lost. NVIDIA's Health Validation band is 65–1500 W
    /// for GB200, but an idle A100 draws about 50 W, so the lower edge here only catches a dead sensor (heuristic).
    /// </summary>
    [Range(0, 10_000)]
    public double PowerMinW { get; set; } = 10;

    /// <summary>Rule 28: highest plausible power reading (NVIDIA Health Validation GB200 band: 1500 W).</summary>
    [Range(1, 10_000)]
    public double PowerMaxW { get; set; } = 1500;

    /// <summary>Rule 28 peers: the fewest other busy GPUs on the node needed before a GPU is compared with them.</summary>
    [Range(1, 64)]
    public int PeerMinimumGpus { get; set; } = 3;

    /// <summary>
    /// Rule 28 peers: a busy GPU drawing less than this share of its busy node peers' median power is anomalous (the
    /// "util 100 % but power very low" signature, NVIDIA/nccl#968; 0.5 is a heuristic far outside normal spread).
    /// </summary>
    [Range(0.01, 1)]
    public double PeerPowerFraction { get; set; } = 0.5;

    /// <summary>
    /// Rule 28 peers: a busy GPU whose SM clock is below this share of its busy peers' median, with no HW slowdown,
    /// thermal or power-brake bit to explain it (rule 25 reports those), is silently slow (NVSentinel#890; NVRx uses a
    /// 0.7 relative-performance threshold for stragglers).
    /// </summary>
    [Range(0.01, 1)]
    public double PeerClockFraction { get; set; } = 0.75;

    /// <summary>Rule 28 peers: how long a GPU must stay below its peers before it is reported (heuristic, as rule 25's 60 s).</summary>
    [TimeSpanRange("00:00:00", "01:00:00")]
    public TimeSpan PeerSustained { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Rule 30: GPUs every node must report (inventory). Null: each node's inventory is the GPU indexes it has
    /// reported since the controller started, so a GPU that drops out of the list is missing.
    /// </summary>
    [Range(1, 64)]
    public int? ExpectedGpusPerNode { get; set; }

    /// <summary>
    /// Rule 36: the rate every active InfiniBand port must run at, in Gb/s. Null: the fastest active port of the same
    /// node is the reference (peer comparison), so a port that trained down to a lower rate stands out.
    /// </summary>
    [Range(1, 10_000)]
    public double? IbExpectedRateGbps { get; set; }

    /// <summary>Rule 37: window over which link_downed increases count as flaps.</summary>
    [TimeSpanRange("00:00:10", "1.00:00:00")]
    public TimeSpan IbFlapWindow { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Rule 37: flaps within the window that make the port critical. One flap is a warning; repeated flaps break every
    /// NCCL job on the port (Health Validation rdma_linkflap_fatal; Fire-Flyer "flash cut"; the count is a heuristic).
    /// </summary>
    [Range(1, 1000)]
    public int IbFlapCriticalCount { get; set; } = 3;

    /// <summary>Rule 4: contained memory errors (Xid 94) on one GPU within <see cref="Xid94Window"/> that escalate to high (catalogue heuristic: 3).</summary>
    [Range(1, 1000)]
    public int Xid94EscalationCount { get; set; } = 3;

    /// <summary>Rule 4: the escalation window (catalogue: 24 h).</summary>
    [TimeSpanRange("00:01:00", "30.00:00:00")]
    public TimeSpan Xid94Window { get; set; } = TimeSpan.FromHours(24);

    /// <summary>
    /// The same Xid on the same GPU from the NVML event path and the kernel log within this window is one occurrence
    /// seen twice (research section 6.1: dedup by (uuid, xid, window)). Both paths fire within milliseconds of each other.
    /// </summary>
    [TimeSpanRange("00:00:00", "00:01:00")]
    public TimeSpan XidDedupWindow { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// During an Xid flood (NVSentinel#1120: 800,000 Xid 95 lines) the finding's text, with its counts, is rebuilt at
    /// most this often; every occurrence is still counted.
    /// </summary>
    [TimeSpanRange("00:00:00", "00:10:00")]
    public TimeSpan XidFloodRefresh { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Rule 39: an app-class Xid (13, 31, 32, 43, 45, 68, 69) on one GPU under this many distinct jobs within
    /// <see cref="AppXidWindow"/> is promoted to high + diag r3 (NVIDIA WORKFLOW_XID_13/31: the same GPU repeating across jobs
    /// is hardware; the catalogue says 2 jobs in 24 h).
    /// </summary>
    [Range(2, 100)]
    public int AppXidDistinctJobs { get; set; } = 2;

    /// <summary>Rule 39: the promotion window (catalogue: 24 h).</summary>
    [TimeSpanRange("00:01:00", "30.00:00:00")]
    public TimeSpan AppXidWindow { get; set; } = TimeSpan.FromHours(24);
}
