using System.Numerics;

namespace FleetWatch.Controller.Stragglers;

/// <summary>
/// Per-job state of <see cref="StragglerDetector"/>. Everything per rank lives in flat arrays indexed by rank
/// (rank-major, so growing the rank count is one resize), the open steps in a small ring of slots, and history in
/// fixed rings: memory is O(ranks × (window + baseline + slots)), independent of how long the job runs.
/// </summary>
internal sealed class JobTracker
{
    private const long None = long.MinValue;

    private readonly StragglerDetectorOptions _o;
    private readonly StragglerCounters _counters;
    private readonly int _w;
    private readonly int _k;
    private readonly int _slots;
    private readonly float _relLimit;
    private readonly float _indLimit;
    private readonly int _historyMask;
    private readonly int _cleanMask;

    // Per rank (index = rank).
    private int _cap;
    private int _rankEnd;
    private int _ranksSeen;
    private string[] _node = [];
    private int[] _gpu = [];
    private int[] _group = [];
    private long[] _lastStep = [];
    private bool[] _seen = [];
    private bool[] _inRun = [];
    private float[] _win = [];
    private float[] _base = [];
    private byte[] _baseCount = [];
    private byte[] _baseNext = [];
    private ushort[] _history = [];
    private byte[] _historyLen = [];
    private bool[] _flagged = [];
    private float[] _slotDur = [];
    private float[] _scratch = [];
    private int _flaggedCount;

    // Peer groups.
    private readonly Dictionary<string, int> _groupIndex = new(StringComparer.Ordinal);
    private readonly List<string> _groupNames = [];
    private int[] _gCount = new int[4];
    private int[] _gStart = new int[4];
    private int[] _gFill = new int[4];
    private float[] _gMedian = new float[4];

    // Open steps.
    private readonly long[] _slotStep;
    private readonly long[] _slotEnd;

    // Current run and job history.
    private long _runStart = None;
    private long _maxStep = None;
    private long _lastClosed = None;
    private long _lastDataStep = None;
    private long _lastDataEnd = None;
    private long _lastProgressMs = None;
    private long _distinctSteps;
    private int _winPos;
    private int _sinceEvaluation;
    private int _scoredInRun;
    private readonly double[] _intervals;
    private readonly double[] _intervalScratch;
    private int _intervalCount;
    private int _intervalNext;
    private double _medianInterval = double.NaN;
    private readonly float[] _stepMedians = new float[32];
    private int _stepMedianCount;
    private int _stepMedianNext;
    private double _maxPauseMultiple;
    private bool _hung;
    private long _deadline = long.MaxValue;

    public JobTracker(string name, StragglerDetectorOptions options, StragglerCounters counters)
    {
        Name = name;
        _o = options;
        _counters = counters;
        _w = options.WindowSteps;
        _k = options.BaselineWindows;
        _slots = options.StepCloseLag + 2;
        _slotStep = new long[_slots];
        _slotEnd = new long[_slots];
        Array.Fill(_slotStep, None);
        _relLimit = (float)-Math.Log(options.RelativeThreshold);
        _indLimit = (float)-Math.Log(options.IndividualThreshold);
        _historyMask = (1 << options.PersistenceWindows) - 1;
        _cleanMask = (1 << options.CleanWindowsToClear) - 1;
        _intervals = new double[options.IntervalHistory];
        _intervalScratch = new double[options.IntervalHistory];
    }

    public string Name { get; }

    /// <summary>When the job will be declared hung if nothing arrives; null while unarmed or already hung.</summary>
    public long? HangDeadlineMs => _deadline == long.MaxValue ? null : _deadline;

    public StragglerJobSummary Summary() =>
        new(Name, _ranksSeen, _distinctSteps, _medianInterval, _maxStep == None ? -1 : _maxStep, _hung, _flaggedCount);

