using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Sources;

/// <summary>The one way a hardware source's options are registered: bound from a section, validated at start.</summary>
internal static class SourceOptionsRegistration
{
    /// <summary>Binds with <paramref name="bind"/> (pass <c>static (c, o) => c.Bind(o)</c>: source-generated at the call site).</summary>
    public static IServiceCollection AddValidatedSourceOptions<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.All)] TOptions, [DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TValidator>(
        this IServiceCollection services, IConfiguration configuration, string section, Action<IConfiguration, TOptions> bind)
        where TOptions : class
        where TValidator : class, IValidateOptions<TOptions>
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        var source = configuration.GetSection(section);
        services.AddOptions<TOptions>().Configure(o => bind(source, o)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TOptions>, TValidator>());
        return services;
    }
}
