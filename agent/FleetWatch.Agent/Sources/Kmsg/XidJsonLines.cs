using System.Globalization;
using System.Text;

namespace FleetWatch.Agent.Sources.Kmsg;

/// <summary>
/// Writes one <see cref="KernelLogEvent"/> as the JSON object of FORMATS.md section 1, with the field order of
/// its examples (<c>line, kind, pci, xid, pid, process, message, seq, uptime_us</c>; <c>gpu_uuid</c> objects:
/// <c>line, kind, pci, uuid, seq, uptime_us</c>), nulls written as null, and the <c>", "</c> / <c>": "</c>
/// separators of the examples. Non-ASCII text is written as <c>\uXXXX</c> so the output is plain ASCII whatever
/// the input held.
/// </summary>
public static class XidJsonLines
{
    /// <summary>The <c>kind</c> string of FORMATS.md section 1.</summary>
    public static string KindName(KernelLogEventKind kind) => kind switch
    {
        KernelLogEventKind.Xid => "xid",
        KernelLogEventKind.SXid => "sxid",
        KernelLogEventKind.FallenOffBus => "fallen_off_bus",
        KernelLogEventKind.GpuUuid => "gpu_uuid",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    /// <summary>Appends the object (without a newline) for the event found on 1-based input line <paramref name="line"/>.</summary>
    public static void Append(StringBuilder sb, long line, KernelLogEvent ev)
    {
        var inv = CultureInfo.InvariantCulture;
        sb.Append("{\"line\": ").Append(line.ToString(inv));
        sb.Append(", \"kind\": ");
        AppendString(sb, KindName(ev.Kind));
        sb.Append(", \"pci\": ");
        AppendString(sb, ev.Pci);
        if (ev.Kind == KernelLogEventKind.GpuUuid)
        {
            sb.Append(", \"uuid\": ");
            AppendString(sb, ev.Uuid);
        }
        else
        {
            sb.Append(", \"xid\": ");
            AppendNumber(sb, ev.Xid);
            sb.Append(", \"pid\": ");
            AppendNumber(sb, ev.Pid);
            sb.Append(", \"process\": ");
            AppendString(sb, ev.Process);
            sb.Append(", \"message\": ");
            AppendString(sb, ev.Message);
        }

        sb.Append(", \"seq\": ");
        AppendNumber(sb, ev.Sequence);
        sb.Append(", \"uptime_us\": ");
        AppendNumber(sb, ev.UptimeMicroseconds);
        sb.Append('}');
    }

    private static void AppendNumber(StringBuilder sb, long? value)
    {
        if (value is { } v)
        {
            sb.Append(v.ToString(CultureInfo.InvariantCulture));
        }
        else
        {
            sb.Append("null");
        }
    }

    private static void AppendString(StringBuilder sb, string? value)
    {
        if (value is null)
        {
            sb.Append("null");
            return;
        }

        sb.Append('"');
        foreach (var c in value)
        {
            switch (c)
            {
                case '"':
                    sb.Append("\\\"");
                    break;
                case '\\':
                    sb.Append("\\\\");
                    break;
                case '\n':
                    sb.Append("\\n");
                    break;
                case '\r':
                    sb.Append("\\r");
                    break;
                case '\t':
                    sb.Append("\\t");
                    break;
                default:
                    if (c < 0x20 || c > 0x7E)
                    {
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        sb.Append(c);
                    }

                    break;
            }
        }

        sb.Append('"');
    }
}
