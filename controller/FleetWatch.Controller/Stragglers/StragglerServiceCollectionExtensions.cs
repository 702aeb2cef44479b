using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Stragglers;

/// <summary>Composition of the straggler and hang detector (STYLE.md rule 2: one <c>Add…()</c> per concern).</summary>
public static class StragglerServiceCollectionExtensions
{
    /// <summary>
    /// Binds <see cref="StragglerDetectorOptions"/> from <c>FleetWatch:Stragglers</c>, validates them at start, and
    /// registers one <see cref="StragglerDetector"/> (single consumer: the step-timing ingest owns it).
    /// </summary>
    public static IServiceCollection AddStragglerDetection(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<StragglerDetectorOptions>()
            .Bind(configuration.GetSection(StragglerDetectorOptions.SectionName))
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<StragglerDetectorOptions>, StragglerDetectorOptionsValidator>();
        services.AddSingleton(sp => new StragglerDetector(sp.GetRequiredService<IOptions<StragglerDetectorOptions>>().Value));
        return services;
    }
}
