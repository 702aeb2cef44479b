using FleetWatch.Contracts;
using FleetWatch.Controller.Alerting;
using FleetWatch.Controller.Incidents;
using FleetWatch.Integration.Tests.Support;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Integration.Tests.Component;

/// <summary>Alert delivery against a real loopback HTTP receiver that fails first: 503, then 429 with Retry-After, then 200.</summary>
public sealed class WebhookRetryTests
{
    [Fact]
    public async Task Retries_5xx_and_429_honouring_retry_after_then_delivers_once()
    {
        await using var receiver = await LoopbackReceiver.StartAsync();
        receiver.Script.Enqueue((503, null));
        receiver.Script.Enqueue((429, 1));
        var services = new ServiceCollection();
        services.AddLogging(l => l.SetMinimumLevel(LogLevel.Warning));
        services.AddSingleton(TimeProvider.System);
        var config = new Microsoft.Extensions.Configuration.ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["FleetWatch:Alerting:Webhooks:0:Name"] = "oncall",
            ["FleetWatch:Alerting:Webhooks:0:Url"] = receiver.Url("/hook"),
            ["FleetWatch:Alerting:InitialBackoff"] = "00:00:00.100",
        }).Build();
        FleetWatch.Controller.ControllerServiceCollectionExtensions.AddAlerting(services, config);
        await using var provider = services.BuildServiceProvider();
        var delivery = provider.GetRequiredService<WebhookDelivery>();
        var metrics = provider.GetRequiredService<AlertMetrics>();
        await ((IHostedService)delivery).StartAsync(CancellationToken.None);

        var incident = new IncidentSnapshot
        {
            Id = "inc-1", Node = "n1", GpuIndex = 0, Severity = Severity.Critical, Category = "gpu_fell_off_bus", Action = "restart_node",
            OpenedAt = DateTimeOffset.UtcNow, Findings = [],
        };
        delivery.Enqueue(new IncidentChange(IncidentChangeKind.Opened, incident));

        await Wait.UntilAsync(() => metrics.Delivered == 1, TimeSpan.FromSeconds(20), "delivery after retries", () => $"attempts {metrics.Attempts}");
        Assert.Equal(3, metrics.Attempts);
        Assert.Single(receiver.Posts);
        Assert.Equal(0, metrics.GivenUp);
        var requests = receiver.Requests.ToArray();
        Assert.Equal([503, 429, 200], requests.Select(r => r.Status));
        // Retry-After: 1 outweighs the 100 ms backoff (a lower bound only: it cannot fail on a slow machine).
        Assert.True(requests[2].At - requests[1].At >= TimeSpan.FromSeconds(0.9), $"retried {requests[2].At - requests[1].At} after a 429 with Retry-After: 1");
        await ((IHostedService)delivery).StopAsync(CancellationToken.None);
    }
}
