using System.Text;

namespace FleetWatch.Agent.Sources.Kmsg;

/// <summary>
/// Parses one kernel-log line (raw bytes: captures hold invalid UTF-8, NUL bytes, CRLF and very long lines)
/// into an Xid / SXid / fallen-off-the-bus / PCI→UUID event. One parser serves the offline <c>xid</c> verb
/// (<see cref="XidTool"/>) and the live <see cref="KmsgXidWatcher"/>.
/// </summary>
/// <remarks>
/// <para>
/// Line shapes (FORMATS.md section 1, bench-data/xid/README.md): a <c>/dev/kmsg</c> record, a dmesg line
/// (<c>[ 12345.678901] </c> or <c>dmesg -T</c>'s <c>[Fri Nov 29 03:56:33 2024] </c>), a syslog/journal line
/// (<c>Nov 29 12:00:00 host kernel: </c>, optionally followed by <c>[ 123.4] </c>, or an ISO 8601 stamp), or a
/// bare message. The prefix does not decide whether a line is an event: the event text does, wherever it sits,
/// which is what the production regexes do (leptonai/gpud <c>xid/kmsg.go</c>, NVSentinel <c>pkg/xid/types.go</c>;
/// research/gpu-health-anchors.md section 2.4).
/// </para>
/// <para>
/// A hand-written span scanner rather than <c>Regex</c>: almost every line is noise, and two vectorised
/// <c>IndexOf</c> searches reject it without decoding or allocating (see bench/FleetWatch.Bench.Xid).
/// </para>
/// </remarks>
public static class KernelLogParser
{
    /// <summary>Messages are cut to this many characters: a 10 KB register dump helps nobody in an alert.</summary>
    public const int MaxMessageChars = 1024;

    /// <summary>Parses <paramref name="line"/> (without its LF; a trailing CR is ignored).</summary>
    public static KernelLogLineResult Parse(ReadOnlySpan<byte> line, out KernelLogEvent? ev)
    {
        ev = null;
        if (!line.IsEmpty && line[^1] == (byte)'\r')
        {
            // CRLF captures: the CR belongs to the line ending (bench-data/xid/README.md).
            line = line[..^1];
        }

        // A line that starts with a space is a /dev/kmsg continuation (dictionary) line: never an event.
        if (line.IsEmpty || line[0] == (byte)' ')
        {
            return KernelLogLineResult.None;
        }

        long? sequence = null;
        long? uptime = null;
        var body = line;
        var isKmsg = KmsgRecordHeader.TryParse(line, out var header);
        if (isKmsg)
        {
            body = line[header.BodyOffset..];
            sequence = header.Sequence;
            uptime = header.Microseconds;
        }

        // A line glued to the next by a damaged capture can hold a cut event and then a whole one: a cut
        // occurrence does not end the search, the first complete event wins.
        var sawMalformed = false;
        var searchFrom = 0;
        while (true)
        {
            var at = body[searchFrom..].IndexOf("NVRM: "u8);
            if (at < 0)
            {
                break;
            }

            at += searchFrom;
            searchFrom = at + 6;
            var after = body[searchFrom..];
            KernelLogLineResult result;
            if (after.StartsWith("Xid"u8))
            {
                result = ParseXid(after[3..], out ev);
            }
            else if (after.StartsWith("GPU at "u8))
            {
                result = ParseGpuAt(after[7..], out ev);
            }
            else if (after.StartsWith("The NVIDIA GPU "u8))
            {
                result = ParseFallenOffBus(after[15..], out ev);
            }
            else
            {
                continue;
            }

            if (result == KernelLogLineResult.Event)
            {
                return Finish(ref ev, isKmsg, body[..at], sequence, uptime);
            }

            sawMalformed |= result == KernelLogLineResult.Malformed;
        }

        searchFrom = 0;
        while (true)
        {
            var at = body[searchFrom..].IndexOf("SXid ("u8);
            if (at < 0)
            {
                break;
            }

            at += searchFrom;
            searchFrom = at + 6;
            var result = ParseSxid(body[(at + 5)..], out ev);
            if (result == KernelLogLineResult.Event)
            {
                return Finish(ref ev, isKmsg, body[..at], sequence, uptime);
            }

            sawMalformed |= result == KernelLogLineResult.Malformed;
        }

        ev = null;
        return sawMalformed ? KernelLogLineResult.Malformed : KernelLogLineResult.None;
    }