    public void Observe(in StepReport report, List<StragglerFinding> findings)
    {
        var step = report.Step;
        if (_maxStep == None)
        {
            StartRun(step);
        }
        else if (step <= _lastClosed)
        {
            // A step already analysed: either a late or duplicated report (it ended no later than the last analysed
            // step), or the job restarted from a checkpoint (an earlier step number, ending later).
            var tolerance = double.IsNaN(_medianInterval) ? 0 : 0.5 * _medianInterval;
            if (_lastDataEnd == None || report.EndMs <= _lastDataEnd + tolerance)
            {
                _counters.Stale++;
                return;
            }

            Restart(report, findings);
        }
        else if (step <= _maxStep && !double.IsNaN(_medianInterval)
                 && _slotStep[(int)(step % _slots)] == step && report.EndMs > _slotEnd[(int)(step % _slots)] + (0.5 * _medianInterval))
        {
            // A step still open (not yet analysed) reported again much later: the job restarted from a checkpoint at
            // its newest step (for example after a hang in that step).
            Restart(report, findings);
        }

        NoteProgress(report.EndMs, step, findings);
        var rank = report.Rank;
        EnsureCapacity(rank);
        if (!_seen[rank])
        {
            _seen[rank] = true;
            _ranksSeen++;
        }

        _inRun[rank] = true;
        _node[rank] = report.Node;
        _gpu[rank] = report.Gpu;
        var g = _group[rank];
        if (g < 0 || !string.Equals(_groupNames[g], report.PeerGroup, StringComparison.Ordinal))
        {
            _group[rank] = GroupIndexOf(report.PeerGroup);
        }

        if (step > _lastStep[rank])
        {
            _lastStep[rank] = step;
        }

        if (step > _maxStep)
        {
            _maxStep = step;
            CloseThrough(step - _o.StepCloseLag, findings);
        }

        Store(rank, step, report.EndMs, report.DurationMs);
    }

    /// <summary>Time has reached <paramref name="nowMs"/>: analyse steps that are over, then check for a hang.</summary>
    public void OnTime(long nowMs, List<StragglerFinding> findings)
    {
        CloseByTime(nowMs, findings);
        var deadline = _deadline;
        if (nowMs < deadline)
        {
            return;
        }

        _hung = true;
        _deadline = long.MaxValue;
        var suspects = new List<int>();
        for (var r = 0; r < _rankEnd; r++)
        {
            if (_inRun[r] && _lastStep[r] < _maxStep)
            {
                suspects.Add(r);
            }
        }

        findings.Add(new HangDetected(Name, deadline, _maxStep, _lastProgressMs, _medianInterval, suspects));
    }

    private void StartRun(long step)
    {
        _runStart = step;
        _maxStep = step;
        _lastClosed = step - 1;
        _winPos = 0;
        _sinceEvaluation = 0;
        _scoredInRun = 0;
        Array.Fill(_win, float.NaN);
    }

    private void Restart(in StepReport report, List<StragglerFinding> findings)
    {
        _counters.Restarts++;
        for (var r = 0; r < _rankEnd; r++)
        {
            if (_flagged[r])
            {
                findings.Add(new StragglerCleared(Name, report.EndMs, r, report.Step, StragglerClearReason.JobRestarted));
            }
        }

        // Individual history resets on restart (section 5.2 [FW]; NVRx never resets and drifts): new run, maybe new nodes.
        Array.Fill(_flagged, false);
        Array.Fill(_inRun, false);
        Array.Fill(_lastStep, None);
        Array.Fill(_baseCount, (byte)0);
        Array.Fill(_baseNext, (byte)0);
        Array.Fill(_history, (ushort)0);
        Array.Fill(_historyLen, (byte)0);
        Array.Fill(_slotDur, float.NaN);
        Array.Fill(_slotStep, None);
        _flaggedCount = 0;
        _stepMedianCount = 0;
        _stepMedianNext = 0;
        _lastDataStep = None;
        StartRun(report.Step);
    }

    private void NoteProgress(long endMs, long step, List<StragglerFinding> findings)
    {
        if (_lastProgressMs != None && endMs > _lastProgressMs && _intervalCount >= _o.MinIntervalsForHang)
        {
            _maxPauseMultiple = Math.Max(_maxPauseMultiple, (endMs - _lastProgressMs) / _medianInterval);
        }

        if (_lastProgressMs == None || endMs > _lastProgressMs)
        {
            _lastProgressMs = endMs;
        }

        if (_hung)
        {
            _hung = false;
            findings.Add(new HangCleared(Name, endMs, step));
        }

        UpdateDeadline();
    }

