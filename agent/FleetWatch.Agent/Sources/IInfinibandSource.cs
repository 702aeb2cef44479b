using FleetWatch.Contracts;

namespace FleetWatch.Agent.Sources;

/// <summary>Reads the node's InfiniBand ports (state, rate, cumulative counters) once per call.</summary>
public interface IInfinibandSource
{
    /// <summary>One sample per port found; an unreadable port or file is skipped and counted, never thrown.</summary>
    IReadOnlyList<IbPortSample> Read();
}
