using FleetWatch.Contracts;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Publishing;

/// <summary>
/// Never loses a message while the broker is away: a publish that fails or does not complete within
/// <see cref="SpoolOptions.PublishTimeout"/> goes to the <see cref="DiskSpool"/>, and while the spool holds anything
/// every new message joins it too (order is kept). A background loop replays the spool, Xid events first, once the
/// broker answers again. A broker client alone keeps unsent messages only in memory: an agent restart during an outage
/// would lose them. The transport it wraps is the <see cref="ITelemetryPublisher"/> registered under
/// <see cref="AgentServiceCollectionExtensions.TransportKey"/> (<see cref="RabbitMqPublisher"/> on a node,
/// <see cref="BusTelemetryPublisher"/> in the all-in-one and simulated modes).
/// </summary>
public sealed partial class SpoolingPublisher : BackgroundService, ITelemetryPublisher
{
    private readonly ITelemetryPublisher _bus;
    private readonly SpoolOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<SpoolingPublisher> _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly DiskSpool _spool;
    private long _spooled;
    private long _replayed;

    public SpoolingPublisher([Microsoft.Extensions.DependencyInjection.FromKeyedServices(AgentServiceCollectionExtensions.TransportKey)] ITelemetryPublisher bus, IOptions<SpoolOptions> options, TimeProvider time, ILogger<SpoolingPublisher> logger)
    {
        _bus = bus;
        _options = options.Value;
        _time = time;
        _logger = logger;
        _spool = new DiskSpool(_options.Path, _options.MaxBytes, _options.SegmentMessages);
        if (!_spool.IsEmpty)
        {
            LogResumed(logger, _spool.Count, _options.Path);
        }
    }

    public long Spooled => Interlocked.Read(ref _spooled);
    public long Replayed => Interlocked.Read(ref _replayed);
    public long Dropped => _spool.Dropped;
    public long Pending => _spool.Count;

    public Task PublishSampleAsync(NodeSample sample, CancellationToken cancellationToken) =>
        PublishAsync(sample, s => _bus.PublishSampleAsync(s, cancellationToken), s => _spool.Append(s), cancellationToken);

    public Task PublishXidAsync(GpuXidObserved xid, CancellationToken cancellationToken) =>
        PublishAsync(xid, x => _bus.PublishXidAsync(x, cancellationToken), x => _spool.Append(x), cancellationToken);

    private async Task PublishAsync<T>(T message, Func<T, Task> publish, Action<T> spool, CancellationToken ct)
    {
        if (!_spool.IsEmpty)
        {
            await SpoolAsync(message, spool).ConfigureAwait(false);
            return;
        }

        // A publish cut short by shutdown (SIGTERM) is spooled too, so a restart replays it.
        if (!await TryAsync(() => publish(message)).ConfigureAwait(false))
        {
            await SpoolAsync(message, spool).ConfigureAwait(false);
        }

        ct.ThrowIfCancellationRequested();
    }

    private async Task SpoolAsync<T>(T message, Action<T> spool)
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            var wasEmpty = _spool.IsEmpty;
            spool(message);
            Interlocked.Increment(ref _spooled);
            if (wasEmpty)
            {
                LogSpooling(_logger, _options.Path);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            if (_spool.IsEmpty)
            {
                await Task.Delay(_options.RetryInterval, _time, stoppingToken).ConfigureAwait(false);
                continue;
            }

            var drained = await DrainAsync(stoppingToken).ConfigureAwait(false);
            if (drained)
            {
                LogDrained(_logger, Replayed, Dropped);
            }
            else
            {
                await Task.Delay(_options.RetryInterval, _time, stoppingToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Publishes spooled messages in order until empty (true) or the broker fails again (false).</summary>
    private async Task<bool> DrainAsync(CancellationToken ct)
    {
        while (true)
        {
            await _gate.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                var next = _spool.Peek();
                if (next is null)
                {
                    return true;
                }

                var ok = await TryAsync(
                    () => next is GpuXidObserved x ? _bus.PublishXidAsync(x, ct) : _bus.PublishSampleAsync((NodeSample)next, ct)).ConfigureAwait(false);
                if (!ok)
                {
                    return false;
                }

                _spool.Remove();
                Interlocked.Increment(ref _replayed);
            }
            finally
            {
                _gate.Release();
            }
        }
    }

    private async Task<bool> TryAsync(Func<Task> publish)
    {
        try
        {
            await publish().WaitAsync(_options.PublishTimeout, _time).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException or MassTransit.MassTransitException or System.Net.Sockets.SocketException or IOException or InvalidOperationException)
        {
            // Broker unreachable or blocking, or the publish was cut short by shutdown: the caller spools it.
            return false;
        }
    }

    [LoggerMessage(EventId = 140, Level = LogLevel.Warning, Message = "Broker unreachable: spooling to {Path}")]
    private static partial void LogSpooling(ILogger logger, string path);

    [LoggerMessage(EventId = 141, Level = LogLevel.Information, Message = "Spool drained: {Replayed} messages replayed since start, {Dropped} dropped at the bound")]
    private static partial void LogDrained(ILogger logger, long replayed, long dropped);

    [LoggerMessage(EventId = 142, Level = LogLevel.Warning, Message = "Resuming with {Count} spooled messages in {Path}")]
    private static partial void LogResumed(ILogger logger, long count, string path);
}
