using FleetWatch.Contracts;

namespace FleetWatch.Agent.Sources;

/// <summary>
/// A live source of Xid observations (NVML events, the kernel log, the simulator). Each observation is
/// yielded the moment it is seen; the agent publishes it at once, not at the next tick.
/// </summary>
public interface IXidSource
{
    /// <summary>Watches until <paramref name="ct"/> is cancelled; transient read errors are logged and counted, never thrown.</summary>
    IAsyncEnumerable<GpuXidObserved> WatchAsync(CancellationToken ct);
}
