using System.Globalization;
using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;

namespace FleetWatch.Controller.Stragglers.Live;

/// <summary>
/// Turns the straggler detector's findings into the incident manager's <see cref="Finding"/>s, so job-level problems land
/// on the node and GPU of the rank like hardware findings do (issue 5 item 5). Pure functions.
/// </summary>
public static class StragglerIncidentFindings
{
    /// <summary>Category of a straggler rank.</summary>
    public const string StragglerCategory = "straggler_rank";

    /// <summary>Category of a hung job.</summary>
    public const string HangCategory = "job_hang";

    /// <summary>
    /// Offered remediation for a straggler: take the rank's GPU out at the next checkpoint (section 5.2 severity ladder:
    /// "replace node at next checkpoint boundary"; an immediate restart would cost more than the slowdown).
    /// </summary>
    public const string StragglerAction = "evict_rank_at_checkpoint";

    /// <summary>Offered remediation for a hang: restore from the newest complete checkpoint (section 5.4).</summary>
    public const string HangAction = "restore_from_checkpoint";

    /// <summary>Rule of a rank's straggler condition; one per job and rank, so two jobs on one GPU stay apart.</summary>
    public static string StragglerRule(string job, int rank) => string.Create(CultureInfo.InvariantCulture, $"straggler:{job}:rank{rank}");

    /// <summary>Rule of a job's hang condition.</summary>
    public static string HangRule(string job) => $"job_hang:{job}";

    /// <summary>The finding of a flagged rank: warning, or high once it has persisted (<paramref name="escalated"/>).</summary>
    public static Finding Straggler(StragglerFlagged flagged, StragglerAttribution attribution, bool escalated, TimeSpan persisted, DateTimeOffset time, bool hurtsJob = false)
    {
        ArgumentNullException.ThrowIfNull(flagged);
        ArgumentNullException.ThrowIfNull(attribution);
        var slower = flagged.Score > 0 ? (1 / flagged.Score) - 1 : double.NaN;
        var message = string.Create(CultureInfo.InvariantCulture,
            $"job {flagged.Job} rank {flagged.Rank} (peer group {flagged.PeerGroup}) is {slower:P0} slower than its peers (score {flagged.Score:0.00}) since step {flagged.FirstFlaggedStep}; {attribution.Describe()}");
        if (escalated)
        {
            message += hurtsJob
                ? string.Create(CultureInfo.InvariantCulture, $"; holds the synchronous job back by about {slower:P0}")
                : string.Create(CultureInfo.InvariantCulture, $"; persisting for {persisted.TotalMinutes:0} min");
        }

        return new Finding(flagged.Node, flagged.Gpu, StragglerRule(flagged.Job, flagged.Rank), FindingKind.Condition, Active: true,
            escalated ? Severity.High : Severity.Warning, StragglerCategory, StragglerAction, message, time);
    }

    /// <summary>The straggler condition is clear (the rank recovered, the job restarted or ended); <paramref name="why"/> says which.</summary>
    public static Finding StragglerClear(string job, int rank, string node, int gpu, string why, DateTimeOffset time) =>
        new(node, gpu, StragglerRule(job, rank), FindingKind.Condition, Active: false, Severity.Warning, StragglerCategory, StragglerAction,
            string.Create(CultureInfo.InvariantCulture, $"job {job} rank {rank} is no longer a straggler: {why}"), time);

    /// <summary>
    /// The findings of a hung job: one critical condition per place in <paramref name="targets"/> (the suspect ranks' GPUs,
    /// or the job's first rank's node when no rank stopped first).
    /// </summary>
    public static List<Finding> Hang(HangDetected hang, IReadOnlyList<(string Node, int? Gpu)> targets, string? corroboration, DateTimeOffset time)
    {
        ArgumentNullException.ThrowIfNull(hang);
        ArgumentNullException.ThrowIfNull(targets);
        var silent = hang.AtMs - hang.LastProgressMs;
        var suspects = hang.SuspectRanks.Count == 0
            ? "every rank stopped at the same step (no suspect rank)"
            : $"suspect ranks {string.Join(", ", hang.SuspectRanks.Take(16))}{(hang.SuspectRanks.Count > 16 ? $" and {hang.SuspectRanks.Count - 16} more" : "")} (stopped before the others)";
        var message = string.Create(CultureInfo.InvariantCulture,
            $"job {hang.Job} hung: no step completed for {silent / 1000.0:0.0} s ({silent / hang.MedianStepMs:0.0} × its median step of {hang.MedianStepMs / 1000.0:0.00} s) after step {hang.LastStep}; {suspects}");
        if (corroboration is not null)
        {
            message += "; " + corroboration;
        }

        return targets.Select(t => new Finding(t.Node, t.Gpu, HangRule(hang.Job), FindingKind.Condition, Active: true, Severity.Critical,
            HangCategory, HangAction, message, time)).ToList();
    }

    /// <summary>The hang condition is clear on the places it was raised on; <paramref name="why"/> says why (progress again, or the job ended).</summary>
    public static List<Finding> HangClear(string job, string why, IReadOnlyList<(string Node, int? Gpu)> targets, DateTimeOffset time) =>
        targets.Select(t => new Finding(t.Node, t.Gpu, HangRule(job), FindingKind.Condition, Active: false, Severity.Critical, HangCategory,
            HangAction, $"job {job} is no longer hung: {why}", time)).ToList();

    /// <summary>
    /// The hang signature of a GPU (issue 5 item 4): busy at very low power, i.e. spinning in a collective that never
    /// completes. Null when the sample does not show it. Thresholds: ≥ 90 % utilisation at under 30 % of the power limit. [FW]
    /// </summary>
    public static string? SpinSignature(NodeSample? sample, int gpu)
    {
        var g = sample?.Gpus.FirstOrDefault(x => x.Index == gpu);
        if (g is { UtilizationPct: >= 90, PowerW: { } power, PowerLimitW: > 0 } && power < 0.3 * g.PowerLimitW.Value)
        {
            return string.Create(CultureInfo.InvariantCulture,
                $"{sample!.Node} GPU {gpu} at {g.UtilizationPct} % utilisation but {power:0} W of {g.PowerLimitW:0} W (spinning in a collective)");
        }

        return null;
    }
}
