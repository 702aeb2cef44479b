using System.Text;
using System.Text.Json;
using FleetWatch.Contracts;
using FleetWatch.Controller.Alerting;
using FleetWatch.Controller.Incidents;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Time.Testing;

namespace FleetWatch.Controller.Tests.Alerting;

/// <summary>
/// Storm batching of chat receivers: the pure decision (<see cref="StormBatcher.Plan"/>) table-driven, then the real
/// engine on a fake clock: a 50-incident storm is one Slack POST while PagerDuty and webhooks get 50 events, a restart
/// in the middle of the window loses nothing and sends nothing twice, resolves batch too, a failed summary is retried
/// as the same summary.
/// </summary>
public sealed class StormBatchingTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 30, 3, 0, 0, TimeSpan.Zero);
    private static readonly StormPolicy Policy = new(Threshold: 5, Window: TimeSpan.FromSeconds(10));

    public static TheoryData<string, int, int, int, double, string> Plans => new()
    {
        // name, rows in window, distinct incidents, head attempts, seconds since head queued, expected
        { "lone notification waits for its window", 1, 1, 0, 0, "wait 10" },
        { "a storm past the threshold is still collected until the window ends", 50, 50, 0, 3, "wait 7" },
        { "below the threshold at the window's end: sent alone", 4, 4, 0, 10, "single" },
        { "at the threshold at the window's end: one summary of all", 5, 5, 0, 10, "summary 5" },
        { "a storm at the window's end: one summary of all", 50, 50, 0, 12.5, "summary 50" },
        { "incidents are counted, not notifications (opened + resolved of one)", 6, 4, 0, 10, "single" },
        { "same, reaching the threshold", 6, 5, 0, 10, "summary 6" },
        { "a tried summary is retried at once, not held again", 5, 5, 1, 2, "summary 5" },
        { "a tried single is retried at once", 1, 1, 2, 1, "single" },
    };

    [Theory]
    [MemberData(nameof(Plans))]
    public void Plan_holds_for_the_window_and_batches_at_the_threshold(string name, int rows, int incidents, int headAttempts, double elapsed, string expected)
    {
        var time = new FakeTimeProvider(T0);
        var window = Enumerable.Range(0, rows)
            .Select(i => Row(i, $"inc-{i % incidents}", i < incidents ? IncidentChangeKind.Opened : IncidentChangeKind.Resolved, T0 + TimeSpan.FromMilliseconds(100 * i), i == 0 ? headAttempts : 0))
            .ToList();
        time.Advance(TimeSpan.FromSeconds(elapsed));

        var decision = StormBatcher.Plan(window[0], window, time.GetUtcNow(), Policy);

        var actual = decision switch
        {
            StormDecision.Wait w => $"wait {(w.Until - time.GetUtcNow()).TotalSeconds:0.#}",
            StormDecision.Single s => s.Row == window[0] ? "single" : "single (not the head)",
            StormDecision.Summary s => $"summary {s.Rows.Count}",
            _ => "?",
        };
        Assert.True(expected == actual, $"{name}: expected {expected}, got {actual}");
    }

    [Fact]
    public async Task A_50_incident_storm_is_one_slack_message_and_50_pagerduty_and_webhook_events()
    {
        await using var slack = await LoopbackReceiver.StartAsync();
        await using var pagerDuty = await LoopbackReceiver.StartAsync();
        pagerDuty.SuccessStatus = 202;
        await using var hook = await LoopbackReceiver.StartAsync();
        using var db = new TempDatabase();
        var time = new FakeTimeProvider(T0);
        await using var engine = await DeliveryHarness.StartAsync(db.Path, Receivers(slack, pagerDuty, hook), time);

        // A rack losing power: 50 incidents over 4.9 s (one every 100 ms), 10 nodes × 5 GPUs, two categories.
        for (var i = 0; i < 50; i++)
        {
            engine.Delivery.Enqueue(Opened($"inc-{i:D2}", $"r07n{i / 5:D2}", i % 5, i < 40 ? "node_silent" : "gpu_fell_off_bus", i % 4 == 0 ? Severity.High : Severity.Critical));
            time.Advance(TimeSpan.FromMilliseconds(100));
        }

        await Poll.AdvancingUntilAsync(time, TimeSpan.FromSeconds(1), () => Delivered(engine, "slack") == 50 && pagerDuty.Posts.Count == 50 && hook.Posts.Count == 50,
            TimeSpan.FromSeconds(20), "the storm delivered everywhere");

        var post = Assert.Single(slack.Posts);
        var text = post.Json.GetProperty("text").GetString()!;
        Assert.Contains("50 incidents", text, StringComparison.Ordinal);
        Assert.Contains("critical 37, high 13", text, StringComparison.Ordinal); // i % 4 == 0 → 13 of 50 are high
        var body = AllText(post.Json);
        Assert.Contains("node_silent 40, gpu_fell_off_bus 10", body, StringComparison.Ordinal);
        Assert.Contains("r07n00 / GPU0", body, StringComparison.Ordinal); // the first incidents listed with node and GPU
        Assert.Contains("+40 more", body, StringComparison.Ordinal);
        Assert.Contains("https://fleetwatch.test/#/incidents", body, StringComparison.Ordinal);
        Assert.True(post.Json.GetProperty("blocks").GetArrayLength() <= 50, "Slack allows 50 blocks");
        Assert.Equal(50, engine.Outbox.Counts()["slack"].Delivered);
        Assert.Equal(50, pagerDuty.Posts.Select(p => p.Json.GetProperty("dedup_key").GetString()).Distinct().Count());
        Assert.All(pagerDuty.Posts, p => Assert.Equal("trigger", p.Json.GetProperty("event_action").GetString()));
        Assert.Equal(50, engine.Metrics.Receivers().Single(r => r.Receiver == "slack").Delivered);
        Assert.Equal(1, engine.Metrics.Receivers().Single(r => r.Receiver == "slack").StormSummaries);
        Assert.Equal(1, engine.Metrics.Receivers().Single(r => r.Receiver == "slack").Attempts);
    }

    [Fact]
    public async Task A_few_incidents_are_sent_one_by_one_after_the_window()
    {
        await using var slack = await LoopbackReceiver.StartAsync();
        using var db = new TempDatabase();
        var time = new FakeTimeProvider(T0);
        await using var engine = await DeliveryHarness.StartAsync(db.Path, new Dictionary<string, string?>
        {
            ["FleetWatch:Alerting:Receivers:0:Name"] = "slack",
            ["FleetWatch:Alerting:Receivers:0:Type"] = "Slack",
            ["FleetWatch:Alerting:Receivers:0:Url"] = slack.Url("/s"),
        }, time);

        for (var i = 0; i < StormPolicy.DefaultThreshold - 1; i++)
        {
            engine.Delivery.Enqueue(Opened($"inc-{i}", $"node{i}", 0, "node_silent", Severity.Critical));
        }

        await Task.Delay(200);
        Assert.Empty(slack.Posts); // held: the storm window is not over
        await Poll.AdvancingUntilAsync(time, TimeSpan.FromSeconds(1), () => slack.Posts.Count == 4, TimeSpan.FromSeconds(20), "four single messages");

        Assert.All(slack.Posts, p => Assert.StartsWith("[FIRING]", p.Json.GetProperty("text").GetString(), StringComparison.Ordinal));
        Assert.Equal(0, engine.Metrics.Receivers().Single().StormSummaries);
    }

    [Fact]
    public async Task A_restart_inside_the_window_still_sends_exactly_one_summary()
    {
        await using var slack = await LoopbackReceiver.StartAsync();
        using var db = new TempDatabase();
        var time = new FakeTimeProvider(T0);
        var settings = new Dictionary<string, string?>
        {
            ["FleetWatch:Alerting:Receivers:0:Name"] = "slack",
            ["FleetWatch:Alerting:Receivers:0:Type"] = "Slack",
            ["FleetWatch:Alerting:Receivers:0:Url"] = slack.Url("/s"),
        };
        await using (var before = await DeliveryHarness.StartAsync(db.Path, settings, time))
        {
            for (var i = 0; i < 30; i++)
            {
                before.Delivery.Enqueue(Opened($"inc-{i:D2}", $"node{i:D2}", null, "node_silent", Severity.Critical));
            }

            time.Advance(TimeSpan.FromSeconds(3));
        }

        Assert.Empty(slack.Posts);
        await using var after = await DeliveryHarness.StartAsync(db.Path, settings, time);
        for (var i = 25; i < 50; i++)
        {
            // The detection path re-derives some changes after the restart: already queued, a no-op; the rest are new.
            after.Delivery.Enqueue(Opened($"inc-{i:D2}", $"node{i:D2}", null, "node_silent", Severity.Critical));
        }

        await Poll.AdvancingUntilAsync(time, TimeSpan.FromSeconds(1), () => Delivered(after, "slack") == 50 && slack.Posts.Count == 1, TimeSpan.FromSeconds(20), "one summary");
        await Task.Delay(100);

        var post = Assert.Single(slack.Posts);
        Assert.Contains("50 incidents", post.Json.GetProperty("text").GetString(), StringComparison.Ordinal);
        Assert.Equal(50, after.Outbox.Counts()["slack"].Delivered);
    }

    [Fact]
    public async Task Resolves_batch_too_and_a_failed_summary_is_retried_as_the_same_summary()
    {
        await using var teams = await LoopbackReceiver.StartAsync();
        teams.Script.Enqueue((503, 2));
        using var db = new TempDatabase();
        var time = new FakeTimeProvider(T0);
        await using var engine = await DeliveryHarness.StartAsync(db.Path, new Dictionary<string, string?>
        {
            ["FleetWatch:Alerting:Receivers:0:Name"] = "teams",
            ["FleetWatch:Alerting:Receivers:0:Type"] = "Teams",
            ["FleetWatch:Alerting:Receivers:0:Url"] = teams.Url("/t"),
            ["FleetWatch:Alerting:Receivers:0:StormThreshold"] = "10",
            ["FleetWatch:Alerting:Receivers:0:StormWindow"] = "00:00:05",
        }, time);

        for (var i = 0; i < 12; i++)
        {
            engine.Delivery.Enqueue(new IncidentChange(IncidentChangeKind.Resolved,
                DeliveryHarness.Incident($"inc-{i}", node: $"node{i}", category: "node_silent", resolved: T0) with { Severity = Severity.Critical }));
        }

        await Poll.AdvancingUntilAsync(time, TimeSpan.FromSeconds(1), () => Delivered(engine, "teams") == 12, TimeSpan.FromSeconds(20), "the resolve summary");

        Assert.Equal([503, 200], teams.Requests.Select(r => r.Status));
        var card = Assert.Single(teams.Posts).Json.GetProperty("attachments")[0].GetProperty("content");
        var title = card.GetProperty("body")[0].GetProperty("text").GetString()!;
        Assert.Contains("12 incidents (0 firing, 12 resolved)", title, StringComparison.Ordinal);
        Assert.Equal("Good", card.GetProperty("body")[0].GetProperty("color").GetString());
        Assert.Equal("https://fleetwatch.test/#/incidents", card.GetProperty("actions")[0].GetProperty("url").GetString());
        Assert.All(engine.Outbox.Query(null, null, 100), row => Assert.Equal(2, row.Attempts));
    }

    [Theory]
    [InlineData("PagerDuty", "StormThreshold", "5", "only Slack and Teams receivers batch storms")]
    [InlineData("Webhook", "StormWindow", "00:00:10", "only Slack and Teams receivers batch storms")]
    [InlineData("Slack", "StormThreshold", "1", "must be 0 (off) or from 2 to 10000")]
    [InlineData("Teams", "StormWindow", "00:00:00.500", "must be between 00:00:01 and 00:05:00")]
    [InlineData("Slack", "StormWindow", "00:06:00", "must be between 00:00:01 and 00:05:00")]
    public void Storm_settings_are_validated_with_key_and_value(string type, string key, string value, string error)
    {
        var options = Bind(new Dictionary<string, string?>
        {
            ["FleetWatch:Alerting:Receivers:0:Name"] = "r",
            ["FleetWatch:Alerting:Receivers:0:Type"] = type,
            ["FleetWatch:Alerting:Receivers:0:Url"] = "https://example.test/h",
            ["FleetWatch:Alerting:Receivers:0:RoutingKey"] = "0123456789abcdef0123456789abcdef",
            [$"FleetWatch:Alerting:Receivers:0:{key}"] = value,
        });

        var failure = Assert.Single(AlertingValidation.Validate(options));
        Assert.Equal($"FleetWatch:Alerting:Receivers:0:{key}", failure.Key);
        Assert.Contains(error, failure.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Defaults_batch_chat_only_and_a_window_must_end_before_the_give_up()
    {
        var options = Bind(new Dictionary<string, string?>
        {
            ["FleetWatch:Alerting:GiveUpAfter"] = "00:00:30",
            ["FleetWatch:Alerting:Receivers:0:Name"] = "s",
            ["FleetWatch:Alerting:Receivers:0:Type"] = "Slack",
            ["FleetWatch:Alerting:Receivers:0:Url"] = "https://example.test/s",
            ["FleetWatch:Alerting:Receivers:1:Name"] = "t",
            ["FleetWatch:Alerting:Receivers:1:Type"] = "Teams",
            ["FleetWatch:Alerting:Receivers:1:Url"] = "https://example.test/t",
            ["FleetWatch:Alerting:Receivers:1:StormWindow"] = "00:01:00",
            ["FleetWatch:Alerting:Receivers:2:Name"] = "p",
            ["FleetWatch:Alerting:Receivers:2:Type"] = "PagerDuty",
            ["FleetWatch:Alerting:Receivers:2:RoutingKey"] = "0123456789abcdef0123456789abcdef",
        });

        Assert.Equal(new StormPolicy(StormPolicy.DefaultThreshold, StormPolicy.DefaultWindow), options.Receivers[0].Storm());
        Assert.Null(options.Receivers[2].Storm());
        var failure = Assert.Single(AlertingValidation.Validate(options));
        Assert.Equal("FleetWatch:Alerting:Receivers:1:StormWindow", failure.Key);
    }

    [Fact]
    public void Summary_of_a_huge_storm_stays_inside_slack_and_teams_limits()
    {
        var notices = Enumerable.Range(0, 5000).Select(i => new AlertNotice(IncidentChangeKind.Opened,
            DeliveryHarness.Incident($"inc-{i}", node: new string('n', 300) + i, category: "category_" + (i % 300)), $"inc-{i}/Opened/Critical/0")).ToList();
        var summary = StormSummary.Of(notices);

        var slack = summary.Slack("https://fw", TimeSpan.FromSeconds(10));
        foreach (var block in slack["blocks"]!.AsArray())
        {
            Assert.True((block!["text"]?["text"]?.GetValue<string>().Length ?? 0) <= 3000, "Slack section text ≤ 3,000 characters");
        }

        Assert.InRange(Encoding.UTF8.GetByteCount(summary.Teams("https://fw", TimeSpan.FromSeconds(10)).ToJsonString()), 1, TeamsPayload.MaxBytes);
        Assert.Equal(StormSummary.Listed + 1, summary.Lines().Count);
        Assert.Equal("+4990 more", summary.Lines()[^1]);
    }

    /// <summary>Every string in a JSON document, one per line (JSON escapes such as \u002B undone).</summary>
    private static string AllText(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => e.GetString()! + "\n",
        JsonValueKind.Object => string.Concat(e.EnumerateObject().Select(p => AllText(p.Value))),
        JsonValueKind.Array => string.Concat(e.EnumerateArray().Select(AllText)),
        _ => "",
    };

    private static Dictionary<string, string?> Receivers(LoopbackReceiver slack, LoopbackReceiver pagerDuty, LoopbackReceiver hook) => new()
    {
        ["FleetWatch:Alerting:Receivers:0:Name"] = "slack",
        ["FleetWatch:Alerting:Receivers:0:Type"] = "Slack",
        ["FleetWatch:Alerting:Receivers:0:Url"] = slack.Url("/services/T/B/X"),
        ["FleetWatch:Alerting:Receivers:1:Name"] = "pd",
        ["FleetWatch:Alerting:Receivers:1:Type"] = "PagerDuty",
        ["FleetWatch:Alerting:Receivers:1:Url"] = pagerDuty.Url("/v2/enqueue"),
        ["FleetWatch:Alerting:Receivers:1:RoutingKey"] = "0123456789abcdef0123456789abcdef",
        ["FleetWatch:Alerting:Receivers:1:RateLimit:Count"] = "0", // the storm, not PagerDuty's budget, is under test
        ["FleetWatch:Alerting:Receivers:2:Name"] = "hook",
        ["FleetWatch:Alerting:Receivers:2:Url"] = hook.Url("/hook"),
    };

    private static IncidentChange Opened(string id, string node, int? gpu, string category, Severity severity) =>
        new(IncidentChangeKind.Opened, DeliveryHarness.Incident(id, severity, node, gpu, category));

    private static OutboxRow Row(int id, string incident, IncidentChangeKind kind, DateTimeOffset queued, int attempts) =>
        new(id + 1, "slack", new AlertNotice(kind, DeliveryHarness.Incident(incident), $"{incident}/{kind}/Critical/0"), attempts, queued, attempts == 0 ? queued : T0);

    private static long Delivered(DeliveryHarness engine, string receiver) =>
        engine.Outbox.Counts().TryGetValue(receiver, out var c) ? c.Delivered : 0;

    private static AlertingOptions Bind(Dictionary<string, string?> settings)
    {
        var options = new AlertingOptions();
        new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection(AlertingOptions.Section).Bind(options);
        return options;
    }
}
