using System.Runtime.InteropServices;

namespace FleetWatch.Agent.Sources.Nvml;

/// <summary>NVML return codes the agent treats specially (research/gpu-health-anchors.md section 3.2).</summary>
public enum NvmlReturn
{
    Success = 0,
    Uninitialized = 1,
    InvalidArgument = 2,
    NotSupported = 3,
    NoPermission = 4,
    NotFound = 6,
    InsufficientSize = 7,
    DriverNotLoaded = 9,
    Timeout = 10,
    CorruptedInforom = 14,
    GpuIsLost = 15,
    ResetRequired = 16,
    LibRmVersionMismatch = 18,
    ArgumentVersionMismatch = 25,
    Unknown = 999,
}

/// <summary>nvmlTemperature_t (v1): the argument of nvmlDeviceGetTemperatureV, NVML 13's replacement of GetTemperature.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NvmlTemperature
{
    /// <summary>nvmlTemperature_v1 = NVML_STRUCT_VERSION(Temperature, 1) = sizeof | (1 &lt;&lt; 24).</summary>
    public static readonly uint Version1 = (uint)Marshal.SizeOf<NvmlTemperature>() | (1u << 24);

    public uint Version;
    public int SensorType;
    public int Temperature;
}

[StructLayout(LayoutKind.Sequential)]
internal struct NvmlUtilization
{
    public uint Gpu;
    public uint Memory;
}

[StructLayout(LayoutKind.Sequential)]
internal struct NvmlMemory
{
    public ulong Total;
    public ulong Free;
    public ulong Used;
}

/// <summary>nvmlPciInfo_t (v3 layout): legacy bus id, numbers, then the 32-byte bus id string.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NvmlPciInfo
{
    public fixed byte BusIdLegacy[16];
    public uint Domain;
    public uint Bus;
    public uint Device;
    public uint PciDeviceId;
    public uint PciSubSystemId;
    public fixed byte BusId[32];
}

/// <summary>nvmlFieldValue_t: the value is a union read by <see cref="ValueType"/>; check <see cref="Return"/> per entry.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NvmlFieldValue
{
    public uint FieldId;
    public uint ScopeId;
    public long Timestamp;
    public long LatencyUsec;
    public int ValueType;
    public NvmlReturn Return;
    public ulong Value;

    /// <summary>The union as a number (NVML_VALUE_TYPE_DOUBLE 0, UNSIGNED_INT 1, UNSIGNED_LONG 2, UNSIGNED_LONG_LONG 3, SIGNED_LONG_LONG 4, SIGNED_INT 5).</summary>
    public readonly double AsDouble() => ValueType switch
    {
        0 => BitConverter.UInt64BitsToDouble(Value),
        1 => (uint)Value,
        4 => (long)Value,
        5 => (int)(uint)Value,
        _ => Value,
    };

    /// <summary>The union as an integer: counters in ns pass 2^53 after ~104 days, beyond what a double holds exactly.</summary>
    public readonly long AsInt64() => ValueType switch
    {
        0 => (long)BitConverter.UInt64BitsToDouble(Value),
        1 => (uint)Value,
        5 => (int)(uint)Value,
        _ => (long)Value,
    };
}

/// <summary>
/// nvmlGpuFabricInfo_v3_t (nvmlGpuFabricInfoV_t), the argument of nvmlDeviceGetGpuFabricInfoV. Layout from nvml.h (NVML 12.4+;
/// the same struct in NVIDIA/go-nvml gen/nvml/nvml.h): version, clusterUuid[16], status (nvmlReturn_t), cliqueId, state
/// (unsigned char), healthMask, healthSummary (unsigned char, v3 only). Sequential layout pads as C does: 40 bytes for v3,
/// so nvmlGpuFabricInfo_v3 = 0x3000028; v2 stops before healthSummary (36 bytes, 0x2000024).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NvmlGpuFabricInfo
{
    /// <summary>NVML_STRUCT_VERSION(GpuFabricInfo, 3).</summary>
    public static readonly uint Version3 = (uint)sizeof(NvmlGpuFabricInfo) | (3u << 24);

    /// <summary>NVML_STRUCT_VERSION(GpuFabricInfo, 2): the v2 struct is v3 without healthSummary and its padding.</summary>
    public static readonly uint Version2 = (uint)(sizeof(NvmlGpuFabricInfo) - 4) | (2u << 24);

    public uint Version;
    public fixed byte ClusterUuid[16];
    public NvmlReturn Status;
    public uint CliqueId;
    public byte State;
    public uint HealthMask;
    public byte HealthSummary;
}

