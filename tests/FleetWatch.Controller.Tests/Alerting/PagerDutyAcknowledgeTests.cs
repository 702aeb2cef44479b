using System.Net;
using System.Text.Json;
using FleetWatch.Contracts;
using FleetWatch.Controller.Alerting;
using FleetWatch.Controller.Incidents;
using FleetWatch.Controller.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using static FleetWatch.Controller.Tests.Detection.SampleBuilder;
using static FleetWatch.Controller.Tests.Incidents.IncidentGroupingTests;

namespace FleetWatch.Controller.Tests.Alerting;

/// <summary>
/// An operator's acknowledgement in FleetWatch reaches PagerDuty as an Events API v2 <c>acknowledge</c> with the
/// trigger's dedup_key (research/dashboard-alerting-anchors.md section 2.4), through the outbox, exactly once.
/// </summary>
public sealed class PagerDutyAcknowledgeTests
{
    private const string RoutingKey = "0123456789abcdef0123456789abcdef";

    [Fact]
    public void Acknowledge_event_carries_only_routing_key_dedup_key_and_action()
    {
        var incident = DeliveryHarness.Incident("inc-7") with { AcknowledgedBy = "alice", AcknowledgedAt = T0 };

        var body = PagerDutyPayload.Build(AlertNotice.Acknowledged(incident), RoutingKey, "https://fw");

        // {"routing_key": "…", "dedup_key": "…", "event_action": "acknowledge"}: the research file's example, exactly.
        Assert.Equal(["routing_key", "dedup_key", "event_action"], body.Select(p => p.Key));
        Assert.Equal(RoutingKey, body["routing_key"]!.GetValue<string>());
        Assert.Equal("inc-7", body["dedup_key"]!.GetValue<string>());
        Assert.Equal("acknowledge", body["event_action"]!.GetValue<string>());
        Assert.Equal("inc-7/Acknowledged", AlertNotice.Acknowledged(incident).NotificationKey);
    }

    [Fact]
    public async Task Ack_through_the_incident_api_sends_one_acknowledge_to_pagerduty_and_a_second_ack_sends_none()
    {
        await using var pagerDuty = await LoopbackReceiver.StartAsync();
        pagerDuty.SuccessStatus = 202;
        await using var slack = await LoopbackReceiver.StartAsync();
        using var db = new TempDatabase();
        var time = new FakeTimeProvider(T0);
        await using var app = await StartControllerAsync(db.Path, time, pagerDuty, slack);
        using var http = new HttpClient { BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()) };
        var incidents = app.Services.GetRequiredService<IncidentManager>();
        var delivery = app.Services.GetRequiredService<WebhookDelivery>();

        incidents.Apply([Lost("n1", 0)], T0);
        var opened = incidents.Open()[0];
        delivery.Enqueue(new IncidentChange(IncidentChangeKind.Opened, opened));
        await Poll.UntilAsync(() => pagerDuty.Posts.Count == 1 && slack.Posts.Count == 1, TimeSpan.FromSeconds(10), "the trigger and the Slack message");

