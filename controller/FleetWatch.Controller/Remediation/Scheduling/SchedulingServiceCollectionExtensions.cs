using FleetWatch.Common;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace FleetWatch.Controller.Remediation.Scheduling;

/// <summary>Composition of the scheduler adapters (STYLE.md rule 2).</summary>
public static class SchedulingServiceCollectionExtensions
{
    /// <summary>
    /// Binds and validates at start <see cref="SlurmOptions"/> (<c>FleetWatch:Schedulers:Slurm</c>) and
    /// <see cref="KubernetesOptions"/> (<c>FleetWatch:Schedulers:Kubernetes</c>), and registers each enabled adapter as an
    /// <see cref="ISchedulerAdapter"/> (remediation resolves them all and picks by <see cref="ISchedulerAdapter.Name"/>) and
    /// as itself. Idempotent.
    /// </summary>
    public static IServiceCollection AddSchedulerAdapters(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        if (services.Any(d => d.ServiceType == typeof(SchedulerAdaptersAdded)))
        {
            return services;
        }

        services.AddSingleton<SchedulerAdaptersAdded>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddValidatedOptions<SlurmOptions>(configuration, SlurmOptions.Section, SlurmOptions.Validate);
        services.AddValidatedOptions<KubernetesOptions>(configuration, KubernetesOptions.Section, KubernetesOptions.Validate);
        if (configuration.GetSection(SlurmOptions.Section).GetValue<bool>(nameof(SlurmOptions.Enabled)))
        {
            services.TryAddSingleton<SlurmSchedulerAdapter>();
            services.AddSingleton<ISchedulerAdapter>(sp => sp.GetRequiredService<SlurmSchedulerAdapter>());
        }

        if (configuration.GetSection(KubernetesOptions.Section).GetValue<bool>(nameof(KubernetesOptions.Enabled)))
        {
            services.TryAddSingleton<KubernetesSchedulerAdapter>();
            services.AddSingleton<ISchedulerAdapter>(sp => sp.GetRequiredService<KubernetesSchedulerAdapter>());
        }

        return services;
    }

    /// <summary>Marks the registration done, so a second call adds no second adapter.</summary>
    private sealed class SchedulerAdaptersAdded;
}
