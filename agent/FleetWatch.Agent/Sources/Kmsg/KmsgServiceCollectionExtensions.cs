using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

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
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<KmsgXidWatcherOptions>().Bind(configuration.GetSection(KmsgXidWatcherOptions.SectionName)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<KmsgXidWatcherOptions>, KmsgXidWatcherOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<KmsgXidWatcher>();
        services.AddSingleton<IXidSource>(sp => sp.GetRequiredService<KmsgXidWatcher>());
        return services;
    }
}
