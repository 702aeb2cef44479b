using System.Collections.Concurrent;
using System.Globalization;
using FleetWatch.Contracts;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Remediation.Rebalancing;

/// <summary>The GPUs whose capacity is reduced or removed right now (cordoned, lost, stragglers).</summary>
public interface IGpuCapacityView
{
    IReadOnlyCollection<GpuCapacityChange> Current();
}

/// <summary>In-process <see cref="IGpuCapacityView"/>: remediation marks GPUs, the rebalancer reads them.</summary>
public sealed class InMemoryGpuCapacityView : IGpuCapacityView
{
    private readonly ConcurrentDictionary<(string Node, int Gpu), GpuCapacityChange> _changes = new();

    public void Set(GpuCapacityChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        _changes[(change.Node, change.Gpu)] = change;
    }

    public void Clear(string node, int gpu) => _changes.TryRemove((node, gpu), out _);

    public IReadOnlyCollection<GpuCapacityChange> Current() => [.. _changes.Values];
}

/// <summary>Latest expert-load report per job and the job's plan cycle counter (what the scheduled re-plan reads).</summary>
public sealed class ExpertLoadReportStore
{
    private readonly ConcurrentDictionary<string, ExpertLoadReport> _latest = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _cycles = new(StringComparer.Ordinal);

    /// <summary>Keeps the report unless a newer window is already stored (redelivery must not roll back).</summary>
    public void Put(ExpertLoadReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        _latest.AddOrUpdate(report.Job, report, (_, old) => old.WindowEnd > report.WindowEnd ? old : report);
    }

    public ExpertLoadReport? Latest(string job) => _latest.TryGetValue(job, out var r) ? r : null;

    public IReadOnlyCollection<string> Jobs => [.. _latest.Keys];

    public long NextCycle(string job) => _cycles.AddOrUpdate(job, 1, (_, c) => c + 1);
}

/// <summary>
/// Thin consumer: store the report and re-plan the job through <see cref="ExpertReplanner"/> (decide against the
/// current GPU capacity, send the <see cref="ApplyExpertPlacement"/> on the command queue, record the action).
/// </summary>
public sealed class ExpertLoadReportConsumer(ExpertLoadReportStore store, ExpertReplanner replanner) : IConsumer<ExpertLoadReport>
{
    public async Task Consume(ConsumeContext<ExpertLoadReport> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        store.Put(context.Message);
        await replanner.ReplanAsync(context.Message.Job, "expert-load report", context, context.CancellationToken).ConfigureAwait(false);
    }
}

