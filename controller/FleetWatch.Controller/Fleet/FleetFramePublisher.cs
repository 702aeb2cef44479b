using FleetWatch.Contracts;
using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Controller.Fleet;

/// <summary>Publishes a fleet frame every second (a delta; a full snapshot every 30th frame for late joiners).</summary>
public sealed partial class FleetFramePublisher(FleetFrameBuilder builder, IBus bus, TimeProvider time, ILogger<FleetFramePublisher> logger) : BackgroundService
{
    /// <summary>Dashboards push at most one update per second (issue: ≤ 1 update/s).</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    private const int SnapshotEvery = 30;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            try
            {
                var frame = builder.Next();
                await bus.Publish(frame.Version % SnapshotEvery == 0 ? builder.LastSnapshot() : frame, stoppingToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogFailed(logger, ex);
            }
        }
    }

    [LoggerMessage(EventId = 500, Level = LogLevel.Warning, Message = "Publishing a fleet frame failed")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
