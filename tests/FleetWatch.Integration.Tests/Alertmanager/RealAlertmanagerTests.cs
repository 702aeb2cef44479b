using System.Text.Json;
using FleetWatch.Contracts;
using FleetWatch.Controller.Alerting;
using FleetWatch.Controller.Incidents;
using FleetWatch.Integration.Tests.Support;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Integration.Tests.Alertmanager;

/// <summary>
/// Integration tier: FleetWatch's Alertmanager receiver posts to a REAL Alertmanager, which groups the alert and
/// notifies a webhook receiver in the test; the resolve must come back through Alertmanager's send_resolved path.
/// </summary>
public sealed class RealAlertmanagerTests
{
    [Fact]
    public async Task Alert_arrives_through_alertmanager_grouping_and_so_does_its_resolve()
    {
        await using var webhook = await LoopbackReceiver.StartAsync();
        await using var alertmanager = await AlertmanagerProcess.StartAsync(webhook.Url("/hook"));
        var dir = Directory.CreateTempSubdirectory("fleetwatch-am-outbox-").FullName;
        try
        {
            var services = new ServiceCollection();
            services.AddLogging(l => l.SetMinimumLevel(LogLevel.Warning));
            var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["FleetWatch:Storage:Path"] = Path.Combine(dir, "controller.db"),
                ["FleetWatch:Alerting:ExternalUrl"] = "https://fleetwatch.test",
                ["FleetWatch:Alerting:Receivers:0:Name"] = "alertmanager",
                ["FleetWatch:Alerting:Receivers:0:Type"] = "Alertmanager",
                ["FleetWatch:Alerting:Receivers:0:Url"] = alertmanager.Url,
                // Re-post firing alerts every second, so the test also sees the refresh that keeps them alive.
                ["FleetWatch:Alerting:Receivers:0:ResendInterval"] = "00:00:01",
            }).Build();
            services.AddAlertDelivery(configuration);
            await using var provider = services.BuildServiceProvider();
            var delivery = provider.GetRequiredService<WebhookDelivery>();
            var metrics = provider.GetRequiredService<AlertMetrics>();
            await ((IHostedService)delivery).StartAsync(CancellationToken.None);

            var id = $"inc-am-{Guid.NewGuid():N}"[..20];
            var opened = DateTimeOffset.UtcNow.AddSeconds(-5);
            var incident = new IncidentSnapshot
            {
                Id = id, Node = "gpu0007", GpuIndex = 2, Severity = Severity.Critical, Category = "gpu_fell_off_bus", Action = "restart_node", OpenedAt = opened,
                Findings = [new FindingInfo { Rule = "xid:79", Severity = Severity.Critical, Message = "Xid 79", FirstSeen = opened, LastSeen = opened }],
            };
            delivery.Enqueue(new IncidentChange(IncidentChangeKind.Opened, incident));

            JsonElement? Notification(string status) => webhook.Posts.Select(p => (JsonElement?)p.Json)
                .FirstOrDefault(b => b!.Value.GetProperty("status").GetString() == status
                    && b.Value.GetProperty("alerts").EnumerateArray().Any(a => a.GetProperty("labels").GetProperty("incident_id").GetString() == id));

            await Wait.UntilAsync(() => Notification("firing") is not null, TimeSpan.FromSeconds(20), "the firing notification from Alertmanager", () => alertmanager.Output);
            var firing = Notification("firing")!.Value;
            Assert.Equal("4", firing.GetProperty("version").GetString());
            Assert.Equal(AlertmanagerProcess.ReceiverName, firing.GetProperty("receiver").GetString());
            Assert.Equal(id, firing.GetProperty("groupLabels").GetProperty("incident_id").GetString()); // Alertmanager's own grouping
            var alert = firing.GetProperty("alerts")[0];
            var labels = alert.GetProperty("labels");
            Assert.Equal(("gpu0007", "2", "critical", "FleetWatchGpuFellOffBus"),
                (labels.GetProperty("node").GetString(), labels.GetProperty("gpu").GetString(), labels.GetProperty("severity").GetString(), labels.GetProperty("alertname").GetString()));
            Assert.Equal("https://fleetwatch.test/?node=gpu0007", alert.GetProperty("generatorURL").GetString());
            Assert.True(DateTimeOffset.Parse(alert.GetProperty("startsAt").GetString()!, System.Globalization.CultureInfo.InvariantCulture) <= opened.AddSeconds(1));

            // The firing alert is re-posted (Alertmanager would otherwise resolve it after resolve_timeout).
            await Wait.UntilAsync(() => metrics.Attempts >= 3, TimeSpan.FromSeconds(10), "re-posts of the firing alert", () => $"attempts {metrics.Attempts}");
            Assert.Null(Notification("resolved"));

            delivery.Enqueue(new IncidentChange(IncidentChangeKind.Resolved, incident with { ResolvedAt = DateTimeOffset.UtcNow }));
            await Wait.UntilAsync(() => Notification("resolved") is not null, TimeSpan.FromSeconds(20), "the resolved notification from Alertmanager", () => alertmanager.Output);
            var resolvedAlert = Notification("resolved")!.Value.GetProperty("alerts")[0];
            Assert.Equal("resolved", resolvedAlert.GetProperty("status").GetString());
            Assert.NotEqual("0001-01-01T00:00:00Z", resolvedAlert.GetProperty("endsAt").GetString());
            Assert.Equal(alert.GetProperty("fingerprint").GetString(), resolvedAlert.GetProperty("fingerprint").GetString());
            Assert.Equal(2, metrics.Delivered); // the opened and the resolved outbox rows
            Assert.Equal(0, metrics.GivenUp);
            await ((IHostedService)delivery).StopAsync(CancellationToken.None);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            Directory.Delete(dir, recursive: true);
        }
    }
}
