using System.Globalization;
using System.Text;
using FleetWatch.Contracts;

namespace FleetWatch.Controller.Detection;

/// <summary>
/// Catalogue rules 14 (unrepairable memory), 21 (fabric unhealthy) and 35 (InfoROM corrupt) of
/// research/gpu-health-anchors.md section 7. The catalogue names DCGM fields (1507, 174, 84); FleetWatch runs without DCGM,
/// so the agent reads their NVML sources and these rules read the NVML values. Same contract as the rest of the class:
/// pure, null is Unknown.
/// </summary>
public static partial class SampleDetectors
{
    // nvml.h NVML_GPU_FABRIC_*: states, the 2-bit health-mask fields (value 1 = TRUE) with their shifts, the incorrect-
    // configuration field (4 bits at 8, value 1 = NONE, 0 = not supported) and the v3 health summary.
    private const int FabricStateCompleted = 3;
    private const int FabricFieldTrue = 1;
    private const int FabricShiftDegradedBw = 0;
    private const int FabricShiftRouteRecovery = 2;
    private const int FabricShiftRouteUnhealthy = 4;
    private const int FabricShiftAccessTimeoutRecovery = 6;
    private const int FabricShiftIncorrectConfiguration = 8;
    private const int FabricSummaryUnhealthy = 2;
    private const int FabricSummaryLimitedCapacity = 3;

    private static void EvaluateUnrepairableMemory(in Context c, GpuSample gpu)
    {
        // Rule 14 (DCGM 1507 MEMORY_UNREPAIRABLE; DCGM FAULTY_MEMORY → isolate): NVML 13's nvmlDeviceGetUnrepairableMemoryFlag_v1.
        // The flag says the GPU ran out of ways to repair its memory (remapping and retirement exhausted), so the GPU goes
        // out of service for RMA; a driver without the call leaves it Unknown (rule 11 still sees a failed remap).
        c.State.Observe(gpu.Index, ConditionRule.UnrepairableMemory, gpu.UnrepairableMemory);
        if (gpu.UnrepairableMemory is { } bad && c.State.Report(new SignalKey(Signal.UnrepairableMemory, gpu.Index), bad))
        {
            c.Add(gpu.Index, "memory_unrepairable", bad, Severity.Critical, "memory_unrepairable", "isolate_gpu",
                "NVML reports unrepairable memory: isolate the GPU, RMA candidate");
        }
    }

    private static void EvaluateInforom(in Context c, GpuSample gpu)
    {
        // Rule 35 (DCGM 84 INFOROM_VALID = 0; DcgmHealthWatch MonitorInforom): nvmlDeviceValidateInforom answered
        // CORRUPTED_INFOROM. The GPU keeps working; a reset at the next window is the catalogue's action.
        c.State.Observe(gpu.Index, ConditionRule.InforomCorrupt, gpu.InforomValid is { } valid ? !valid : null);
        if (gpu.InforomValid is { } ok && c.State.Report(new SignalKey(Signal.InforomCorrupt, gpu.Index), !ok))
        {
            c.Add(gpu.Index, "inforom_corrupt", !ok, Severity.Warning, "inforom_corrupt", "reset_gpu_at_next_drain",
                "InfoROM checksum failed (NVML_ERROR_CORRUPTED_INFOROM): reset the GPU at the next drain window");
        }
    }

