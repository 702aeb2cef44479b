using System.Globalization;

namespace FleetWatch.Controller.Stragglers;

/// <summary>
/// Reads a step-timing trace (FORMATS.md section 2: <c>job,rank,node,gpu,peer_group,step,end_ms,duration_ms</c>).
/// Columns are found by header name; a row with a missing or unparsable field is skipped and counted, never fatal.
/// Job, node and peer-group names are interned, so a million rows share a few hundred strings.
/// </summary>
public static class StepTraceReader
{
    private static readonly string[] Columns = ["job", "rank", "node", "gpu", "peer_group", "step", "end_ms", "duration_ms"];

    /// <summary>Parses the whole trace. Throws <see cref="InvalidDataException"/> when the header lacks a column.</summary>
    public static StepTrace Read(TextReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var header = reader.ReadLine() ?? throw new InvalidDataException("the trace is empty (no header line)");
        var names = header.Split(',');
        var index = new int[Columns.Length];
        for (var c = 0; c < Columns.Length; c++)
        {
            index[c] = Array.FindIndex(names, n => string.Equals(n.Trim(), Columns[c], StringComparison.OrdinalIgnoreCase));
            if (index[c] < 0)
            {
                throw new InvalidDataException($"the header has no '{Columns[c]}' column: {header}");
            }
        }

        var strings = new HashSet<string>(StringComparer.Ordinal);
        var lookup = strings.GetAlternateLookup<ReadOnlySpan<char>>();
        var rows = new List<StepReport>();
        var malformed = 0L;
        var lineNumber = 1L;
        Span<Range> fields = stackalloc Range[names.Length + 1];
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            if (line.Length == 0)
            {
                continue;
            }

            var span = line.AsSpan();
            if (span.Split(fields, ',') != names.Length
                || !TryParse(span, fields, index, lookup, out var row))
            {
                malformed++;
                continue;
            }

            rows.Add(row);
        }

        return new StepTrace(rows, malformed, lineNumber - 1);
    }

    private static bool TryParse(
        ReadOnlySpan<char> line, ReadOnlySpan<Range> f, int[] ix, HashSet<string>.AlternateLookup<ReadOnlySpan<char>> strings, out StepReport row)
    {
        row = default;
        var inv = CultureInfo.InvariantCulture;
        var job = line[f[ix[0]]].Trim();
        var node = line[f[ix[2]]].Trim();
        var group = line[f[ix[4]]].Trim();
        if (job.IsEmpty || group.IsEmpty
            || !int.TryParse(line[f[ix[1]]], NumberStyles.Integer, inv, out var rank)
            || !int.TryParse(line[f[ix[3]]], NumberStyles.Integer, inv, out var gpu)
            || !long.TryParse(line[f[ix[5]]], NumberStyles.Integer, inv, out var step)
            || !double.TryParse(line[f[ix[6]]], NumberStyles.Float, inv, out var endMs)
            || !double.TryParse(line[f[ix[7]]], NumberStyles.Float, inv, out var duration)
            || !double.IsFinite(endMs) || endMs < 0 || endMs > long.MaxValue / 2
            || !double.IsFinite(duration) || duration <= 0 || rank < 0 || step < 0)
        {
            return false;
        }

        row = new StepReport(Intern(strings, job), rank, Intern(strings, node), gpu, Intern(strings, group), step,
            (long)Math.Round(endMs), duration);
        return true;
    }

    private static string Intern(HashSet<string>.AlternateLookup<ReadOnlySpan<char>> strings, ReadOnlySpan<char> s)
    {
        if (strings.TryGetValue(s, out var existing))
        {
            return existing;
        }

        var value = s.ToString();
        strings.Add(value);
        return value;
    }
}

/// <summary>A parsed trace: its rows in file order, and how many data lines were skipped as malformed.</summary>
/// <param name="Rows">Well-formed rows, in file order.</param>
/// <param name="Malformed">Data lines skipped.</param>
/// <param name="Lines">Data lines read (excluding the header).</param>
public sealed record StepTrace(IReadOnlyList<StepReport> Rows, long Malformed, long Lines);
