namespace FleetWatch.Agent.Sources.Kmsg;

/// <summary>
/// The header of a <c>/dev/kmsg</c> record: <c>&lt;prio&gt;,&lt;seq&gt;,&lt;usec&gt;,&lt;flags&gt;[,...];&lt;message&gt;</c>
/// (torvalds/linux <c>Documentation/ABI/testing/dev-kmsg</c>; research/gpu-health-anchors.md section 2.4).
/// Continuation (dictionary) lines start with a space and have no header.
/// </summary>
/// <param name="Priority">Syslog facility * 8 + level.</param>
/// <param name="Sequence">Record sequence number, increasing by one per record; a jump means records were lost.</param>
/// <param name="Microseconds">Microseconds since boot (monotonic clock) when the record was logged.</param>
/// <param name="BodyOffset">Offset of the message text, just after the <c>;</c>.</param>
public readonly record struct KmsgRecordHeader(int Priority, long Sequence, long Microseconds, int BodyOffset)
{
    // The fields after <flags> are short key=value items (e.g. "caller=T1234"); a header longer than this is not one.
    private const int MaxHeaderBytes = 256;

    /// <summary>Parses the header at the start of <paramref name="line"/>; false when the line is not a kmsg record.</summary>
    public static bool TryParse(ReadOnlySpan<byte> line, out KmsgRecordHeader header)
    {
        header = default;
        var pos = 0;
        if (!TryDigits(line, ref pos, 4, out var priority) || !Comma(line, ref pos)
            || !TryDigits(line, ref pos, 19, out var sequence) || !Comma(line, ref pos)
            || !TryDigits(line, ref pos, 19, out var usec) || !Comma(line, ref pos))
        {
            return false;
        }

        var limit = Math.Min(line.Length, pos + MaxHeaderBytes);
        for (var i = pos; i < limit; i++)
        {
            var b = line[i];
            if (b == (byte)';')
            {
                header = new KmsgRecordHeader((int)priority, sequence, usec, i + 1);
                return true;
            }

            if (b is (byte)' ' or (byte)'\t')
            {
                return false;
            }
        }

        return false;
    }

    internal static bool TryDigits(ReadOnlySpan<byte> s, ref int pos, int maxDigits, out long value)
    {
        value = 0;
        var start = pos;
        ulong v = 0;
        while (pos < s.Length && (uint)(s[pos] - '0') <= 9)
        {
            if (pos - start == maxDigits)
            {
                return false;
            }

            v = (v * 10) + (uint)(s[pos] - '0');
            pos++;
        }

        if (pos == start || v > long.MaxValue)
        {
            return false;
        }

        value = (long)v;
        return true;
    }

    private static bool Comma(ReadOnlySpan<byte> s, ref int pos)
    {
        if (pos < s.Length && s[pos] == (byte)',')
        {
            pos++;
            return true;
        }

        return false;
    }
}
