using FleetWatch.Contracts;

namespace FleetWatch.Controller.Detection;

/// <summary>
/// Names the job that runs on a GPU, so rule 39 can tell "the same GPU under different jobs" (hardware) from "one job
/// crashing" (the application). The remediation job registry implements it; <see cref="NoGpuJobResolver"/> knows no jobs.
/// </summary>
public interface IGpuJobResolver
{
    /// <summary>The job on <paramref name="gpuIndex"/> of <paramref name="node"/>, or null when none is registered.</summary>
    string? JobOf(string node, int gpuIndex);
}

/// <summary>The default resolver: no job registry, so the Xid's own process name stands for the job.</summary>
public sealed class NoGpuJobResolver : IGpuJobResolver
{
    public string? JobOf(string node, int gpuIndex) => null;
}

/// <summary>
/// What the controller remembers about the Xids of each (node, GPU, Xid), between observations: it turns the two live
/// paths and floods into one finding with counts, and applies the rules that need history (research/gpu-health-anchors.md
/// section 7):
/// <list type="bullet">
/// <item>Two paths (section 6.1): reports of one (node, GPU, Xid) less than <see cref="DetectionOptions.XidDedupWindow"/>
/// apart form a run; within a run the occurrences are the most that any one path reported, so the NVML event and the
/// kernel line of one Xid count once (the text-only "fallen off the bus" line pairs with an Xid 79 the same way), and a
/// path that lags or misses lines neither doubles nor loses occurrences.</item>
/// <item>Floods (NVSentinel#1120: 800,000 Xid lines): every occurrence is counted and refreshes one finding; its text is
/// rebuilt at most once per <see cref="DetectionOptions.XidFloodRefresh"/>, so a flood costs a dictionary lookup per
/// line and constant memory.</item>
/// <item>Rule 4: the third Xid 94 episode on one GPU within 24 h escalates to high.</item>
/// <item>Rule 39 (WORKFLOW_XID_13/31): an app-class Xid is info, promoted to high when the same GPU shows it under
/// <see cref="DetectionOptions.AppXidDistinctJobs"/> different jobs within the window.</item>
/// </list>
/// An episode is one run: one fault that logs a burst of lines is one episode. Time comes from the observations; thread-safe; entries idle longer than every window are pruned.
/// </summary>
public sealed class XidTracker
{
    private const int Sources = 4; // NvmlEvent, Kmsg, Simulator, the text-only fallen-off-bus line
    private const int FallenOffBusText = 3;

    private readonly Lock _gate = new();
    private readonly Dictionary<XidKey, Entry> _entries = [];
    private DateTimeOffset _lastPrune = DateTimeOffset.MinValue;

    /// <summary>(node, GPU, Xid) entries held.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>
    /// Records one observation (its GPU index already resolved where possible) and returns the finding to apply, or null
    /// when it is the other path's report of an occurrence already applied. <paramref name="job"/> names the job on the
    /// GPU (null when unknown).
    /// </summary>
    public Finding? Observe(GpuXidObserved xid, string? job, XidCatalog catalog, DetectionOptions options)
    {
        var fallenText = xid.Kind == "fallen_off_bus" || xid.Xid is null;
        var number = fallenText ? 79 : xid.Xid!.Value;
        var source = fallenText ? FallenOffBusText : Math.Clamp((int)xid.Source, 0, Sources - 2);
        var key = new XidKey(xid.Node, xid.GpuIndex ?? -1, xid.GpuIndex is null ? xid.PciBusId ?? xid.GpuUuid : null, xid.Kind == "sxid", number);
        var time = xid.Time;
        lock (_gate)
        {
            if (!_entries.TryGetValue(key, out var e))
            {
                e = new Entry();
                _entries[key] = e;
            }

            e.SeenBy[source]++;
            if (!e.Count(source, time, options.XidDedupWindow, out var newEpisode))
            {
                return null;
            }
            // Escalation is decided per episode and can fall back (the third Xid 94 ages out of its 24 h): nothing sticks.
            var changed = false;
            if (newEpisode && !fallenText && xid.Kind != "sxid")
            {
                var before = e.Escalation;
                e.Escalation = Escalate(e, number, catalog.Lookup(number), job, time, options);
                changed = !Equals(before, e.Escalation);
            }

            if (e.Finding is null || changed || time - e.BuiltAt >= options.XidFloodRefresh || time < e.BuiltAt)
            {
                e.Finding = Build(XidDetector.Classify(xid, catalog), e);
                e.BuiltAt = time;
            }

            return e.Finding;
        }
    }

