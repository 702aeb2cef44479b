using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using FleetWatch.Contracts;
using FleetWatch.Controller.Alerting;
using FleetWatch.Controller.Incidents;

namespace FleetWatch.Controller.Tests.Alerting;

/// <summary>
/// Each receiver's payload as a loopback receiver sees it, checked against the documented schema
/// (research/dashboard-alerting-anchors.md sections 2.1-2.4): Slack text + blocks, Teams Adaptive Card, PagerDuty
/// Events v2 trigger/resolve with one dedup_key, generic webhook v4 with a verifiable HMAC.
/// </summary>
public sealed class ReceiverPayloadTests
{
    private const string RoutingKey = "0123456789abcdef0123456789abcdef";
    private const string Secret = "s3cr3t-hmac-key-for-tests";

    [Fact]
    public async Task Every_receiver_gets_its_documented_payload_for_trigger_and_resolve()
    {
        await using var server = await LoopbackReceiver.StartAsync();
        using var db = new TempDatabase();
        await using var engine = await DeliveryHarness.StartAsync(db.Path, new Dictionary<string, string?>
        {
            ["FleetWatch:Alerting:Receivers:0:Name"] = "slack",
            ["FleetWatch:Alerting:Receivers:0:Type"] = "Slack",
            ["FleetWatch:Alerting:Receivers:0:StormThreshold"] = "0", // single-incident messages (storms: StormBatchingTests)
            ["FleetWatch:Alerting:Receivers:0:Url"] = server.Url("/slack/T000/B000/XXXX"),
            ["FleetWatch:Alerting:Receivers:1:Name"] = "teams",
            ["FleetWatch:Alerting:Receivers:1:Type"] = "Teams",
            ["FleetWatch:Alerting:Receivers:1:StormThreshold"] = "0",
            ["FleetWatch:Alerting:Receivers:1:Url"] = server.Url("/teams?sig=abc"),
            ["FleetWatch:Alerting:Receivers:2:Name"] = "pagerduty",
            ["FleetWatch:Alerting:Receivers:2:Type"] = "PagerDuty",
            ["FleetWatch:Alerting:Receivers:2:Url"] = server.Url("/pd/v2/enqueue"),
            ["FleetWatch:Alerting:Receivers:2:RoutingKey"] = RoutingKey,
            ["FleetWatch:Alerting:Receivers:3:Name"] = "hook",
            ["FleetWatch:Alerting:Receivers:3:Type"] = "Webhook",
            ["FleetWatch:Alerting:Receivers:3:Url"] = server.Url("/hook"),
            ["FleetWatch:Alerting:Receivers:3:Secret"] = Secret,
        });

        var opened = DeliveryHarness.Opened("inc-42");
        var resolved = DeliveryHarness.Resolved("inc-42");
        engine.Delivery.Enqueue(opened);
        engine.Delivery.Enqueue(resolved);
        await Poll.UntilAsync(() => server.Posts.Count == 8, TimeSpan.FromSeconds(15), "trigger and resolve at four receivers");

        var posts = server.Posts.ToList();
        var slack = posts.Where(p => p.Path.StartsWith("/slack", StringComparison.Ordinal)).ToList();
        var teams = posts.Where(p => p.Path == "/teams").ToList();
        var pd = posts.Where(p => p.Path == "/pd/v2/enqueue").ToList();
        var hook = posts.Where(p => p.Path == "/hook").ToList();
        Assert.Equal((2, 2, 2, 2), (slack.Count, teams.Count, pd.Count, hook.Count));
        Assert.All(posts, p => Assert.StartsWith("application/json", p.Headers["Content-Type"], StringComparison.Ordinal));

        AssertSlack(slack[0].Json, "FIRING");
        AssertSlack(slack[1].Json, "RESOLVED");
        AssertTeams(teams[0], "FIRING");
        AssertTeams(teams[1], "RESOLVED");

        // PagerDuty: a trigger then a resolve on the same alert: same routing_key, same dedup_key (the incident id).
        var trigger = pd[0].Json;
        Assert.Equal(RoutingKey, trigger.GetProperty("routing_key").GetString());
        Assert.Equal("trigger", trigger.GetProperty("event_action").GetString());
        Assert.Equal("inc-42", trigger.GetProperty("dedup_key").GetString());
        var payload = trigger.GetProperty("payload");
        Assert.InRange(payload.GetProperty("summary").GetString()!.Length, 1, 1024);
        Assert.Equal("gpu0003", payload.GetProperty("source").GetString());
        Assert.Contains(payload.GetProperty("severity").GetString(), new[] { "critical", "error", "warning", "info" });
        Assert.Equal("critical", payload.GetProperty("severity").GetString());
        Assert.True(DateTimeOffset.TryParse(payload.GetProperty("timestamp").GetString(), out _));
        Assert.Equal(JsonValueKind.Object, payload.GetProperty("custom_details").ValueKind);
        var resolve = pd[1].Json;
        Assert.Equal("resolve", resolve.GetProperty("event_action").GetString());
        Assert.Equal(trigger.GetProperty("dedup_key").GetString(), resolve.GetProperty("dedup_key").GetString());
        Assert.Equal(RoutingKey, resolve.GetProperty("routing_key").GetString());

        // Generic webhook: Alertmanager v4, idempotency key, and an HMAC the receiver can verify with the shared secret.
        for (var i = 0; i < 2; i++)
        {
            var post = hook[i];
            var expected = "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(Secret), post.Body));
            Assert.Equal(expected, post.Headers["X-FleetWatch-Signature"]);
            Assert.False(WebhookSignature.Verify("another-secret", post.Body, post.Headers["X-FleetWatch-Signature"]));
            Assert.Equal("4", post.Json.GetProperty("version").GetString());
            Assert.Equal("hook", post.Json.GetProperty("receiver").GetString());
            Assert.Equal(i == 0 ? "firing" : "resolved", post.Json.GetProperty("status").GetString());
            Assert.Equal((i == 0 ? opened : resolved).NotificationKey, post.Headers["X-FleetWatch-Notification-Key"]);
        }

        Assert.Equal(8, engine.Metrics.Delivered);
    }