    /// <summary>Recomputed only when its inputs change (progress, a new interval), so the per-report clock check is one compare.</summary>
    private void UpdateDeadline()
    {
        if (_hung || _lastProgressMs == None || _intervalCount < _o.MinIntervalsForHang)
        {
            _deadline = long.MaxValue;
            return;
        }

        // A job that resumed from a long pause (checkpoint) gets that much more slack, within the cap (section 5.3).
        var multiple = Math.Clamp(_o.HangPauseMargin * _maxPauseMultiple, _o.HangMedianSteps, _o.HangMaxMedianSteps);
        _deadline = _lastProgressMs + (long)Math.Ceiling(multiple * _medianInterval);
    }

    private void Store(int rank, long step, long endMs, double durationMs)
    {
        var slot = (int)(step % _slots);
        if (_slotStep[slot] != step)
        {
            // The slot's previous step (if any) was closed and cleared: open steps span fewer than _slots steps.
            _slotStep[slot] = step;
            _slotEnd[slot] = endMs;
            _distinctSteps++;
        }

        ref var cell = ref _slotDur[(rank * _slots) + slot];
        if (!float.IsNaN(cell))
        {
            _counters.Duplicates++;
            return;
        }

        cell = (float)durationMs;
        if (endMs > _slotEnd[slot])
        {
            _slotEnd[slot] = endMs;
        }
    }

    /// <summary>
    /// A step is also over once time has passed its end by <see cref="StragglerDetectorOptions.CloseAfterMedianSteps"/>
    /// median intervals, so its analysis does not wait for the next step's reports (which a pause or hang delays).
    /// </summary>
    private void CloseByTime(long nowMs, List<StragglerFinding> findings)
    {
        if (double.IsNaN(_medianInterval))
        {
            return;
        }

        var grace = _o.CloseAfterMedianSteps * _medianInterval;
        var limit = None;
        for (var i = 0; i < _slots; i++)
        {
            var s = _slotStep[i];
            if (s != None && s > _lastClosed && s > limit && _slotEnd[i] + grace <= nowMs)
            {
                limit = s;
            }
        }

        if (limit != None)
        {
            CloseThrough(limit, findings);
        }
    }

    /// <summary>Analyses every open step up to <paramref name="limit"/>, oldest first.</summary>
    private void CloseThrough(long limit, List<StragglerFinding> findings)
    {
        if (limit <= _lastClosed)
        {
            return;
        }

        while (true)
        {
            var best = -1;
            var bestStep = long.MaxValue;
            for (var i = 0; i < _slots; i++)
            {
                var s = _slotStep[i];
                if (s != None && s > _lastClosed && s <= limit && s < bestStep)
                {
                    best = i;
                    bestStep = s;
                }
            }

            if (best < 0)
            {
                break;
            }

            _lastClosed = bestStep;
            CloseStep(best, bestStep, findings);
        }

        _lastClosed = limit;
    }

    private void CloseStep(int slot, long step, List<StragglerFinding> findings)
    {
        var endMs = _slotEnd[slot];
        if (_lastDataStep == step - 1 && step - _runStart > _o.WarmupSteps)
        {
            PushInterval(endMs - _lastDataEnd);
        }

        _lastDataStep = step;
        _lastDataEnd = endMs;
        if (step - _runStart >= _o.WarmupSteps)
        {
            ScoreStep(slot, step, endMs, findings);
        }

        for (var r = 0; r < _rankEnd; r++)
        {
            _slotDur[(r * _slots) + slot] = float.NaN;
        }

        _slotStep[slot] = None;
    }

