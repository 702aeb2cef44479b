using FleetWatch.Controller.Remediation.Scheduling;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Tests.Scheduling;

public sealed class SchedulingServicesTests
{
    [Fact]
    public void Enabled_adapters_are_found_by_name_and_disabled_ones_are_absent()
    {
        using var provider = Build(new()
        {
            ["FleetWatch:Schedulers:Slurm:Enabled"] = "true",
            ["FleetWatch:Schedulers:Slurm:SlurmConf"] = "/etc/slurm/slurm.conf",
        });

        var adapter = Assert.Single(provider.GetServices<ISchedulerAdapter>());

        Assert.IsType<SlurmSchedulerAdapter>(adapter);
        Assert.Equal("slurm", adapter.Name);
        Assert.Same(adapter, provider.GetRequiredService<SlurmSchedulerAdapter>());
    }

    [Fact]
    public void Both_adapters_register_when_enabled()
    {
        using var provider = Build(new()
        {
            ["FleetWatch:Schedulers:Slurm:Enabled"] = "true",
            ["FleetWatch:Schedulers:Kubernetes:Enabled"] = "true",
            ["FleetWatch:Schedulers:Kubernetes:Host"] = "http://127.0.0.1:6443",
        });

        Assert.Equal(["kubernetes", "slurm"], provider.GetServices<ISchedulerAdapter>().Select(a => a.Name).Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("FleetWatch:Schedulers:Slurm:SlurmConf", "slurm.conf", "must be an absolute path")]
    [InlineData("FleetWatch:Schedulers:Slurm:CommandTimeout", "00:20:00", "CommandTimeout")]
    [InlineData("FleetWatch:Schedulers:Slurm:ReasonPrefix", "", "ReasonPrefix")]
    [InlineData("FleetWatch:Schedulers:Kubernetes:Host", "not a url", "must be an absolute http(s) URL")]
    [InlineData("FleetWatch:Schedulers:Kubernetes:JobLabel", "bad label!", "JobLabel")]
    public void Bad_values_fail_at_start_naming_the_key_and_value(string key, string value, string message)
    {
        using var provider = Build(new() { [key] = value });

        var error = Assert.Throws<OptionsValidationException>(() =>
        {
            _ = provider.GetRequiredService<IOptions<SlurmOptions>>().Value;
            _ = provider.GetRequiredService<IOptions<KubernetesOptions>>().Value;
        });

        var text = string.Join('\n', error.Failures);
        Assert.Contains(key, text, StringComparison.Ordinal);
        Assert.Contains($"'{value}'", text, StringComparison.Ordinal);
        Assert.Contains(message, text, StringComparison.Ordinal);
    }

    [Fact]
    public void A_second_call_adds_no_second_adapter()
    {
        using var provider = Build(new() { ["FleetWatch:Schedulers:Slurm:Enabled"] = "true" }, calls: 2);

        Assert.Single(provider.GetServices<ISchedulerAdapter>());
    }

    private static ServiceProvider Build(Dictionary<string, string?> settings, int calls = 1)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection().AddLogging();
        for (var i = 0; i < calls; i++)
        {
            services.AddSchedulerAdapters(configuration);
        }

        return services.BuildServiceProvider();
    }
}