    private static void AssertSlack(JsonElement root, string status)
    {
        Assert.StartsWith($"[{status}]", root.GetProperty("text").GetString(), StringComparison.Ordinal);
        var blocks = root.GetProperty("blocks");
        Assert.InRange(blocks.GetArrayLength(), 1, 50);
        var types = blocks.EnumerateArray().Select(b => b.GetProperty("type").GetString()).ToList();
        Assert.Equal(["header", "section", "actions", "context"], types);
        var header = blocks[0].GetProperty("text");
        Assert.Equal("plain_text", header.GetProperty("type").GetString());
        Assert.InRange(header.GetProperty("text").GetString()!.Length, 1, 150);
        var section = blocks[1];
        Assert.Equal("mrkdwn", section.GetProperty("text").GetProperty("type").GetString());
        Assert.InRange(section.GetProperty("text").GetProperty("text").GetString()!.Length, 1, 3000);
        Assert.InRange(section.GetProperty("fields").GetArrayLength(), 1, 10);
        Assert.All(section.GetProperty("fields").EnumerateArray(), f => Assert.Equal("mrkdwn", f.GetProperty("type").GetString()));
        var button = blocks[2].GetProperty("elements")[0];
        Assert.Equal("button", button.GetProperty("type").GetString());
        Assert.Equal("plain_text", button.GetProperty("text").GetProperty("type").GetString());
        Assert.StartsWith("https://fleetwatch.test/", button.GetProperty("url").GetString(), StringComparison.Ordinal);
    }

