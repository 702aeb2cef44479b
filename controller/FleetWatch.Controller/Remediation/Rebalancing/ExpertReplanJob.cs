using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Quartz;

namespace FleetWatch.Controller.Remediation.Rebalancing;

/// <summary>
/// Quartz job: re-plans every job with a stored expert-load report. The decider sends a placement only when the gain
/// beats <see cref="ExpertRebalancingOptions.MinImbalanceImprovement"/> plus the weight-move cost, and
/// <see cref="ExpertReplanner"/> skips jobs whose inputs did not change since their last plan (idempotent per plan).
/// </summary>
[DisallowConcurrentExecution]
public sealed class ExpertReplanJob(
    ExpertLoadReportStore store, ExpertReplanner replanner, IBus bus, ILogger<ExpertReplanJob> logger) : IJob
{
    public static readonly JobKey Key = new("expert-replan", "rebalancing");

    public static readonly TriggerKey TriggerKey = new("expert-replan-trigger", "rebalancing");

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
    {
        var jobs = store.Jobs.Order(StringComparer.Ordinal).ToArray();
        var sent = await replanner.ReplanManyAsync(jobs, "scheduled re-plan", bus, cancellationToken).ConfigureAwait(false);
        RebalancingLog.ScheduledReplan(logger, jobs.Length, sent);
    }
}

/// <summary>Quartz registration of <see cref="ExpertReplanJob"/>.</summary>
public static class ExpertReplanScheduleExtensions
{
    /// <summary>
    /// Adds <see cref="ExpertReplanJob"/> with a trigger every <see cref="ExpertRebalancingOptions.ReplanInterval"/>
    /// (the first run, at start, finds no report and does nothing). Called by
    /// <see cref="ExpertRebalancingServiceCollectionExtensions.AddExpertRebalancing"/>; the Quartz hosted service is
    /// the controller's (AddFleetSweep).
    /// </summary>
    public static IServiceCollection AddExpertReplanSchedule(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        var configured = configuration.GetSection(ExpertRebalancingOptions.SectionName).Get<ExpertRebalancingOptions>()?.ReplanInterval
            ?? new ExpertRebalancingOptions().ReplanInterval;

        // A bad value fails at start through the options validator, with its key; the trigger only must stay buildable.
        var interval = configured < TimeSpan.FromSeconds(10) ? TimeSpan.FromSeconds(10) : configured;
        services.AddQuartz(q =>
        {
            q.AddJob<ExpertReplanJob>(j => j.WithIdentity(ExpertReplanJob.Key));
            q.AddTrigger(t => t.ForJob(ExpertReplanJob.Key).WithIdentity(ExpertReplanJob.TriggerKey)
                .WithSimpleSchedule(s => s.WithInterval(interval).RepeatForever())
                .StartNow());
        });
        return services;
    }
}
