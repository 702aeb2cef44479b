using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using FleetWatch.Controller.Alerting;
using Microsoft.Extensions.DependencyInjection;

namespace FleetWatch.Controller.Tests.Alerting;

/// <summary>The delivery metrics as an exporter sees them (a MeterListener on the engine's own meter).</summary>
public sealed class AlertMetricsTests
{
    [Fact]
    public async Task Give_ups_deliveries_and_backlog_are_published_per_receiver()
    {
        await using var good = await LoopbackReceiver.StartAsync();
        await using var bad = await LoopbackReceiver.StartAsync();
        bad.AlwaysStatus = 400;
        using var db = new TempDatabase();
        await using var engine = await DeliveryHarness.StartAsync(db.Path, new Dictionary<string, string?>
        {
            ["FleetWatch:Alerting:Receivers:0:Name"] = "good",
            ["FleetWatch:Alerting:Receivers:0:Url"] = good.Url("/h"),
            ["FleetWatch:Alerting:Receivers:1:Name"] = "bad",
            ["FleetWatch:Alerting:Receivers:1:Url"] = bad.Url("/h"),
        });
        var factory = engine.Services.GetRequiredService<IMeterFactory>();
        var seen = new ConcurrentQueue<(string Instrument, long Value, string? Receiver)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == AlertMetrics.MeterName && ReferenceEquals(instrument.Meter.Scope, factory))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            string? receiver = null;
            foreach (var tag in tags)
            {
                if (tag.Key == "receiver")
                {
                    receiver = tag.Value as string;
                }
            }

            seen.Enqueue((instrument.Name, value, receiver));
        });
        listener.Start();

        engine.Delivery.Enqueue(DeliveryHarness.Opened("inc-1"));
        await Poll.UntilAsync(() => engine.Metrics.Delivered == 1 && engine.Metrics.GivenUp == 1, TimeSpan.FromSeconds(10), "one delivery and one give-up");
        listener.RecordObservableInstruments();

        Assert.Contains(("fleetwatch_alerts_delivered_total", 1L, (string?)"good"), seen);
        Assert.Contains(("fleetwatch_alerts_given_up_total", 1L, (string?)"bad"), seen);
        Assert.Contains(("fleetwatch_alert_attempts_total", 1L, (string?)"bad"), seen);
        Assert.Contains(("fleetwatch_alert_outbox_pending", 0L, (string?)"good"), seen);
        Assert.DoesNotContain(seen, s => s.Instrument == "fleetwatch_alerts_delivered_total" && s.Receiver == "bad");
    }
}
