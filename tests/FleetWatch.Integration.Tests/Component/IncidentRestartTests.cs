using System.Text.Json;
using FleetWatch.Controller;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Incidents;
using FleetWatch.Integration.Tests.Support;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using FwSeverity = FleetWatch.Contracts.Severity;

namespace FleetWatch.Integration.Tests.Component;

/// <summary>
/// Issue 4, item 6: kill the controller mid-incident, restart it, and the receiver still gets each notification
/// exactly once. Two controllers run one after the other on one SQLite file, each a real host built from the
/// controller's own registrations, with the real webhook delivery posting to a loopback receiver. The first is
/// dropped without a stop (nothing is flushed on the way down) after one incident's page went out and while another's
/// page was emitted but not yet handed to delivery.
/// </summary>
public sealed class IncidentRestartTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly string _file = Path.Combine(Path.GetTempPath(), $"fleetwatch-restart-{Guid.NewGuid():N}.db");

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        foreach (var suffix in new[] { "", "-wal", "-shm" })
        {
            File.Delete(_file + suffix);
        }
    }

    private static Finding Lost(string node, int gpu, bool active, DateTimeOffset at) =>
        new(node, gpu, "gpu_lost", FindingKind.Condition, active, FwSeverity.Critical, "gpu_fell_off_bus", "restart_node", $"GPU {gpu} lost", at);

    private async Task<WebApplication> StartControllerAsync(string receiverUrl)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["FleetWatch:Storage:Path"] = _file,
            ["FleetWatch:Alerting:Webhooks:0:Name"] = "oncall",
            ["FleetWatch:Alerting:Webhooks:0:Url"] = receiverUrl,
            ["FleetWatch:Alerting:InitialBackoff"] = "00:00:00.100",
        });
        var services = builder.Services;
        services.AddSingleton(TimeProvider.System);
        services.AddDetection(builder.Configuration);
        services.AddIncidentStore(builder.Configuration);
        services.AddAlerting(builder.Configuration);
        services.AddMassTransit(bus => bus.UsingInMemory());
        var app = builder.Build();
        app.MapGroup("/api/v1").MapIncidentApi();
        await app.StartAsync();
        return app;
    }

    private static async Task ApplyAsync(WebApplication controller, DateTimeOffset at, params Finding[] findings)
    {
        var incidents = controller.Services.GetRequiredService<IncidentManager>();
        var changes = incidents.Apply(findings.ToList(), at).Concat(incidents.Tick(at)).ToList();
        await controller.Services.GetRequiredService<IncidentNotifier>().NotifyAsync(changes, CancellationToken.None);
    }

    [Fact]
    public async Task A_controller_killed_mid_incident_and_restarted_sends_each_firing_and_resolved_exactly_once()
    {
        await using var receiver = await LoopbackReceiver.StartAsync();
        var first = await StartControllerAsync(receiver.Url("/hook"));

        await ApplyAsync(first, T0, Lost("n7", 3, true, T0));
        await Wait.UntilAsync(() => receiver.Posts.Count == 1, TimeSpan.FromSeconds(15), "the first page");
        var idA = Assert.Single(first.Services.GetRequiredService<IncidentManager>().Open()).Id;

        // Incident B opens; its page is emitted (and logged) but the controller dies before handing it to delivery.
        var emitted = first.Services.GetRequiredService<IncidentManager>().Apply([Lost("n9", 0, true, T0.AddSeconds(1))], T0.AddSeconds(1));
        var idB = Assert.Single(emitted, c => c.IsNotification).Incident.Id;
        Assert.NotEqual(idA, idB);
        await first.DisposeAsync(); // no StopAsync: the host is dropped, as a killed process is

        var second = await StartControllerAsync(receiver.Url("/hook"));
        try
        {
            // The same findings again (the agents keep reporting), then they clear and stay clear past the resolve hold.
            await ApplyAsync(second, T0.AddSeconds(5), Lost("n7", 3, true, T0.AddSeconds(5)), Lost("n9", 0, true, T0.AddSeconds(5)));
            await ApplyAsync(second, T0.AddSeconds(10), Lost("n7", 3, false, T0.AddSeconds(10)), Lost("n9", 0, false, T0.AddSeconds(10)));
            await ApplyAsync(second, T0.AddSeconds(45));

            await Wait.UntilAsync(() => receiver.Posts.Count >= 4, TimeSpan.FromSeconds(15), "firing and resolved for both incidents",
                () => string.Join(", ", Received(receiver)));
            await Task.Delay(TimeSpan.FromSeconds(1)); // a duplicate, if any, would arrive now
            var received = Received(receiver);
            Assert.Equal([(idA, "firing"), (idA, "resolved"), (idB, "firing"), (idB, "resolved")], received.Order().ToList());

            var http = new HttpClient { BaseAddress = new Uri(second.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()) };
            using var response = await http.GetAsync($"/api/v1/incidents/{idA}");
            using var incident = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal((idA, "n7", T0.AddSeconds(45)), (incident.RootElement.GetProperty("id").GetString(), incident.RootElement.GetProperty("node").GetString(),
                incident.RootElement.GetProperty("resolvedAt").GetDateTimeOffset()));
            using var resolved = JsonDocument.Parse(await http.GetStringAsync("/api/v1/incidents?state=resolved"));
            Assert.Equal([idA, idB], resolved.RootElement.EnumerateArray().Select(i => i.GetProperty("id").GetString()!).Order());
            Assert.Empty(second.Services.GetRequiredService<IncidentStore>().PendingHandOffs());
        }
        finally
        {
            await second.StopAsync();
            await second.DisposeAsync();
        }
    }

    /// <summary>(incident id, status) of every post, from the Alertmanager v4 payload's group labels.</summary>
    private static List<(string Id, string Status)> Received(LoopbackReceiver receiver) =>
        receiver.Posts.Select(p => (p.Json.GetProperty("groupLabels").GetProperty("incident_id").GetString()!, p.Json.GetProperty("status").GetString()!)).ToList();
}
