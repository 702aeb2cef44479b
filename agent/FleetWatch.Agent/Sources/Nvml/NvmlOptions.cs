using System.ComponentModel.DataAnnotations;
using FleetWatch.Common;

namespace FleetWatch.Agent.Sources.Nvml;

/// <summary>NVML source options (section <c>FleetWatch:Nvml</c>).</summary>
public sealed class NvmlOptions
{
    public const string Section = "FleetWatch:Nvml";

    /// <summary>Path or soname of the NVML library; tests point it at a fake with the same symbols.</summary>
    [Required]
    public string LibraryPath { get; set; } = NvmlLibrary.DefaultPath;

    /// <summary>
    /// A read of all GPUs that takes longer is reported as a driver hang (rule 31 uses 10 s for one call; a
    /// whole read at a 1 s tick that has not returned in 5 s is already stuck).
    /// </summary>
    [TimeSpanRange("00:00:00.050", "00:01:00")]
    public TimeSpan ReadTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How often each GPU's InfoROM is validated (rule 35). nvmlDeviceValidateInforom reads the whole InfoROM back from
    /// flash and checksums it, far more work than a counter read, and corruption does not come and go within seconds: once
    /// a minute keeps the 1 s tick short and still reports well inside the "reset at the next window" the rule asks for.
    /// Zero validates on every read.
    /// </summary>
    [TimeSpanRange("00:00:00", "1.00:00:00")]
    public TimeSpan InforomValidationInterval { get; set; } = TimeSpan.FromMinutes(1);
}
