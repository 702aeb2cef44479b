using FleetWatch.Contracts;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Sources.Steps;

/// <summary>
/// Sends the buffered step reports once per <see cref="StepEndpointOptions.FlushInterval"/> as <see cref="StepTimingsBatch"/>
/// messages, one per node and tick (several when more than <see cref="StepEndpointOptions.MaxBatchSize"/> are waiting).
/// A failed or slow publish is logged and counted and the loop goes on (STYLE.md rule 7); while the broker is stuck the
/// buffer fills and drops its oldest reports, counted.
/// </summary>
public sealed partial class StepBatchPublisher(
    StepBuffer buffer,
    IStepTimingsPublisher publisher,
    StepEndpointCounters counters,
    IOptions<StepEndpointOptions> options,
    StepNodeName node,
    TimeProvider time,
    ILogger<StepBatchPublisher> logger) : BackgroundService
{
    /// <summary>Sends everything buffered now. Public for tests; the loop calls it every tick.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        while (buffer.Count > 0)
        {
            var steps = buffer.Take(o.MaxBatchSize);
            if (steps.Count == 0)
            {
                return;
            }

            var batch = new StepTimingsBatch { Node = node.Value, Time = time.GetUtcNow(), Steps = steps, DroppedTotal = counters.Dropped };
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(o.PublishTimeout);
            try
            {
                await publisher.PublishStepsAsync(batch, timeout.Token).ConfigureAwait(false);
                counters.OnPublished(steps.Count);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                // A broker error or the publish timeout: this batch is lost (counted); the next tick tries again.
                counters.OnPublishFailed();
                LogPublishFailed(logger, steps.Count, ex.Message);
                return;
            }
        }
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.FlushInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                await FlushAsync(stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: one last flush below.
        }

        // What arrived since the last tick goes out before the agent exits, within the publish timeout.
        await FlushAsync(CancellationToken.None).ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 140, Level = LogLevel.Warning, Message = "Publishing {Count} step reports failed: {Error}")]
    private static partial void LogPublishFailed(ILogger logger, int count, string error);
}

/// <summary>The node name put on step reports (resolved once from the options, the sampler's node name, or the host name).</summary>
/// <param name="Value">The node name.</param>
public sealed record StepNodeName(string Value);
