using FleetWatch.Contracts;
using FleetWatch.Controller.Remediation.Rebalancing;
using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Tests.Rebalancing;

/// <summary>Component tier: the real registrations, MassTransit's in-memory test harness.</summary>
public sealed class ExpertRebalancingServicesTests
{
    [Theory]
    [InlineData("MigrationBalanceTolerance", "-0.1", "FleetWatch:ExpertRebalancing:MigrationBalanceTolerance must be in [0, 1], got -0.1")]
    [InlineData("MaxWeightMovesPerLayer", "-3", "FleetWatch:ExpertRebalancing:MaxWeightMovesPerLayer must be >= 0 or empty, got -3")]
    [InlineData("ReplanInterval", "00:00:01", "FleetWatch:ExpertRebalancing:ReplanInterval must be at least 00:00:10, got 00:00:01")]
    [InlineData("CommandQueue", " ", "FleetWatch:ExpertRebalancing:CommandQueue must not be empty")]
    public void BadOption_FailsValidation_WithKeyAndValue(string key, string value, string message)
    {
        using var provider = Build(new() { [$"FleetWatch:ExpertRebalancing:{key}"] = value });
        var e = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<ExpertRebalancingOptions>>().Value);
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Defaults_AreValid()
    {
        using var provider = Build([]);
        Assert.Equal(0.005, provider.GetRequiredService<IOptions<ExpertRebalancingOptions>>().Value.MigrationBalanceTolerance);
    }

    [Fact]
    public async Task Report_WithALostGpu_SendsApplyExpertPlacement()
    {
        await using var provider = new ServiceCollection()
            .AddExpertRebalancing(new ConfigurationBuilder().Build())
            .AddMassTransitTestHarness(x => x.AddConsumer<ExpertLoadReportConsumer>())
            .BuildServiceProvider(true);
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();
        try
        {
            provider.GetRequiredService<InMemoryGpuCapacityView>().Set(new GpuCapacityChange("node-1", 2, GpuCapacityState.Unavailable));
            var loads = ExpertPlannerTests.Loads("zipf", layers: 2, experts: 32, seed: 2);
            var gpus = Enumerable.Range(0, 8).Select(g => new ExpertSlotGpu($"node-{g / 4}", g % 4, 5)).ToArray();
            var placement = ExpertPlanner.Plan(new ExpertPlanRequest(loads, gpus.Select(_ => new ExpertGpu(0, 5)).ToArray())).Phy2Log;
            await harness.Bus.Publish(RebalanceTestKit.Report("moe-1", loads, gpus, placement));

            Assert.True(await harness.Consumed.Any<ExpertLoadReport>());
            Assert.True(await harness.Sent.Any<ApplyExpertPlacement>());
            var sent = harness.Sent.Select<ApplyExpertPlacement>().Single().Context.Message;
            Assert.Equal("moe-1/1", sent.PlanId);
            Assert.Equal(7, sent.Gpus.Count);
            Assert.DoesNotContain(sent.Gpus, g => g is { Node: "node-1", Gpu: 2 });
        }
        finally
        {
            await harness.Stop();
        }
    }

    private static ServiceProvider Build(Dictionary<string, string?> settings) =>
        new ServiceCollection()
            .AddExpertRebalancing(new ConfigurationBuilder().AddInMemoryCollection(settings).Build())
            .BuildServiceProvider(true);
}
