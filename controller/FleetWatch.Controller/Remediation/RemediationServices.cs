using FleetWatch.Common;
using FleetWatch.Contracts;
using FleetWatch.Controller.Storage;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Remediation;

/// <summary>Checks in-flight restores against their deadline every <see cref="RemediationOptions.VerifyInterval"/>.</summary>
public sealed partial class RestoreVerificationService(RestoreOrchestrator orchestrator, IOptions<RemediationOptions> options, TimeProvider time,
    ILogger<RestoreVerificationService> logger) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        PeriodicLoop.RunAsync(options.Value.VerifyInterval, time, orchestrator.SweepAsync, ex => LogSweepFailed(logger, ex), stoppingToken);

    [LoggerMessage(EventId = 6301, Level = LogLevel.Error, Message = "Restore verification sweep failed")]
    private static partial void LogSweepFailed(ILogger logger, Exception exception);
}

/// <summary>The remediation loops' shape: one call per period, each failure logged and the next tick trying again (STYLE.md rule 7).</summary>
internal static class PeriodicLoop
{
    public static async Task RunAsync(TimeSpan period, TimeProvider time, Func<CancellationToken, Task> body, Action<Exception> failed, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(period, time);
        while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
        {
            try
            {
                await body(ct).ConfigureAwait(false);
            }
#pragma warning disable CA1031 // One failed iteration is logged; the next tick tries again.
            catch (Exception ex) when (ex is not OperationCanceledException)
#pragma warning restore CA1031
            {
                failed(ex);
            }
        }
    }
}

/// <summary>Thin consumer of the controller's incident events (opened and updated: an update may escalate to hardware).</summary>
public sealed class RemediationIncidentConsumer(RestoreOrchestrator orchestrator) : IConsumer<IncidentOpened>, IConsumer<IncidentUpdated>
{
    public Task Consume(ConsumeContext<IncidentOpened> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return orchestrator.OnIncidentAsync(context.Message.Incident, context.CancellationToken);
    }

    public Task Consume(ConsumeContext<IncidentUpdated> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return orchestrator.OnIncidentAsync(context.Message.Incident, context.CancellationToken);
    }
}

/// <summary>Thin consumer of what jobs say about themselves: registration, steps, checkpoints, acknowledgements, end.</summary>
public sealed class JobEventsConsumer(RestoreOrchestrator orchestrator)
    : IConsumer<JobRegistered>, IConsumer<JobStepReported>, IConsumer<CheckpointSaved>, IConsumer<RestoreAcknowledged>, IConsumer<JobFinished>
{
    public Task Consume(ConsumeContext<JobRegistered> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        orchestrator.Register(context.Message);
        return Task.CompletedTask;
    }

    public Task Consume(ConsumeContext<JobStepReported> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var m = context.Message;
        return orchestrator.OnStepAsync(m.JobId, m.Step, m.Healthy, m.Time, context.CancellationToken);
    }

    public Task Consume(ConsumeContext<CheckpointSaved> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        orchestrator.OnCheckpoint(context.Message);
        return Task.CompletedTask;
    }

    public Task Consume(ConsumeContext<RestoreAcknowledged> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return orchestrator.OnAcknowledgedAsync(context.Message.JobId, context.Message.Cycle, context.CancellationToken);
    }

    public Task Consume(ConsumeContext<JobFinished> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        orchestrator.OnFinished(context.Message.JobId, context.Message.Time);
        return Task.CompletedTask;
    }
}

/// <summary>
/// Step progress from the agents' step timings (jobs that use the step reporter need not send <see cref="JobStepReported"/>):
/// the highest step per job in the batch.
/// </summary>
public sealed class RemediationStepTimingsConsumer(RestoreOrchestrator orchestrator) : IConsumer<StepTimingsBatch>
{
    public async Task Consume(ConsumeContext<StepTimingsBatch> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        foreach (var job in context.Message.Steps.GroupBy(s => s.Job, StringComparer.Ordinal))
        {
            var last = job.MaxBy(s => s.Step)!;
            await orchestrator.OnStepAsync(job.Key, last.Step, healthy: true, last.EndTime, context.CancellationToken).ConfigureAwait(false);
        }
    }
}

/// <summary>Composition of cordon and restore (STYLE.md rule 2).</summary>
public static class RemediationServiceCollectionExtensions
{
    /// <summary>Queue of incident events for remediation (its own copy; one at a time so a node's open and update never race).</summary>
    public const string IncidentQueue = "fleetwatch-remediation-incidents";

