using FleetWatch.Contracts;

namespace FleetWatch.Agent.Publishing;

/// <summary>Where the agent's messages go (the bus; a disk spool wraps it while the broker is away).</summary>
public interface ITelemetryPublisher
{
    Task PublishSampleAsync(NodeSample sample, CancellationToken cancellationToken);

    Task PublishXidAsync(GpuXidObserved xid, CancellationToken cancellationToken);
}
