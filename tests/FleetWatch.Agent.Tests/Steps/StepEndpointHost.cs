using FleetWatch.Agent.Sources.Steps;
using FleetWatch.Contracts;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace FleetWatch.Agent.Tests.Steps;

/// <summary>Records what the flush loop would publish.</summary>
internal sealed class RecordingStepPublisher : IStepTimingsPublisher
{
    private readonly Lock _gate = new();
    private readonly List<StepTimingsBatch> _batches = [];

    public bool Fail { get; set; }

    public IReadOnlyList<StepTimingsBatch> Batches
    {
        get
        {
            lock (_gate)
            {
                return _batches.ToList();
            }
        }
    }

    public Task PublishStepsAsync(StepTimingsBatch batch, CancellationToken cancellationToken)
    {
        if (Fail)
        {
            throw new InvalidOperationException("broker away");
        }

        lock (_gate)
        {
            _batches.Add(batch);
        }

        return Task.CompletedTask;
    }
}

/// <summary>The real step endpoint, composed with <see cref="StepEndpointServiceCollectionExtensions.AddStepEndpoint"/> on a free loopback port.</summary>
internal sealed class StepEndpointHost : IAsyncDisposable
{
    private readonly IHost _host;

    private StepEndpointHost(IHost host) => _host = host;

    public IServiceProvider Services => _host.Services;

    public Uri BaseAddress => Services.GetRequiredService<StepEndpointServer>().BoundAddress ?? throw new InvalidOperationException("not listening");

    public StepEndpointCounters Counters => Services.GetRequiredService<StepEndpointCounters>();

    public StepBatchPublisher Flusher => Services.GetRequiredService<StepBatchPublisher>();

    public static async Task<StepEndpointHost> StartAsync(Dictionary<string, string?>? settings = null, Action<IServiceCollection>? configure = null)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["FleetWatch:Agent:Steps:Port"] = "0",
            ["FleetWatch:Agent:Steps:NodeName"] = "node-7",
            // Tests flush by hand; the loop's own tick stays out of the way.
            ["FleetWatch:Agent:Steps:FlushInterval"] = "00:01:00",
        });
        if (settings is not null)
        {
            builder.Configuration.AddInMemoryCollection(settings);
        }

        configure?.Invoke(builder.Services);
        builder.Services.AddStepEndpoint(builder.Configuration);
        var host = builder.Build();
        await host.StartAsync().ConfigureAwait(false);
        return new StepEndpointHost(host);
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync().ConfigureAwait(false);
        _host.Dispose();
    }
}