    /// <summary>Queue of job registrations, steps, checkpoints and acknowledgements (the command lane's low-volume inputs).</summary>
    public const string JobQueue = "fleetwatch-remediation-jobs";

    /// <summary>Remediation's copy of the agents' step timings.</summary>
    public const string StepQueue = "fleetwatch-remediation-steps";

    /// <summary>Halted or storming remediation, turned into on-call pages (<see cref="RemediationPager"/>).</summary>
    public const string HaltedQueue = "fleetwatch-remediation-halted";

    /// <summary>
    /// Options (<c>FleetWatch:Remediation</c>, validated at start), the store tables, job registry, scheduler adapters
    /// (every <see cref="Scheduling.ISchedulerAdapter"/> registered in DI), cordon service, orchestrator, verification loop
    /// and the webhook HTTP client. Needs <c>AddControllerStore</c> (called here) and, to publish, MassTransit's <c>IBus</c>.
    /// </summary>
    public static IServiceCollection AddRemediation(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.TryAddSingleton(TimeProvider.System);
        services.AddControllerStore(configuration);
        services.AddStoreSchema(RemediationStore.SchemaName, RemediationStore.Schema, RemediationStore.AddedColumns);
        services.AddValidatedOptions<RemediationOptions>(configuration, RemediationOptions.Section, Validate);
        services.TryAddSingleton<RemediationStore>();
        services.TryAddSingleton<JobRegistry>();
        services.TryAddSingleton<RemediationPager>();
        // Detection's app-class Xid promotion asks which job used the GPU (rule 39); the registry knows.
        services.Replace(ServiceDescriptor.Singleton<FleetWatch.Controller.Detection.IGpuJobResolver>(sp => sp.GetRequiredService<JobRegistry>()));
        services.TryAddSingleton<SchedulerAdapters>();
        services.TryAddSingleton<NodeFactsSource>();
        services.TryAddSingleton<CordonService>();
        services.TryAddSingleton<RestoreOrchestrator>();
        services.AddHostedService<RestoreVerificationService>();
        // Idle unless FleetWatch:Remediation:ReturnToService:Enabled.
        services.TryAddSingleton<NodeReturnService>();
        services.AddHostedService<ReturnToServiceLoop>();
        // No request logging: a job's webhook URL may carry a token.
        services.AddHttpClient(RestoreOrchestrator.HttpClientName).RemoveAllLoggers();
        return services;
    }

    /// <summary>Registers remediation's consumers on their own queues.</summary>
    public static IBusRegistrationConfigurator AddRemediationConsumers(this IBusRegistrationConfigurator bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        bus.AddConsumer<RemediationIncidentConsumer>().Endpoint(e =>
        {
            e.Name = IncidentQueue;
            e.ConcurrentMessageLimit = 1;
        });
        bus.AddConsumer<JobEventsConsumer>().Endpoint(e => e.Name = JobQueue);
        bus.AddConsumer<RemediationStepTimingsConsumer>().Endpoint(e => e.Name = StepQueue);
        bus.AddConsumer<RemediationHaltedConsumer>().Endpoint(e => e.Name = HaltedQueue);
        return bus;
    }

    /// <summary>Cross-field rules (annotations check each value).</summary>
    public static IEnumerable<(string Key, object? Value, string Error)> Validate(RemediationOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        const string S = RemediationOptions.Section;
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < o.Spares.Count; i++)
        {
            var spare = o.Spares[i];
            if (string.IsNullOrWhiteSpace(spare.Node) || !names.Add(spare.Node))
            {
                yield return ($"{S}:Spares:{i}:Node", spare.Node, "must be set and unique");
            }
        }

        if (o.StormWindow < o.ShortCycle)
        {
            yield return ($"{S}:StormWindow", o.StormWindow, $"must not be shorter than ShortCycle ({o.ShortCycle})");
        }

        if (o.VerifyInterval > o.VerifyTimeout)
        {
            yield return ($"{S}:VerifyInterval", o.VerifyInterval, $"must not be longer than VerifyTimeout ({o.VerifyTimeout})");
        }

        // Annotations of the nested section (the top-level validator checks only the root object's).
        foreach (var failure in ValidatedOptions.Annotations(o.ReturnToService ?? new(), $"{S}:ReturnToService"))
        {
            yield return failure;
        }

        if (o.ReturnToService is { } r && r.Interval > r.Soak)
        {
            yield return ($"{S}:ReturnToService:Interval", r.Interval, $"must not be longer than Soak ({r.Soak})");
        }
    }
}
