namespace FleetWatch.Agent.Sources.Kmsg;

/// <summary>The kinds of kernel-log line that carry an event (FORMATS.md section 1).</summary>
public enum KernelLogEventKind
{
    /// <summary><c>NVRM: Xid (&lt;pci&gt;): &lt;n&gt;, ...</c></summary>
    Xid,

    /// <summary><c>nvidia-nvswitchN: SXid (PCI:&lt;pci&gt;): &lt;n&gt;, ...</c> (NVSwitch).</summary>
    SXid,

    /// <summary>The text-only <c>NVRM: The NVIDIA GPU &lt;pci&gt; ... has fallen off the bus</c> line (no Xid number).</summary>
    FallenOffBus,

    /// <summary><c>NVRM: GPU at PCI:&lt;pci&gt;: GPU-&lt;uuid&gt;</c>: maps a PCI id to a GPU UUID.</summary>
    GpuUuid,
}

/// <summary>What <see cref="KernelLogParser.Parse"/> found on one line.</summary>
public enum KernelLogLineResult
{
    /// <summary>Not an event line (noise, a continuation line, an empty line).</summary>
    None,

    /// <summary>An event; the out parameter holds it.</summary>
    Event,

    /// <summary>The line starts an event shape but is cut or damaged before the event is complete; skipped and counted.</summary>
    Malformed,
}

/// <summary>
/// One event parsed from one kernel-log line. Field meanings follow the JSON Lines output of the <c>xid</c>
/// verb (FORMATS.md section 1); null means the line does not carry the field.
/// </summary>
public sealed record KernelLogEvent
{
    public required KernelLogEventKind Kind { get; init; }

    /// <summary>Normalised lower-case <c>dddd:bb:dd</c> (see <see cref="PciBusId"/>).</summary>
    public required string Pci { get; init; }

    /// <summary>Xid or SXid number; null for <see cref="KernelLogEventKind.FallenOffBus"/> and <see cref="KernelLogEventKind.GpuUuid"/>.</summary>
    public int? Xid { get; init; }

    /// <summary>The number after <c>pid=</c>; null for <c>pid='&lt;unknown&gt;'</c> or none.</summary>
    public long? Pid { get; init; }

    /// <summary>The value of <c>name=</c>; null for <c>name=&lt;unknown&gt;</c> or none.</summary>
    public string? Process { get; init; }

    /// <summary>Text after the number and the pid/name fields, trimmed, at most <see cref="KernelLogParser.MaxMessageChars"/> characters.</summary>
    public string Message { get; init; } = "";

    /// <summary><c>GPU-...</c> for <see cref="KernelLogEventKind.GpuUuid"/>; otherwise null.</summary>
    public string? Uuid { get; init; }

    /// <summary>The <c>/dev/kmsg</c> sequence number; null for other line shapes.</summary>
    public long? Sequence { get; init; }

    /// <summary>Microseconds since boot, from the kmsg header or a <c>[seconds.micros]</c> stamp; null for wall-clock-only lines.</summary>
    public long? UptimeMicroseconds { get; init; }
}
