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

    /// <summary>Time of the first sample evaluated with this state: rates are averaged over no more than the time observed.</summary>
    public DateTimeOffset? ObservedSince { get; private set; }

    /// <summary>False until the first sample: the first evaluation reports every clear condition (a fresh controller knows nothing).</summary>
    public bool Initialized { get; private set; }

    /// <summary>Counter windows currently held (bounded by the node's counters that moved within a window).</summary>
    public int WindowCount => _windows.Count;

    /// <summary>Conditions currently reported active.</summary>
    public int ActiveCount => _active.Count;

    internal void Begin(DateTimeOffset time) => ObservedSince ??= time;

    internal void End() => Initialized = true;

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
