using System.Threading.Channels;
using FleetWatch.Contracts;
using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Dashboard.Fleet;

/// <summary>
/// Asks the controller for a <see cref="FleetFrame"/> snapshot at start and whenever <see cref="FleetView"/> lost the
/// thread of the deltas, retrying with exponential backoff (capped, with jitter so many dashboards do not ask in step)
/// until the controller answers. Requests are coalesced: one in flight, at most one queued.
/// </summary>
public sealed partial class FleetSnapshotLoader : BackgroundService
{
    private readonly Channel<bool> requests = Channel.CreateBounded<bool>(
        new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });

    private readonly FleetView view;
    private readonly IClientFactory clients;
    private readonly DashboardInstance instance;
    private readonly DashboardOptions options;
    private readonly TimeProvider time;
    private readonly ILogger<FleetSnapshotLoader> logger;
    private long requestsSent;

    public FleetSnapshotLoader(
        FleetView view, IClientFactory clients, DashboardInstance instance, IOptions<DashboardOptions> options,
        TimeProvider time, ILogger<FleetSnapshotLoader> logger)
    {
        this.view = view;
        this.clients = clients;
        this.instance = instance;
        this.options = options.Value;
        this.time = time;
        this.logger = logger;
        RequestSnapshot();
    }

    /// <summary>Snapshot requests sent to the controller so far (each retry counts).</summary>
    public long RequestsSent => Interlocked.Read(ref requestsSent);

    /// <summary>Queues a snapshot request; a no-op when one is already queued.</summary>
    public void RequestSnapshot() => requests.Writer.TryWrite(true);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var client = clients.CreateRequestClient<GetFleetSnapshot>(RequestTimeout.After(ms: (int)options.SnapshotTimeout.TotalMilliseconds));
        await foreach (var _ in requests.Reader.ReadAllAsync(stoppingToken))
        {
            var delay = options.SnapshotRetryInitial;
            for (var attempt = 1; ; attempt++)
            {
                if (await TryLoadAsync(client, attempt, stoppingToken))
                {
                    break;
                }

                var jittered = delay * (0.8 + (0.4 * Random.Shared.NextDouble()));
                await Task.Delay(jittered, time, stoppingToken);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, options.SnapshotRetryMax.Ticks));
            }
        }
    }

    private async Task<bool> TryLoadAsync(IRequestClient<GetFleetSnapshot> client, int attempt, CancellationToken cancellationToken)
    {
        try
        {
            Interlocked.Increment(ref requestsSent);
            // A request nobody answered in time must not wait in the controller's queue: a long outage would
            // otherwise end with the controller answering every retry with a full snapshot.
            var response = await client.GetResponse<FleetFrame>(
                new GetFleetSnapshot(instance.Requester),
                x => x.UseExecute(context => context.TimeToLive = options.SnapshotTimeout),
                cancellationToken);
            var frame = response.Message;
            if (!frame.IsSnapshot)
            {
                LogNotASnapshot(frame.ControllerRun, frame.Version);
                return false;
            }

            var result = view.Apply(frame);
            LogSnapshotLoaded(frame.ControllerRun, frame.Version, frame.Cells.Count, result, attempt);
            return true;
        }
        catch (RequestTimeoutException)
        {
            LogControllerSilent(attempt, options.SnapshotTimeout);
            return false;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // A broker that is still starting or briefly away: keep asking, never stop the dashboard.
            LogRequestFailed(ex, attempt);
            return false;
        }
    }

    [LoggerMessage(EventId = 2001, Level = LogLevel.Information,
        Message = "Fleet snapshot {ControllerRun} v{Version} with {Cells} cells: {Result} (attempt {Attempt})")]
    private partial void LogSnapshotLoaded(string controllerRun, long version, int cells, FrameApplyResult result, int attempt);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Warning,
        Message = "Waiting for controller: no fleet snapshot within {Timeout} (attempt {Attempt}); retrying with backoff")]
    private partial void LogControllerSilent(int attempt, TimeSpan timeout);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Warning, Message = "Fleet snapshot request failed (attempt {Attempt}); retrying with backoff")]
    private partial void LogRequestFailed(Exception exception, int attempt);

    [LoggerMessage(EventId = 2004, Level = LogLevel.Warning,
        Message = "Controller answered GetFleetSnapshot with a delta ({ControllerRun} v{Version}); asking again")]
    private partial void LogNotASnapshot(string controllerRun, long version);
}

/// <summary>Identity of this dashboard process on the bus: names its own frame queue and its snapshot requests.</summary>
public sealed record DashboardInstance(string Id)
{
    public string Requester => "dashboard-" + Id;
}
