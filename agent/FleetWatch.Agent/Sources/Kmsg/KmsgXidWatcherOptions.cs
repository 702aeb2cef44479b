using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Sources.Kmsg;

/// <summary>Options of <see cref="KmsgXidWatcher"/> (configuration section <see cref="SectionName"/>).</summary>
public sealed class KmsgXidWatcherOptions
{
    public const string SectionName = "FleetWatch:Agent:Kmsg";

    /// <summary>The kernel log in <c>/dev/kmsg</c> record format: the device, or a regular file (tests) that is followed like <c>tail -f</c>.</summary>
    public string Path { get; set; } = "/dev/kmsg";

    /// <summary>Small file holding the boot id and the last sequence number seen, so a restarted agent resumes after it.</summary>
    public string StatePath { get; set; } = "/var/lib/fleetwatch/kmsg.state";

    /// <summary>
    /// The kernel's boot id (<c>/proc/sys/kernel/random/boot_id</c>). kmsg sequence numbers restart at 0 on every boot,
    /// so a saved sequence number is only honoured when the boot id matches. Null or unreadable: always honoured.
    /// The hardware sampler sends the same boot id with every sample (the controller takes a new one as a reboot).
    /// </summary>
    public string? BootIdPath { get; set; } = "/proc/sys/kernel/random/boot_id";

    /// <summary>Node name put on every <c>GpuXidObserved</c>; null means the machine name.</summary>
    public string? NodeName { get; set; }

    /// <summary>How long to wait at the end of a regular file before reading again (the device blocks instead).</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Wait before reopening after the log could not be opened or read.</summary>
    public TimeSpan ReopenDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How often the last sequence number is saved while only noise arrives. After an event it is saved at once;
    /// a crash in between re-reads at most this much noise, never loses an event.
    /// </summary>
    public TimeSpan StateFlushInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Longest line kept; a longer one is cut (the kernel itself caps a record at 8 KB, <c>CONSOLE_EXT_LOG_MAX</c>).</summary>
    public int MaxLineBytes { get; set; } = 64 * 1024;
}

/// <summary>Validates <see cref="KmsgXidWatcherOptions"/> at start, naming the key and the value.</summary>
public sealed class KmsgXidWatcherOptionsValidator : IValidateOptions<KmsgXidWatcherOptions>
{
    public ValidateOptionsResult Validate(string? name, KmsgXidWatcherOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = new List<string>();
        var s = KmsgXidWatcherOptions.SectionName;
        if (string.IsNullOrWhiteSpace(options.Path))
        {
            errors.Add($"{s}:Path must name the kernel log (default /dev/kmsg), got '{options.Path}'.");
        }

        if (string.IsNullOrWhiteSpace(options.StatePath))
        {
            errors.Add($"{s}:StatePath must name a writable file, got '{options.StatePath}'.");
        }

        Positive(errors, $"{s}:PollInterval", options.PollInterval);
        Positive(errors, $"{s}:ReopenDelay", options.ReopenDelay);
        Positive(errors, $"{s}:StateFlushInterval", options.StateFlushInterval);
        if (options.MaxLineBytes is < 8192 or > 16 * 1024 * 1024)
        {
            errors.Add($"{s}:MaxLineBytes must be between 8192 (one kmsg record) and 16777216, got {options.MaxLineBytes}.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void Positive(List<string> errors, string key, TimeSpan value)
    {
        if (value <= TimeSpan.Zero || value > TimeSpan.FromHours(1))
        {
            errors.Add($"{key} must be above 0 and at most 01:00:00, got '{value}'.");
        }
    }
}
