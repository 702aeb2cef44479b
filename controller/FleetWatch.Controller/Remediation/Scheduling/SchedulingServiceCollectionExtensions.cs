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
    /// <see cref="ISchedulerAdapter"/> (resolve them all with <c>IEnumerable&lt;ISchedulerAdapter&gt;</c> and pick by
    /// <see cref="ISchedulerAdapter.Name"/>, or use <see cref="SchedulerAdapters"/>) and as itself.
    /// </summary>
    public static IServiceCollection AddSchedulerAdapters(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        if (services.Any(d => d.ServiceType == typeof(SchedulerAdapters)))
        {
            return services;
        }

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

        services.AddSingleton<SchedulerAdapters>();
        return services;
    }
}

/// <summary>The registered adapters by name (the job registry names a job's scheduler).</summary>
public sealed class SchedulerAdapters(IEnumerable<ISchedulerAdapter> adapters)
{
    private readonly Dictionary<string, ISchedulerAdapter> _byName = adapters.ToDictionary(a => a.Name, StringComparer.OrdinalIgnoreCase);

    /// <summary>The names of the registered adapters.</summary>
    public IReadOnlyCollection<string> Names => _byName.Keys;

    /// <summary>The adapter for <paramref name="scheduler"/>, or null when none is registered under that name.</summary>
    public ISchedulerAdapter? Find(string scheduler) => _byName.GetValueOrDefault(scheduler);
}
