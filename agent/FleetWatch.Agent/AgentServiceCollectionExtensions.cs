using FleetWatch.Agent.Publishing;
using FleetWatch.Agent.Sampling;
using FleetWatch.Agent.Simulation;
using FleetWatch.Common;
using FleetWatch.Agent.Sources;
using FleetWatch.Agent.Sources.Infiniband;
using FleetWatch.Agent.Sources.Kmsg;
using FleetWatch.Agent.Sources.Nvml;
using FleetWatch.Agent.Sources.Steps;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace FleetWatch.Agent;

/// <summary>Composition of the agent, one extension per concern (STYLE.md rule 2).</summary>
public static class AgentServiceCollectionExtensions
{
    /// <summary>Key of the <see cref="ITelemetryPublisher"/> that reaches the broker, which the disk spool wraps.</summary>
    public const string TransportKey = "fleetwatch-agent-transport";

    /// <summary>
    /// Sampler options, metrics and the publisher the sources use: the disk spool (<see cref="SpoolingPublisher"/>) around
    /// the transport that <see cref="AddAgentBroker"/> or <see cref="AddAgentBus"/> registers.
    /// </summary>
    public static IServiceCollection AddAgentCore(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddValidatedOptions<SamplingOptions>(configuration, SamplingOptions.Section, static (c, o) => c.Bind(o));
        services.AddMetrics();
        services.TryAddSingleton<AgentMetrics>();
        services.AddSingleton<Metrics.AgentState>();
        services.AddValidatedOptions<SpoolOptions>(configuration, SpoolOptions.Section, static (c, o) => c.Bind(o));
        if (configuration.GetSection(SpoolOptions.Section).GetValue(nameof(SpoolOptions.Enabled), true))
        {
            services.AddSingleton<SpoolingPublisher>();
            services.AddSingleton<ITelemetryPublisher>(sp => sp.GetRequiredService<SpoolingPublisher>());
            services.AddHostedService(sp => sp.GetRequiredService<SpoolingPublisher>());
        }
        else
        {
            services.AddSingleton<ITelemetryPublisher>(sp => sp.GetRequiredKeyedService<ITelemetryPublisher>(TransportKey));
        }

        services.TryAddSingleton(TimeProvider.System);
        return services;
    }

    /// <summary>
    /// The node agent's transport: <see cref="RabbitMqPublisher"/> (the official RabbitMQ client, MassTransit's envelope)
    /// for telemetry, Xid events and step batches, with <see cref="BrokerOptions"/> from <c>FleetWatch:Bus:RabbitMq</c>.
    /// </summary>
    public static IServiceCollection AddAgentBroker(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddValidatedOptions<BrokerOptions>(configuration, BrokerOptions.Section, static (c, o) => c.Bind(o));
        services.TryAddSingleton<AgentMetrics>();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<RabbitMqPublisher>();
        services.AddKeyedSingleton<ITelemetryPublisher>(TransportKey, (sp, _) => sp.GetRequiredService<RabbitMqPublisher>());
        services.TryAddSingleton<IStepTimingsPublisher>(sp => sp.GetRequiredService<RabbitMqPublisher>());
        return services;
    }

    /// <summary>The MassTransit bus as transport (the all-in-one process and the simulated fleet, which also consume commands).</summary>
    public static IServiceCollection AddAgentBus(this IServiceCollection services)
    {
        services.TryAddSingleton<AgentMetrics>();
        services.TryAddSingleton<BusTelemetryPublisher>();
        services.AddKeyedSingleton<ITelemetryPublisher>(TransportKey, (sp, _) => sp.GetRequiredService<BusTelemetryPublisher>());
        services.TryAddSingleton<IStepTimingsPublisher, BusStepTimingsPublisher>();
        return services;
    }

    /// <summary>A simulated fleet of GPU nodes published on each tick (demo, tests, load tests).</summary>
    public static IServiceCollection AddSimulatedFleet(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddValidatedOptions<SimulationOptions>(configuration, SimulationOptions.Section, static (c, o) => c.Bind(o));
        services.AddSingleton<SimulatedFleet>();
        services.AddSingleton<SimulatedSamplerLoop>();
        services.AddHostedService(sp => sp.GetRequiredService<SimulatedSamplerLoop>());
        services.AddHostedService<DemoFaultSchedule>();
        return services;
    }

    /// <summary>The agent on a real GPU node: NVML, kmsg Xid watcher, InfiniBand sysfs, one sample per tick.</summary>
    public static IServiceCollection AddHardwareSources(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddValidatedOptions<NvmlOptions>(configuration, NvmlOptions.Section, static (c, o) => c.Bind(o));
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
