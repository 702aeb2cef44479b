using System.Globalization;
using System.Text;
using System.Diagnostics.Metrics;
using FleetWatch.Controller.Alerting;
using FleetWatch.Integration.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace FleetWatch.Controller.Tests.Alerting;

/// <summary>
/// The alert-delivery part of the controller's <c>/metrics</c> (<see cref="ControllerMetricsText.WriteAlerting"/>) on the
/// real delivery engine: which series a delivery, a retry and a give-up move, and promtool's verdict on the text.
/// </summary>
public sealed class AlertMetricsExpositionTests
{
    [Fact]
    public async Task Delivery_retry_and_give_up_move_their_own_receivers_series()
    {
        await using var flaky = await LoopbackReceiver.StartAsync();
        flaky.Script.Enqueue((503, null)); // one retry, then 200
        await using var broken = await LoopbackReceiver.StartAsync();
        broken.AlwaysStatus = 400; // permanent: given up at once
        using var db = new TempDatabase();
        await using var engine = await DeliveryHarness.StartAsync(db.Path, new Dictionary<string, string?>
        {
            ["FleetWatch:Alerting:Receivers:0:Name"] = "flaky",
            ["FleetWatch:Alerting:Receivers:0:Url"] = flaky.Url("/h"),
            ["FleetWatch:Alerting:Receivers:1:Name"] = "broken",
            ["FleetWatch:Alerting:Receivers:1:Url"] = broken.Url("/h"),
            ["FleetWatch:Alerting:Receivers:2:Name"] = "idle",
            ["FleetWatch:Alerting:Receivers:2:Url"] = flaky.Url("/never"),
            ["FleetWatch:Alerting:Routes:0:Receivers:0"] = "flaky",
            ["FleetWatch:Alerting:Routes:0:Receivers:1"] = "broken",
            ["FleetWatch:Alerting:Routes:0:Match:node"] = "gpu0003",
        });

        var before = Samples(Render(engine));
        Assert.Equal(0, before["fleetwatch_alert_attempts_total{receiver=\"flaky\"}"]);
        Assert.Equal(0, before["fleetwatch_alert_delivery_seconds_count{receiver=\"idle\"}"]);

        engine.Delivery.Enqueue(DeliveryHarness.Opened("inc-1"));
        engine.Delivery.Enqueue(DeliveryHarness.Opened("inc-2", node: "gpu0999")); // no route, no default receiver
        await Poll.UntilAsync(() => engine.Metrics.Delivered == 1 && engine.Metrics.GivenUp == 1, TimeSpan.FromSeconds(10), "one delivery and one give-up");
        var after = Samples(Render(engine));

        Assert.Equal(2, after["fleetwatch_alert_attempts_total{receiver=\"flaky\"}"]);
        Assert.Equal(1, after["fleetwatch_alert_retries_total{receiver=\"flaky\"}"]);
        Assert.Equal(1, after["fleetwatch_alerts_delivered_total{receiver=\"flaky\"}"]);
        Assert.Equal(0, after["fleetwatch_alerts_given_up_total{receiver=\"flaky\"}"]);
        Assert.Equal(1, after["fleetwatch_alert_attempts_total{receiver=\"broken\"}"]);
        Assert.Equal(0, after["fleetwatch_alert_retries_total{receiver=\"broken\"}"]);
        Assert.Equal(0, after["fleetwatch_alerts_delivered_total{receiver=\"broken\"}"]);
        Assert.Equal(1, after["fleetwatch_alerts_given_up_total{receiver=\"broken\"}"]);
        Assert.Equal(0, after["fleetwatch_alert_attempts_total{receiver=\"idle\"}"]);
        Assert.Equal(1, after["fleetwatch_alerts_unrouted_total"]);

        // The histogram: one observation for flaky (its latency includes the retry backoff), none for broken.
        Assert.Equal(1, after["fleetwatch_alert_delivery_seconds_count{receiver=\"flaky\"}"]);
        Assert.Equal(1, after["fleetwatch_alert_delivery_seconds_bucket{receiver=\"flaky\",le=\"+Inf\"}"]);
        Assert.Equal(1, after["fleetwatch_alert_delivery_seconds_bucket{receiver=\"flaky\",le=\"600\"}"]);
        Assert.InRange(after["fleetwatch_alert_delivery_seconds_sum{receiver=\"flaky\"}"], 0.01, 10); // ≥ the 50 ms first backoff × 0.75
        Assert.Equal(0, after["fleetwatch_alert_delivery_seconds_count{receiver=\"broken\"}"]);
        var flakyBuckets = AlertMetrics.LatencyBuckets.Select(le => after[$"fleetwatch_alert_delivery_seconds_bucket{{receiver=\"flaky\",le=\"{le.ToString("R", CultureInfo.InvariantCulture)}\"}}"]).ToList();
        Assert.Equal(flakyBuckets.Order(), flakyBuckets); // cumulative
    }

