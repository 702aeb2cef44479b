using FleetWatch.Contracts;
using MassTransit;

namespace FleetWatch.Agent.Publishing;

/// <summary>Publishes telemetry on the MassTransit bus (RabbitMQ or in-memory by configuration).</summary>
public sealed class BusTelemetryPublisher(IBus bus, AgentMetrics metrics) : ITelemetryPublisher
{
    public async Task PublishSampleAsync(NodeSample sample, CancellationToken cancellationToken)
    {
        await bus.Publish(sample, cancellationToken).ConfigureAwait(false);
        metrics.SamplesPublished.Add(1);
    }

    public async Task PublishXidAsync(GpuXidObserved xid, CancellationToken cancellationToken)
    {
        await bus.Publish(xid, cancellationToken).ConfigureAwait(false);
        metrics.XidsPublished.Add(1);
    }
}
