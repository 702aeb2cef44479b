using System.Text;
using FleetWatch.Contracts;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Sources.Nvml;

/// <summary>NVML could not be used at all (library missing, driver not loaded, init failed).</summary>
public sealed class NvmlUnavailableException(string message) : Exception(message);

/// <summary>
/// Reads every GPU of this node through NVML. <c>NOT_SUPPORTED</c> means "not on this GPU" and becomes null, never
/// a fault (PCIe cards have no NVLink). <c>GPU_IS_LOST</c> marks the GPU lost, the rule-1 signal. Every read runs
/// under <see cref="NvmlWatchdog"/>.
/// </summary>
public sealed class NvmlGpuSource : IGpuSource, IGpuPciMap, IDisposable
{
    private readonly NvmlOptions _options;
    private readonly TimeProvider _time;
    private readonly NvmlWatchdog _watchdog = new();
    private readonly Dictionary<int, (bool? Valid, long At)> _inforom = [];
    private readonly Dictionary<int, (string Uuid, string? Pci)> _identity = [];
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (string Uuid, int Index)> _byPci = new(StringComparer.Ordinal);
    private bool _initialized;
    private int _disposed;
    private long _errors;

    /// <param name="options">Library path, read timeout, InfoROM validation interval.</param>
    /// <param name="timeProvider">Clock of the InfoROM validation interval; the system clock when null (tools/NvmlProbe).</param>
    public NvmlGpuSource(IOptions<NvmlOptions> options, TimeProvider? timeProvider = null)
    {
        _options = options.Value;
        _time = timeProvider ?? TimeProvider.System;
        NvmlLibrary.Use(_options.LibraryPath);
    }

    /// <summary>NVML calls that failed with an unexpected code (not NOT_SUPPORTED, not GPU_IS_LOST).</summary>
    public long Errors => Interlocked.Read(ref _errors);

    public long Hangs => _watchdog.Hangs;

    public string DriverVersion { get; private set; } = "";

    public GpuReading Read(CancellationToken cancellationToken) =>
        _watchdog.Run("device read", ReadAll, _options.ReadTimeout);

    /// <summary>Identity of a GPU index from the last read.</summary>
    public bool TryGetUuid(int index, out string? uuid, out string? pci)
    {
        lock (_identity)
        {
            if (_identity.TryGetValue(index, out var id))
            {
                (uuid, pci) = id;
                return true;
            }
        }

        (uuid, pci) = (null, null);
        return false;
    }

    /// <summary>PCI → GPU from the last NVML read, for the kmsg watcher (IGpuPciMap).</summary>
    public bool TryGetGpu(string pciBusId, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? uuid, out int? index)
    {
        if (_byPci.TryGetValue(pciBusId, out var gpu))
        {
            (uuid, index) = (gpu.Uuid, gpu.Index);
            return true;
        }

        (uuid, index) = (null, null);
        return false;
    }

