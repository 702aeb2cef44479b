using FleetWatch.Common;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace FleetWatch.Controller.Stragglers.Live;

/// <summary>Composition of live straggler and hang detection (STYLE.md rule 2).</summary>
public static class LiveStragglerServiceCollectionExtensions
{
    /// <summary>Queue of step reports: its own lane, so a telemetry backlog never delays hang detection and the reverse.</summary>
    public const string StepsQueue = "fleetwatch-steps";

    /// <summary>
    /// Adds the detector (<see cref="StragglerServiceCollectionExtensions.AddStragglerDetection"/>), its live loop
    /// (<see cref="LiveStragglerService"/>) and <see cref="LiveStragglerOptions"/> from <see cref="LiveStragglerOptions.Section"/>,
    /// validated at start. Needs the controller's fleet state, incident manager and notifier (<c>AddFleetController</c>).
    /// </summary>
    public static IServiceCollection AddLiveStragglers(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddStragglerDetection(configuration);
        services.AddValidatedOptions<LiveStragglerOptions>(configuration, LiveStragglerOptions.Section,
            o => ValidatedOptions.Annotations(o.Attribution, $"{LiveStragglerOptions.Section}:{nameof(LiveStragglerOptions.Attribution)}"));
        services.TryAddSingleton(TimeProvider.System);
        services.AddMetrics();
        services.TryAddSingleton<LiveStragglerService>();
        services.AddHostedService(sp => sp.GetRequiredService<LiveStragglerService>());
        return services;
    }

    /// <summary>
    /// The step-report consumers on <see cref="StepsQueue"/>. Several messages may be consumed at once; the detector is still
    /// driven by one loop (the consumers only enqueue).
    /// </summary>
    public static IBusRegistrationConfigurator AddStragglerConsumers(this IBusRegistrationConfigurator bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        bus.AddConsumer<StepTimingsBatchConsumer>().Endpoint(e => e.Name = StepsQueue);
        bus.AddConsumer<StepTimingsConsumer>().Endpoint(e => e.Name = StepsQueue);
        return bus;
    }
}