    [Fact]
    public void Histogram_buckets_are_cumulative_and_count_each_observation_once()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new AlertMetrics(services.GetRequiredService<IMeterFactory>());
        foreach (var seconds in new[] { 0.01, 0.05, 0.2, 3, 59.9, 61, 5000 })
        {
            metrics.OnDelivered("r", TimeSpan.FromSeconds(seconds));
        }

        var r = Assert.Single(metrics.Receivers());
        var expected = AlertMetrics.LatencyBuckets.Select(le => (long)new[] { 0.01, 0.05, 0.2, 3, 59.9, 61, 5000 }.Count(s => s <= le)).ToList();
        Assert.Equal(expected, r.LatencyBucketCounts);
        Assert.Equal(7, r.Delivered);
        Assert.Equal(0.01 + 0.05 + 0.2 + 3 + 59.9 + 61 + 5000, r.LatencySecondsSum, 6);
    }

    [Fact]
    public async Task Alerting_exposition_passes_promtool_check_metrics()
    {
        await using var receiver = await LoopbackReceiver.StartAsync();
        receiver.Script.Enqueue((429, 0));
        using var db = new TempDatabase();
        await using var engine = await DeliveryHarness.StartAsync(db.Path, new Dictionary<string, string?>
        {
            ["FleetWatch:Alerting:Receivers:0:Name"] = "on-call.slack_1",
            ["FleetWatch:Alerting:Receivers:0:Url"] = receiver.Url("/h"),
            ["FleetWatch:Alerting:Receivers:1:Name"] = "pd",
            ["FleetWatch:Alerting:Receivers:1:Type"] = "PagerDuty",
            ["FleetWatch:Alerting:Receivers:1:RoutingKey"] = "0123456789abcdef0123456789abcdef",
            ["FleetWatch:Alerting:Receivers:1:Url"] = receiver.Url("/v2/enqueue"),
        });
        engine.Delivery.Enqueue(DeliveryHarness.Opened("inc-1"));
        await Poll.UntilAsync(() => engine.Metrics.Delivered == 2, TimeSpan.FromSeconds(10), "both deliveries");

        var text = Render(engine);
        Assert.Contains("# TYPE fleetwatch_alert_delivery_seconds histogram\n", text, StringComparison.Ordinal);
        await Promtool.CheckMetricsAsync(text);
    }

    private static string Render(DeliveryHarness engine)
    {
        var text = new StringBuilder();
        ControllerMetricsText.WriteAlerting(text, engine.Services);
        return text.ToString();
    }

    /// <summary>"name{labels} value" lines by series; comment lines skipped.</summary>
    private static Dictionary<string, double> Samples(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith('#'))
            .Select(l => (Series: l[..l.LastIndexOf(' ')], Value: double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture)))
            .ToDictionary(s => s.Series, s => s.Value, StringComparer.Ordinal);
}
