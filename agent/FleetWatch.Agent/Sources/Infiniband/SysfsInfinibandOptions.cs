using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Sources.Infiniband;

/// <summary>Options of <see cref="SysfsInfinibandSource"/> (configuration section <see cref="SectionName"/>).</summary>
public sealed class SysfsInfinibandOptions
{
    public const string SectionName = "FleetWatch:Agent:Infiniband";

    /// <summary>The sysfs class folder: <c>&lt;Root&gt;/&lt;device&gt;/ports/&lt;n&gt;/...</c> (kernel ABI <c>sysfs-class-infiniband</c>).</summary>
    public string Root { get; set; } = "/sys/class/infiniband";

    /// <summary>
    /// Read <c>counters/*</c>. Each read of one of those files sends a PerfMgt MAD to the HCA
    /// (research/straggler-restore-anchors.md section 1.3), so poll them every 10–60 s, not every tick.
    /// </summary>
    public bool ReadCounters { get; set; } = true;

    /// <summary>Read <c>hw_counters/*</c> (mlx5 driver counters, cached by the driver for <c>hw_counters/lifespan</c> ms).</summary>
    public bool ReadHwCounters { get; set; } = true;
}

/// <summary>Validates <see cref="SysfsInfinibandOptions"/> at start.</summary>
public sealed class SysfsInfinibandOptionsValidator : IValidateOptions<SysfsInfinibandOptions>
{
    public ValidateOptionsResult Validate(string? name, SysfsInfinibandOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return string.IsNullOrWhiteSpace(options.Root)
            ? ValidateOptionsResult.Fail($"{SysfsInfinibandOptions.SectionName}:Root must name the sysfs infiniband folder (default /sys/class/infiniband), got '{options.Root}'.")
            : ValidateOptionsResult.Success;
    }
}
