using System.ComponentModel.DataAnnotations;
using FleetWatch.Common;

namespace FleetWatch.Controller.Stragglers.Live;

/// <summary>
/// Options of the live straggler and hang service (section <c>FleetWatch:Stragglers:Live</c>); the detector's own
/// thresholds stay in <see cref="StragglerDetectorOptions"/> (<c>FleetWatch:Stragglers</c>).
/// </summary>
public sealed class LiveStragglerOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "FleetWatch:Stragglers:Live";

    /// <summary>How often time advances in the detector (releases held reports, closes steps, checks for hangs, escalates).</summary>
    [TimeSpanRange("00:00:00.050", "00:01:00")]
    public TimeSpan Tick { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Reports are held this long after their step ended and then fed to the detector in end-time order, so that the
    /// detector sees the time-ordered stream it is built for even though agents batch for up to one flush interval (1 s)
    /// and the broker adds its own delay. A hang is reported this much later than the detector alone would. Reports later
    /// than this are fed at once (the detector counts those that come too late as stale). 2 s = one agent flush + margin. [FW]
    /// </summary>
    [TimeSpanRange("00:00:00", "00:05:00")]
    public TimeSpan IngestLag { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// A straggler still flagged after this long is raised from warning to high (research/straggler-restore-anchors.md
    /// section 5.2, severity ladder after Falcon: observe, alert, then act). Falcon saw stragglers last from seconds to
    /// hours; ten minutes is past the transient ones and well before the hour-long ones cost a checkpoint interval. [FW]
    /// </summary>
    [TimeSpanRange("00:00:01", "1.00:00:00")]
    public TimeSpan EscalateAfter { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// A straggler whose score is at or below this is raised to high at once: in synchronous training every rank waits
    /// for the slowest, so a rank at score 0.8 holds the whole job's step time back by about 25 % — material, not a
    /// trend to watch (issue 5: escalate "when the job's step time is materially hurt"). [FW]
    /// </summary>
    [Range(0.0, 1.0)]
    public double EscalateBelowScore { get; set; } = 0.8;

    /// <summary>
    /// A job with no report for this long is forgotten: its detector state is dropped so per-job state stays bounded
    /// when jobs end without final reports (killed, crashed). Longer than NCCL's 30-minute timeout and a checkpoint
    /// cycle. A hang incident raised for it stays open for an operator; straggler conditions clear. [FW]
    /// </summary>
    [TimeSpanRange("00:01:00", "7.00:00:00")]
    public TimeSpan ForgetJobAfter { get; set; } = TimeSpan.FromHours(6);

    /// <summary>Work items (batches of reports, ticks) waiting for the detector loop; when full, consumers wait (back-pressure to the broker).</summary>
    [Range(16, 1_000_000)]
    public int QueueCapacity { get; set; } = 4_096;

    /// <summary>
    /// Node counters are compared across this window when a rank is flagged (error rates need two samples). NVRx's
    /// NVLink health check uses 60 s windows (research/straggler-restore-anchors.md section 1.6).
    /// </summary>
    [TimeSpanRange("00:00:01", "01:00:00")]
    public TimeSpan AttributionWindow { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Largest number of (node, GPU) pairs a hang is reported on (its suspect ranks); more are named in the message only.</summary>
    [Range(1, 1_024)]
    public int MaxHangTargets { get; set; } = 8;

    /// <summary>Thresholds of the node-signal attribution.</summary>
    public AttributionThresholds Attribution { get; set; } = new();
}

/// <summary>
/// When a node signal counts as evidence for a straggler's cause (<see cref="StragglerAttributor"/>). Deltas are over the
/// attribution window; a counter is evidence when its delta is strictly above the threshold.
/// </summary>
public sealed class AttributionThresholds
{
    /// <summary>NVLink CRC/replay/recovery errors on the rank's GPU: any (Meta GCM's <c>check-dcgmi nvlink</c> default 0, section 1.6).</summary>
    [Range(0, long.MaxValue)]
    public long NvLinkErrorDelta { get; set; }

    /// <summary>IB port error counters (symbol, receive, recovery, discards...): infiniband-diags' example thresholds of 10 (section 1.5).</summary>
    [Range(0, long.MaxValue)]
    public long IbErrorDelta { get; set; } = 10;

    /// <summary>IB <c>port_xmit_wait</c> ticks (congestion): infiniband-diags' example PortXmitWait=1000 (section 1.5).</summary>
    [Range(0, long.MaxValue)]
    public long IbXmitWaitDelta { get; set; } = 1_000;

    /// <summary>IB <c>out_of_buffer</c> drops (receiver host too slow, a straggler hint): any (section 5.1).</summary>
    [Range(0, long.MaxValue)]
    public long IbOutOfBufferDelta { get; set; }
}
