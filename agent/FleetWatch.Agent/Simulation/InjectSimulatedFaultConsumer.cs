using FleetWatch.Agent.Publishing;
using FleetWatch.Contracts;
using MassTransit;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Agent.Simulation;

/// <summary>
/// Applies a fault to the simulated fleet. An Xid fault is also published at once as <see cref="GpuXidObserved"/>,
/// the way the kmsg watcher publishes a real one (not at the next tick).
/// </summary>
public sealed partial class InjectSimulatedFaultConsumer(
    SimulatedFleet fleet,
    ITelemetryPublisher publisher,
    TimeProvider time,
    ILogger<InjectSimulatedFaultConsumer> logger) : IConsumer<InjectSimulatedFault>
{
    public async Task Consume(ConsumeContext<InjectSimulatedFault> context)
    {
        var fault = context.Message;
        if (!fleet.Inject(fault))
        {
            return; // another agent simulates that node
        }

        LogInjected(logger, fault.Kind, fault.Node, fault.Gpu);
        if (fault.Kind == SimulatedFaultKind.Xid && fault.Xid is { } xid)
        {
            await publisher.PublishXidAsync(
                new GpuXidObserved
                {
                    Node = fault.Node,
                    Time = time.GetUtcNow(),
                    Xid = xid,
                    GpuIndex = fault.Gpu,
                    Message = $"simulated Xid {xid}",
                    Source = XidSource.Simulator,
                },
                context.CancellationToken).ConfigureAwait(false);
        }
    }

    [LoggerMessage(EventId = 110, Level = LogLevel.Information, Message = "Simulated fault {Kind} injected on {Node} GPU {Gpu}")]
    private static partial void LogInjected(ILogger logger, SimulatedFaultKind kind, string node, int? gpu);
}
