using FleetWatch.Controller.Stragglers;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Tests.Stragglers;

/// <summary>The composition extension binds and validates the options the way the host will.</summary>
public sealed class StragglerServiceCollectionTests
{
    [Fact]
    public void BoundOptions_ReachTheDetector()
    {
        using var provider = Build(new() { ["FleetWatch:Stragglers:WindowSteps"] = "24", ["FleetWatch:Stragglers:HangMedianSteps"] = "4" });
        var options = provider.GetRequiredService<IOptions<StragglerDetectorOptions>>().Value;
        Assert.Equal(24, options.WindowSteps);
        Assert.Equal(4, options.HangMedianSteps);
        Assert.NotNull(provider.GetRequiredService<StragglerDetector>());
    }

    [Fact]
    public void InvalidConfiguration_FailsWithKeyAndValue()
    {
        using var provider = Build(new() { ["FleetWatch:Stragglers:RelativeThreshold"] = "1.2" });
        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<StragglerDetectorOptions>>().Value);
        Assert.Contains("FleetWatch:Stragglers:RelativeThreshold = 1.2", ex.Message, StringComparison.Ordinal);
    }

    private static ServiceProvider Build(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        return new ServiceCollection().AddStragglerDetection(configuration).BuildServiceProvider();
    }
}
