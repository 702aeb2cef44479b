using System.ComponentModel.DataAnnotations;
using FleetWatch.Common;

namespace FleetWatch.Controller.Remediation;

/// <summary>A node held in reserve to replace a failed one, with the labels that decide which failures it may replace.</summary>
public sealed class SpareNode
{
    [Required]
    public string Node { get; set; } = "";

    /// <summary>NVLink domain (NVSwitch ClusterUUID segment); spares in the failed node's domain are taken first (NVRx <c>--ft-segment</c>).</summary>
    public string? Domain { get; set; }

    public string? Rack { get; set; }
}

/// <summary>Cordon, restore and storm-guard settings (section <c>FleetWatch:Remediation</c>). Sources in research/straggler-restore-anchors.md.</summary>
public sealed class RemediationOptions
{
    public const string Section = "FleetWatch:Remediation";

    /// <summary>Restore jobs automatically; false only records what would have been done.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Nodes kept in reserve, with their domain and rack labels.</summary>
    public List<SpareNode> Spares { get; set; } = [];

    /// <summary>
    /// Largest share of the fleet FleetWatch may hold cordoned; a cordon beyond it is refused and paged instead
    /// (NVSentinel's circuit breaker uses 50 %, DESIGN.md "Remediation").
    /// </summary>
    [Range(0.0, 1.0)]
    public double MaxCordonedShare { get; set; } = 0.5;

    /// <summary>Fleet size for the circuit breaker; 0 counts the nodes FleetWatch knows (samples, jobs, spares).</summary>
    [Range(0, 1_000_000)]
    public int FleetSize { get; set; }

    /// <summary>Steps a restored run must complete past its checkpoint to count as healthy (section 5.4 step 7: N = 3).</summary>
    [Range(1, 10_000)]
    public int VerifySteps { get; set; } = 3;

    /// <summary>
    /// How long a restored run has to reach <see cref="VerifySteps"/>; after it the checkpoint is marked bad and the
    /// previous complete one is restored. Covers requeue, process start and checkpoint load (NVRx's initial heartbeat
    /// timeout is 30-60 min at scale; a fault-injection demo restores in seconds).
    /// </summary>
    [TimeSpanRange("00:00:01", "1.00:00:00")]
    public TimeSpan VerifyTimeout { get; set; } = TimeSpan.FromMinutes(20);

    /// <summary>Consecutive cycles without checkpoint progress after which restarts stop (NVRx <c>max_no_progress_cycles=3</c>).</summary>
    [Range(1, 100)]
    public int MaxNoProgressCycles { get; set; } = 3;

    /// <summary>Cycles within <see cref="StormWindow"/> that page as a restart storm (nvrx-watch <c>restart_storm</c>: 5 in 30 min).</summary>
    [Range(2, 1000)]
    public int StormCycles { get; set; } = 5;

    [TimeSpanRange("00:01:00", "7.00:00:00")]
    public TimeSpan StormWindow { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>A run shorter than this is a short cycle (nvrx-watch <c>suspect_node</c>: &lt; 10 min).</summary>
    [TimeSpanRange("00:00:01", "1.00:00:00")]
    public TimeSpan ShortCycle { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Consecutive short cycles ended by the same node that flag it as suspect (nvrx-watch: 3).</summary>
    [Range(2, 100)]
    public int SuspectNodeCycles { get; set; } = 3;

    /// <summary>
    /// Scheduler adapter that manages nodes no registered job names ("slurm", "kubernetes"); empty: a node is drained
    /// through the scheduler of the jobs on it, or only in FleetWatch's own state.
    /// </summary>
    public string? NodeScheduler { get; set; }

    /// <summary>Scan job checkpoint directories for a completion marker besides the reported checkpoints.</summary>
    public bool ScanCheckpointDirs { get; set; } = true;

    /// <summary>Only directories under this root are scanned (a job may not point the controller at arbitrary paths); empty: any.</summary>
    public string? CheckpointRoot { get; set; }

    /// <summary>How often in-flight restores are checked against <see cref="VerifyTimeout"/>.</summary>
    [TimeSpanRange("00:00:00.050", "00:10:00")]
    public TimeSpan VerifyInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Timeout of one scheduler adapter or job webhook call. A Slurm requeue waits for the old job to end (Slurm's
    /// KillWait defaults to 30 s; the adapter's RequeueSettleTimeout to 60 s), so this must be longer than that.
    /// </summary>
    [TimeSpanRange("00:00:01", "00:10:00")]
    public TimeSpan CallTimeout { get; set; } = TimeSpan.FromSeconds(90);

    /// <summary>
    /// Self-check a spare against the controller's fleet state before sending a job onto it (section 5.4 step 4:
    /// "on the spare before admitting it"): fresh sample, every GPU present, no True condition, no open incident, not
    /// cordoned, not in maintenance. A spare without data fails it. Off only where spares run no agent.
    /// </summary>
    public bool CheckSpares { get; set; } = true;

    /// <summary>
    /// Oldest sample a node may have and still count as healthy (spare check, return-to-service soak). Five agent ticks
    /// (FleetWatch:Agent:Tick defaults to 1 s), half the detectors' NodeUnknownAfter of 10 s.
    /// </summary>
    [TimeSpanRange("00:00:01", "00:10:00")]
    public TimeSpan HealthMaxSampleAge { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Automatic return to service of nodes FleetWatch cordoned (<c>FleetWatch:Remediation:ReturnToService</c>).</summary>
    public ReturnToServiceOptions ReturnToService { get; set; } = new();
}

/// <summary>
/// Automatic uncordon of a node FleetWatch cordoned, once it shows evidence of repair (a reboot: a new kernel boot id; a
/// new agent run from an agent that sends no boot id; or an operator's <c>POST /nodes/{node}/repaired</c>) and then stays
/// healthy for <see cref="Soak"/>.
/// </summary>
public sealed class ReturnToServiceOptions
{
    /// <summary>
    /// Off by default: putting a node back under a 10,000-GPU job is a decision with a blast radius, and the evidence
    /// FleetWatch sees (a reboot, 30 min of clean telemetry) cannot prove the fault is gone. Intermittent faults
    /// (Xid 79 recurring after reboot, NVLink flaps) pass a soak and come back mid-run; site policy (burn-in tests, RMA
    /// workflows, the scheduler's own health checks) usually owns that decision. Turn it on where that policy is the soak.
    /// </summary>
    public bool Enabled { get; set; }

    /// <summary>How long the node must stay healthy after the repair evidence (every GPU present, no True condition, no open incident, samples fresh throughout).</summary>
    [TimeSpanRange("00:00:10", "7.00:00:00")]
    public TimeSpan Soak { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>How often cordoned nodes are evaluated. A gap in samples is caught exactly (the detectors' reporting-since), whatever the interval.</summary>
    [TimeSpanRange("00:00:00.050", "00:10:00")]
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Automatic returns of one node within a day after which it stays cordoned for an operator (a node that keeps failing after each return).</summary>
    [Range(1, 100)]
    public int MaxReturnsPerDay { get; set; } = 2;
}
