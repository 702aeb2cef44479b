namespace FleetWatch.Controller.Detection;

/// <summary>
/// The rules that hold a condition per GPU (or per node), in the Kubernetes node-condition sense
/// (research/gpu-health-anchors.md section 5.1): each is True, False or Unknown with the time of its last transition.
/// Per-link and per-port findings fold into their GPU's or node's rule (any link True makes the GPU's rule True).
/// </summary>
public enum ConditionRule : byte
{
    GpuLost,
    EccDoubleBit,
    RowRemapFailure,
    RowRemapPending,
    RemappedRows,
    RetiredPages,
    RetiredPagesPending,
    OverTemperature,
    HwSlowdown,
    ThermalViolation,
    EccSbeRate,
    PcieReplay,
    PcieDowntrained,
    RecoveryAction,
    Power,
    PowerPeers,
    ClockPeers,
    NvLinkDown,
    NvLinkErrors,
    NvLinkCrc,
    GpuMissing,
    GpuSource,
    IbDown,
    IbRate,
    IbFlap,
    IbErrors,
    UnrepairableMemory,
    FabricHealth,
    InforomCorrupt,
}

/// <summary>Names of <see cref="ConditionRule"/> as the API and the dashboard show them.</summary>
public static class ConditionRules
{
    private static readonly string[] Names =
    [
        "gpu_lost", "ecc_dbe", "row_remap_failure", "row_remap_pending", "remapped_rows", "retired_pages", "retired_pages_pending",
        "over_temperature", "hw_slowdown", "thermal_violation", "ecc_sbe_rate", "pcie_replay", "pcie_downtrained", "recovery_action",
        "power", "power_peers", "clock_peers", "nvlink_down", "nvlink_errors", "nvlink_crc", "gpu_missing", "gpu_source",
        "ib_down", "ib_rate", "ib_flap", "ib_errors", "memory_unrepairable", "fabric_health", "inforom_corrupt",
    ];

    /// <summary>How many rules there are (the width of a node's condition table).</summary>
    public const int Count = (int)ConditionRule.InforomCorrupt + 1;

    public static string Name(ConditionRule rule) => Names[(int)rule];
}

/// <summary>
/// One condition of one GPU (<see cref="Gpu"/> null: the node): its status, since when it holds, and for a True
/// condition what the rule last said. Unknown is "no data" (never healthy); nothing stays True once the signal clears.
/// </summary>
public sealed record DetectionCondition(string Node, int? Gpu, string Rule, ConditionStatus Status, DateTimeOffset Since, string? Detail);

/// <summary>A cell of a node's condition table: the committed status and the one being built by the current evaluation.</summary>
internal struct ConditionCell
{
    public ConditionStatus Current;
    public ConditionStatus Pending;
    public bool Evaluated;
    public DateTimeOffset Since;
    public string? Detail;
}
