using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace FleetWatch.Agent.Sources.Kmsg;

/// <summary>Registers the kernel-log Xid source.</summary>
public static class KmsgServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="KmsgXidWatcher"/> (as itself and as one <see cref="IXidSource"/> among others, e.g. the NVML
    /// event source) with <see cref="KmsgXidWatcherOptions"/> bound from <see cref="KmsgXidWatcherOptions.SectionName"/>
    /// and validated at start. An <see cref="IGpuPciMap"/> registered elsewhere (NVML) is used when present.
    /// </summary>
    public static IServiceCollection AddKmsgXidWatcher(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddValidatedSourceOptions<KmsgXidWatcherOptions, KmsgXidWatcherOptionsValidator>(configuration, KmsgXidWatcherOptions.SectionName, static (c, o) => c.Bind(o));
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<KmsgXidWatcher>();
        services.AddSingleton<IXidSource>(sp => sp.GetRequiredService<KmsgXidWatcher>());
        return services;
    }
}
