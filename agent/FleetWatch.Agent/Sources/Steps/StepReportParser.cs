using System.Text.Json;
using FleetWatch.Contracts;

namespace FleetWatch.Agent.Sources.Steps;

/// <summary>
/// Parses the body a training rank posts to the step endpoint: one JSON object, or a JSON array of them (a reporter that
/// fell behind sends what it queued in one request). Field names are snake_case, as a Python client writes them:
/// <code>
/// {"job": "llama-70b", "rank": 17, "step": 230, "duration_ms": 1510.2, "gpu": 1, "peer_group": "pp3",
///  "end_unix_ms": 1764417600123.5, "sections": {"fwd": 500.1, "bwd": 910.0}, "gpu_uuid": "GPU-..."}
/// </code>
/// <c>job</c>, <c>rank</c>, <c>step</c>, <c>duration_ms</c> and <c>gpu</c> are required; <c>final</c> (true on a rank's last
/// report, when training ended normally) defaults to false; <c>peer_group</c> defaults to
/// <see cref="DefaultPeerGroup"/> (every rank does the same work, plain data parallelism), <c>end_unix_ms</c> to the time the
/// agent received the request. Unknown fields are ignored, so newer reporters work with older agents. A request is
/// accepted whole or refused whole, with the first bad field named (<c>[3].rank: ...</c>). A pure function: no clock, no I/O.
/// </summary>
public static class StepReportParser
{
    /// <summary>Peer group of a report that names none.</summary>
    public const string DefaultPeerGroup = "all";

    /// <summary>Largest rank accepted (the controller's detector bound, <c>StragglerDetectorOptions.MaxRank</c> at its maximum).</summary>
    public const int MaxRank = 1 << 24;

    /// <summary>Largest GPU index accepted: NVML enumerates at most a few dozen devices per node.</summary>
    public const int MaxGpu = 255;

    /// <summary>Longest step accepted: one day. A larger duration is a unit mistake (microseconds sent as ms), not a step.</summary>
    public const double MaxDurationMs = 86_400_000;

    /// <summary>Sections per report; more is a misuse (per-kernel names) that would bloat every message.</summary>
    public const int MaxSections = 64;