    private static KernelLogLineResult Finish(ref KernelLogEvent? ev, bool isKmsg, ReadOnlySpan<byte> prefix, long? sequence, long? uptime)
    {
        if (!isKmsg)
        {
            uptime = FindBracketUptime(prefix);
        }

        ev = ev! with { Sequence = sequence, UptimeMicroseconds = uptime };
        return KernelLogLineResult.Event;
    }

    // After "NVRM: Xid": " (PCI:0000:3b:00): 79, pid=1234, name=python, message".
    private static KernelLogLineResult ParseXid(ReadOnlySpan<byte> s, out KernelLogEvent? ev)
    {
        ev = null;
        if (!TryParseIdAndNumber(s, out var pci, out var xid, out var rest))
        {
            return KernelLogLineResult.Malformed;
        }

        long? pid = null;
        string? process = null;
        var sawPid = false;
        var sawName = false;
        rest = TrimStart(rest);
        while (true)
        {
            if (!sawPid && rest.StartsWith("pid="u8))
            {
                sawPid = true;
                var value = TakeField(ref rest, 4);
                pid = ParsePid(value);
            }
            else if (!sawName && rest.StartsWith("name="u8))
            {
                sawName = true;
                var value = TakeField(ref rest, 5);
                process = ParseName(value);
            }
            else
            {
                break;
            }
        }

        ev = new KernelLogEvent
        {
            Kind = KernelLogEventKind.Xid,
            Pci = pci,
            Xid = xid,
            Pid = pid,
            Process = process,
            Message = DecodeMessage(rest),
        };
        return KernelLogLineResult.Event;
    }

    // After "SXid": " (PCI:0000:07:00.0): 12028, Non-fatal, Link 62 ...".
    private static KernelLogLineResult ParseSxid(ReadOnlySpan<byte> s, out KernelLogEvent? ev)
    {
        ev = null;
        if (!TryParseIdAndNumber(s, out var pci, out var sxid, out var rest))
        {
            return KernelLogLineResult.Malformed;
        }

        ev = new KernelLogEvent { Kind = KernelLogEventKind.SXid, Pci = pci, Xid = sxid, Message = DecodeMessage(rest) };
        return KernelLogLineResult.Event;
    }

    // After "NVRM: GPU at ": "PCI:0000:4c:00: GPU-45eab12c-e144-7b1c-26a4-df5d9aa40520".
    private static KernelLogLineResult ParseGpuAt(ReadOnlySpan<byte> s, out KernelLogEvent? ev)
    {
        ev = null;
        var run = TakePciRun(TrimStart(s), out var rest);
        while (!run.IsEmpty && run[^1] == (byte)':')
        {
            // The separator colon in "PCI:0000:4c:00: GPU-..." is not part of the id.
            run = run[..^1];
        }

        if (!PciBusId.TryNormalize(run, out var pci))
        {
            return KernelLogLineResult.Malformed;
        }

        rest = TrimStart(rest.StartsWith(":"u8) ? rest[1..] : rest);
        if (TryTakeUuid(rest, out var uuid))
        {
            ev = new KernelLogEvent { Kind = KernelLogEventKind.GpuUuid, Pci = pci, Uuid = uuid };
            return KernelLogLineResult.Event;
        }

        // Cut before or inside "GPU-<uuid>": damaged. Any other "GPU at ..." text is another message.
        return rest.IsEmpty || "GPU-"u8.StartsWith(rest[..Math.Min(rest.Length, 4)]) || rest.StartsWith("GPU-"u8)
            ? KernelLogLineResult.Malformed
            : KernelLogLineResult.None;
    }

