using FleetWatch.Controller.Fleet;
using Quartz;

namespace FleetWatch.Controller.Scheduling;

/// <summary>Quartz job: the time-driven rules (silent nodes, event expiry, incident resolution).</summary>
[DisallowConcurrentExecution]
public sealed class FleetSweepJob(DetectionPipeline pipeline) : IJob
{
    public static readonly JobKey Key = new("fleet-sweep", "detection");

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken) => await pipeline.SweepAsync(cancellationToken).ConfigureAwait(false);
}
