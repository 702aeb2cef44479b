namespace FleetWatch.Controller.Stragglers;

/// <summary>
/// Online straggler and hang detector for synchronous training jobs (research/straggler-restore-anchors.md sections
/// 5.2–5.3). A pure, incremental engine: feed it step reports in arrival order (<see cref="Observe"/>) and tell it when
/// time has advanced (<see cref="AdvanceTo"/>); it appends findings to the list it is given. It reads no clock and does
/// no I/O, never looks ahead (a decision about step S uses only reports that arrived before the decision), and keeps
/// bounded state per job (ring buffers sized by the options and by the job's rank count).
/// Not thread-safe: one instance per partition of jobs, driven by one consumer.
/// </summary>
public sealed class StragglerDetector
{
    private readonly StragglerDetectorOptions _options;
    private readonly Dictionary<string, JobTracker> _jobs = new(StringComparer.Ordinal);
    private JobTracker? _lastJob;
    private long _nowMs = long.MinValue;

    /// <summary>Creates a detector; the options are validated here as well as at host start.</summary>
    public StragglerDetector(StragglerDetectorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var result = new StragglerDetectorOptionsValidator().Validate(null, options);
        if (result.Failed)
        {
            throw new ArgumentException(result.FailureMessage, nameof(options));
        }

        _options = options;
    }

    /// <summary>Input accounting: what was used, skipped and why.</summary>
    public StragglerCounters Counters { get; } = new();

    /// <summary>The latest time the detector has been told about.</summary>
    public long NowMs => _nowMs;

    /// <summary>Jobs seen so far, with their current summary.</summary>
    public IEnumerable<StragglerJobSummary> Jobs => _jobs.Values.Select(j => j.Summary());

    /// <summary>
    /// The earliest time at which a running job would be declared hung if nothing more arrives, or null when no job
    /// is armed. A live host schedules its next <see cref="AdvanceTo"/> for then.
    /// </summary>
    public long? NextHangDeadlineMs
    {
        get
        {
            long? min = null;
            foreach (var job in _jobs.Values)
            {
                var d = job.HangDeadlineMs;
                if (d is { } v && (min is null || v < min))
                {
                    min = v;
                }
            }

            return min;
        }
    }

    /// <summary>
    /// Takes one step report. The report's end time also advances the detector's clock (hang checks for every job run
    /// first). Malformed, duplicated and stale reports are counted and skipped.
    /// </summary>
    public void Observe(in StepReport report, List<StragglerFinding> findings)
    {
        ArgumentNullException.ThrowIfNull(findings);
        Counters.Reports++;
        if (!IsWellFormed(report))
        {
            Counters.Malformed++;
            return;
        }

        AdvanceTo(report.EndMs, findings);
        var job = _lastJob;
        if (job is null || !string.Equals(job.Name, report.Job, StringComparison.Ordinal))
        {
            if (!_jobs.TryGetValue(report.Job, out job))
            {
                job = new JobTracker(report.Job, _options, Counters);
                _jobs.Add(report.Job, job);
            }

            _lastJob = job;
        }

        job.Observe(report, findings);
    }

    /// <summary>
    /// Tells the detector that time has reached <paramref name="nowMs"/> with nothing else arriving: steps that ended
    /// long enough ago are analysed, and a job silent for longer than its hang timeout is reported hung, dated when the
    /// timeout expired.
    /// </summary>
    public void AdvanceTo(long nowMs, List<StragglerFinding> findings)
    {
        ArgumentNullException.ThrowIfNull(findings);
        if (nowMs <= _nowMs)
        {
            return;
        }

        _nowMs = nowMs;
        foreach (var job in _jobs.Values)
        {
            job.OnTime(nowMs, findings);
        }
    }

    /// <summary>
    /// Forgets a job that ended normally (so its silence is not a hang) and frees its state.
    /// </summary>
    public bool EndJob(string job)
    {
        if (_lastJob is not null && string.Equals(_lastJob.Name, job, StringComparison.Ordinal))
        {
            _lastJob = null;
        }

        return _jobs.Remove(job);
    }

    private bool IsWellFormed(in StepReport r) =>
        !string.IsNullOrEmpty(r.Job) && !string.IsNullOrEmpty(r.PeerGroup) && r.Node is not null
        && r.Rank >= 0 && r.Rank <= _options.MaxRank && r.Step >= 0 && r.EndMs >= 0
        && double.IsFinite(r.DurationMs) && r.DurationMs > 0;
}

/// <summary>Input accounting of a <see cref="StragglerDetector"/>.</summary>
public sealed class StragglerCounters
{
    /// <summary>Reports offered.</summary>
    public long Reports { get; internal set; }

    /// <summary>Reports with a missing field or an impossible value (negative rank or step, non-positive duration).</summary>
    public long Malformed { get; internal set; }

    /// <summary>A second report of the same rank and step.</summary>
    public long Duplicates { get; internal set; }

    /// <summary>Reports for a step that had already been analysed (late or duplicated after the fact).</summary>
    public long Stale { get; internal set; }

    /// <summary>Job restarts seen (the step number went back while time went on).</summary>
    public long Restarts { get; internal set; }

    /// <summary>Steps not scored because every rank was slow (checkpoint or other job-wide pause).</summary>
    public long PauseSteps { get; internal set; }
}

/// <summary>One job as the detector sees it.</summary>
/// <param name="Job">The job.</param>
/// <param name="Ranks">Distinct ranks seen.</param>
/// <param name="Steps">Distinct steps with at least one report (over all runs).</param>
/// <param name="MedianStepMs">Median wall-clock interval between consecutive step ends (recent history); NaN before any.</param>
/// <param name="LastStep">Highest step of the current run.</param>
/// <param name="Hung">Whether the job is currently reported hung.</param>
/// <param name="FlaggedRanks">Ranks currently flagged as stragglers.</param>
public sealed record StragglerJobSummary(
    string Job, int Ranks, long Steps, double MedianStepMs, long LastStep, bool Hung, int FlaggedRanks);
