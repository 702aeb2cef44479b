using FleetWatch.Contracts;
using FleetWatch.Controller.Fleet;
using MassTransit;

namespace FleetWatch.Controller.Ingest;

/// <summary>Thin consumer: validate, then hand to the pipeline (STYLE.md rule 11).</summary>
public sealed class NodeSampleConsumer(DetectionPipeline pipeline) : IConsumer<NodeSample>
{
    public async Task Consume(ConsumeContext<NodeSample> context)
    {
        TelemetryValidation.Validate(context.Message);
        await pipeline.OnSampleAsync(context.Message, context.CancellationToken).ConfigureAwait(false);
    }
}

/// <summary>Xid events travel on their own queue so a telemetry backlog never delays them.</summary>
public sealed class GpuXidObservedConsumer(DetectionPipeline pipeline) : IConsumer<GpuXidObserved>
{
    public async Task Consume(ConsumeContext<GpuXidObserved> context)
    {
        TelemetryValidation.Validate(context.Message);
        await pipeline.OnXidAsync(context.Message, context.CancellationToken).ConfigureAwait(false);
    }
}

/// <summary>Answers a dashboard's request for the full fleet state.</summary>
public sealed class GetFleetSnapshotConsumer(FleetFrameBuilder frames) : IConsumer<GetFleetSnapshot>
{
    public Task Consume(ConsumeContext<GetFleetSnapshot> context) => context.RespondAsync(frames.LastSnapshot());
}
