using FleetWatch.Agent.Sources;
using FleetWatch.Agent.Sources.Infiniband;
using FleetWatch.Agent.Sources.Kmsg;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Tests.Kmsg;

public sealed class SourceRegistrationTests
{
    private static ServiceProvider Build(Dictionary<string, string?> settings, IGpuPciMap? map = null)
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddSingleton<ILoggerFactory>(NullLoggerFactory.Instance);
        services.AddSingleton(typeof(ILogger<>), typeof(Logger<>));
        if (map is not null)
        {
            services.AddSingleton(map);
        }

        services.AddKmsgXidWatcher(config).AddSysfsInfiniband(config);
        return services.BuildServiceProvider(validateScopes: true);
    }

    [Fact]
    public void Configured_paths_reach_the_sources()
    {
        using var sp = Build(new()
        {
            ["FleetWatch:Agent:Kmsg:Path"] = "/tmp/kmsg-fixture",
            ["FleetWatch:Agent:Kmsg:PollInterval"] = "00:00:01",
            ["FleetWatch:Agent:Infiniband:Root"] = Path.Combine(XidTestPaths.Fixtures, "infiniband", "down"),
        }, new StaticGpuPciMap([]));

        Assert.Equal("/tmp/kmsg-fixture", sp.GetRequiredService<IOptions<KmsgXidWatcherOptions>>().Value.Path);
        Assert.Same(sp.GetRequiredService<KmsgXidWatcher>(), Assert.Single(sp.GetServices<IXidSource>()));
        Assert.Equal("DOWN", Assert.Single(sp.GetRequiredService<IInfinibandSource>().Read()).State);
    }

    [Fact]
    public void Bad_values_fail_with_the_key()
    {
        using var sp = Build(new() { ["FleetWatch:Agent:Kmsg:PollInterval"] = "00:00:00", ["FleetWatch:Agent:Infiniband:Root"] = "" });
        var kmsg = Assert.Throws<OptionsValidationException>(() => sp.GetRequiredService<IOptions<KmsgXidWatcherOptions>>().Value);
        Assert.Contains("FleetWatch:Agent:Kmsg:PollInterval", kmsg.Message, StringComparison.Ordinal);
        var ib = Assert.Throws<OptionsValidationException>(() => sp.GetRequiredService<IOptions<SysfsInfinibandOptions>>().Value);
        Assert.Contains("FleetWatch:Agent:Infiniband:Root", ib.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_watcher_resolves_without_an_nvml_map()
    {
        using var sp = Build([]);
        Assert.NotNull(sp.GetRequiredService<KmsgXidWatcher>());
        Assert.Equal("/dev/kmsg", sp.GetRequiredService<IOptions<KmsgXidWatcherOptions>>().Value.Path);
        Assert.Equal("/sys/class/infiniband", sp.GetRequiredService<IOptions<SysfsInfinibandOptions>>().Value.Root);
    }
}
