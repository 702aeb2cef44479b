using FleetWatch.Common;
using FleetWatch.Controller.Alerting;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Fleet;
using FleetWatch.Controller.Incidents;
using FleetWatch.Controller.Ingest;
using FleetWatch.Controller.Remediation.Rebalancing;
using FleetWatch.Controller.Scheduling;
using FleetWatch.Controller.Telemetry;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Quartz;

namespace FleetWatch.Controller;

/// <summary>Composition of the controller, one extension per concern (STYLE.md rule 2).</summary>
public static class ControllerServiceCollectionExtensions
{
    /// <summary>Queue of node samples (high volume, may lag under load).</summary>
    public const string TelemetryQueue = "fleetwatch-telemetry";

    /// <summary>Queue of Xid events: its own lane so a telemetry backlog never delays them.</summary>
    public const string XidQueue = "fleetwatch-xid";

    public const string SnapshotQueue = "fleetwatch-fleet-snapshot";

    /// <summary>Expert-load reports of MoE jobs (low volume: one per job per window).</summary>
    public const string ExpertLoadQueue = "fleetwatch-expert-load";

    /// <summary>Fleet state, detectors, incidents, alert delivery, telemetry sink, fleet frames and the sweep schedule.</summary>
    public static IServiceCollection AddFleetController(this IServiceCollection services, IConfiguration configuration)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddMetrics();
        services.AddDetection(configuration);
        services.AddIncidentStore(configuration);
        services.AddAlerting(configuration);
        services.AddValidatedOptions<TelemetrySinkOptions>(configuration, TelemetrySinkOptions.Section, ValidateSink);
        services.AddSingleton<InfluxTelemetrySink>();
        services.AddHostedService(sp => sp.GetRequiredService<InfluxTelemetrySink>());
        services.AddSingleton<FleetFrameBuilder>();
        services.AddHostedService<FleetFramePublisher>();
        services.AddFleetSweep(configuration);
        services.AddExpertRebalancing(configuration);
        return services;
    }

    public static IServiceCollection AddDetection(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddValidatedOptions<DetectionOptions>(configuration, DetectionOptions.Section, ValidateDetection);
        services.AddValidatedOptions<IncidentOptions>(configuration, IncidentOptions.Section, IncidentOptions.Validate);
        services.AddSingleton(_ => XidCatalog.LoadEmbedded());
        services.AddSingleton<FleetState>();
        services.AddSingleton<FleetMetrics>();
        services.AddSingleton<IncidentManager>();
        services.AddSingleton<IncidentNotifier>();
        services.AddSingleton<XidTracker>();
        services.TryAddSingleton<IGpuJobResolver, NoGpuJobResolver>();
        services.AddSingleton<DetectionEngine>();
        services.AddSingleton<DetectionPipeline>();
        return services;
    }

    /// <summary>Alert delivery (receivers, routes, persistent outbox): see <see cref="AlertingServiceCollectionExtensions.AddAlertDelivery"/>.</summary>
    public static IServiceCollection AddAlerting(this IServiceCollection services, IConfiguration configuration) =>
        services.AddAlertDelivery(configuration);

    public static IServiceCollection AddFleetSweep(this IServiceCollection services, IConfiguration configuration)
    {
        var interval = configuration.GetSection(DetectionOptions.Section).Get<DetectionOptions>()?.SweepInterval ?? TimeSpan.FromSeconds(1);
        services.AddQuartz(q =>
        {
            q.AddJob<FleetSweepJob>(j => j.WithIdentity(FleetSweepJob.Key));
            q.AddTrigger(t => t.ForJob(FleetSweepJob.Key).WithIdentity("fleet-sweep-trigger", "detection")
                .WithSimpleSchedule(s => s.WithInterval(interval).RepeatForever()).StartNow());
        });
        services.AddQuartzHostedService(o => o.WaitForJobsToComplete = true);
        return services;
    }

    /// <summary>The controller's consumers with their lanes. Samples are validated; invalid ones go to the error queue unretried.</summary>
    public static IBusRegistrationConfigurator AddFleetControllerConsumers(this IBusRegistrationConfigurator bus, int prefetchCount = 256, int concurrentMessageLimit = 64)
    {
        bus.TryAddSingleton<NodeSampleEnvelopeDeserializer>();
        bus.AddConsumer<NodeSampleConsumer>(c => c.UseMessageRetry(r => { r.Ignore<InvalidTelemetryException>(); r.Intervals(100, 500, 1000); }))
            .Endpoint(e =>
            {
                e.Name = TelemetryQueue;
                e.PrefetchCount = prefetchCount;
                e.ConcurrentMessageLimit = concurrentMessageLimit;
                // Samples are the bulk of the traffic: read them in one pass (same content type, replaces MassTransit's on this endpoint only).
                e.AddConfigureEndpointCallback((context, endpoint) =>
                    endpoint.AddDeserializer(new NodeSampleEnvelopeDeserializerFactory(context.GetRequiredService<NodeSampleEnvelopeDeserializer>())));
            });
        bus.AddConsumer<GpuXidObservedConsumer>(c => c.UseMessageRetry(r => { r.Ignore<InvalidTelemetryException>(); r.Intervals(100, 500, 1000); }))
            .Endpoint(e => e.Name = XidQueue);
        bus.AddConsumer<GetFleetSnapshotConsumer>().Endpoint(e => e.Name = SnapshotQueue);
        bus.AddExpertRebalancingConsumers();
        return bus;
    }

    /// <summary>Cross-field rules of the detection thresholds (data annotations check each value's range).</summary>
    public static IEnumerable<(string Key, object? Value, string Error)> ValidateDetection(DetectionOptions o)
    {
        const string S = DetectionOptions.Section;
        if (o.NodeSilentAfter <= o.NodeUnknownAfter)
        {
            yield return ($"{S}:NodeSilentAfter", o.NodeSilentAfter, $"must be longer than NodeUnknownAfter ({o.NodeUnknownAfter})");
        }

        if (o.RateMinimumSpan > o.RateWindow)
        {
            yield return ($"{S}:RateMinimumSpan", o.RateMinimumSpan, $"must not be longer than RateWindow ({o.RateWindow})");
        }

        if (o.NvLinkCrcWarningPerSecond > o.NvLinkCrcHighPerSecond)
        {
            yield return ($"{S}:NvLinkCrcWarningPerSecond", o.NvLinkCrcWarningPerSecond, $"must not exceed NvLinkCrcHighPerSecond ({o.NvLinkCrcHighPerSecond})");
        }

        if (o.HwSlowdownHighAfter < o.HwSlowdownSustained)
        {
            yield return ($"{S}:HwSlowdownHighAfter", o.HwSlowdownHighAfter, $"must not be shorter than HwSlowdownSustained ({o.HwSlowdownSustained})");
        }

        if (o.PowerMinW >= o.PowerMaxW)
        {
            yield return ($"{S}:PowerMinW", o.PowerMinW, $"must be below PowerMaxW ({o.PowerMaxW})");
        }

        if (o.XidDedupWindow >= o.EventHold)
        {
            yield return ($"{S}:XidDedupWindow", o.XidDedupWindow, $"must be shorter than EventHold ({o.EventHold})");
        }

        var counters = o.EffectiveIbErrorCounters;
        for (var i = 0; i < counters.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(counters[i]) || counters[i] == "port_xmit_wait")
            {
                yield return ($"{S}:IbErrorCounters:{i}", counters[i], "must name an InfiniBand error counter (port_xmit_wait is congestion, not an error)");
            }
        }
    }

    private static IEnumerable<(string, object?, string)> ValidateSink(TelemetrySinkOptions o)
    {
        if (o.Enabled && !IsHttpUrl(o.Url))
        {
            yield return ($"{TelemetrySinkOptions.Section}:Url", o.Url, "must be an absolute http(s) URL");
        }
    }

    private static bool IsHttpUrl(string? value) =>
        Uri.TryCreate(value, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps);
}
