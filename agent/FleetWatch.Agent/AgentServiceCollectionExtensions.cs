using FleetWatch.Agent.Publishing;
using FleetWatch.Agent.Sampling;
using FleetWatch.Agent.Simulation;
using FleetWatch.Common;
using FleetWatch.Agent.Sources;
using FleetWatch.Agent.Sources.Infiniband;
using FleetWatch.Agent.Sources.Kmsg;
using FleetWatch.Agent.Sources.Nvml;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace FleetWatch.Agent;

/// <summary>Composition of the agent, one extension per concern (STYLE.md rule 2).</summary>
public static class AgentServiceCollectionExtensions
{
    /// <summary>Sampler options, metrics and the bus publisher.</summary>
    public static IServiceCollection AddAgentCore(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddValidatedOptions<SamplingOptions>(configuration, SamplingOptions.Section);
        services.AddMetrics();
        services.AddSingleton<AgentMetrics>();
        services.AddSingleton<Metrics.AgentState>();
        services.AddSingleton<BusTelemetryPublisher>();
        services.AddValidatedOptions<SpoolOptions>(configuration, SpoolOptions.Section);
        if (configuration.GetSection(SpoolOptions.Section).GetValue(nameof(SpoolOptions.Enabled), true))
        {
            services.AddSingleton<SpoolingPublisher>();
            services.AddSingleton<ITelemetryPublisher>(sp => sp.GetRequiredService<SpoolingPublisher>());
            services.AddHostedService(sp => sp.GetRequiredService<SpoolingPublisher>());
        }
        else
        {
            services.AddSingleton<ITelemetryPublisher>(sp => sp.GetRequiredService<BusTelemetryPublisher>());
        }
        services.TryAddSingleton(TimeProvider.System);
        return services;
    }

    /// <summary>A simulated fleet of GPU nodes published on each tick (demo, tests, load tests).</summary>
    public static IServiceCollection AddSimulatedFleet(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddValidatedOptions<SimulationOptions>(configuration, SimulationOptions.Section);
        services.AddSingleton<SimulatedFleet>();
        services.AddSingleton<SimulatedSamplerLoop>();
        services.AddHostedService(sp => sp.GetRequiredService<SimulatedSamplerLoop>());
        services.AddHostedService<DemoFaultSchedule>();
        return services;
    }

    /// <summary>The agent on a real GPU node: NVML, kmsg Xid watcher, InfiniBand sysfs, one sample per tick.</summary>
    public static IServiceCollection AddHardwareSources(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddValidatedOptions<NvmlOptions>(configuration, NvmlOptions.Section);
        services.AddSingleton<NvmlGpuSource>();
        services.AddSingleton<IGpuSource>(sp => sp.GetRequiredService<NvmlGpuSource>());
        services.AddSingleton<IGpuPciMap>(sp => sp.GetRequiredService<NvmlGpuSource>());
        services.AddSysfsInfiniband(configuration);
        services.AddKmsgXidWatcher(configuration);
        services.AddSingleton<IXidSource, NvmlXidEventSource>();
        // One node name for samples and Xid events.
        services.PostConfigure<KmsgXidWatcherOptions>(k => k.NodeName ??= configuration[$"{SamplingOptions.Section}:NodeName"]);
        services.AddHostedService<HardwareSamplerLoop>();
        services.AddHostedService<XidForwarder>();
        return services;
    }

    /// <summary>The agent's command consumers. Every agent gets every command: each has its own temporary queue.</summary>
    public static IBusRegistrationConfigurator AddAgentConsumers(this IBusRegistrationConfigurator bus, string instanceId)
    {
        bus.AddConsumer<InjectSimulatedFaultConsumer>()
            .Endpoint(e =>
            {
                e.Name = $"fleetwatch-agent-commands-{instanceId}";
                e.Temporary = true;
            });
        return bus;
    }
}
