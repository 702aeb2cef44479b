namespace FleetWatch.Contracts;

/// <summary>
/// One node's telemetry for one agent tick. Counters travel cumulative (the controller computes deltas and
/// handles resets and saturation), so a lost or duplicated sample never corrupts a rate. A null value means
/// "not available on this hardware" (NVML NOT_SUPPORTED), never zero.
/// </summary>
public sealed record NodeSample
{
    public required string Node { get; init; }

    /// <summary>Agent sequence number, strictly increasing per agent run; the controller dedups by (node, sequence).</summary>
    public required long Sequence { get; init; }

    /// <summary>Identifies one agent process run; a new run restarts <see cref="Sequence"/>.</summary>
    public string? AgentRun { get; init; }

    /// <summary>
    /// The kernel's boot id (<c>/proc/sys/kernel/random/boot_id</c>): a new one means the node rebooted, which an agent
    /// restart alone does not. Null from the simulator or where the file cannot be read.
    /// </summary>
    public string? BootId { get; init; }

    public required DateTimeOffset Time { get; init; }

    public required IReadOnlyList<GpuSample> Gpus { get; init; }

    public IReadOnlyList<NvLinkSample> NvLinks { get; init; } = [];

    public IReadOnlyList<IbPortSample> IbPorts { get; init; } = [];

    /// <summary>Rack or NVLink domain label of the node, for grouping on the dashboard and in incidents.</summary>
    public string? Rack { get; init; }

    /// <summary>Why the GPU source gave nothing this tick (NVML hang, driver not loaded); null when it read fine.</summary>
    public string? GpuSourceError { get; init; }
}

/// <summary>One GPU within a <see cref="NodeSample"/>. Null fields were not readable on this GPU.</summary>
public sealed record GpuSample
{
    public required int Index { get; init; }
    public required string Uuid { get; init; }
    public string? PciBusId { get; init; }
    public string? Name { get; init; }

    /// <summary>NVML answered GPU_IS_LOST: the GPU has fallen off the bus.</summary>
    public bool Lost { get; init; }

    public int? TemperatureC { get; init; }
    public int? MemoryTemperatureC { get; init; }
    public int? SlowdownTemperatureC { get; init; }
    public int? ShutdownTemperatureC { get; init; }
    public double? PowerW { get; init; }
    public double? PowerLimitW { get; init; }
    public int? UtilizationPct { get; init; }
    public int? MemoryUtilizationPct { get; init; }
    public long? MemoryUsedMiB { get; init; }
    public long? MemoryTotalMiB { get; init; }
    public int? SmClockMHz { get; init; }
    public int? MemoryClockMHz { get; init; }

    /// <summary>nvmlDeviceGetCurrentClocksEventReasons bit mask (0x4 SW power cap, 0x8 HW slowdown, 0x40 HW thermal, 0x80 power brake).</summary>
    public ulong? ClockEventReasons { get; init; }

    public long? EccCorrectedVolatile { get; init; }
    public long? EccUncorrectedVolatile { get; init; }
    public long? EccCorrectedAggregate { get; init; }
    public long? EccUncorrectedAggregate { get; init; }
    public int? RetiredPagesSbe { get; init; }
    public int? RetiredPagesDbe { get; init; }
    public bool? RetiredPagesPending { get; init; }
    public int? RemappedRowsCorrectable { get; init; }
    public int? RemappedRowsUncorrectable { get; init; }
    public bool? RemapPending { get; init; }
    public bool? RemapFailure { get; init; }
    public long? PcieReplayCounter { get; init; }
    public int? PcieLinkGen { get; init; }
    public int? PcieLinkWidth { get; init; }
    public int? PcieMaxLinkGen { get; init; }
    public int? PcieMaxLinkWidth { get; init; }

    /// <summary>NVML GPU recovery action (0 none, 1 GPU reset, 2 node reboot, 3 drain P2P, 4 drain and reset).</summary>
    public int? RecoveryAction { get; init; }

    /// <summary>
    /// Cumulative nanoseconds of thermal slowdown (NVML field values 269 SW + 270 HW thermal slowdown, the successors of
    /// the deprecated nvmlDeviceGetViolationStatus); null when neither is supported.
    /// </summary>
    public long? ThermalViolationNs { get; init; }

    /// <summary>
    /// NVML reports unrepairable memory (<c>nvmlDeviceGetUnrepairableMemoryFlag_v1</c>, NVML 13; DCGM field 1507
    /// <c>MEMORY_UNREPAIRABLE</c>): the GPU has memory errors it can no longer remap or retire. Null on drivers without
    /// the call or GPUs that do not support it.
    /// </summary>
    public bool? UnrepairableMemory { get; init; }

