using System.Net;
using System.Text.Json;
using FleetWatch.Controller.Alerting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Controller.Tests.Alerting;

/// <summary>The alerting HTTP API on a real Kestrel host: shapes, filters, errors, and no secret in any answer.</summary>
public sealed class AlertingApiTests
{
    private const string SlackUrlToken = "T0SECRET/B0SECRET/slacktokenvalue";
    private const string RoutingKey = "fedcba9876543210fedcba9876543210";
    private const string HmacSecret = "hmac-secret-value";

    [Fact]
    public async Task Deliveries_and_receivers_show_state_and_never_secrets()
    {
        await using var server = await LoopbackReceiver.StartAsync();
        server.AlwaysStatus = 410; // Slack: channel_is_archived → given up
        using var db = new TempDatabase();
        var settings = new Dictionary<string, string?>
        {
            ["FleetWatch:Storage:Path"] = db.Path,
            ["FleetWatch:Alerting:ExternalUrl"] = "https://fleetwatch.test",
            ["FleetWatch:Alerting:Receivers:0:Name"] = "slack-infra",
            ["FleetWatch:Alerting:Receivers:0:Type"] = "slack", // type names bind case-insensitively
            ["FleetWatch:Alerting:Receivers:0:StormThreshold"] = "0",
            ["FleetWatch:Alerting:Receivers:0:Url"] = server.Url("/services/" + SlackUrlToken),
            ["FleetWatch:Alerting:Receivers:1:Name"] = "pd",
            ["FleetWatch:Alerting:Receivers:1:Type"] = "pagerduty",
            ["FleetWatch:Alerting:Receivers:1:Url"] = server.Url("/pd"),
            ["FleetWatch:Alerting:Receivers:1:RoutingKey"] = RoutingKey,
            ["FleetWatch:Alerting:Webhooks:0:Name"] = "legacy",
            ["FleetWatch:Alerting:Webhooks:0:Url"] = server.Url("/legacy"),
            ["FleetWatch:Alerting:Webhooks:0:Secret"] = HmacSecret,
            ["FleetWatch:Alerting:Routes:0:Receivers:0"] = "slack-infra",
            ["FleetWatch:Alerting:Routes:0:Match:node"] = "gpu0003",
        };
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddAlertDelivery(builder.Configuration);
        await using var app = builder.Build();
        app.MapGroup("/api/v1").MapAlertingApi();
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()) };
        var delivery = app.Services.GetRequiredService<WebhookDelivery>();
        var metrics = app.Services.GetRequiredService<AlertMetrics>();

        delivery.Enqueue(DeliveryHarness.Opened("inc-1", node: "gpu0003"));
        delivery.Enqueue(DeliveryHarness.Opened("inc-2", node: "gpu0009"));
        await Poll.UntilAsync(() => metrics.GivenUp == 1, TimeSpan.FromSeconds(10), "slack give-up");

        var deliveries = await GetJsonAsync(http, "/api/v1/alerts/deliveries?incident=inc-1");
        var row = Assert.Single(deliveries.EnumerateArray());
        Assert.Equal("inc-1/Opened/Critical/0", row.GetProperty("key").GetString());
        Assert.Equal("inc-1", row.GetProperty("incidentId").GetString());
        Assert.Equal("slack-infra", row.GetProperty("receiver").GetString());
        Assert.Equal("Opened", row.GetProperty("kind").GetString());
        Assert.Equal("given_up", row.GetProperty("state").GetString());
        Assert.Equal(1, row.GetProperty("attempts").GetInt32());
        Assert.Equal(410, row.GetProperty("lastStatus").GetInt32());
        Assert.Equal("HTTP 410", row.GetProperty("lastError").GetString());
        Assert.True(row.TryGetProperty("createdAt", out _));
        Assert.Equal(JsonValueKind.Null, row.GetProperty("deliveredAt").ValueKind);

        Assert.Single((await GetJsonAsync(http, "/api/v1/alerts/deliveries?state=given_up")).EnumerateArray());
        Assert.Empty((await GetJsonAsync(http, "/api/v1/alerts/deliveries?incident=inc-2")).EnumerateArray()); // routed nowhere (no default)
        Assert.Single((await GetJsonAsync(http, "/api/v1/alerts/deliveries?limit=1")).EnumerateArray());

        var receivers = await GetJsonAsync(http, "/api/v1/alerts/receivers");
        var byName = receivers.EnumerateArray().ToDictionary(r => r.GetProperty("name").GetString()!);
        Assert.Equal(["legacy", "slack-infra", "pd"], receivers.EnumerateArray().Select(r => r.GetProperty("name").GetString()));
        Assert.Equal(("slack", 0, 0, 1, "HTTP 410"), (byName["slack-infra"].GetProperty("type").GetString(), byName["slack-infra"].GetProperty("pending").GetInt64(),
            byName["slack-infra"].GetProperty("delivered").GetInt64(), byName["slack-infra"].GetProperty("givenUp").GetInt64(), byName["slack-infra"].GetProperty("lastError").GetString()));
        Assert.Equal("pagerduty", byName["pd"].GetProperty("type").GetString());
        Assert.Equal("webhook", byName["legacy"].GetProperty("type").GetString());

        var everything = await http.GetStringAsync("/api/v1/alerts/receivers") + await http.GetStringAsync("/api/v1/alerts/deliveries");
        foreach (var secret in new[] { "SECRET", RoutingKey, HmacSecret, server.BaseUrl, "127.0.0.1" })
        {
            Assert.DoesNotContain(secret, everything, StringComparison.Ordinal);
        }

        foreach (var bad in new[] { "?state=lost", "?limit=0", "?limit=abc", "?limit=100000" })
        {
            using var response = await http.GetAsync(new Uri("/api/v1/alerts/deliveries" + bad, UriKind.Relative));
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Contains(bad.Split('=')[1], error.RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
        }

        await app.StopAsync();
    }

    private static async Task<JsonElement> GetJsonAsync(HttpClient http, string path)
    {
        using var doc = JsonDocument.Parse(await http.GetStringAsync(new Uri(path, UriKind.Relative)));
        return doc.RootElement.Clone();
    }
}
