using FleetWatch.Contracts;
using MassTransit;

namespace FleetWatch.Controller.Stragglers.Live;

/// <summary>Thin consumer (STYLE.md rule 11): hands an agent's batch of step reports to the single detector loop.</summary>
public sealed class StepTimingsBatchConsumer(LiveStragglerService live) : IConsumer<StepTimingsBatch>
{
    /// <inheritdoc />
    public async Task Consume(ConsumeContext<StepTimingsBatch> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.Message.Steps is { Count: > 0 } steps)
        {
            await live.EnqueueAsync(steps, context.CancellationToken).ConfigureAwait(false);
        }
    }
}

/// <summary>Thin consumer for a single report (a publisher that does not batch, such as a simulator).</summary>
public sealed class StepTimingsConsumer(LiveStragglerService live) : IConsumer<StepTimings>
{
    /// <inheritdoc />
    public async Task Consume(ConsumeContext<StepTimings> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        await live.EnqueueAsync([context.Message], context.CancellationToken).ConfigureAwait(false);
    }
}