    private static void EvaluateFabric(in Context c, GpuSample gpu)
    {
        // Rule 21 (DCGM 174 FABRIC_HEALTH_MASK; DcgmHealthWatch MonitorFabricFields) from nvmlDeviceGetGpuFabricInfoV. A
        // completed registration has a health verdict. While the GPU registers with the fabric manager (not started, in
        // progress) the condition is Unknown and an earlier verdict stands, until the registration has been pending for
        // FabricRegistrationTimeout: then the fabric manager is presumably down and the GPU cannot run CUDA work.
        // A GPU outside any NVSwitch fabric sends null.
        var key = new SignalKey(Signal.FabricHealth, gpu.Index);
        var pending = c.State.Since(new SignalKey(Signal.FabricRegistration, gpu.Index), gpu.FabricState is { } s && s != FabricStateCompleted, c.Time);
        if (gpu.FabricState is not FabricStateCompleted)
        {
            var waited = pending is { } since ? c.Time - since + c.Interval : TimeSpan.Zero;
            if (pending is null || c.Options.FabricRegistrationTimeout <= TimeSpan.Zero || waited < c.Options.FabricRegistrationTimeout)
            {
                c.State.Observe(gpu.Index, ConditionRule.FabricHealth, ConditionStatus.Unknown);
                return;
            }

            var stuck = string.Create(CultureInfo.InvariantCulture,
                $"registration with the fabric manager not completed after {(waited < TimeSpan.FromMinutes(1) ? $"{waited.TotalSeconds:F0} s" : $"{waited.TotalMinutes:F0} min")} (state {FabricStateName(gpu.FabricState!.Value)})");
            c.State.Observe(gpu.Index, ConditionRule.FabricHealth, true, stuck);
            if (c.State.Report(key, true))
            {
                c.Add(gpu.Index, "fabric_health", true, Severity.High, "fabric_unhealthy", "drain_at_checkpoint",
                    $"NVLink fabric unhealthy: {stuck}; check that nvidia-fabricmanager runs and the NVSwitches");
            }

            return;
        }

        var problem = FabricProblem(gpu.FabricStatus, gpu.FabricHealthMask, gpu.FabricHealthSummary);
        var unhealthy = problem is not null;
        c.State.Observe(gpu.Index, ConditionRule.FabricHealth, unhealthy);
        if (c.State.Report(key, unhealthy))
        {
            c.Add(gpu.Index, "fabric_health", unhealthy, Severity.High, "fabric_unhealthy", "drain_at_checkpoint",
                unhealthy ? $"NVLink fabric unhealthy: {problem}; check the fabric manager and NVSwitches" : "NVLink fabric healthy");
        }
    }

    /// <summary>nvml.h NVML_GPU_FABRIC_STATE_*.</summary>
    private static string FabricStateName(int state) => state switch
    {
        1 => "not started",
        2 => "in progress",
        _ => state.ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>
    /// What is wrong with a completed fabric registration, or null when nothing is. A TRUE in any 2-bit field of the health
    /// mask (degraded bandwidth, route recovery, route unhealthy, access-timeout recovery), an incorrect configuration (not
    /// NONE), a failed registration status, or a v3 summary of unhealthy or limited capacity. The same fields leptonai/gpud's
    /// fabric-manager component decodes as issues. Allocates only when unhealthy.
    /// </summary>
    internal static string? FabricProblem(int? status, long? mask, int? summary)
    {
        StringBuilder? sb = null;
        void Add(string what) => (sb ??= new StringBuilder()).Append(sb.Length == 0 ? "" : ", ").Append(what);

        if (status is { } s && s != 0)
        {
            Add($"registration status {s}");
        }

        if (mask is { } m)
        {
            if (((m >> FabricShiftDegradedBw) & 0x3) == FabricFieldTrue)
            {
                Add("bandwidth degraded");
            }

            if (((m >> FabricShiftRouteRecovery) & 0x3) == FabricFieldTrue)
            {
                Add("route recovery in progress");
            }

            if (((m >> FabricShiftRouteUnhealthy) & 0x3) == FabricFieldTrue)
            {
                Add("route unhealthy");
            }

            if (((m >> FabricShiftAccessTimeoutRecovery) & 0x3) == FabricFieldTrue)
            {
                Add("access-timeout recovery in progress");
            }

            // 2 incorrect SYSGUID, 3 incorrect chassis serial, 4 no partition, 5 insufficient NVLinks, later values unknown.
            if (((m >> FabricShiftIncorrectConfiguration) & 0xF) is var config and > 1)
            {
                Add($"incorrect configuration {config}");
            }
        }

        if (summary is FabricSummaryUnhealthy or FabricSummaryLimitedCapacity)
        {
            Add(summary == FabricSummaryUnhealthy ? "summary unhealthy" : "summary limited capacity");
        }

        return sb?.ToString();
    }
}