    /// <summary>
    /// Shuts NVML down once. The container disposes this instance once per registration it is resolved through
    /// (<see cref="IGpuSource"/>, <see cref="IGpuPciMap"/>), so a second call must be a no-op; and a shutdown that hangs in the
    /// driver must not turn a clean SIGTERM into a crash.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            if (_initialized && _watchdog.StuckIn is null)
            {
                _watchdog.Run("shutdown", NvmlNative.Shutdown, _options.ReadTimeout);
            }
        }
        catch (NvmlHangException)
        {
            // The driver is stuck; the process exits anyway and the kernel releases the handles.
        }
        finally
        {
            _watchdog.Dispose();
        }
    }

    private unsafe GpuReading ReadAll()
    {
        if (!_initialized)
        {
            var rc = NvmlNative.Init();
            if (rc != NvmlReturn.Success)
            {
                throw new NvmlUnavailableException($"nvmlInit_v2 failed: {rc} ({(int)rc})");
            }

            var buffer = stackalloc byte[96];
            if (NvmlNative.SystemGetDriverVersion(buffer, 96) == NvmlReturn.Success)
            {
                DriverVersion = Text(buffer, 96);
            }

            _initialized = true;
        }

        if (NvmlNative.DeviceGetCount(out var count) is var countRc && countRc != NvmlReturn.Success)
        {
            throw new NvmlUnavailableException($"nvmlDeviceGetCount_v2 failed: {countRc}");
        }

        var gpus = new List<GpuSample>((int)count);
        var links = new List<NvLinkSample>();
        for (var i = 0; i < (int)count; i++)
        {
            gpus.Add(ReadDevice(i, links));
        }

        return new GpuReading(gpus, links);
    }

    private unsafe GpuSample ReadDevice(int index, List<NvLinkSample> links)
    {
        var lost = false;
        var rc = NvmlNative.DeviceGetHandleByIndex((uint)index, out var device);
        if (rc != NvmlReturn.Success)
        {
            return LostOrUnknown(index, rc);
        }

        var buffer = stackalloc byte[96];
        string? uuid = null;
        if (Check(NvmlNative.DeviceGetUuid(device, buffer, 96), ref lost))
        {
            uuid = Text(buffer, 96);
        }

        string? pci = null;
        if (Check(NvmlNative.DeviceGetPciInfo(device, out var pciInfo), ref lost))
        {
            pci = Text(pciInfo.BusId, 32);
        }

        if (uuid is not null)
        {
            lock (_identity)
            {
                _identity[index] = (uuid, pci);
            }
            if (pci is not null && Kmsg.PciBusId.TryNormalize(pci, out var key))
            {
                _byPci[key] = (uuid, index); // read by the kmsg watcher on its own thread
            }
        }

        string? name = Check(NvmlNative.DeviceGetName(device, buffer, 96), ref lost) ? Text(buffer, 96) : null;
        if (lost)
        {
            return LostOrUnknown(index, NvmlReturn.GpuIsLost);
        }

        int? U(NvmlReturn r, uint v) => Check(r, ref lost) ? (int)v : null;
        long? L(NvmlReturn r, ulong v) => Check(r, ref lost) ? (long)v : null;

        var temperature = ReadTemperature(device, ref lost);
        var slowdown = U(NvmlNative.DeviceGetTemperatureThreshold(device, NvmlNative.ThresholdSlowdown, out var ts), ts);
        var shutdown = U(NvmlNative.DeviceGetTemperatureThreshold(device, NvmlNative.ThresholdShutdown, out var tsd), tsd);
        var powerMw = U(NvmlNative.DeviceGetPowerUsage(device, out var p), p);
        var limitMw = U(NvmlNative.DeviceGetEnforcedPowerLimit(device, out var pl), pl);
        var utilRc = NvmlNative.DeviceGetUtilizationRates(device, out var util);
        var utilOk = Check(utilRc, ref lost);
        var memRc = NvmlNative.DeviceGetMemoryInfo(device, out var mem);
        var memOk = Check(memRc, ref lost);
        var sm = U(NvmlNative.DeviceGetClockInfo(device, NvmlNative.ClockSm, out var smc), smc);
        var memClock = U(NvmlNative.DeviceGetClockInfo(device, NvmlNative.ClockMem, out var mc), mc);
        ulong? reasons = Check(NvmlNative.DeviceGetCurrentClocksEventReasons(device, out var r), ref lost) ? r : null;
        var sbeVol = L(NvmlNative.DeviceGetTotalEccErrors(device, NvmlNative.MemoryErrorCorrected, NvmlNative.EccVolatile, out var e1), e1);
        var dbeVol = L(NvmlNative.DeviceGetTotalEccErrors(device, NvmlNative.MemoryErrorUncorrected, NvmlNative.EccVolatile, out var e2), e2);
        var sbeAgg = L(NvmlNative.DeviceGetTotalEccErrors(device, NvmlNative.MemoryErrorCorrected, NvmlNative.EccAggregate, out var e3), e3);
        var dbeAgg = L(NvmlNative.DeviceGetTotalEccErrors(device, NvmlNative.MemoryErrorUncorrected, NvmlNative.EccAggregate, out var e4), e4);
        uint sbePages = 0, dbePages = 0;
        var retiredSbe = U(NvmlNative.DeviceGetRetiredPages(device, NvmlNative.RetirementMultipleSbe, ref sbePages, 0), sbePages);
        var retiredDbe = U(NvmlNative.DeviceGetRetiredPages(device, NvmlNative.RetirementDbe, ref dbePages, 0), dbePages);
        bool? retiredPending = Check(NvmlNative.DeviceGetRetiredPagesPendingStatus(device, out var rp), ref lost) ? rp != 0 : null;
        var remapRc = NvmlNative.DeviceGetRemappedRows(device, out var corr, out var unc, out var pending, out var failure);
        var remapOk = Check(remapRc, ref lost);
        var replay = L(NvmlNative.DeviceGetPcieReplayCounter(device, out var pr), pr);
        var gen = U(NvmlNative.DeviceGetCurrPcieLinkGeneration(device, out var g), g);
        var width = U(NvmlNative.DeviceGetCurrPcieLinkWidth(device, out var w), w);
        var maxGen = U(NvmlNative.DeviceGetMaxPcieLinkGeneration(device, out var mg), mg);
        var maxWidth = U(NvmlNative.DeviceGetMaxPcieLinkWidth(device, out var mw), mw);
        // Field values for what the old calls do not cover (memory temperature, recovery action, thermal slowdown
        // time); check every entry. The thermal fields ride in the same call, so rule 26 costs no extra NVML round trip.
        int? memoryTemp = null, recoveryAction = null;
        long? thermalNs = null;
        var fields = stackalloc NvmlFieldValue[4];
        fields[0].FieldId = NvmlNative.FieldMemoryTemp;
        fields[1].FieldId = NvmlNative.FieldGpuRecoveryAction;
        fields[2].FieldId = NvmlNative.FieldSwThermalSlowdownNs;
        fields[3].FieldId = NvmlNative.FieldHwThermalSlowdownNs;
        if (Check(NvmlNative.DeviceGetFieldValues(device, 4, fields), ref lost))
        {
            if (Check(fields[0].Return, ref lost))
            {
                memoryTemp = (int)fields[0].AsDouble();
            }

            if (Check(fields[1].Return, ref lost))
            {
                recoveryAction = (int)fields[1].AsDouble();
            }

            for (var f = 2; f < 4; f++)
            {
                if (Check(fields[f].Return, ref lost))
                {
                    thermalNs = (thermalNs ?? 0) + fields[f].AsInt64();
                }
            }
        }

        var unrepairable = ReadUnrepairableMemory(device, ref lost);
        var inforomValid = ReadInforom(index, device, ref lost);
        var fabric = ReadFabric(device, ref lost);

        for (uint link = 0; link < NvmlNative.MaxNvLinks; link++)
        {
            var stateRc = NvmlNative.DeviceGetNvLinkState(device, link, out var active);
            if (stateRc is NvmlReturn.NotSupported or NvmlReturn.InvalidArgument)
            {
                break; // no NVLink (PCIe card) or no more links on this GPU: not a fault
            }

            if (!Check(stateRc, ref lost))
            {
                break;
            }

            links.Add(new NvLinkSample
            {
                GpuIndex = index,
                Link = (int)link,
                Up = active != 0,
                ReplayErrors = L(NvmlNative.DeviceGetNvLinkErrorCounter(device, link, NvmlNative.NvLinkReplay, out var c0), c0),
                RecoveryErrors = L(NvmlNative.DeviceGetNvLinkErrorCounter(device, link, NvmlNative.NvLinkRecovery, out var c1), c1),
                CrcFlitErrors = L(NvmlNative.DeviceGetNvLinkErrorCounter(device, link, NvmlNative.NvLinkCrcFlit, out var c2), c2),
                CrcDataErrors = L(NvmlNative.DeviceGetNvLinkErrorCounter(device, link, NvmlNative.NvLinkCrcData, out var c3), c3),
            });
        }

        if (lost)
        {
            return LostOrUnknown(index, NvmlReturn.GpuIsLost);
        }

        return new GpuSample
        {
            Index = index,
            Uuid = uuid ?? $"unknown-{index}",
            PciBusId = pci,
            Name = name,
            TemperatureC = temperature,
            MemoryTemperatureC = memoryTemp,
            RecoveryAction = recoveryAction,
            ThermalViolationNs = thermalNs,
            SlowdownTemperatureC = slowdown,
            ShutdownTemperatureC = shutdown,
            PowerW = powerMw / 1000.0, // NVML reports milliwatts
            PowerLimitW = limitMw / 1000.0,
            UtilizationPct = utilOk ? (int)util.Gpu : null,
            MemoryUtilizationPct = utilOk ? (int)util.Memory : null,
            MemoryUsedMiB = memOk ? (long)(mem.Used / (1024 * 1024)) : null,
            MemoryTotalMiB = memOk ? (long)(mem.Total / (1024 * 1024)) : null,
            SmClockMHz = sm,
            MemoryClockMHz = memClock,
            ClockEventReasons = reasons,
            EccCorrectedVolatile = sbeVol,
            EccUncorrectedVolatile = dbeVol,
            EccCorrectedAggregate = sbeAgg,
            EccUncorrectedAggregate = dbeAgg,
            RetiredPagesSbe = retiredSbe,
            RetiredPagesDbe = retiredDbe,
            RetiredPagesPending = retiredPending,
            RemappedRowsCorrectable = remapOk ? (int)corr : null,
            RemappedRowsUncorrectable = remapOk ? (int)unc : null,
            RemapPending = remapOk ? pending != 0 : null,
            RemapFailure = remapOk ? failure != 0 : null,
            PcieReplayCounter = replay,
            PcieLinkGen = gen,
            PcieLinkWidth = width,
            PcieMaxLinkGen = maxGen,
            PcieMaxLinkWidth = maxWidth,
            UnrepairableMemory = unrepairable,
            InforomValid = inforomValid,
            FabricState = fabric?.State,
            FabricStatus = fabric?.Status,
            FabricHealthMask = fabric?.HealthMask,
            FabricHealthSummary = fabric?.HealthSummary,
        };
    }

    private bool _noUnrepairableFlag;

    /// <summary>Rule 14: NVML 13's unrepairable-memory flag; null for good on drivers that lack the call (symbol missing).</summary>
    private bool? ReadUnrepairableMemory(nint device, ref bool lost)
    {
        if (_noUnrepairableFlag)
        {
            return null;
        }

        try
        {
            return Check(NvmlNative.DeviceGetUnrepairableMemoryFlag(device, out var status), ref lost) ? status.Unrepairable != 0 : null;
        }
        catch (EntryPointNotFoundException)
        {
            _noUnrepairableFlag = true; // driver older than NVML 13: Unknown, and rule 11 (remap failure) still covers the worst case
            return null;
        }
    }

    /// <summary>
    /// Rule 35: validates the InfoROM at most once per <see cref="NvmlOptions.InforomValidationInterval"/> per GPU and repeats
    /// the last verdict in between. CORRUPTED_INFOROM is the finding itself, not an NVML error.
    /// </summary>
    private bool? ReadInforom(int index, nint device, ref bool lost)
    {
        var now = _time.GetTimestamp();
        if (_inforom.TryGetValue(index, out var last) && _time.GetElapsedTime(last.At, now) < _options.InforomValidationInterval)
        {
            return last.Valid;
        }

        var rc = NvmlNative.DeviceValidateInforom(device);
        bool? valid = rc == NvmlReturn.CorruptedInforom ? false : Check(rc, ref lost) ? true : null;
        if (!lost)
        {
            _inforom[index] = (valid, now);
        }

        return valid;
    }

    private bool _noFabricInfo;
    private uint _fabricVersion = NvmlGpuFabricInfo.Version3;

    /// <summary>
    /// Rule 21: fabric registration and health. Asks for v3 (health summary) and settles on v2 once a driver answers
    /// ARGUMENT_VERSION_MISMATCH. A GPU outside an NVSwitch fabric (NOT_SUPPORTED, or state NOT_SUPPORTED) gives null.
    /// </summary>
    private (int State, int Status, long HealthMask, int? HealthSummary)? ReadFabric(nint device, ref bool lost)
    {
        if (_noFabricInfo)
        {
            return null;
        }

        try
        {
            var info = new NvmlGpuFabricInfo { Version = _fabricVersion };
            var rc = NvmlNative.DeviceGetGpuFabricInfoV(device, ref info);
            if (rc == NvmlReturn.ArgumentVersionMismatch && _fabricVersion == NvmlGpuFabricInfo.Version3)
            {
                _fabricVersion = NvmlGpuFabricInfo.Version2;
                info = new NvmlGpuFabricInfo { Version = _fabricVersion };
                rc = NvmlNative.DeviceGetGpuFabricInfoV(device, ref info);
            }

            if (!Check(rc, ref lost) || info.State == NvmlNative.FabricStateNotSupported)
            {
                return null;
            }

            int? summary = _fabricVersion == NvmlGpuFabricInfo.Version3 && info.HealthSummary != 0 ? info.HealthSummary : null;
            return (info.State, (int)info.Status, info.HealthMask, summary);
        }
        catch (EntryPointNotFoundException)
        {
            _noFabricInfo = true; // driver older than NVML 12.4
            return null;
        }
    }

    private bool _noTemperatureV;

    /// <summary>GetTemperatureV (NVML 13), falling back once and for all to the deprecated call on drivers without it.</summary>
    private int? ReadTemperature(nint device, ref bool lost)
    {
        if (!_noTemperatureV)
        {
            try
            {
                var value = new NvmlTemperature { Version = NvmlTemperature.Version1, SensorType = NvmlNative.TemperatureGpu };
                return Check(NvmlNative.DeviceGetTemperatureV(device, ref value), ref lost) ? value.Temperature : null;
            }
            catch (EntryPointNotFoundException)
            {
                _noTemperatureV = true;
            }
        }

        return Check(NvmlNative.DeviceGetTemperature(device, NvmlNative.TemperatureGpu, out var t), ref lost) ? (int)t : null;
    }

    /// <summary>True on success; NOT_SUPPORTED is false without counting; GPU_IS_LOST sets <paramref name="lost"/>.</summary>
    private bool Check(NvmlReturn rc, ref bool lost)
    {
        switch (rc)
        {
            case NvmlReturn.Success:
                return true;
            case NvmlReturn.NotSupported:
                return false;
            case NvmlReturn.GpuIsLost:
                lost = true;
                return false;
            default:
                Interlocked.Increment(ref _errors);
                return false;
        }
    }

    private GpuSample LostOrUnknown(int index, NvmlReturn rc)
    {
        (string Uuid, string? Pci) id;
        lock (_identity)
        {
            id = _identity.TryGetValue(index, out var known) ? known : ($"unknown-{index}", null);
        }

        var (uuid, pci) = id;
        _inforom.Remove(index); // a GPU that comes back (reset, reseat) is validated again on its first read
        if (rc != NvmlReturn.GpuIsLost)
        {
            Interlocked.Increment(ref _errors);
        }

        // Only identity is known; everything else stays null ("no data" is Unknown, never healthy).
        return new GpuSample { Index = index, Uuid = uuid, PciBusId = pci, Lost = rc == NvmlReturn.GpuIsLost };
    }

    private static unsafe string Text(byte* buffer, int length)
    {
        var span = new ReadOnlySpan<byte>(buffer, length);
        var end = span.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? span : span[..end]);
    }
}
