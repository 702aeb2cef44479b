using FleetWatch.Contracts;
using MassTransit;

namespace FleetWatch.Agent.Sources.Steps;

/// <summary>
/// Where batches of step reports go. Its own small interface, not part of the telemetry publisher: step reports are
/// not spooled to disk (a report minutes old tells the straggler detector nothing it can still act on; a hang shows
/// as missing reports anyway), so they need none of the spool's machinery.
/// </summary>
public interface IStepTimingsPublisher
{
    /// <summary>Publishes one batch.</summary>
    Task PublishStepsAsync(StepTimingsBatch batch, CancellationToken cancellationToken);
}

/// <summary>
/// Publishes step batches on the MassTransit bus (RabbitMQ or in-memory by configuration). Takes <see cref="IBus"/>, a
/// singleton, not <see cref="IPublishEndpoint"/>, which MassTransit registers scoped (a singleton holding it fails scope validation).
/// </summary>
public sealed class BusStepTimingsPublisher(IBus bus) : IStepTimingsPublisher
{
    /// <inheritdoc />
    public Task PublishStepsAsync(StepTimingsBatch batch, CancellationToken cancellationToken) => bus.Publish(batch, cancellationToken);
}