/// <summary>nvmlUnrepairableMemoryStatus_v1_t (NVML 13.0; NVIDIA/cuda-python cy_nvml.pxd): one flag, no version field.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NvmlUnrepairableMemoryStatus
{
    public uint Unrepairable;
}

[StructLayout(LayoutKind.Sequential)]
internal struct NvmlEventData
{
    public nint Device;
    public ulong EventType;
    public ulong EventData;
    public uint GpuInstanceId;
    public uint ComputeInstanceId;
}

/// <summary>
/// P/Invoke declarations of libnvidia-ml.so.1 (signatures from NVIDIA/go-nvml gen/nvml/nvml.h, NVML API 13,
/// research/gpu-health-anchors.md section 3.2). The library name "nvidia-ml" is resolved by
/// <see cref="NvmlLibrary"/> to the configured path, so tests load a fake with the same symbols.
/// </summary>
internal static partial class NvmlNative
{
    public const string Library = "nvidia-ml";

    // Enum values from nvml.h.
    public const int TemperatureGpu = 0;
    public const int ThresholdShutdown = 0;
    public const int ThresholdSlowdown = 1;
    public const int ClockSm = 1;
    public const int ClockMem = 2;
    public const int MemoryErrorCorrected = 0;
    public const int MemoryErrorUncorrected = 1;
    public const int EccVolatile = 0;
    public const int EccAggregate = 1;
    public const int RetirementMultipleSbe = 0;
    public const int RetirementDbe = 1;
    public const int NvLinkReplay = 0;
    public const int NvLinkRecovery = 1;
    public const int NvLinkCrcFlit = 2;
    public const int NvLinkCrcData = 3;
    public const int MaxNvLinks = 18;
    public const ulong EventXidCriticalError = 0x8;
    public const ulong EventGpuUnavailable = 0x4000;

    [LibraryImport(Library, EntryPoint = "nvmlInit_v2")]
    public static partial NvmlReturn Init();

    [LibraryImport(Library, EntryPoint = "nvmlShutdown")]
    public static partial NvmlReturn Shutdown();

    [LibraryImport(Library, EntryPoint = "nvmlSystemGetDriverVersion")]
    public static unsafe partial NvmlReturn SystemGetDriverVersion(byte* version, uint length);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetCount_v2")]
    public static partial NvmlReturn DeviceGetCount(out uint count);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetHandleByIndex_v2")]
    public static partial NvmlReturn DeviceGetHandleByIndex(uint index, out nint device);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetUUID")]
    public static unsafe partial NvmlReturn DeviceGetUuid(nint device, byte* uuid, uint length);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetPciInfo_v3")]
    public static partial NvmlReturn DeviceGetPciInfo(nint device, out NvmlPciInfo pci);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetName")]
    public static unsafe partial NvmlReturn DeviceGetName(nint device, byte* name, uint length);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetTemperatureV")]
    public static partial NvmlReturn DeviceGetTemperatureV(nint device, ref NvmlTemperature temperature);