        using (var first = await http.PostAsync($"/api/v1/incidents/{opened.Id}/ack", null))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }

        using (var second = await http.PostAsync($"/api/v1/incidents/{opened.Id}/ack", null))
        {
            Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        }

        await Poll.UntilAsync(() => delivery.Receivers.Keys.All(r => app.Services.GetRequiredService<AlertOutbox>().Counts()[r].Pending == 0) && pagerDuty.Posts.Count == 2,
            TimeSpan.FromSeconds(10), "the acknowledge");

        var trigger = pagerDuty.Posts.First().Json;
        var ack = pagerDuty.Posts.Last().Json;
        Assert.Equal("trigger", trigger.GetProperty("event_action").GetString());
        Assert.Equal("acknowledge", ack.GetProperty("event_action").GetString());
        Assert.Equal(trigger.GetProperty("dedup_key").GetString(), ack.GetProperty("dedup_key").GetString());
        Assert.Equal(RoutingKey, ack.GetProperty("routing_key").GetString());
        Assert.False(ack.TryGetProperty("payload", out _));
        Assert.Single(slack.Posts); // chat is not told of the acknowledgement
        var rows = app.Services.GetRequiredService<AlertOutbox>().Query(opened.Id, null, 10);
        Assert.Equal(["Acknowledged", "Opened"], rows.Where(r => r.Receiver == "pd").Select(r => r.Kind));
        Assert.All(rows, r => Assert.Equal(DeliveryState.Delivered, r.State));
    }

    [Fact]
    public async Task An_ack_stored_but_not_queued_before_a_stop_is_sent_at_start_after_the_trigger()
    {
        await using var pagerDuty = await LoopbackReceiver.StartAsync();
        using var db = new TempDatabase();
        var time = new FakeTimeProvider(T0);
        await using var provider = Services(db.Path, time, pagerDuty, slack: null).BuildServiceProvider();
        var incidents = provider.GetRequiredService<IncidentManager>();
        var delivery = provider.GetRequiredService<WebhookDelivery>();

        incidents.Apply([Lost("n1", 0)], T0);
        var opened = incidents.Open()[0];
        delivery.Enqueue(new IncidentChange(IncidentChangeKind.Opened, opened));
        // The controller stops between the store's write and the outbox's: only the incident manager knows.
        Assert.NotNull(incidents.Acknowledge(opened.Id, "bob", "on it", T0.AddSeconds(5)));
        Assert.Single(provider.GetRequiredService<AlertOutbox>().Query(opened.Id, null, 10));

        await ((IHostedService)delivery).StartAsync(CancellationToken.None);
        try
        {
            await Poll.UntilAsync(() => pagerDuty.Posts.Count == 2, TimeSpan.FromSeconds(10), "trigger and acknowledge");
        }
        finally
        {
            await ((IHostedService)delivery).StopAsync(CancellationToken.None);
        }

        Assert.Equal(["trigger", "acknowledge"], pagerDuty.Posts.Select(p => p.Json.GetProperty("event_action").GetString()));
        Assert.Empty(delivery.EnqueueAcknowledged(incidents.Find(opened.Id)!)); // already queued: a no-op
    }

    [Fact]
    public async Task Nothing_is_queued_for_an_unacknowledged_or_resolved_incident_or_a_receiver_that_never_had_it()
    {
        await using var pagerDuty = await LoopbackReceiver.StartAsync();
        using var db = new TempDatabase();
        await using var engine = await DeliveryHarness.StartAsync(db.Path, new Dictionary<string, string?>
        {
            ["FleetWatch:Alerting:Receivers:0:Name"] = "pd",
            ["FleetWatch:Alerting:Receivers:0:Type"] = "PagerDuty",
            ["FleetWatch:Alerting:Receivers:0:Url"] = pagerDuty.Url("/v2/enqueue"),
            ["FleetWatch:Alerting:Receivers:0:RoutingKey"] = RoutingKey,
        });
        var acked = DeliveryHarness.Incident("inc-1") with { AcknowledgedBy = "alice", AcknowledgedAt = T0 };

        Assert.Empty(engine.Delivery.EnqueueAcknowledged(acked)); // PagerDuty never had its trigger: it would drop the ack
        engine.Delivery.Enqueue(DeliveryHarness.Opened("inc-1"));
        Assert.Empty(engine.Delivery.EnqueueAcknowledged(DeliveryHarness.Incident("inc-1"))); // not acknowledged
        Assert.Empty(engine.Delivery.EnqueueAcknowledged(acked with { ResolvedAt = T0.AddMinutes(1) })); // its resolve closes it
        Assert.Equal(["pd"], engine.Delivery.EnqueueAcknowledged(acked));
        Assert.Empty(engine.Delivery.EnqueueAcknowledged(acked with { AcknowledgedAt = T0.AddMinutes(2) })); // once
        await Poll.UntilAsync(() => pagerDuty.Posts.Count == 2, TimeSpan.FromSeconds(10), "trigger and acknowledge");
    }

    private static ServiceCollection Services(string path, TimeProvider time, LoopbackReceiver pagerDuty, LoopbackReceiver? slack)
    {
        var services = new ServiceCollection();
        services.AddLogging(l => l.SetMinimumLevel(LogLevel.Warning));
        services.AddSingleton(time);
        AddIncidentsAndDelivery(services, Configuration(path, pagerDuty, slack));
        return services;
    }

    /// <summary>The incident manager over the SQLite store (as IncidentApiTests composes it) and the real delivery engine.</summary>
    private static void AddIncidentsAndDelivery(IServiceCollection services, IConfiguration configuration)
    {
        services.AddDetection(configuration);
        services.AddControllerStore(configuration);
        services.AddStoreSchema(IncidentStore.SchemaName, IncidentStore.Schema);
        services.AddSingleton<IncidentStore>();
        services.AddAlertDelivery(configuration);
    }

    private static IConfiguration Configuration(string path, LoopbackReceiver pagerDuty, LoopbackReceiver? slack)
    {
        var settings = new Dictionary<string, string?>
        {
            [$"{StorageOptions.Section}:Path"] = path,
            ["FleetWatch:Alerting:ExternalUrl"] = "https://fleetwatch.test",
            ["FleetWatch:Alerting:Receivers:0:Name"] = "pd",
            ["FleetWatch:Alerting:Receivers:0:Type"] = "PagerDuty",
            ["FleetWatch:Alerting:Receivers:0:Url"] = pagerDuty.Url("/v2/enqueue"),
            ["FleetWatch:Alerting:Receivers:0:RoutingKey"] = RoutingKey,
        };
        if (slack is not null)
        {
            settings["FleetWatch:Alerting:Receivers:1:Name"] = "slack";
            settings["FleetWatch:Alerting:Receivers:1:Type"] = "Slack";
            settings["FleetWatch:Alerting:Receivers:1:Url"] = slack.Url("/s");
            settings["FleetWatch:Alerting:Receivers:1:StormThreshold"] = "0";
        }

        return new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
    }

    /// <summary>The incident API mounted at /api/v1 as the host does, with the real delivery engine on the same store.</summary>
    private static async Task<WebApplication> StartControllerAsync(string path, TimeProvider time, LoopbackReceiver pagerDuty, LoopbackReceiver slack)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Configuration.AddConfiguration(Configuration(path, pagerDuty, slack));
        builder.Services.AddSingleton(time);
        AddIncidentsAndDelivery(builder.Services, builder.Configuration);
        var app = builder.Build();
        app.MapGroup("/api/v1").MapIncidentApi();
        await app.StartAsync();
        return app;
    }
}