    private void ScoreStep(int slot, long step, long endMs, List<StragglerFinding> findings)
    {
        var n = 0;
        for (var r = 0; r < _rankEnd; r++)
        {
            var v = _slotDur[(r * _slots) + slot];
            if (!float.IsNaN(v))
            {
                _scratch[n++] = v;
            }
        }

        if (n == 0)
        {
            return;
        }

        // Job-wide pause (checkpoint): every rank slow together is not a straggler; skip the step entirely.
        var jobMedian = Selection.Median(_scratch.AsSpan(0, n));
        if (_stepMedianCount >= 3)
        {
            Span<float> recent = stackalloc float[_stepMedians.Length];
            _stepMedians.AsSpan(0, _stepMedianCount).CopyTo(recent);
            if (jobMedian >= _o.PauseFactor * Selection.Median(recent[.._stepMedianCount]))
            {
                _counters.PauseSteps++;
                return;
            }
        }

        _stepMedians[_stepMedianNext] = jobMedian;
        _stepMedianNext = (_stepMedianNext + 1) % _stepMedians.Length;
        _stepMedianCount = Math.Min(_stepMedianCount + 1, _stepMedians.Length);

        ComputeGroupMedians(slot);

        // Relative score per step: log of the rank's time over its peer group's median for this step. The median, not
        // the fastest rank, is the reference (section 5.2 robust option): one lucky rank must not set the bar, and
        // job-wide effects (drift, slow warm-up, noise shared by the step) cancel in the ratio.
        var k = _winPos;
        for (var r = 0; r < _rankEnd; r++)
        {
            var x = float.NaN;
            var v = _slotDur[(r * _slots) + slot];
            if (!float.IsNaN(v) && _inRun[r])
            {
                var gm = _gMedian[_group[r]];
                if (!float.IsNaN(gm))
                {
                    x = MathF.Log(v / gm);
                }
            }

            _win[(r * _w) + k] = x;
        }

        // The window is a ring of the last WindowSteps scored steps, judged every WindowHopSteps steps.
        // The first verdict waits for a full window after the (re)start: a half-filled window is a noisier median.
        _winPos = (_winPos + 1) % _w;
        _scoredInRun++;
        if (++_sinceEvaluation >= _o.WindowHopSteps && _scoredInRun >= _w)
        {
            _sinceEvaluation = 0;
            EvaluateWindow(step, endMs, findings);
        }
    }

    private void ComputeGroupMedians(int slot)
    {
        var groups = _groupNames.Count;
        Array.Clear(_gCount, 0, groups);
        for (var r = 0; r < _rankEnd; r++)
        {
            if (!float.IsNaN(_slotDur[(r * _slots) + slot]))
            {
                _gCount[_group[r]]++;
            }
        }

        var start = 0;
        for (var g = 0; g < groups; g++)
        {
            _gStart[g] = start;
            _gFill[g] = start;
            start += _gCount[g];
        }

        for (var r = 0; r < _rankEnd; r++)
        {
            var v = _slotDur[(r * _slots) + slot];
            if (!float.IsNaN(v))
            {
                _scratch[_gFill[_group[r]]++] = v;
            }
        }

        for (var g = 0; g < groups; g++)
        {
            _gMedian[g] = _gCount[g] >= _o.MinPeers ? Selection.Median(_scratch.AsSpan(_gStart[g], _gCount[g])) : float.NaN;
        }
    }