    /// <summary>Deprecated in NVML 13; used only where GetTemperatureV is missing (older drivers).</summary>
    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetTemperature")]
    public static partial NvmlReturn DeviceGetTemperature(nint device, int sensor, out uint temperature);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetTemperatureThreshold")]
    public static partial NvmlReturn DeviceGetTemperatureThreshold(nint device, int threshold, out uint temperature);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetPowerUsage")]
    public static partial NvmlReturn DeviceGetPowerUsage(nint device, out uint milliwatts);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetEnforcedPowerLimit")]
    public static partial NvmlReturn DeviceGetEnforcedPowerLimit(nint device, out uint milliwatts);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetUtilizationRates")]
    public static partial NvmlReturn DeviceGetUtilizationRates(nint device, out NvmlUtilization utilization);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetMemoryInfo")]
    public static partial NvmlReturn DeviceGetMemoryInfo(nint device, out NvmlMemory memory);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetClockInfo")]
    public static partial NvmlReturn DeviceGetClockInfo(nint device, int clock, out uint mhz);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetCurrentClocksEventReasons")]
    public static partial NvmlReturn DeviceGetCurrentClocksEventReasons(nint device, out ulong reasons);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetTotalEccErrors")]
    public static partial NvmlReturn DeviceGetTotalEccErrors(nint device, int errorType, int counterType, out ulong count);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetRetiredPages")]
    public static partial NvmlReturn DeviceGetRetiredPages(nint device, int cause, ref uint pageCount, nint addresses);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetRetiredPagesPendingStatus")]
    public static partial NvmlReturn DeviceGetRetiredPagesPendingStatus(nint device, out int pending);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetRemappedRows")]
    public static partial NvmlReturn DeviceGetRemappedRows(nint device, out uint corrected, out uint uncorrected, out uint pending, out uint failure);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetPcieReplayCounter")]
    public static partial NvmlReturn DeviceGetPcieReplayCounter(nint device, out uint value);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetCurrPcieLinkGeneration")]
    public static partial NvmlReturn DeviceGetCurrPcieLinkGeneration(nint device, out uint value);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetCurrPcieLinkWidth")]
    public static partial NvmlReturn DeviceGetCurrPcieLinkWidth(nint device, out uint value);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetMaxPcieLinkGeneration")]
    public static partial NvmlReturn DeviceGetMaxPcieLinkGeneration(nint device, out uint value);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetMaxPcieLinkWidth")]
    public static partial NvmlReturn DeviceGetMaxPcieLinkWidth(nint device, out uint value);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetNvLinkState")]
    public static partial NvmlReturn DeviceGetNvLinkState(nint device, uint link, out int active);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetNvLinkErrorCounter")]
    public static partial NvmlReturn DeviceGetNvLinkErrorCounter(nint device, uint link, int counter, out ulong value);

    /// <summary>Field ids (nvml.h NVML_FI_DEV_*, research section 3.2): memory temperature, GPU recovery action.</summary>
    public const uint FieldMemoryTemp = 82;
    public const uint FieldGpuRecoveryAction = 230;

    /// <summary>NVML_FI_DEV_CLOCKS_EVENT_REASON_SW/HW_THERM_SLOWDOWN: cumulative ns of thermal slowdown (research section 3.2).</summary>
    public const uint FieldSwThermalSlowdownNs = 269;
    public const uint FieldHwThermalSlowdownNs = 270;

    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetFieldValues")]
    public static unsafe partial NvmlReturn DeviceGetFieldValues(nint device, int count, NvmlFieldValue* values);

    /// <summary>NVML_GPU_FABRIC_STATE_*: 0 not supported, 1 not started, 2 in progress, 3 completed.</summary>
    public const byte FabricStateNotSupported = 0;

    /// <summary>
    /// Reads the infoROM from flash and verifies its checksums: NVML_SUCCESS when intact, NVML_ERROR_CORRUPTED_INFOROM (14)
    /// when corrupt, NOT_SUPPORTED where the GPU has none to check (nvml.h, "nvmlDeviceValidateInforom").
    /// </summary>
    [LibraryImport(Library, EntryPoint = "nvmlDeviceValidateInforom")]
    public static partial NvmlReturn DeviceValidateInforom(nint device);

    /// <summary>GPU fabric (NVSwitch / NVLink domain) registration and health (nvml.h, NVML 12.4+; versioned struct).</summary>
    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetGpuFabricInfoV")]
    public static partial NvmlReturn DeviceGetGpuFabricInfoV(nint device, ref NvmlGpuFabricInfo info);

    /// <summary>Unrepairable memory flag (NVML 13.0 release notes: "report whether or not there is unrepairable memory").</summary>
    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetUnrepairableMemoryFlag_v1")]
    public static partial NvmlReturn DeviceGetUnrepairableMemoryFlag(nint device, out NvmlUnrepairableMemoryStatus status);

    [LibraryImport(Library, EntryPoint = "nvmlEventSetCreate")]
    public static partial NvmlReturn EventSetCreate(out nint set);

    [LibraryImport(Library, EntryPoint = "nvmlDeviceRegisterEvents")]
    public static partial NvmlReturn DeviceRegisterEvents(nint device, ulong eventTypes, nint set);

    [LibraryImport(Library, EntryPoint = "nvmlEventSetWait_v2")]
    public static partial NvmlReturn EventSetWait(nint set, out NvmlEventData data, uint timeoutMs);

    [LibraryImport(Library, EntryPoint = "nvmlEventSetFree")]
    public static partial NvmlReturn EventSetFree(nint set);
}
