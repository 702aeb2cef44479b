namespace FleetWatch.Agent.Sources.Kmsg;

/// <summary>Counts from one pass over a kernel log.</summary>
/// <param name="Lines">Lines read (a last line without LF counts).</param>
/// <param name="Events">Events found (one per event line, <c>gpu_uuid</c> lines included).</param>
/// <param name="Malformed">Lines that start an event shape but are cut or damaged before it is complete; skipped.</param>
/// <param name="Bytes">Bytes read.</param>
public readonly record struct KernelLogScanSummary(long Lines, long Events, long Malformed, long Bytes);

/// <summary>
/// Runs <see cref="KernelLogParser"/> over a whole stream: the loop of the offline <c>xid</c> verb and of the
/// throughput benchmark.
/// </summary>
public static class KernelLogScanner
{
    /// <summary>Reads <paramref name="input"/> to its end and calls <paramref name="onEvent"/> with each event and its 1-based line number, in input order.</summary>
    public static KernelLogScanSummary Scan(Stream input, Action<long, KernelLogEvent>? onEvent, int maxLineBytes = KernelLogLineReader.DefaultMaxLineBytes)
    {
        ArgumentNullException.ThrowIfNull(input);
        var reader = new KernelLogLineReader(input, maxLineBytes);
        long lines = 0, events = 0, malformed = 0, bytes = 0;
        while (true)
        {
            while (reader.TryReadLine(out var line))
            {
                Handle(line);
            }

            var n = reader.Fill();
            if (n == 0)
            {
                break;
            }

            bytes += n;
        }

        if (reader.TryReadRemainder(out var last))
        {
            Handle(last);
        }

        return new KernelLogScanSummary(lines, events, malformed, bytes);

        void Handle(ReadOnlySpan<byte> line)
        {
            lines++;
            switch (KernelLogParser.Parse(line, out var ev))
            {
                case KernelLogLineResult.Event:
                    events++;
                    onEvent?.Invoke(lines, ev!);
                    break;
                case KernelLogLineResult.Malformed:
                    malformed++;
                    break;
            }
        }
    }
}