    private void EvaluateWindow(long step, long endMs, List<StragglerFinding> findings)
    {
        Span<float> buf = stackalloc float[_w];
        Span<float> baseBuf = stackalloc float[_k];
        for (var r = 0; r < _rankEnd; r++)
        {
            if (!_inRun[r])
            {
                continue;
            }

            var c = 0;
            var row = _win.AsSpan(r * _w, _w);
            foreach (var x in row)
            {
                if (!float.IsNaN(x))
                {
                    buf[c++] = x;
                }
            }

            if (c < _o.MinSamplesPerWindow)
            {
                // Too few reports in this window: no verdict (Unknown), neither slow nor healthy.
                continue;
            }

            var m = Selection.Median(buf[..c]);
            var b = float.NaN;
            int nb = _baseCount[r];
            if (nb >= _o.MinBaselineWindows)
            {
                _base.AsSpan(r * _k, nb).CopyTo(baseBuf);
                b = Selection.Median(baseBuf[..nb]);
            }

            // Individual score: this window against the rank's own clean history, both peer-normalised so that job-wide
            // drift and checkpoints do not register; it removes the rank's static offset and so sees smaller slowdowns.
            // The rank must also be slower than its peers' median: a fast rank coming back to the pack is no straggler.
            var slow = m > _relLimit || (!float.IsNaN(b) && m > 0 && m - b > _indLimit);
            int history = ((_history[r] << 1) | (slow ? 1 : 0)) & _historyMask;
            _history[r] = (ushort)history;
            _historyLen[r] = (byte)Math.Min(_historyLen[r] + 1, _o.PersistenceWindows);
            if (!slow)
            {
                _base[(r * _k) + _baseNext[r]] = m;
                _baseNext[r] = (byte)((_baseNext[r] + 1) % _k);
                _baseCount[r] = (byte)Math.Min(nb + 1, _k);
            }

            if (!_flagged[r] && BitOperations.PopCount((uint)history) >= _o.SlowWindowsToFlag)
            {
                _flagged[r] = true;
                _flaggedCount++;
                var score = Math.Clamp(Math.Exp(-m), 1e-6, 1.0);
                var individual = float.IsNaN(b) ? double.NaN : Math.Clamp(Math.Exp(b - m), 1e-6, 1.0);
                findings.Add(new StragglerFlagged(Name, endMs, r, _node[r], _gpu[r], _groupNames[_group[r]], step, score, individual));
            }
            else if (_flagged[r] && _historyLen[r] >= _o.CleanWindowsToClear && (history & _cleanMask) == 0)
            {
                _flagged[r] = false;
                _flaggedCount--;
                findings.Add(new StragglerCleared(Name, endMs, r, step, StragglerClearReason.Recovered));
            }
        }
    }

    private void PushInterval(double intervalMs)
    {
        if (intervalMs <= 0)
        {
            return;
        }

        _intervals[_intervalNext] = intervalMs;
        _intervalNext = (_intervalNext + 1) % _intervals.Length;
        _intervalCount = Math.Min(_intervalCount + 1, _intervals.Length);
        _medianInterval = Selection.Median(_intervals.AsSpan(0, _intervalCount), _intervalScratch);
        UpdateDeadline();
    }

    private int GroupIndexOf(string name)
    {
        if (_groupIndex.TryGetValue(name, out var g))
        {
            return g;
        }

        g = _groupNames.Count;
        _groupIndex.Add(name, g);
        _groupNames.Add(name);
        if (g >= _gCount.Length)
        {
            var n = _gCount.Length * 2;
            Array.Resize(ref _gCount, n);
            Array.Resize(ref _gStart, n);
            Array.Resize(ref _gFill, n);
            Array.Resize(ref _gMedian, n);
        }

        return g;
    }

    private void EnsureCapacity(int rank)
    {
        if (rank >= _rankEnd)
        {
            _rankEnd = rank + 1;
        }

        if (rank < _cap)
        {
            return;
        }

        var old = _cap;
        var cap = Math.Max(rank + 1, Math.Max(old * 2, 64));
        Grow(ref _node, cap, 1, string.Empty);
        Grow(ref _gpu, cap, 1, 0);
        Grow(ref _group, cap, 1, -1);
        Grow(ref _lastStep, cap, 1, None);
        Grow(ref _seen, cap, 1, false);
        Grow(ref _inRun, cap, 1, false);
        Grow(ref _win, cap, _w, float.NaN);
        Grow(ref _base, cap, _k, 0f);
        Grow(ref _baseCount, cap, 1, (byte)0);
        Grow(ref _baseNext, cap, 1, (byte)0);
        Grow(ref _history, cap, 1, (ushort)0);
        Grow(ref _historyLen, cap, 1, (byte)0);
        Grow(ref _flagged, cap, 1, false);
        Grow(ref _slotDur, cap, _slots, float.NaN);
        Grow(ref _scratch, cap, 1, 0f);
        _cap = cap;
    }

    private static void Grow<T>(ref T[] array, int capacity, int stride, T fill)
    {
        var old = array.Length;
        Array.Resize(ref array, capacity * stride);
        array.AsSpan(old).Fill(fill);
    }
}