    /// <summary>
    /// InfoROM checksums verified by <c>nvmlDeviceValidateInforom</c> (false: <c>NVML_ERROR_CORRUPTED_INFOROM</c>; DCGM
    /// field 84 <c>INFOROM_VALID</c>). The agent validates less often than it samples and repeats the last verdict between
    /// validations; null when not supported or not validated yet.
    /// </summary>
    public bool? InforomValid { get; init; }

    /// <summary>
    /// NVLink fabric registration state from <c>nvmlDeviceGetGpuFabricInfoV</c> (<c>NVML_GPU_FABRIC_STATE_*</c>: 1 not
    /// started, 2 in progress, 3 completed). Null, like every fabric field, when the GPU is not on an NVSwitch fabric
    /// (NOT_SUPPORTED, or state 0 NOT_SUPPORTED).
    /// </summary>
    public int? FabricState { get; init; }

    /// <summary>Fabric registration result (an <c>nvmlReturn_t</c>, 0 success); meaningful once <see cref="FabricState"/> is 3.</summary>
    public int? FabricStatus { get; init; }

    /// <summary>
    /// Fabric health mask (<c>nvmlGpuFabricInfo_v2+.healthMask</c>; DCGM field 174 <c>FABRIC_HEALTH_MASK</c>): 2-bit
    /// fields degraded bandwidth (bits 0-1), route recovery (2-3), route unhealthy (4-5), access-timeout recovery (6-7),
    /// each 0 not supported, 1 true, 2 false; incorrect configuration in bits 8-11 (1 none).
    /// </summary>
    public long? FabricHealthMask { get; init; }

    /// <summary>Fabric health summary (<c>nvmlGpuFabricInfo_v3.healthSummary</c>: 1 healthy, 2 unhealthy, 3 limited capacity); null before v3.</summary>
    public int? FabricHealthSummary { get; init; }
}

/// <summary>Cumulative NVLink counters of one link of one GPU.</summary>
public sealed record NvLinkSample
{
    // Short wire names: a node sample carries 8 GPUs × 18 links of these, so the names are most of its bytes.
    [System.Text.Json.Serialization.JsonPropertyName("g")]
    public required int GpuIndex { get; init; }

    [System.Text.Json.Serialization.JsonPropertyName("l")]
    public required int Link { get; init; }

    /// <summary>Link active; null when NVLink is not supported (PCIe cards).</summary>
    [System.Text.Json.Serialization.JsonPropertyName("up")]
    public bool? Up { get; init; }

    [System.Text.Json.Serialization.JsonPropertyName("cf")]
    public long? CrcFlitErrors { get; init; }

    [System.Text.Json.Serialization.JsonPropertyName("cd")]
    public long? CrcDataErrors { get; init; }

    [System.Text.Json.Serialization.JsonPropertyName("rp")]
    public long? ReplayErrors { get; init; }

    [System.Text.Json.Serialization.JsonPropertyName("rc")]
    public long? RecoveryErrors { get; init; }
}

/// <summary>One InfiniBand port read from sysfs; counters are cumulative.</summary>
public sealed record IbPortSample
{
    public required string Device { get; init; }
    public required int Port { get; init; }

    /// <summary>Text of sysfs <c>state</c> after the number, e.g. "ACTIVE", "DOWN".</summary>
    public string? State { get; init; }

    public string? PhysState { get; init; }
    public double? RateGbps { get; init; }

    /// <summary>Counter name (sysfs file name under counters/ or hw_counters/) to cumulative value.</summary>
    public IReadOnlyDictionary<string, long> Counters { get; init; } = new Dictionary<string, long>();

    /// <summary>Counters that sit at their maximum width (saturated): their deltas are unknown, never negative.</summary>
    public IReadOnlyList<string> SaturatedCounters { get; init; } = [];
}

/// <summary>Where an Xid observation came from; the controller dedups the two live paths.</summary>
public enum XidSource
{
    NvmlEvent,
    Kmsg,
    Simulator,
}

/// <summary>An Xid (or SXid, or fallen-off-the-bus line) seen on a node, published the moment it is seen.</summary>
public sealed record GpuXidObserved
{
    public required string Node { get; init; }
    public required DateTimeOffset Time { get; init; }

    /// <summary>Xid number, or SXid number when <see cref="Kind"/> is "sxid"; null for a text-only fallen-off-bus line.</summary>
    public int? Xid { get; init; }

    /// <summary>"xid", "sxid" or "fallen_off_bus" (FORMATS.md section 1).</summary>
    public string Kind { get; init; } = "xid";

    public string? PciBusId { get; init; }
    public string? GpuUuid { get; init; }
    public int? GpuIndex { get; init; }
    public string Message { get; init; } = "";
    public XidSource Source { get; init; }

    /// <summary>kmsg record sequence number, for dedup across agent restarts.</summary>
    public long? KmsgSequence { get; init; }

    /// <summary>The job or process that received the error, when the line names it (used by app-class Xid promotion).</summary>
    public string? Process { get; init; }
}
