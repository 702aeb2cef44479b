using FleetWatch.Contracts;

namespace FleetWatch.Agent.Metrics;

/// <summary>What the agent last saw, for /metrics and the readiness probe. Thread-safe by reference swaps.</summary>
public sealed class AgentState
{
    private NodeSample? _latest;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<int, int> _lastXidByGpu = new();
    private long _lastSampleTicks;

    public NodeSample? Latest => Volatile.Read(ref _latest);

    /// <summary>When the last sample was taken (TimeProvider ticks), 0 before the first.</summary>
    public long LastSampleTicks => Interlocked.Read(ref _lastSampleTicks);

    public IReadOnlyDictionary<int, int> LastXidByGpu => _lastXidByGpu;

    public void OnSample(NodeSample sample)
    {
        Volatile.Write(ref _latest, sample);
        Interlocked.Exchange(ref _lastSampleTicks, sample.Time.UtcTicks);
    }

    public void OnXid(GpuXidObserved xid)
    {
        if (xid.GpuIndex is { } gpu && xid.Xid is { } number)
        {
            _lastXidByGpu[gpu] = number;
        }
    }
}