    /// <summary>Longest job, peer-group or section name.</summary>
    public const int MaxNameLength = 256;

    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 8 };

    /// <summary>
    /// Parses <paramref name="body"/>. On success <paramref name="reports"/> holds every report and the result is null; otherwise
    /// the result is the reason, naming the field.
    /// </summary>
    public static string? TryParse(ReadOnlyMemory<byte> body, string node, DateTimeOffset receivedAt, int maxReports, out List<StepTimings> reports)
    {
        reports = [];
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body, DocumentOptions);
        }
        catch (JsonException ex)
        {
            return $"body: not JSON ({ex.Message})";
        }

        using (document)
        {
            try
            {
                return ParseRoot(document.RootElement, node, receivedAt, maxReports, reports);
            }
            catch (InvalidOperationException ex)
            {
                // JsonDocument checks UTF-8 inside strings only when they are read (a DecoderFallbackException inside).
                reports.Clear();
                return $"body: not valid UTF-8 JSON ({ex.Message})";
            }
        }
    }

    private static string? ParseRoot(JsonElement root, string node, DateTimeOffset receivedAt, int maxReports, List<StepTimings> reports)
    {
        switch (root.ValueKind)
        {
            case JsonValueKind.Object:
                return ParseOne(root, "", node, receivedAt, reports);
            case JsonValueKind.Array:
                var count = root.GetArrayLength();
                if (count == 0)
                {
                    return "body: empty array";
                }

                if (count > maxReports)
                {
                    return $"body: {count} reports in one request, at most {maxReports}";
                }

                var i = 0;
                foreach (var item in root.EnumerateArray())
                {
                    var error = item.ValueKind == JsonValueKind.Object
                        ? ParseOne(item, $"[{i}].", node, receivedAt, reports)
                        : $"[{i}]: must be an object";
                    if (error is not null)
                    {
                        reports.Clear();
                        return error;
                    }

                    i++;
                }

                return null;
            default:
                return "body: must be a JSON object or an array of objects";
        }
    }

    private static string? ParseOne(JsonElement e, string at, string node, DateTimeOffset receivedAt, List<StepTimings> reports)
    {
        if (RequiredName(e, "job", at, out var job) is { } jobError)
        {
            return jobError;
        }

        if (Integer(e, "rank", at, 0, MaxRank, required: true, out var rank) is { } rankError)
        {
            return rankError;
        }

        if (Integer(e, "step", at, 0, long.MaxValue, required: true, out var step) is { } stepError)
        {
            return stepError;
        }

        if (Integer(e, "gpu", at, 0, MaxGpu, required: true, out var gpu) is { } gpuError)
        {
            return gpuError;
        }

        if (!e.TryGetProperty("duration_ms", out var d) || d.ValueKind != JsonValueKind.Number
            || !d.TryGetDouble(out var duration) || !double.IsFinite(duration) || duration <= 0 || duration > MaxDurationMs)
        {
            return $"{at}duration_ms: required number in (0, {MaxDurationMs}]";
        }

        var peerGroup = DefaultPeerGroup;
        if (e.TryGetProperty("peer_group", out var pg) && pg.ValueKind != JsonValueKind.Null)
        {
            if (pg.ValueKind != JsonValueKind.String || pg.GetString() is not { Length: > 0 and <= MaxNameLength } p)
            {
                return $"{at}peer_group: must be a non-empty string of at most {MaxNameLength} characters";
            }

            peerGroup = p;
        }

        var end = receivedAt;
        if (e.TryGetProperty("end_unix_ms", out var t) && t.ValueKind != JsonValueKind.Null)
        {
            // Up to year 9999 (DateTimeOffset's range); a second-resolution value sent by mistake is still "valid" and
            // shows up as a step in 1970, which the controller treats as stale.
            if (t.ValueKind != JsonValueKind.Number || !t.TryGetDouble(out var ms) || !double.IsFinite(ms) || ms <= 0 || ms > 253_402_300_799_000)
            {
                return $"{at}end_unix_ms: must be a positive number of milliseconds since 1970-01-01 UTC";
            }

            end = DateTimeOffset.FromUnixTimeMilliseconds(0).AddTicks((long)(ms * TimeSpan.TicksPerMillisecond));
        }

        string? uuid = null;
        if (e.TryGetProperty("gpu_uuid", out var u) && u.ValueKind != JsonValueKind.Null)
        {
            if (u.ValueKind != JsonValueKind.String || u.GetString() is not { Length: > 0 and <= MaxNameLength } s)
            {
                return $"{at}gpu_uuid: must be a non-empty string";
            }

            uuid = s;
        }

        IReadOnlyDictionary<string, double> sections = new Dictionary<string, double>();
        if (e.TryGetProperty("sections", out var sec) && sec.ValueKind != JsonValueKind.Null)
        {
            if (ParseSections(sec, at, out var parsed) is { } sectionError)
            {
                return sectionError;
            }

            sections = parsed;
        }

        var final = false;
        if (e.TryGetProperty("final", out var fin) && fin.ValueKind != JsonValueKind.Null)
        {
            if (fin.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
            {
                return $"{at}final: must be true or false";
            }

            final = fin.GetBoolean();
        }

        reports.Add(new StepTimings
        {
            Job = job,
            Rank = (int)rank,
            Node = node,
            Gpu = (int)gpu,
            GpuUuid = uuid,
            Step = step,
            PeerGroup = peerGroup,
            SectionsMs = sections,
            DurationMs = duration,
            EndTime = end,
            Final = final,
        });
        return null;
    }

    private static string? ParseSections(JsonElement sec, string at, out Dictionary<string, double> sections)
    {
        sections = new Dictionary<string, double>(StringComparer.Ordinal);
        if (sec.ValueKind != JsonValueKind.Object)
        {
            return $"{at}sections: must be an object of name to milliseconds";
        }

        foreach (var p in sec.EnumerateObject())
        {
            if (sections.Count == MaxSections)
            {
                return $"{at}sections: at most {MaxSections} sections";
            }

            if (p.Name.Length is 0 or > MaxNameLength)
            {
                return $"{at}sections: a section name must have 1 to {MaxNameLength} characters";
            }

            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetDouble(out var ms) || !double.IsFinite(ms) || ms < 0 || ms > MaxDurationMs)
            {
                return $"{at}sections.{p.Name}: must be a number in [0, {MaxDurationMs}]";
            }

            sections[p.Name] = ms;
        }

        return null;
    }

    private static string? RequiredName(JsonElement e, string field, string at, out string value)
    {
        value = "";
        if (!e.TryGetProperty(field, out var v) || v.ValueKind != JsonValueKind.String || v.GetString() is not { Length: > 0 and <= MaxNameLength } s)
        {
            return $"{at}{field}: required non-empty string of at most {MaxNameLength} characters";
        }

        value = s;
        return null;
    }

    private static string? Integer(JsonElement e, string field, string at, long min, long max, bool required, out long value)
    {
        value = 0;
        if (!e.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return required ? $"{at}{field}: required integer in [{min}, {max}]" : null;
        }

        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out value) || value < min || value > max)
        {
            return $"{at}{field}: must be an integer in [{min}, {max}]";
        }

        return null;
    }
}
