using System.Globalization;
using System.Text.Json;

namespace FleetWatch.Controller.Stragglers;

/// <summary>
/// The <c>stragglers</c> verb (FORMATS.md section 2): runs a step-timing trace through the same
/// <see cref="StragglerDetector"/> the controller runs live. Rows are sorted by end time and fed one by one, with the
/// clock advanced to each row's end, so every decision uses only what had arrived by then.
/// </summary>
public static class StragglerTool
{
    private const string Usage = "usage: fleetwatch stragglers --trace FILE [--end-ms N] [--output FILE]";

    /// <summary>Runs the verb. Exit codes: 0 ok, 2 bad arguments or unreadable input (one line on stderr).</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        string? tracePath = null;
        string? outputPath = null;
        long? endMs = null;
        for (var i = 0; i < args.Length; i++)
        {
            var hasValue = i + 1 < args.Length;
            switch (args[i])
            {
                case "--trace" when hasValue:
                    tracePath = args[++i];
                    break;
                case "--output" when hasValue:
                    outputPath = args[++i];
                    break;
                case "--end-ms" when hasValue:
                    if (!long.TryParse(args[++i], NumberStyles.Integer, CultureInfo.InvariantCulture, out var e) || e < 0)
                    {
                        await stderr.WriteLineAsync($"stragglers: --end-ms must be a non-negative integer, got '{args[i]}'");
                        return 2;
                    }

                    endMs = e;
                    break;
                case "-h" or "--help":
                    await stdout.WriteLineAsync(Usage);
                    return 0;
                default:
                    await stderr.WriteLineAsync($"stragglers: unexpected argument '{args[i]}' ({Usage})");
                    return 2;
            }
        }

        if (tracePath is null)
        {
            await stderr.WriteLineAsync($"stragglers: --trace is required ({Usage})");
            return 2;
        }

        StepTrace trace;
        try
        {
            using var reader = new StreamReader(tracePath);
            trace = StepTraceReader.Read(reader);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException or ArgumentException)
        {
            await stderr.WriteLineAsync($"stragglers: cannot read {tracePath}: {ex.Message}");
            return 2;
        }

        var result = Analyse(trace.Rows, endMs, new StragglerDetectorOptions());
        try
        {
            if (outputPath is null)
            {
                await stdout.WriteAsync(result.ToJson());
                await stdout.WriteLineAsync();
            }
            else
            {
                await File.WriteAllTextAsync(outputPath, result.ToJson());
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            await stderr.WriteLineAsync($"stragglers: cannot write {outputPath}: {ex.Message}");
            return 2;
        }

        var c = result.Counters;
        await stderr.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"stragglers: {trace.Lines} rows read, {trace.Malformed + c.Malformed} malformed skipped, {c.Duplicates} duplicates, " +
            $"{c.Stale} stale, {result.RowsAfterEnd} after --end-ms, {c.Restarts} restarts, {c.PauseSteps} job-wide pause steps; " +
            $"{result.Stragglers.Count} straggler flags, {result.Hangs.Count} hangs, {result.ResolvedPauses} silences resolved by progress"));
        return 0;
    }

    /// <summary>
    /// Feeds rows in end-time order through a fresh detector and collects what it raised. Hangs that the job resolved by
    /// progressing again (a long checkpoint pause, a restart) are counted, not listed: the output lists jobs hung at
    /// the end of the observation, dated when the live detector raised them.
    /// </summary>
    public static StragglerAnalysis Analyse(IReadOnlyList<StepReport> rows, long? endMs, StragglerDetectorOptions options)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var order = new int[rows.Count];
        var keys = new long[rows.Count];
        var maxEnd = 0L;
        for (var i = 0; i < order.Length; i++)
        {
            order[i] = i;
            keys[i] = rows[i].EndMs;
            maxEnd = Math.Max(maxEnd, rows[i].EndMs);
        }

        // Stable sort by end time: equal times keep file order, so the result does not depend on the sort.
        Array.Sort(keys, order);
        SortTiesByIndex(keys, order);
        var end = endMs ?? maxEnd;
        var detector = new StragglerDetector(options);
        var findings = new List<StragglerFinding>();
        var flags = new List<StragglerFlagged>();
        var openHangs = new Dictionary<string, HangDetected>(StringComparer.Ordinal);
        var resolved = 0;
        var afterEnd = 0L;
        foreach (var i in order)
        {
            var row = rows[i];
            if (row.EndMs > end)
            {
                afterEnd++;
                continue;
            }

            detector.Observe(row, findings);
            Collect(findings, flags, openHangs, ref resolved);
        }

        detector.AdvanceTo(end, findings);
        Collect(findings, flags, openHangs, ref resolved);
        var jobs = detector.Jobs.OrderBy(j => j.Job, StringComparer.Ordinal).ToList();
        var hangs = openHangs.Values.OrderBy(h => h.Job, StringComparer.Ordinal).ToList();
        return new StragglerAnalysis(flags, hangs, jobs, detector.Counters, resolved, afterEnd);
    }

    private static void Collect(List<StragglerFinding> findings, List<StragglerFlagged> flags, Dictionary<string, HangDetected> hangs, ref int resolved)
    {
        foreach (var f in findings)
        {
            switch (f)
            {
                case StragglerFlagged s:
                    flags.Add(s);
                    break;
                case HangDetected h:
                    hangs[h.Job] = h;
                    break;
                case HangCleared h when hangs.Remove(h.Job):
                    resolved++;
                    break;
            }
        }

        findings.Clear();
    }

    private static void SortTiesByIndex(long[] keys, int[] order)
    {
        var start = 0;
        for (var i = 1; i <= keys.Length; i++)
        {
            if (i == keys.Length || keys[i] != keys[start])
            {
                if (i - start > 1)
                {
                    Array.Sort(order, start, i - start);
                }

                start = i;
            }
        }
    }
}

