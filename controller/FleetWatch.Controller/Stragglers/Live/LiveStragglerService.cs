using System.Diagnostics.Metrics;
using System.Threading.Channels;
using FleetWatch.Contracts;
using FleetWatch.Controller.Api;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Fleet;
using FleetWatch.Controller.Incidents;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Stragglers.Live;

/// <summary>
/// The live straggler and hang detection of the controller. The step-timing consumers hand batches to a bounded channel;
/// one background loop owns the <see cref="StragglerDetector"/> (which is not thread-safe) and is the only code that
/// touches it. A periodic tick driven by <see cref="TimeProvider"/> advances time: reports are held for
/// <see cref="LiveStragglerOptions.IngestLag"/> and fed in end-time order (the detector is built for a time-ordered
/// stream; agents batch and the broker reorders), steps are closed, silent jobs are reported hung, long stragglers are
/// escalated. A job whose every rank sent its final report (<see cref="StepTimings.Final"/>) has ended: it is dropped from
/// the detector and its conditions clear, so a finished job is never reported hung. Findings are attributed to a cause from the node's telemetry in <see cref="FleetState"/>
/// (<see cref="StragglerAttributor"/>) and handed to the <see cref="IncidentManager"/> on the rank's node and GPU.
/// A failure while handling one item is logged and counted and the loop goes on (STYLE.md rule 7).
/// </summary>
public sealed partial class LiveStragglerService(
    StragglerDetector detector,
    IncidentManager incidents,
    IncidentNotifier notifier,
    FleetState fleet,
    IOptions<LiveStragglerOptions> options,
    TimeProvider time,
    IMeterFactory meters,
    ILogger<LiveStragglerService> logger,
    StragglerHeatmap? heatmap = null) : BackgroundService
{
    /// <summary>Reports dated further than this ahead of the controller's clock are refused: fed to the detector they would
    /// move its clock forward and declare every other job hung. NTP keeps nodes within milliseconds; 5 min is a broken clock. [FW]</summary>
    public static readonly TimeSpan MaxClockSkew = TimeSpan.FromMinutes(5);

    private readonly Channel<Work> _queue = Channel.CreateBounded<Work>(new BoundedChannelOptions(options.Value.QueueCapacity)
    {
        FullMode = BoundedChannelFullMode.Wait,
        SingleReader = true,
    });

    // Everything below is owned by the loop (single thread of control at a time).
    private readonly PriorityQueue<HeldReport, long> _held = new();
    private readonly Dictionary<string, HashSet<int>> _finals = new(StringComparer.Ordinal);
    private readonly List<Finding> _pending = [];
    private readonly Dictionary<string, Dictionary<int, (string Node, int Gpu)>> _places = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Job, int Rank), FlaggedRank> _flagged = [];
    private readonly Dictionary<string, List<(string Node, int? Gpu)>> _hangTargets = new(StringComparer.Ordinal);
    private readonly Dictionary<string, NodeSample?[]> _snapshots = new(StringComparer.Ordinal);
    private readonly List<StragglerFinding> _raw = [];
    private readonly Dictionary<string, long> _lastReportMs = new(StringComparer.Ordinal);
    private Dictionary<int, (string Node, int Gpu)>? _lastPlaces; // cache: consecutive reports are mostly of one job
    private string? _lastPlacesJob;
    private long _watermarkMs = long.MinValue;
    private DateTimeOffset _nextRotation = DateTimeOffset.MinValue;

    private long _received;
    private long _late;
    private long _future;
    private long _loopErrors;

    /// <summary>Step reports handed to the service.</summary>
    public long ReportsReceived => Interlocked.Read(ref _received);

    /// <summary>Reports that arrived after their time had been released to the detector (fed at once; the detector may count them stale).</summary>
    public long LateReports => Interlocked.Read(ref _late);

    /// <summary>Reports dated more than <see cref="MaxClockSkew"/> ahead, refused.</summary>
    public long FutureReports => Interlocked.Read(ref _future);

    /// <summary>Items whose handling failed (logged; the loop went on).</summary>
    public long LoopErrors => Interlocked.Read(ref _loopErrors);

    /// <summary>Queues reports for the detector; waits when the queue is full (back-pressure to the broker).</summary>
    public async ValueTask EnqueueAsync(IReadOnlyList<StepTimings> steps, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(steps);
        await _queue.Writer.WriteAsync(new Work(steps, null), cancellationToken).ConfigureAwait(false);
        Interlocked.Add(ref _received, steps.Count);
    }

    /// <summary>
    /// Handles everything queued before the call, then runs one tick at the current time; completes when done. The periodic
    /// tick does the same; tests call this to step deterministically.
    /// </summary>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await _queue.Writer.WriteAsync(new Work(null, done), cancellationToken).ConfigureAwait(false);
        await done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        RegisterInstruments();
        var ticker = TickLoopAsync(stoppingToken);
        try
        {
            await foreach (var work in _queue.Reader.ReadAllAsync(stoppingToken).ConfigureAwait(false))
            {
                try
                {
                    if (work.Steps is { } steps)
                    {
                        Ingest(steps);
                    }
                    else
                    {
                        await TickAsync(stoppingToken).ConfigureAwait(false);
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
                {
                    Interlocked.Increment(ref _loopErrors);
                    LogLoopFailed(logger, ex);
                }
                finally
                {
                    work.Done?.TrySetResult();
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }

        await ticker.ConfigureAwait(false);
    }

    /// <summary>
    /// Exports the counters on the controller's meter. The detector's counters are plain fields written by the loop: a
    /// 64-bit read does not tear, and a value one batch old is fine for a metric.
    /// </summary>
    private void RegisterInstruments()
    {
        var meter = meters.Create("FleetWatch.Controller");
        var c = detector.Counters;
        meter.CreateObservableCounter("fleetwatch_steps_received_total", () => ReportsReceived, description: "Step reports received from agents");
        meter.CreateObservableCounter("fleetwatch_steps_late_total", () => LateReports, description: "Step reports later than the ingest lag");
        meter.CreateObservableCounter("fleetwatch_steps_future_total", () => FutureReports, description: "Step reports dated too far ahead, refused");
        meter.CreateObservableCounter("fleetwatch_steps_loop_errors_total", () => LoopErrors, description: "Straggler loop items that failed");
        meter.CreateObservableCounter("fleetwatch_steps_malformed_total", () => c.Malformed, description: "Step reports with a missing or impossible field");
        meter.CreateObservableCounter("fleetwatch_steps_duplicate_total", () => c.Duplicates, description: "Step reports seen twice");
        meter.CreateObservableCounter("fleetwatch_steps_stale_total", () => c.Stale, description: "Step reports for a step already analysed");
    }

    private async Task TickLoopAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.Tick, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                // A tick is worthless behind a full queue (the batches ahead of it advance nothing by themselves, but the
                // next tick will): skip rather than wait.
                _queue.Writer.TryWrite(new Work(null, null));
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    private void Ingest(IReadOnlyList<StepTimings> steps)
    {
        var futureLimit = (time.GetUtcNow() + MaxClockSkew).ToUnixTimeMilliseconds();
        foreach (var s in steps)
        {
            if (s is null)
            {
                continue;
            }

            var report = new StepReport(s.Job, s.Rank, s.Node, s.Gpu, s.PeerGroup, s.Step, s.EndTime.ToUnixTimeMilliseconds(), s.DurationMs);
            if (report.EndMs > futureLimit)
            {
                Interlocked.Increment(ref _future);
                continue;
            }

            if (s.Job is { Length: > 0 } && s.Node is { Length: > 0 } && s.Rank >= 0)
            {
                NotePlace(s.Job, s.Rank, s.Node, s.Gpu);
            }

            if (!s.Final)
            {
                heatmap?.Observe(s.Job, s.Rank, s.Node, s.Gpu, s.EndTime, s.DurationMs); // the jobs view's rank × time matrix
            }

            var held = new HeldReport(report, s.Final);
            if (report.EndMs <= _watermarkMs)
            {
                // Later than the ingest lag: feed it now; findings wait for the next tick.
                Interlocked.Increment(ref _late);
                Release(held);
            }
            else
            {
                // A final report repeats the rank's last step: it goes after every report that ended at the same time.
                _held.Enqueue(held, s.Final ? report.EndMs + 1 : report.EndMs);
            }
        }
    }

    private async Task TickAsync(CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var o = options.Value;
        var watermark = (now - o.IngestLag).ToUnixTimeMilliseconds();
        if (watermark > _watermarkMs)
        {
            _watermarkMs = watermark;
        }

        while (_held.TryPeek(out _, out var end) && end <= _watermarkMs)
        {
            Release(_held.Dequeue());
        }

        detector.AdvanceTo(_watermarkMs, _raw);
        ForgetSilentJobs(now);
        if (now >= _nextRotation)
        {
            RotateSnapshots();
            _nextRotation = now + o.AttributionWindow;
        }

        var findings = Translate(_raw, now);
        _raw.Clear();
        findings.AddRange(_pending);
        _pending.Clear();
        Escalate(now, findings);
        heatmap?.Publish(JobStates());
        if (findings.Count == 0)
        {
            return;
        }

        var changes = incidents.Apply(findings, now);
        if (changes.Count > 0)
        {
            await notifier.NotifyAsync(changes, ct).ConfigureAwait(false);
        }
    }

    private List<Finding> Translate(List<StragglerFinding> raw, DateTimeOffset now)
    {
        var findings = new List<Finding>();
        foreach (var f in raw)
        {
            var at = DateTimeOffset.FromUnixTimeMilliseconds(f.AtMs);
            switch (f)
            {
                case StragglerFlagged s:
                    var latest = fleet.Latest(s.Node);
                    var attribution = StragglerAttributor.Attribute(latest, Baseline(s.Node, latest), s.Gpu, options.Value.Attribution);
                    _flagged[(s.Job, s.Rank)] = new FlaggedRank(s, attribution, now);
                    LogStraggler(logger, s.Job, s.Rank, s.Node, s.Gpu, s.Score, attribution.Label);
                    findings.Add(StragglerIncidentFindings.Straggler(s, attribution, escalated: false, TimeSpan.Zero, at));
                    break;
                case StragglerCleared c when _flagged.Remove((c.Job, c.Rank), out var was):
                    var why = c.Reason == StragglerClearReason.Recovered ? $"kept pace again at step {c.Step}" : "the job restarted";
                    findings.Add(StragglerIncidentFindings.StragglerClear(c.Job, c.Rank, was.Flag.Node, was.Flag.Gpu, why, at));
                    break;
                case HangDetected h:
                    var targets = HangTargets(h);
                    _hangTargets[h.Job] = targets;
                    LogHang(logger, h.Job, h.LastStep, h.SuspectRanks.Count);
                    findings.AddRange(StragglerIncidentFindings.Hang(h, targets, SpinCorroboration(h), at));
                    break;
                case HangCleared hc when _hangTargets.Remove(hc.Job, out var raisedOn):
                    findings.AddRange(StragglerIncidentFindings.HangClear(hc.Job, $"progress at step {hc.Step}", raisedOn, at));
                    break;
            }
        }

        return findings;
    }

    private void Release(in HeldReport held)
    {
        _lastReportMs[held.Report.Job] = Math.Max(_lastReportMs.GetValueOrDefault(held.Report.Job), held.Report.EndMs);
        if (!held.Final)
        {
            detector.Observe(held.Report, _raw);
            return;
        }

        // The rank finished. The job has ended when every rank seen has finished.
        var job = held.Report.Job;
        if (!_places.TryGetValue(job, out var places))
        {
            return;
        }

        if (!_finals.TryGetValue(job, out var finished))
        {
            finished = [];
            _finals[job] = finished;
        }

        finished.Add(held.Report.Rank);
        if (finished.Count < places.Count)
        {
            return;
        }

        Forget(job, "the job ended", DateTimeOffset.FromUnixTimeMilliseconds(held.Report.EndMs), clearHang: true);
        LogJobEnded(logger, job, places.Count);
    }

    /// <summary>Drops a job's state; its straggler conditions clear, and its hang too unless <paramref name="clearHang"/> is false.</summary>
    private void Forget(string job, string why, DateTimeOffset at, bool clearHang)
    {
        detector.EndJob(job);
        foreach (var key in _flagged.Keys.Where(k => k.Job == job).ToList())
        {
            var flag = _flagged[key].Flag;
            _flagged.Remove(key);
            _pending.Add(StragglerIncidentFindings.StragglerClear(job, key.Rank, flag.Node, flag.Gpu, why, at));
        }

        if (_hangTargets.Remove(job, out var raisedOn) && clearHang)
        {
            _pending.AddRange(StragglerIncidentFindings.HangClear(job, why, raisedOn, at));
        }

        _places.Remove(job);
        _finals.Remove(job);
        _lastReportMs.Remove(job);
        _lastPlaces = null;
    }

    /// <summary>Jobs silent for <see cref="LiveStragglerOptions.ForgetJobAfter"/>: bounded state; a raised hang stays for an operator.</summary>
    private void ForgetSilentJobs(DateTimeOffset now)
    {
        var limit = (long)options.Value.ForgetJobAfter.TotalMilliseconds;
        foreach (var (job, last) in _lastReportMs.Where(kv => _watermarkMs - kv.Value >= limit).ToList())
        {
            Forget(job, "the job stopped reporting and was forgotten", now, clearHang: false);
            LogJobForgotten(logger, job, options.Value.ForgetJobAfter);
        }
    }

    private void Escalate(DateTimeOffset now, List<Finding> findings)
    {
        var after = options.Value.EscalateAfter;
        foreach (var rank in _flagged.Values)
        {
            var hurtsJob = rank.Flag.Score <= options.Value.EscalateBelowScore;
            if (!rank.Escalated && (now - rank.Since >= after || hurtsJob))
            {
                rank.Escalated = true;
                findings.Add(StragglerIncidentFindings.Straggler(rank.Flag, rank.Attribution, escalated: true, now - rank.Since, now, hurtsJob: now - rank.Since < after));
            }
        }
    }

    /// <summary>What the detector holds per job, for the jobs view (read by the API from another thread: a fresh copy each tick).</summary>
    private Dictionary<string, LiveJobState> JobStates()
    {
        var states = new Dictionary<string, LiveJobState>(StringComparer.Ordinal);
        foreach (var j in detector.Jobs)
        {
            var flagged = _flagged.Where(kv => kv.Key.Job == j.Job)
                .Select(kv => new FlaggedRankView(kv.Key.Rank, kv.Value.Flag.Node, kv.Value.Flag.Gpu, kv.Value.Flag.Score, kv.Value.Flag.FirstFlaggedStep,
                    kv.Value.Attribution.Label, kv.Value.Attribution.Evidence, kv.Value.Since, kv.Value.Escalated))
                .OrderBy(f => f.Score).ToList();
            var targets = _hangTargets.TryGetValue(j.Job, out var t) ? t.Select(x => x.Gpu is { } g ? $"{x.Node}/{g}" : x.Node).ToList() : [];
            states[j.Job] = new LiveJobState(j.Job, j.Ranks, j.LastStep, double.IsNaN(j.MedianStepMs) ? null : j.MedianStepMs, j.Hung, flagged, targets);
        }

        return states;
    }

    /// <summary>Where a hang is reported: the suspects' GPUs, or the node of the job's lowest rank when every rank stopped together.</summary>
    private List<(string Node, int? Gpu)> HangTargets(HangDetected h)
    {
        var targets = new List<(string Node, int? Gpu)>();
        if (!_places.TryGetValue(h.Job, out var places) || places.Count == 0)
        {
            return targets;
        }

        foreach (var rank in h.SuspectRanks)
        {
            if (places.TryGetValue(rank, out var p) && !targets.Contains((p.Node, p.Gpu)))
            {
                targets.Add((p.Node, p.Gpu));
                if (targets.Count == options.Value.MaxHangTargets)
                {
                    break;
                }
            }
        }

        if (targets.Count == 0)
        {
            // Rank 0 usually hosts the job's coordinator (the torch.distributed store): its node is where an operator looks first.
            targets.Add((places.MinBy(kv => kv.Key).Value.Node, null));
        }

        return targets;
    }

    private string? SpinCorroboration(HangDetected h)
    {
        if (!_places.TryGetValue(h.Job, out var places))
        {
            return null;
        }

        IEnumerable<int> ranks = h.SuspectRanks.Count > 0 ? h.SuspectRanks : places.Keys;
        foreach (var rank in ranks.Take(256))
        {
            if (places.TryGetValue(rank, out var p) && StragglerIncidentFindings.SpinSignature(fleet.Latest(p.Node), p.Gpu) is { } signature)
            {
                return signature;
            }
        }

        return null;
    }

    private void NotePlace(string job, int rank, string node, int gpu)
    {
        if (_lastPlaces is null || !string.Equals(_lastPlacesJob, job, StringComparison.Ordinal))
        {
            if (!_places.TryGetValue(job, out _lastPlaces))
            {
                _lastPlaces = [];
                _places[job] = _lastPlaces;
            }

            _lastPlacesJob = job;
        }

        // The common case, a rank reporting from where it was: one lookup, no writes.
        if (_lastPlaces.TryGetValue(rank, out var known) && known.Gpu == gpu && string.Equals(known.Node, node, StringComparison.Ordinal))
        {
            return;
        }

        _lastPlaces[rank] = (node, gpu);
        if (!_snapshots.ContainsKey(node))
        {
            _snapshots[node] = new NodeSample?[2];
        }
    }

    /// <summary>Keeps, per node that runs ranks, the samples seen at the last two rotations: the baselines for error deltas.</summary>
    private void RotateSnapshots()
    {
        foreach (var (node, slots) in _snapshots)
        {
            slots[0] = slots[1];
            slots[1] = fleet.Latest(node);
        }
    }

    /// <summary>The older snapshot when it predates <paramref name="latest"/>, else the newer one: a delta over one to two windows.</summary>
    private NodeSample? Baseline(string node, NodeSample? latest)
    {
        if (latest is null || !_snapshots.TryGetValue(node, out var slots))
        {
            return null;
        }

        return slots.FirstOrDefault(s => s is not null && s.Time < latest.Time);
    }

    [LoggerMessage(EventId = 520, Level = LogLevel.Warning, Message = "Straggler: job {Job} rank {Rank} on {Node} GPU {Gpu}, score {Score:0.00}, cause {Cause}")]
    private static partial void LogStraggler(ILogger logger, string job, int rank, string node, int gpu, double score, string cause);

    [LoggerMessage(EventId = 521, Level = LogLevel.Error, Message = "Job {Job} hung after step {Step} ({Suspects} suspect ranks)")]
    private static partial void LogHang(ILogger logger, string job, long step, int suspects);

    [LoggerMessage(EventId = 522, Level = LogLevel.Error, Message = "Straggler loop: handling an item failed")]
    private static partial void LogLoopFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 523, Level = LogLevel.Information, Message = "Job {Job} ended: all {Ranks} ranks sent their final report")]
    private static partial void LogJobEnded(ILogger logger, string job, int ranks);

    [LoggerMessage(EventId = 524, Level = LogLevel.Warning, Message = "Job {Job} sent no step report for {After}: its straggler state is dropped (an open hang incident stays)")]
    private static partial void LogJobForgotten(ILogger logger, string job, TimeSpan after);

    /// <summary>A report waiting for the ingest lag; a final one marks the rank's end instead of a step.</summary>
    private readonly record struct HeldReport(StepReport Report, bool Final);

    /// <summary>A batch of reports, or a tick (with a completion when someone waits for it).</summary>
    private sealed record Work(IReadOnlyList<StepTimings>? Steps, TaskCompletionSource? Done);

    private sealed class FlaggedRank(StragglerFlagged flag, StragglerAttribution attribution, DateTimeOffset since)
    {
        public StragglerFlagged Flag { get; } = flag;
        public StragglerAttribution Attribution { get; } = attribution;
        public DateTimeOffset Since { get; } = since;
        public bool Escalated { get; set; }
    }
}
