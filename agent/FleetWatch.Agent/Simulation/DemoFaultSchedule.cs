using FleetWatch.Contracts;
using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Simulation;

/// <summary>
/// For the all-in-one demo: injects a few faults over the first minutes through the bus, the same path an
/// operator's API call takes, so a new user sees incidents open and resolve.
/// </summary>
public sealed class DemoFaultSchedule(IBus bus, IOptions<SimulationOptions> options, TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        if (!o.DemoFaults || o.Nodes < 4)
        {
            return;
        }

        string Node(int i) => SimulatedFleet.NodeName(o, o.FirstNodeIndex + (i % o.Nodes));
        var plan = new (TimeSpan At, InjectSimulatedFault Fault)[]
        {
            (TimeSpan.FromSeconds(15), new InjectSimulatedFault { Node = Node(3), Kind = SimulatedFaultKind.Xid, Gpu = 5, Xid = 79, For = TimeSpan.FromMinutes(3) }),
            (TimeSpan.FromSeconds(40), new InjectSimulatedFault { Node = Node(17), Kind = SimulatedFaultKind.EccDbe, Gpu = 2, For = TimeSpan.FromSeconds(5) }),
            (TimeSpan.FromSeconds(70), new InjectSimulatedFault { Node = Node(42), Kind = SimulatedFaultKind.NodeSilent, For = TimeSpan.FromMinutes(2) }),
            (TimeSpan.FromSeconds(100), new InjectSimulatedFault { Node = Node(77), Kind = SimulatedFaultKind.Xid, Gpu = 1, Xid = 13 }),
        };
        var start = time.GetUtcNow();
        foreach (var (at, fault) in plan)
        {
            var wait = start + at - time.GetUtcNow();
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, time, stoppingToken).ConfigureAwait(false);
            }

            await bus.Publish(fault, stoppingToken).ConfigureAwait(false);
        }
    }
}