    // After "NVRM: The NVIDIA GPU ": "0000:b3:00.0 (PCI ID: 10de:26b5) installed in this system has fallen off the bus ...".
    private static KernelLogLineResult ParseFallenOffBus(ReadOnlySpan<byte> s, out KernelLogEvent? ev)
    {
        ev = null;
        var run = TakePciRun(s, out var rest);
        if (!PciBusId.TryNormalize(run, out var pci))
        {
            return rest.IsEmpty ? KernelLogLineResult.Malformed : KernelLogLineResult.None;
        }

        // The same opening also starts "... installed in this system is not supported by ..." and friends.
        if (rest.IndexOf("fallen off the bus"u8) < 0)
        {
            return KernelLogLineResult.None;
        }

        ev = new KernelLogEvent { Kind = KernelLogEventKind.FallenOffBus, Pci = pci, Message = "has fallen off the bus" };
        return KernelLogLineResult.Event;
    }

    // " (<pci>): <number>," — shared by Xid and SXid. The number must be followed by a comma: a line cut
    // right after the number is indistinguishable from one cut inside it.
    private static bool TryParseIdAndNumber(ReadOnlySpan<byte> s, out string pci, out int number, out ReadOnlySpan<byte> rest)
    {
        pci = "";
        number = 0;
        rest = default;
        s = TrimStart(s);
        if (s.IsEmpty || s[0] != (byte)'(')
        {
            return false;
        }

        var close = s.IndexOf((byte)')');
        if (close < 0 || !PciBusId.TryNormalize(s[1..close], out var id))
        {
            return false;
        }

        s = s[(close + 1)..];
        if (s.IsEmpty || s[0] != (byte)':')
        {
            return false;
        }

        s = TrimStart(s[1..]);
        var pos = 0;
        if (!KmsgRecordHeader.TryDigits(s, ref pos, 9, out var value))
        {
            return false;
        }

        s = TrimStart(s[pos..]);
        if (s.IsEmpty || s[0] != (byte)',')
        {
            return false;
        }

        pci = id;
        number = (int)value;
        rest = s[1..];
        return true;
    }

    // A field value runs to the next comma; the rest continues after it.
    private static ReadOnlySpan<byte> TakeField(ref ReadOnlySpan<byte> rest, int keyLength)
    {
        var s = rest[keyLength..];
        var comma = s.IndexOf((byte)',');
        ReadOnlySpan<byte> value;
        if (comma < 0)
        {
            value = s;
            rest = default;
        }
        else
        {
            value = s[..comma];
            rest = TrimStart(s[(comma + 1)..]);
        }

        return value.TrimEnd((byte)' ');
    }

    private static long? ParsePid(ReadOnlySpan<byte> value)
    {
        var pos = 0;
        return KmsgRecordHeader.TryDigits(value, ref pos, 18, out var pid) && pos == value.Length ? pid : null;
    }

    private static string? ParseName(ReadOnlySpan<byte> value)
    {
        if (value.Length >= 2 && value[0] == (byte)'\'' && value[^1] == (byte)'\'')
        {
            value = value[1..^1];
        }

        if (value.IsEmpty || value.SequenceEqual("<unknown>"u8))
        {
            return null;
        }

        // TASK_COMM_LEN is 16, so a real name is short; cap whatever a damaged line holds.
        return Clean(Encoding.UTF8.GetString(value[..Math.Min(value.Length, 64)]));
    }

    private static ReadOnlySpan<byte> TakePciRun(ReadOnlySpan<byte> s, out ReadOnlySpan<byte> rest)
    {
        var start = s.StartsWith("PCI:"u8) ? 4 : 0;
        var i = start;
        while (i < s.Length && (PciBusId.HexValue(s[i]) >= 0 || s[i] == (byte)':' || s[i] == (byte)'.'))
        {
            i++;
        }

        rest = s[i..];
        return s[..i];
    }

