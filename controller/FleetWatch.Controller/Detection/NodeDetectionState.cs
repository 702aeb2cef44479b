namespace FleetWatch.Controller.Detection;

/// <summary>Which signal a piece of detector state belongs to.</summary>
public enum Signal
{
    GpuLost,
    RemapFailure,
    RemapPending,
    RetiredPages,
    RetiredPagesPending,
    OverTemperature,
    HwSlowdown,
    SbeRate,
    PcieReplay,
    NvLinkDown,
    NvLinkReplay,
    NvLinkCrc,
    IbDown,
    IbErrors,
    RemappedRows,
    PcieDowntrained,
    ThermalViolation,
    RecoveryAction,
    PowerUnreadable,
    PowerBand,
    PowerPeers,
    ClockPeers,
    GpuMissing,
    GpuSource,
    IbRate,
    IbFlap,
    EccDbe,
    UnrepairableMemory,
    FabricHealth,
    InforomCorrupt,
    FabricRegistration,
}

/// <summary>
/// One signal of one GPU, link or port. <see cref="Gpu"/> is -1 for node-level signals; <see cref="Sub"/> is the
/// link or port number; <see cref="Device"/> and <see cref="Counter"/> name an InfiniBand device and counter.
/// The strings come from the sample, so building a key allocates nothing.
/// </summary>
public readonly record struct SignalKey(Signal Signal, int Gpu, int Sub = 0, string? Device = null, string? Counter = null);

/// <summary>
/// What the pure detectors remember about one node between samples: rate windows for counters that moved, the
/// start of sustained conditions, and which conditions were last reported active (so a clear is reported once, on
/// the transition, instead of one "all clear" finding per link per tick). Bounded: one entry per signal at most,
/// and a window is dropped once it is empty and its condition clear. Held by <see cref="Fleet.FleetState"/> per node
/// and used the same way by the live controller and the offline replay. Not thread-safe: the caller serialises
/// evaluations of one node.
/// </summary>
public sealed class NodeDetectionState
{
    private readonly Dictionary<SignalKey, RateWindow> _windows = [];
    private readonly Dictionary<SignalKey, DateTimeOffset> _since = [];
    private readonly HashSet<SignalKey> _active = [];
    private readonly HashSet<SignalKey> _seen = [];
    private readonly Dictionary<SignalKey, DateTimeOffset> _lastEvent = [];
    private ConditionCell[] _cells = [];
    private int _rows;

    /// <summary>Time of the first sample evaluated with this state: rates are averaged over no more than the time observed.</summary>
    public DateTimeOffset? ObservedSince { get; private set; }

    /// <summary>False until the first sample: the first evaluation reports every clear condition (a fresh controller knows nothing).</summary>
    public bool Initialized { get; private set; }

    /// <summary>Counter windows currently held (bounded by the node's counters that moved within a window).</summary>
    public int WindowCount => _windows.Count;

    /// <summary>Conditions currently reported active.</summary>
    public int ActiveCount => _active.Count;

    /// <summary>GPU indexes this node has reported since the controller started (rule 30 learns the inventory from them).</summary>
    public ulong KnownGpus { get; internal set; }

    /// <summary>Since when the node reports without a gap of NodeUnknownAfter (its node_silent condition is False since then).</summary>
    public DateTimeOffset? ReportingSince { get; private set; }

    /// <summary>Time of the newest sample evaluated (the conditions' "as of").</summary>
    public DateTimeOffset? LastEvaluated { get; private set; }

    internal void Begin(DateTimeOffset time, TimeSpan unknownAfter)
    {
        ObservedSince ??= time;
        if (LastEvaluated is not { } last || time - last >= unknownAfter)
        {
            ReportingSince = time;
        }

        for (var i = 0; i < _cells.Length; i++)
        {
            _cells[i].Pending = ConditionStatus.Unknown;
        }
    }

    /// <summary>Commits this evaluation's condition statuses with their transition times; reports each fall into Unknown.</summary>
    internal void End(string node, DateTimeOffset time, List<Finding> output)
    {
        for (var i = 0; i < _cells.Length; i++)
        {
            ref var cell = ref _cells[i];
            if (cell.Pending == cell.Current && cell.Evaluated)
            {
                continue;
            }

            if (cell.Pending == ConditionStatus.Unknown && cell.Evaluated && cell.Current != ConditionStatus.Unknown)
            {
                // A rule that had data and lost it is Unknown: its own (info) finding, never read as healthy.
                var (gpu, rule) = (i / ConditionRules.Count - 1, (ConditionRule)(i % ConditionRules.Count));
                output.Add(new Finding(node, gpu < 0 ? null : gpu, $"no_data:{ConditionRules.Name(rule)}", FindingKind.Event, true, Contracts.Severity.Info,
                    "no_data", "check_agent", $"{ConditionRules.Name(rule)}: no data since {time:O} (was {cell.Current})", time));
            }

            if (cell.Pending != cell.Current || !cell.Evaluated)
            {
                cell.Since = time;
            }

            cell.Current = cell.Pending;
            cell.Evaluated = true;
        }

        LastEvaluated = time;
        Initialized = true;
    }

