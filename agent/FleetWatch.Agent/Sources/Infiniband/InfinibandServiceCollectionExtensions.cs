using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace FleetWatch.Agent.Sources.Infiniband;

/// <summary>Registers the sysfs InfiniBand source.</summary>
public static class InfinibandServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="SysfsInfinibandSource"/> as itself and as the <see cref="IInfinibandSource"/> (unless one is
    /// already registered, e.g. a simulator), with <see cref="SysfsInfinibandOptions"/> bound from
    /// <see cref="SysfsInfinibandOptions.SectionName"/> and validated at start.
    /// </summary>
    public static IServiceCollection AddSysfsInfiniband(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddValidatedSourceOptions<SysfsInfinibandOptions, SysfsInfinibandOptionsValidator>(configuration, SysfsInfinibandOptions.SectionName, static (c, o) => c.Bind(o));
        services.TryAddSingleton<SysfsInfinibandSource>();
        services.TryAddSingleton<IInfinibandSource>(sp => sp.GetRequiredService<SysfsInfinibandSource>());
        return services;
    }
}
