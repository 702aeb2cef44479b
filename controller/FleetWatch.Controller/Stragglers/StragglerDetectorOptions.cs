using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Stragglers;

/// <summary>
/// Thresholds of the straggler and hang detector (<see cref="StragglerDetector"/>). Sources:
/// research/straggler-restore-anchors.md section 2 (NVRx, MegaScale, Falcon, What-if) and sections 5.2–5.3 (the
/// algorithm and its defaults); [FW] marks a FleetWatch choice made there or here, with the reason.
/// Counts are in training steps and times in multiples of the job's median step interval, because a
/// detector that reasons in seconds would be minutes late on a 30 s step and jumpy on a 300 ms one.
/// </summary>
public sealed class StragglerDetectorOptions
{
    /// <summary>Configuration section the controller binds.</summary>
    public const string SectionName = "FleetWatch:Stragglers";

    /// <summary>Steps ignored after a job (re)starts: NVRx <c>num_warmup_iterations</c> = 5 (section 5.2).</summary>
    public int WarmupSteps { get; set; } = 5;

    /// <summary>
    /// Scored steps per window. Section 5.2: a window covers at least 16 steps (NVRx calibrates its report interval on
    /// its first 16 steps). The 60–300 s report interval of NVRx is not used: it exists because NVRx's report
    /// synchronises the ranks, which an out-of-process detector does not do. [FW]
    /// </summary>
    public int WindowSteps { get; set; } = 16;

    /// <summary>
    /// Steps between two window verdicts. Half a window [FW]: verdicts come twice as often, so a slowdown is flagged
    /// sooner, while "≥ 2 of the last 3 verdicts" still rests on 24–32 distinct steps.
    /// </summary>
    public int WindowHopSteps { get; set; } = 8;

    /// <summary>A rank needs at least this many reported steps in a window to get a verdict; fewer is Unknown, never healthy.</summary>
    public int MinSamplesPerWindow { get; set; } = 8;

    /// <summary>Window verdicts looked back on for persistence: "flagged in ≥ 2 of the last 3 windows" (section 5.2, [FW]).</summary>
    public int PersistenceWindows { get; set; } = 3;

    /// <summary>Slow verdicts among the last <see cref="PersistenceWindows"/> needed to flag a rank (section 5.2).</summary>
    public int SlowWindowsToFlag { get; set; } = 2;

    /// <summary>Consecutive clean verdicts that clear a flagged rank (hysteresis so a flapping rank does not re-page). [FW]</summary>
    public int CleanWindowsToClear { get; set; } = 2;

    /// <summary>
    /// A window is slow when the rank's median time over its peer group's median is above 1 / this score.
    /// NVRx flags below 0.75 (≥ 1.33× slower, section 2.1); section 5.2 puts a "watch" band up to 0.90. Issue 5 asks for
    /// 10 % slowdowns (score 0.909) to be caught reliably, so the bar sits above that: 0.935 ≈ 7 % slower, which is
    /// still 3.5 standard errors above the noise of a 16-step median at a per-step noise of 5 % plus a 1 % static
    /// per-rank offset. [FW]
    /// </summary>
    public double RelativeThreshold { get; set; } = 0.935;

    /// <summary>
    /// A window is also slow when the rank is slower than its peers' median and its peer-normalised time has grown
    /// by more than 1 / this score over its own baseline (the individual score of section 5.2, reset on restart). [FW]
    /// </summary>
    public double IndividualThreshold { get; set; } = 0.935;

    /// <summary>Past clean window medians kept per rank; the individual baseline is their median (robust, unlike NVRx's running minimum). [FW]</summary>
    public int BaselineWindows { get; set; } = 6;

    /// <summary>Clean windows a rank needs before its individual score counts.</summary>
    public int MinBaselineWindows { get; set; } = 2;

    /// <summary>A peer group needs this many reports in a step for a reference; smaller groups give no score (NaN never flags, section 5.2).</summary>
    public int MinPeers { get; set; } = 4;

    /// <summary>
    /// A step whose job-wide median duration is at least this multiple of the job's typical step is a job-wide pause
    /// (checkpoint save, evaluation): every rank is slow, so the step is not scored. Checkpoint steps take 3–10× longer
    /// (bench-data/stragglers/README.md); 2× leaves room for drift and slow warm-up steps. [FW]
    /// </summary>
    public double PauseFactor { get; set; } = 2.0;

    /// <summary>
    /// A step is analysed once a report of a step this many steps later arrives; reports for an analysed step that come
    /// later are counted as stale and dropped. 1 suits time-ordered input; live ingest with batching may use 2–3.
    /// </summary>
    public int StepCloseLag { get; set; } = 1;

    /// <summary>
    /// A step is also analysed once time has passed its end by this many median step intervals, without waiting for a
    /// later step (all ranks of a synchronous step end within milliseconds of each other). [FW]
    /// </summary>
    public double CloseAfterMedianSteps { get; set; } = 0.5;

    /// <summary>
    /// A job is hung when no rank reported for this many median step intervals. Section 5.3: NVRx times a section out
    /// after 5 × its longest observed duration; "within a few multiples of its median step time" (issue 5).
    /// </summary>
    public double HangMedianSteps { get; set; } = 5.0;

