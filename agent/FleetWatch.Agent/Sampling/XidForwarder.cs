using FleetWatch.Agent.Publishing;
using FleetWatch.Agent.Sources;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Agent.Sampling;

/// <summary>Publishes every Xid the moment a source sees it (not at the next tick). Each source runs on its own.</summary>
public sealed partial class XidForwarder(IEnumerable<IXidSource> sources, ITelemetryPublisher publisher, Metrics.AgentState state, ILogger<XidForwarder> logger) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(sources.Select(s => ForwardAsync(s, stoppingToken)));

    private async Task ForwardAsync(IXidSource source, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await foreach (var xid in source.WatchAsync(ct).ConfigureAwait(false))
                {
                    state.OnXid(xid);
                    await publisher.PublishXidAsync(xid, ct).ConfigureAwait(false);
                }

                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogSourceFailed(logger, source.GetType().Name, ex);
                await Task.Delay(TimeSpan.FromSeconds(5), ct).ConfigureAwait(false);
            }
        }
    }

    [LoggerMessage(EventId = 130, Level = LogLevel.Error, Message = "Xid source {Source} failed; restarting it in 5 s")]
    private static partial void LogSourceFailed(ILogger logger, string source, Exception exception);
}