    // "GPU-" + 8-4-4-4-12 hex digits, as nvmlDeviceGetUUID prints it. A cut UUID must never map a GPU.
    private static bool TryTakeUuid(ReadOnlySpan<byte> s, out string uuid)
    {
        uuid = "";
        const int Length = 4 + 36;
        if (s.Length < Length || !s.StartsWith("GPU-"u8))
        {
            return false;
        }

        for (var i = 4; i < Length; i++)
        {
            var dash = i is 12 or 17 or 22 or 27;
            if (dash ? s[i] != (byte)'-' : PciBusId.HexValue(s[i]) < 0)
            {
                return false;
            }
        }

        if (s.Length > Length && (s[Length] == (byte)'-' || PciBusId.HexValue(s[Length]) >= 0))
        {
            return false;
        }

        uuid = Encoding.ASCII.GetString(s[..Length]);
        return true;
    }

    // The "[seconds.micros]" stamp nearest before the event text: dmesg's, or the kernel's after a journal
    // "kernel: " (nearest, so that "[ 1.5][ T123]" caller ids and a glued earlier line do not mislead).
    // dmesg -T's "[Fri Nov 29 ...]" and dmesg -d's "[  +0.000004]" deltas are not uptimes.
    private static long? FindBracketUptime(ReadOnlySpan<byte> prefix)
    {
        var end = prefix.Length;
        while (end > 0)
        {
            var open = prefix[..end].LastIndexOf((byte)'[');
            if (open < 0)
            {
                return null;
            }

            if (TryParseBracket(prefix[(open + 1)..], out var usec))
            {
                return usec;
            }

            end = open;
        }

        return null;
    }

    private static bool TryParseBracket(ReadOnlySpan<byte> s, out long usec)
    {
        usec = 0;
        s = TrimStart(s);
        var pos = 0;
        if (!KmsgRecordHeader.TryDigits(s, ref pos, 12, out var seconds) || pos >= s.Length || s[pos] != (byte)'.')
        {
            return false;
        }

        pos++;
        var fracStart = pos;
        long micros = 0;
        while (pos < s.Length && (uint)(s[pos] - '0') <= 9)
        {
            if (pos - fracStart < 6)
            {
                micros = (micros * 10) + (s[pos] - '0');
            }

            pos++;
        }

        var digits = pos - fracStart;
        if (digits == 0)
        {
            return false;
        }

        for (var d = digits; d < 6; d++)
        {
            micros *= 10;
        }

        s = TrimStart(s[pos..]);
        if (s.IsEmpty || s[0] != (byte)']')
        {
            return false;
        }

        usec = (seconds * 1_000_000) + micros;
        return true;
    }

    // Invalid UTF-8 becomes U+FFFD rather than ending the message: the valid text before and after it survives.
    // So do control characters (a NUL in a capture): they are damage, and NULs break C strings and databases downstream.
    private static string DecodeMessage(ReadOnlySpan<byte> s)
    {
        s = s.Trim("\t \r\0"u8);
        if (s.IsEmpty)
        {
            return "";
        }

        if (s.Length > MaxMessageChars)
        {
            s = s[..MaxMessageChars];
        }

        return Clean(Encoding.UTF8.GetString(s)).TrimEnd();
    }

    private static string Clean(string text)
    {
        if (text.Length > MaxMessageChars)
        {
            text = text[..MaxMessageChars];
        }

        if (!text.AsSpan().ContainsAnyInRange('\0', '\u001f'))
        {
            return text;
        }

        return string.Create(text.Length, text, static (span, t) =>
        {
            for (var i = 0; i < t.Length; i++)
            {
                span[i] = t[i] < ' ' && t[i] != '\t' ? '\uFFFD' : t[i];
            }
        });
    }

    private static ReadOnlySpan<byte> TrimStart(ReadOnlySpan<byte> s) => s.TrimStart("\t "u8);
}