    /// <summary>
    /// After the job has resumed from a longer pause (a checkpoint), the hang timeout grows to
    /// <see cref="HangPauseMargin"/> × that pause, but never beyond this many median step intervals, so a hang is still
    /// raised within a few step times. [FW]
    /// </summary>
    public double HangMaxMedianSteps { get; set; } = 7.0;

    /// <summary>Margin over the longest pause the job resumed from. [FW]</summary>
    public double HangPauseMargin { get; set; } = 1.2;

    /// <summary>Step intervals needed before hang detection arms ("infinite until calibrated", section 5.3).</summary>
    public int MinIntervalsForHang { get; set; } = 3;

    /// <summary>Recent step intervals kept per job for its median step time (bounded state).</summary>
    public int IntervalHistory { get; set; } = 128;

    /// <summary>Largest rank accepted; a larger rank is malformed input (bounds the per-job arrays).</summary>
    public int MaxRank { get; set; } = 1 << 20;
}

/// <summary>Validates <see cref="StragglerDetectorOptions"/> at start; every failure names the key and the value.</summary>
public sealed class StragglerDetectorOptionsValidator : IValidateOptions<StragglerDetectorOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, StragglerDetectorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        void Require(bool ok, string key, object value, string rule)
        {
            if (!ok)
            {
                failures.Add($"{StragglerDetectorOptions.SectionName}:{key} = {value}: {rule}");
            }
        }

        Require(options.WarmupSteps >= 0, nameof(options.WarmupSteps), options.WarmupSteps, "must be ≥ 0");
        Require(options.WindowSteps is >= 4 and <= 256, nameof(options.WindowSteps), options.WindowSteps, "must be in [4, 256]");
        Require(options.WindowHopSteps >= 1 && options.WindowHopSteps <= options.WindowSteps,
            nameof(options.WindowHopSteps), options.WindowHopSteps, "must be in [1, WindowSteps]");
        Require(options.MinSamplesPerWindow >= 1 && options.MinSamplesPerWindow <= options.WindowSteps,
            nameof(options.MinSamplesPerWindow), options.MinSamplesPerWindow, "must be in [1, WindowSteps]");
        Require(options.PersistenceWindows is >= 1 and <= 16, nameof(options.PersistenceWindows), options.PersistenceWindows, "must be in [1, 16]");
        Require(options.SlowWindowsToFlag >= 1 && options.SlowWindowsToFlag <= options.PersistenceWindows,
            nameof(options.SlowWindowsToFlag), options.SlowWindowsToFlag, "must be in [1, PersistenceWindows]");
        Require(options.CleanWindowsToClear >= 1 && options.CleanWindowsToClear <= options.PersistenceWindows,
            nameof(options.CleanWindowsToClear), options.CleanWindowsToClear, "must be in [1, PersistenceWindows]");
        Require(options.RelativeThreshold is > 0 and < 1, nameof(options.RelativeThreshold), options.RelativeThreshold, "must be in (0, 1)");
        Require(options.IndividualThreshold is > 0 and < 1, nameof(options.IndividualThreshold), options.IndividualThreshold, "must be in (0, 1)");
        Require(options.BaselineWindows is >= 1 and <= 64, nameof(options.BaselineWindows), options.BaselineWindows, "must be in [1, 64]");
        Require(options.MinBaselineWindows >= 1 && options.MinBaselineWindows <= options.BaselineWindows,
            nameof(options.MinBaselineWindows), options.MinBaselineWindows, "must be in [1, BaselineWindows]");
        Require(options.MinPeers >= 2, nameof(options.MinPeers), options.MinPeers, "must be ≥ 2");
        Require(options.PauseFactor > 1, nameof(options.PauseFactor), options.PauseFactor, "must be > 1");
        Require(options.StepCloseLag is >= 1 and <= 16, nameof(options.StepCloseLag), options.StepCloseLag, "must be in [1, 16]");
        Require(options.CloseAfterMedianSteps is > 0 and <= 16, nameof(options.CloseAfterMedianSteps), options.CloseAfterMedianSteps,
            "must be in (0, 16]");
        Require(options.HangMedianSteps > 1, nameof(options.HangMedianSteps), options.HangMedianSteps, "must be > 1");
        Require(options.HangMaxMedianSteps >= options.HangMedianSteps, nameof(options.HangMaxMedianSteps), options.HangMaxMedianSteps,
            "must be ≥ HangMedianSteps");
        Require(options.HangPauseMargin >= 1, nameof(options.HangPauseMargin), options.HangPauseMargin, "must be ≥ 1");
        Require(options.MinIntervalsForHang >= 1 && options.MinIntervalsForHang <= options.IntervalHistory,
            nameof(options.MinIntervalsForHang), options.MinIntervalsForHang, "must be in [1, IntervalHistory]");
        Require(options.IntervalHistory is >= 1 and <= 4096, nameof(options.IntervalHistory), options.IntervalHistory, "must be in [1, 4096]");
        Require(options.MaxRank is >= 1 and <= 1 << 24, nameof(options.MaxRank), options.MaxRank, "must be in [1, 16777216]");
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
