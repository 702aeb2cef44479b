using System.Globalization;
using System.Text.Json;

namespace FleetWatch.Controller.Remediation;

/// <summary>
/// Which checkpoint a restore starts from: the newest one whose shards cover every rank of the job and that is not
/// marked bad (NVRx local checkpoints' <c>find_latest</c>: "max iteration whose holder set covers every rank";
/// research/straggler-restore-anchors.md sections 3.1 and 5.4 step 5). Pure function.
/// </summary>
public static class CheckpointSelector
{
    /// <param name="candidates">Known checkpoints (reported and scanned; several records of one step are merged by coverage).</param>
    /// <param name="ranks">The job's ranks; a checkpoint must cover all of them.</param>
    /// <param name="belowStep">Only steps strictly below this one (a fallback after the checkpoint at this step failed).</param>
    public static CheckpointRecord? Select(IEnumerable<CheckpointRecord> candidates, IReadOnlyCollection<int> ranks, long? belowStep = null)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(ranks);
        if (ranks.Count == 0)
        {
            return null;
        }

        foreach (var step in candidates.GroupBy(c => c.Step).OrderByDescending(g => g.Key))
        {
            if (belowStep is { } below && step.Key >= below)
            {
                continue;
            }

            // A bad mark on any record of the step wins: the step was restored and failed, whatever its source.
            if (step.Any(c => c.BadReason is not null))
            {
                continue;
            }

            var covered = step.SelectMany(c => c.RanksCovered).ToHashSet();
            if (ranks.All(covered.Contains))
            {
                return step.OrderBy(c => c.Source == "reported" ? 0 : 1).First();
            }
        }

        return null;
    }
}

/// <summary>What a checkpoint directory scan found.</summary>
/// <param name="Complete">Step directories with a completion marker and their shards.</param>
/// <param name="Incomplete">Step directories without a marker, or whose manifest names missing shards (a save in progress or interrupted).</param>
/// <param name="TrackerStep">The step a "latest" tracker file names, if any.</param>
/// <param name="TrackerLies">True when the tracker names a step that is not a complete directory (Megatron-LM#5281).</param>
public sealed record CheckpointScan(IReadOnlyList<CheckpointRecord> Complete, IReadOnlyList<long> Incomplete, long? TrackerStep, bool TrackerLies);

/// <summary>
/// Reads a job's checkpoint directory: <c>&lt;dir&gt;/step_&lt;n&gt;/</c> (or Megatron's <c>iter_&lt;n&gt;</c>) holding
/// shard files (<c>shard_&lt;rank&gt;.*</c> or <c>rank_&lt;rank&gt;.*</c>), an optional <c>manifest.json</c>
/// (<c>{"shards":[{"file":..., "ranks":[...]}], "checksum":...}</c>) and a completion marker file <c>COMPLETE</c>
/// written last (after an atomic rename, research section 5.4 step 5). A "latest" tracker file
/// (<c>latest</c>, <c>latest_checkpointed_iteration.txt</c>) is only read to report whether it lies: it is never trusted,
/// because an interrupted save can leave it pointing at a partial directory (NVIDIA/Megatron-LM#5281).
/// </summary>
public static class CheckpointDirectoryScanner
{
    public const string CompletionMarker = "COMPLETE";
    public const string ManifestFile = "manifest.json";
    private static readonly string[] TrackerFiles = ["latest", "latest_checkpointed_iteration.txt"];

    public static CheckpointScan Scan(string jobId, string directory, DateTimeOffset now)
    {
        var complete = new List<CheckpointRecord>();
        var incomplete = new List<long>();
        if (!Directory.Exists(directory))
        {
            return new CheckpointScan(complete, incomplete, null, false);
        }

        foreach (var dir in Directory.EnumerateDirectories(directory))
        {
            if (ParseStep(Path.GetFileName(dir)) is not { } step)
            {
                continue;
            }

            var record = ReadStep(jobId, step, dir, now);
            if (record is null)
            {
                incomplete.Add(step);
            }
            else
            {
                complete.Add(record);
            }
        }

        long? tracker = null;
        foreach (var name in TrackerFiles)
        {
            var path = Path.Combine(directory, name);
            if (File.Exists(path) && ParseStep(File.ReadAllText(path).Trim()) is { } t)
            {
                tracker = t;
                break;
            }
        }

        var lies = tracker is { } ts && !complete.Any(c => c.Step == ts);
        return new CheckpointScan(complete.OrderBy(c => c.Step).ToArray(), incomplete.Order().ToArray(), tracker, lies);
    }

    /// <summary>"step_120", "iter_0000120", "120" → 120.</summary>
    public static long? ParseStep(string name)
    {
        var digits = name.StartsWith("step_", StringComparison.Ordinal) ? name[5..]
            : name.StartsWith("iter_", StringComparison.Ordinal) ? name[5..]
            : name;
        return long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var step) ? step : null;
    }

    private static CheckpointRecord? ReadStep(string jobId, long step, string dir, DateTimeOffset now)
    {
        var marker = Path.Combine(dir, CompletionMarker);
        if (!File.Exists(marker))
        {
            return null;
        }

        var ranks = new SortedSet<int>();
        var shards = 0;
        string? checksum = null;
        var manifestPath = Path.Combine(dir, ManifestFile);
        if (File.Exists(manifestPath))
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(manifestPath));
                if (doc.RootElement.TryGetProperty("checksum", out var cs) && cs.ValueKind == JsonValueKind.String)
                {
                    checksum = cs.GetString();
                }

                foreach (var shard in doc.RootElement.GetProperty("shards").EnumerateArray())
                {
                    var file = shard.GetProperty("file").GetString() ?? "";
                    // A manifest naming a shard that is not there describes a save that did not finish.
                    if (file.Length == 0 || Path.GetFileName(file) != file || !File.Exists(Path.Combine(dir, file)))
                    {
                        return null;
                    }

                    shards++;
                    foreach (var r in shard.GetProperty("ranks").EnumerateArray())
                    {
                        ranks.Add(r.GetInt32());
                    }
                }
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                // An unreadable manifest is not a complete checkpoint, whatever the marker says.
                return null;
            }
        }
        else
        {
            foreach (var file in Directory.EnumerateFiles(dir))
            {
                var name = Path.GetFileNameWithoutExtension(file);
                var prefix = name.StartsWith("shard_", StringComparison.Ordinal) ? 6 : name.StartsWith("rank_", StringComparison.Ordinal) ? 5 : -1;
                if (prefix > 0 && int.TryParse(name.AsSpan(prefix), NumberStyles.None, CultureInfo.InvariantCulture, out var rank))
                {
                    ranks.Add(rank);
                    shards++;
                }
            }
        }

        var saved = new DateTimeOffset(File.GetLastWriteTimeUtc(marker), TimeSpan.Zero);
        return new CheckpointRecord(jobId, step, new Uri(Path.GetFullPath(dir)).AbsoluteUri, shards, ranks.ToArray(), checksum, "scan",
            saved > now ? now : saved);
    }
}
