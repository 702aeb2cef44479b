using FleetWatch.Controller.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Controller.Incidents;

public static class IncidentServiceCollectionExtensions
{
    /// <summary>
    /// Persists incidents, the notification log, silences and maintenance windows in the controller store, and hands
    /// over at start what a crash left emitted but undelivered. Call after <c>AddDetection</c>. Without it (the offline
    /// replay) the incident manager keeps everything in memory.
    /// </summary>
    public static IServiceCollection AddIncidentStore(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddControllerStore(configuration);
        services.AddStoreSchema(IncidentStore.SchemaName, IncidentStore.Schema);
        services.TryAddSingleton<IncidentStore>();
        services.AddHostedService<IncidentRecoveryService>();
        return services;
    }
}

/// <summary>
/// At start, loads the open incidents (so owed notifications and repeats resume at the next sweep) and, once the
/// host has started (the bus is up), hands to delivery the notifications emitted but not handed over before the stop.
/// </summary>
internal sealed partial class IncidentRecoveryService(
    IncidentManager incidents, IServiceProvider services, IHostApplicationLifetime lifetime, ILogger<IncidentRecoveryService> logger) : IHostedService
{
    private readonly CancellationTokenSource _stopping = new();
    private Task _recovery = Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _ = incidents.Open(); // loads the store now, not on the first sample
        lifetime.ApplicationStarted.Register(() => _recovery = RecoverAsync());
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _recovery.WaitAsync(cancellationToken).ConfigureAwait(false);
        _stopping.Dispose();
    }

    private async Task RecoverAsync()
    {
        try
        {
            await services.GetRequiredService<IncidentNotifier>().RecoverAsync(_stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            // stopping
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Left in the log: the next start tries again.
            LogRecoveryFailed(logger, ex);
        }
    }

    [LoggerMessage(EventId = 211, Level = LogLevel.Error, Message = "Handing over notifications left by the last stop failed; the next start retries")]
    private static partial void LogRecoveryFailed(ILogger logger, Exception exception);
}