    private static void AssertTeams(CapturedPost post, string status)
    {
        var root = post.Json;
        Assert.Equal("message", root.GetProperty("type").GetString());
        var attachment = Assert.Single(root.GetProperty("attachments").EnumerateArray());
        Assert.Equal("application/vnd.microsoft.card.adaptive", attachment.GetProperty("contentType").GetString());
        var card = attachment.GetProperty("content");
        Assert.Equal("AdaptiveCard", card.GetProperty("type").GetString());
        Assert.Equal(JsonValueKind.String, card.GetProperty("version").ValueKind);
        Assert.Equal("1.4", card.GetProperty("version").GetString());
        Assert.Equal("http://adaptivecards.io/schemas/adaptive-card.json", card.GetProperty("$schema").GetString());
        var body = card.GetProperty("body");
        Assert.All(body.EnumerateArray(), e => Assert.Contains(e.GetProperty("type").GetString(), new[] { "TextBlock", "FactSet" }));
        Assert.Contains(status, body[0].GetProperty("text").GetString(), StringComparison.Ordinal);
        var facts = body.EnumerateArray().Single(e => e.GetProperty("type").GetString() == "FactSet").GetProperty("facts");
        Assert.All(facts.EnumerateArray(), f => Assert.Equal(JsonValueKind.String, f.GetProperty("value").ValueKind));
        // Webhooks accept only Action.OpenUrl / ShowCard / ToggleVisibility; FleetWatch uses OpenUrl.
        Assert.All(card.GetProperty("actions").EnumerateArray(), a => Assert.Equal("Action.OpenUrl", a.GetProperty("type").GetString()));
        Assert.True(post.Body.Length < 28 * 1024, $"card is {post.Body.Length} bytes");
    }

    [Fact]
    public void Teams_card_of_a_storm_incident_stays_under_the_size_limit()
    {
        var t = new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero);
        var findings = Enumerable.Range(0, 2000).Select(i => new FindingInfo
        {
            Rule = $"rule-{i}", Severity = Severity.Warning, Message = new string('x', 300), FirstSeen = t, LastSeen = t,
        }).ToList();
        var incident = DeliveryHarness.Incident("inc-storm") with { Findings = findings };
        var card = TeamsPayload.Build(new AlertNotice(IncidentChangeKind.Opened, incident, "inc-storm/Opened/Critical/0"), "https://fw");

        Assert.InRange(Encoding.UTF8.GetByteCount(card.ToJsonString()), 1, TeamsPayload.MaxBytes);
        Assert.Contains("more", card.ToJsonString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(Severity.Critical, "critical")]
    [InlineData(Severity.High, "error")]
    [InlineData(Severity.Warning, "warning")]
    [InlineData(Severity.Info, "info")]
    public void PagerDuty_severity_is_one_of_the_four_documented_values(Severity severity, string expected) =>
        Assert.Equal(expected, PagerDutyPayload.Severity(severity));

    [Fact]
    public void Alertmanager_api_alert_has_labels_and_no_endsAt_while_firing_and_endsAt_when_resolved()
    {
        var now = new DateTimeOffset(2026, 11, 29, 12, 10, 0, TimeSpan.Zero);
        var firing = AlertmanagerApiPayload.Build([new AlertNotice(IncidentChangeKind.Opened, DeliveryHarness.Incident("inc-9"), "k1")], "https://fw", now);
        var resolved = AlertmanagerApiPayload.Build([new AlertNotice(IncidentChangeKind.Resolved, DeliveryHarness.Incident("inc-9", resolved: now), "k2")], "https://fw", now);

        var a = firing[0]!.AsObject();
        Assert.Equal(["annotations", "generatorURL", "labels", "startsAt"], a.Select(p => p.Key).Order(StringComparer.Ordinal));
        Assert.Equal("inc-9", a["labels"]!["incident_id"]!.GetValue<string>());
        Assert.Equal("2026-11-29T12:10:00.000Z", resolved[0]!["endsAt"]!.GetValue<string>());
        // The same labels identify the same Alertmanager alert across firing and resolve.
        Assert.Equal(a["labels"]!.ToJsonString(), resolved[0]!["labels"]!.ToJsonString());
        Assert.Equal("http://am:9093/api/v2/alerts", AlertmanagerApiPayload.AlertsUrl("http://am:9093/"));
    }
}
