using FleetWatch.Agent.Sampling;
using FleetWatch.Common;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace FleetWatch.Agent.Sources.Steps;

/// <summary>Composition of the step endpoint (STYLE.md rule 2).</summary>
public static class StepEndpointServiceCollectionExtensions
{
    /// <summary>
    /// Adds the node-local step endpoint (<see cref="StepEndpointServer"/>, its own loopback port), the bounded buffer and the
    /// flush loop that publishes <c>StepTimingsBatch</c> messages, with <see cref="StepEndpointOptions"/> bound from
    /// <see cref="StepEndpointOptions.Section"/> and validated at start. Publishes through the <see cref="IStepTimingsPublisher"/>
    /// the agent's transport registers (<c>AddAgentBroker</c> or <c>AddAgentBus</c>). With <c>Enabled = false</c> only the
    /// options are registered.
    /// </summary>
    public static IServiceCollection AddStepEndpoint(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddValidatedOptions<StepEndpointOptions>(configuration, StepEndpointOptions.Section, static (c, o) => c.Bind(o), StepEndpointOptions.Validate);
        if (!configuration.GetSection(StepEndpointOptions.Section).GetValue(nameof(StepEndpointOptions.Enabled), true))
        {
            return services;
        }

        services.AddMetrics();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<StepEndpointCounters>();
        services.TryAddSingleton<StepBuffer>();
        services.TryAddSingleton(_ => new StepNodeName(
            configuration[$"{StepEndpointOptions.Section}:{nameof(StepEndpointOptions.NodeName)}"] is { Length: > 0 } own ? own
            : configuration[$"{SamplingOptions.Section}:{nameof(SamplingOptions.NodeName)}"] is { Length: > 0 } sampler ? sampler
            : Environment.MachineName.ToLowerInvariant()));
        services.TryAddSingleton<StepEndpointServer>();
        services.TryAddSingleton<StepBatchPublisher>();
        // Hosted services stop in reverse order: the endpoint stops taking reports first, then the loop sends what is left.
        services.AddHostedService(sp => sp.GetRequiredService<StepBatchPublisher>());
        services.AddHostedService(sp => sp.GetRequiredService<StepEndpointServer>());
        return services;
    }
}