/// <summary>What <see cref="StragglerTool"/> found in a trace.</summary>
/// <param name="Stragglers">Every straggler flag, in the order raised (a rank flagged, cleared and flagged again appears twice).</param>
/// <param name="Hangs">Jobs hung at the end of the observation.</param>
/// <param name="Jobs">Per-job summary.</param>
/// <param name="Counters">Input accounting.</param>
/// <param name="ResolvedPauses">Hangs raised and then resolved by the job progressing again.</param>
/// <param name="RowsAfterEnd">Rows ignored because they ended after <c>--end-ms</c>.</param>
public sealed record StragglerAnalysis(
    IReadOnlyList<StragglerFlagged> Stragglers,
    IReadOnlyList<HangDetected> Hangs,
    IReadOnlyList<StragglerJobSummary> Jobs,
    StragglerCounters Counters,
    int ResolvedPauses,
    long RowsAfterEnd)
{
    /// <summary>The FORMATS.md section 2 output document.</summary>
    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartArray("stragglers");
            foreach (var s in Stragglers)
            {
                w.WriteStartObject();
                w.WriteString("job", s.Job);
                w.WriteNumber("rank", s.Rank);
                w.WriteString("node", s.Node);
                w.WriteNumber("gpu", s.Gpu);
                w.WriteNumber("first_flagged_step", s.FirstFlaggedStep);
                w.WriteNumber("score", Math.Round(s.Score, 4));
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteStartArray("hangs");
            foreach (var h in Hangs)
            {
                w.WriteStartObject();
                w.WriteString("job", h.Job);
                w.WriteNumber("last_step", h.LastStep);
                w.WriteNumber("detected_at_ms", h.AtMs);
                w.WriteStartArray("suspect_ranks");
                foreach (var r in h.SuspectRanks)
                {
                    w.WriteNumberValue(r);
                }

                w.WriteEndArray();
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteStartArray("jobs");
            foreach (var j in Jobs)
            {
                w.WriteStartObject();
                w.WriteString("job", j.Job);
                w.WriteNumber("ranks", j.Ranks);
                w.WriteNumber("steps", j.Steps);
                if (double.IsFinite(j.MedianStepMs))
                {
                    w.WriteNumber("median_step_ms", Math.Round(j.MedianStepMs, 1));
                }
                else
                {
                    w.WriteNull("median_step_ms");
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }
}