/// <summary>Validates <see cref="ExpertRebalancingOptions"/> at start, naming the key and the bad value.</summary>
public sealed class ExpertRebalancingOptionsValidator : IValidateOptions<ExpertRebalancingOptions>
{
    public ValidateOptionsResult Validate(string? name, ExpertRebalancingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = new List<string>();
        var section = ExpertRebalancingOptions.SectionName;
        if (options.MaxWeightMovesPerLayer is < 0)
        {
            errors.Add(Invariant($"{section}:MaxWeightMovesPerLayer must be >= 0 or empty, got {options.MaxWeightMovesPerLayer}"));
        }

        if (!(options.MigrationBalanceTolerance is >= 0 and <= 1))
        {
            errors.Add(Invariant($"{section}:MigrationBalanceTolerance must be in [0, 1], got {options.MigrationBalanceTolerance}"));
        }

        if (!(options.MinImbalanceImprovement is >= 0 and <= 10))
        {
            errors.Add(Invariant($"{section}:MinImbalanceImprovement must be in [0, 10], got {options.MinImbalanceImprovement}"));
        }

        if (!(options.LocalityTolerance is >= 0 and <= 1))
        {
            errors.Add(Invariant($"{section}:LocalityTolerance must be in [0, 1], got {options.LocalityTolerance}"));
        }

        if (!Enum.IsDefined(options.Locality))
        {
            errors.Add(Invariant($"{section}:Locality must be None or PreferGroupNode, got {options.Locality}"));
        }

        if (options.ReplanInterval < TimeSpan.FromSeconds(10))
        {
            errors.Add(Invariant($"{section}:ReplanInterval must be at least 00:00:10, got {options.ReplanInterval}"));
        }

        if (!(options.ImbalanceCostPerWeightMove is >= 0 and <= 1))
        {
            errors.Add(Invariant($"{section}:ImbalanceCostPerWeightMove must be in [0, 1], got {options.ImbalanceCostPerWeightMove}"));
        }

        if (!(options.StragglerSpeed is >= 0.05 and <= 1))
        {
            errors.Add(Invariant($"{section}:StragglerSpeed must be in [0.05, 1], got {options.StragglerSpeed}"));
        }

        if (options.ActionLogCapacity is < 1 or > 100_000)
        {
            errors.Add(Invariant($"{section}:ActionLogCapacity must be in [1, 100000], got {options.ActionLogCapacity}"));
        }

        if (string.IsNullOrWhiteSpace(options.CommandQueue))
        {
            errors.Add($"{section}:CommandQueue must not be empty");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>Composition of expert rebalancing (STYLE.md rule 2: one Add… per concern).</summary>
public static class ExpertRebalancingServiceCollectionExtensions
{
    /// <summary>
    /// Registers the options (bound from <c>FleetWatch:ExpertRebalancing</c>, validated at start), the report store
    /// the capacity view, the re-planner with its action log, the incident/straggler capacity tracker and the
    /// periodic re-plan (<see cref="ExpertReplanScheduleExtensions.AddExpertReplanSchedule"/>). Register the consumers
    /// with <see cref="ExpertRebalancingBusExtensions.AddExpertRebalancingConsumers"/> in AddMassTransit.
    /// </summary>
    public static IServiceCollection AddExpertRebalancing(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<ExpertRebalancingOptions>()
            .Bind(configuration.GetSection(ExpertRebalancingOptions.SectionName))
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ExpertRebalancingOptions>, ExpertRebalancingOptionsValidator>());
        services.TryAddSingleton<ExpertLoadReportStore>();
        services.TryAddSingleton<InMemoryGpuCapacityView>();
        services.TryAddSingleton<IGpuCapacityView>(sp => sp.GetRequiredService<InMemoryGpuCapacityView>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<ExpertRebalanceActionLog>();
        services.TryAddSingleton<ExpertReplanner>();
        services.TryAddSingleton<ExpertCapacityTracker>();
        services.TryAddSingleton<ExpertTopologyResponder>();
        services.AddExpertReplanSchedule(configuration);
        return services;
    }
}

internal static partial class RebalancingLog
{
    [LoggerMessage(EventId = 7001, Level = LogLevel.Information,
        Message = "Expert placement {PlanId} sent to job {Job}: imbalance {Before:F4} -> {After:F4}, {Moves} weight moves ({Reason}; trigger: {Trigger})")]
    public static partial void PlacementSent(
        ILogger logger, string job, string planId, double before, double after, int moves, string reason, string trigger);

    [LoggerMessage(EventId = 7002, Level = LogLevel.Debug, Message = "No expert placement for job {Job}: {Outcome}")]
    public static partial void NoPlacement(ILogger logger, string job, string outcome);

    [LoggerMessage(EventId = 7003, Level = LogLevel.Debug, Message = "Job {Job} not re-planned ({Trigger}): report and GPU capacity unchanged since the last plan")]
    public static partial void Unchanged(ILogger logger, string job, string trigger);

    [LoggerMessage(EventId = 7004, Level = LogLevel.Error, Message = "Re-planning job {Job} failed ({Trigger})")]
    public static partial void ReplanFailed(ILogger logger, Exception exception, string job, string trigger);

    [LoggerMessage(EventId = 7005, Level = LogLevel.Information,
        Message = "GPU capacity changed by {Source}: {Gpus} GPU(s) updated, re-planning {Jobs} job(s)")]
    public static partial void CapacityChanged(ILogger logger, string source, int gpus, int jobs);

    [LoggerMessage(EventId = 7006, Level = LogLevel.Information, Message = "Scheduled expert re-plan: {Jobs} job(s), {Sent} placement(s) sent")]
    public static partial void ScheduledReplan(ILogger logger, int jobs, int sent);
}