    /// <summary>Drops entries idle longer than every window that needs them (at most once a minute of data time).</summary>
    public void Prune(DateTimeOffset now, DetectionOptions options)
    {
        lock (_gate)
        {
            if (now - _lastPrune < TimeSpan.FromMinutes(1))
            {
                return;
            }

            _lastPrune = now;
            var keep = Max(Max(options.Xid94Window, options.AppXidWindow), options.EventHold);
            List<XidKey>? idle = null;
            foreach (var (key, e) in _entries)
            {
                if (now - e.LastSeen > keep)
                {
                    (idle ??= []).Add(key);
                }
            }

            foreach (var key in idle ?? [])
            {
                _entries.Remove(key);
            }
        }
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    /// <summary>Rule 4 and rule 39: the (severity, category, action) this episode escalates to, or null.</summary>
    private static (Severity Severity, string Category, string Action, string Why)? Escalate(Entry e, int number, XidRule rule, string? job, DateTimeOffset time, DetectionOptions options)
    {
        if (number == 94)
        {
            // Rule 4: keep the times of the last N episodes; the Nth within the window escalates (catalogue heuristic).
            var n = options.Xid94EscalationCount;
            e.Episodes ??= new Queue<DateTimeOffset>(n);
            e.Episodes.Enqueue(time);
            while (e.Episodes.Count > n)
            {
                e.Episodes.Dequeue();
            }

            return e.Episodes.Count >= n && time - e.Episodes.Peek() <= options.Xid94Window
                ? (Severity.High, "memory_contained_repeated", "reset_gpu_at_next_drain", $"{n} contained memory errors within {options.Xid94Window.TotalHours:F0} h")
                : null;
        }

        if (!rule.AppClass || job is null)
        {
            return null; // without a job name, "different jobs" cannot be told apart: the Xid stays info
        }

        // Rule 39: the most recent distinct jobs (at most N) with the last time each showed this Xid on this GPU.
        var jobs = e.Jobs ??= [];
        jobs.RemoveAll(j => time - j.Last > options.AppXidWindow);
        var index = jobs.FindIndex(j => j.Job == job);
        if (index >= 0)
        {
            jobs.RemoveAt(index);
        }

        jobs.Add((job, time));
        if (jobs.Count > options.AppXidDistinctJobs)
        {
            jobs.RemoveAt(0);
        }

        return jobs.Count >= options.AppXidDistinctJobs
            ? (Severity.High, "app_error_repeated", "run_diagnostics", $"the same GPU under {jobs.Count} different jobs ({string.Join(", ", jobs.Select(j => j.Job))}) within {options.AppXidWindow.TotalHours:F0} h")
            : null;
    }

    private static Finding Build(Finding classified, Entry e)
    {
        var finding = classified;
        if (e.Escalation is { } up && up.Severity > finding.Severity)
        {
            finding = finding with { Severity = up.Severity, Category = up.Category, Action = up.Action, Message = $"{finding.Message} [{up.Why}]" };
        }

        if (e.Occurrences > 1 || e.DuplicateCount > 0)
        {
            finding = finding with { Message = $"{finding.Message} ({e.Occurrences} occurrences; {e.Paths()})" };
        }

        return finding;
    }

    private readonly record struct XidKey(string Node, int Gpu, string? Device, bool Sxid, int Xid);

    private sealed class Entry
    {
        private static readonly string[] SourceNames = ["nvml", "kmsg", "simulator", "fallen-off-bus line"];

        // Reports per path in the current run, and the most of any one path (the run's occurrences so far).
        private readonly long[] _run = new long[Sources];
        private long _runMax;

        public long[] SeenBy { get; } = new long[Sources];
        public long Occurrences { get; set; }
        public long DuplicateCount { get; private set; }
        public DateTimeOffset LastSeen { get; private set; }
        public Finding? Finding { get; set; }
        public DateTimeOffset BuiltAt { get; set; }
        public (Severity Severity, string Category, string Action, string Why)? Escalation { get; set; }
        public Queue<DateTimeOffset>? Episodes { get; set; }
        public List<(string Job, DateTimeOffset Last)>? Jobs { get; set; }

        /// <summary>
        /// Counts one report of <paramref name="source"/>; false when it is another path's report of an occurrence already
        /// counted. <paramref name="newEpisode"/> is true for the first report of a run.
        /// </summary>
        public bool Count(int source, DateTimeOffset time, TimeSpan window, out bool newEpisode)
        {
            newEpisode = Occurrences == 0 || (time - LastSeen).Duration() >= window;
            LastSeen = time > LastSeen || newEpisode ? time : LastSeen;
            if (newEpisode)
            {
                Array.Clear(_run);
                _runMax = 0;
            }

            if (++_run[source] <= _runMax)
            {
                DuplicateCount++;
                return false;
            }

            _runMax = _run[source];
            Occurrences++;
            return true;
        }

        public string Paths() => string.Join(", ", SeenBy.Select((n, i) => (n, i)).Where(x => x.n > 0).Select(x => $"{SourceNames[x.i]} {x.n}"));
    }
}