    /// <summary>
    /// Records what one rule found for one GPU (-1: the node) in the evaluation under way. Several observations of one
    /// rule (one per NVLink or port) merge: any True makes it True, else any False makes it False, else Unknown.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal void Observe(int gpu, ConditionRule rule, ConditionStatus status, string? detail = null)
    {
        // Called several times per NVLink and port on every sample: the common case is one bounds check and a compare.
        var row = gpu + 1;
        if ((uint)row >= (uint)_rows)
        {
            Grow(row);
            if ((uint)row >= (uint)_rows)
            {
                return;
            }
        }

        ref var cell = ref _cells[(row * ConditionRules.Count) + (int)rule];
        if (status > cell.Pending)
        {
            cell.Pending = status;
        }

        if (detail is not null && status == ConditionStatus.True)
        {
            cell.Detail = detail;
        }
    }

    /// <summary>Widens the table to hold <paramref name="row"/> (GPU index + 1; at most 64 GPUs per node).</summary>
    private void Grow(int row)
    {
        if (row < 0 || row > 64)
        {
            return;
        }

        var rows = row + 1;
        var cells = new ConditionCell[rows * ConditionRules.Count];
        Array.Copy(_cells, cells, _cells.Length);
        _cells = cells;
        _rows = rows;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal void Observe(int gpu, ConditionRule rule, bool? active, string? detail = null) =>
        Observe(gpu, rule, active switch { null => ConditionStatus.Unknown, true => ConditionStatus.True, false => ConditionStatus.False }, detail);

    /// <summary>The conditions as of the last evaluation: every (GPU, rule) the node has ever evaluated, with its transition time.</summary>
    public IReadOnlyList<DetectionCondition> Conditions(string node)
    {
        var result = new List<DetectionCondition>(_cells.Length);
        for (var i = 0; i < _cells.Length; i++)
        {
            var cell = _cells[i];
            if (!cell.Evaluated)
            {
                continue;
            }

            var gpu = (i / ConditionRules.Count) - 1;
            var rule = (ConditionRule)(i % ConditionRules.Count);
            result.Add(new DetectionCondition(node, gpu < 0 ? null : gpu, ConditionRules.Name(rule), cell.Current, cell.Since,
                cell.Current == ConditionStatus.True ? cell.Detail : null));
        }

        return result;
    }

    /// <summary>
    /// For an event rule (a counter that rose): true while the last event is younger than <paramref name="hold"/>, so the
    /// condition reads True as long as the incident manager holds the event finding, then False (not sticky).
    /// </summary>
    internal bool Recent(SignalKey key, bool happened, DateTimeOffset time, TimeSpan hold)
    {
        if (happened)
        {
            _lastEvent[key] = time;
            return true;
        }

        if (_lastEvent.Count == 0 || !_lastEvent.TryGetValue(key, out var last))
        {
            return false;
        }

        if (time - last < hold)
        {
            return true;
        }

        _lastEvent.Remove(key);
        return false;
    }

    /// <summary>Remembers that a signal was readable once (rule 28: power that was readable and no longer is).</summary>
    internal bool Seen(SignalKey key, bool readable) => readable ? _seen.Add(key) || true : _seen.Contains(key);

    /// <summary>
    /// Records a condition's status; true when a finding must be emitted: always while active (it refreshes the
    /// incident), and once when it clears (or on the first evaluation, when nothing was reported yet).
    /// </summary>
    internal bool Report(SignalKey key, bool active)
    {
        if (active)
        {
            _active.Add(key);
            return true;
        }

        // Most signals are clear most of the time: skip the lookup when nothing is active on the node.
        return (_active.Count > 0 && _active.Remove(key)) || !Initialized;
    }

    internal bool IsActive(SignalKey key) => _active.Contains(key);

    internal RateWindow? Window(SignalKey key) => _windows.GetValueOrDefault(key);

    internal RateWindow GetOrAddWindow(SignalKey key, TimeSpan window)
    {
        if (!_windows.TryGetValue(key, out var w) || w.Window != window)
        {
            w = new RateWindow(window);
            _windows[key] = w;
        }

        return w;
    }

    /// <summary>Drops a window that holds nothing and backs no active condition.</summary>
    internal void Prune(SignalKey key, DateTimeOffset now)
    {
        if (_windows.TryGetValue(key, out var w) && w.IsEmpty(now) && !_active.Contains(key))
        {
            _windows.Remove(key);
        }
    }

    /// <summary>Start of a sustained condition (HW slowdown): set on the first sample that shows it, cleared by one that does not.</summary>
    internal DateTimeOffset? Since(SignalKey key, bool present, DateTimeOffset time)
    {
        if (!present)
        {
            _since.Remove(key);
            return null;
        }

        if (!_since.TryGetValue(key, out var since))
        {
            since = time;
            _since[key] = since;
        }

        return since;
    }
}
