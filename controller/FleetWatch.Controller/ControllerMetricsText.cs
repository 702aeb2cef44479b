using System.Globalization;
using System.Text;
using FleetWatch.Controller.Alerting;
using FleetWatch.Controller.Fleet;
using FleetWatch.Controller.Incidents;
using FleetWatch.Controller.Remediation;
using FleetWatch.Controller.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using static FleetWatch.Common.PrometheusExposition;

namespace FleetWatch.Controller;

/// <summary>
/// The controller's Prometheus exposition (text format 0.0.4): ingest, incident and telemetry-sink counters,
/// alert delivery per receiver (with the delivery-latency histogram), the alert outbox by receiver and state, so a given-up page is visible to the monitoring that watches
/// FleetWatch itself, and cordoned nodes by return-to-service state. Counts only: no URL, key or secret.
/// </summary>
public static class ControllerMetricsText
{
    public static string Render(IServiceProvider sp)
    {
        var text = new StringBuilder(4096);
        var fleet = sp.GetRequiredService<FleetMetrics>();
        Counter(text, "fleetwatch_controller_samples_accepted_total", "Node samples accepted.", fleet.Accepted);
        Counter(text, "fleetwatch_controller_samples_duplicate_total", "Node samples dropped as duplicates (same node, run and sequence).", fleet.Duplicates);
        Counter(text, "fleetwatch_controller_samples_stale_total", "Node samples older than the node's latest, dropped.", fleet.Stale);
        Counter(text, "fleetwatch_controller_xids_total", "Xid events received.", fleet.Xids);
        if (sp.GetService<Ingest.NodeSampleEnvelopeDeserializer>() is { } decoder)
        {
            Counter(text, "fleetwatch_controller_samples_one_pass_total", "Node samples read from the broker in one pass (the rest through MassTransit's deserializer).",
                decoder.FastPath);
        }

        Gauge(text, "fleetwatch_controller_nodes", "Nodes known to the controller.", sp.GetRequiredService<FleetState>().NodeCount);

        var incidents = sp.GetRequiredService<IncidentManager>();
        Gauge(text, "fleetwatch_incidents_open", "Open incidents.", incidents.Open().Count);
        Counter(text, "fleetwatch_findings_info_total", "Info findings counted without an incident.", incidents.InfoFindings);

        WriteAlerting(text, sp);
        WriteCordons(text, sp);

        var sink = sp.GetRequiredService<InfluxTelemetrySink>();
        Counter(text, "fleetwatch_telemetry_points_written_total", "Points written to the InfluxDB v2 endpoint.", sink.PointsWritten);
        Counter(text, "fleetwatch_telemetry_samples_dropped_total", "Samples dropped by the telemetry sink's bounded queue.", sink.Dropped);
        Counter(text, "fleetwatch_telemetry_batches_failed_total", "Write batches that failed.", sink.FailedBatches);
        return text.ToString();
    }

    /// <summary>
    /// The alert-delivery families: per receiver (label <c>receiver</c>) attempts, retries, give-ups, deliveries, storm
    /// summaries and the enqueue-to-2xx latency histogram; unrouted notifications (no receiver); the outbox rows by
    /// receiver and state. Every configured receiver has its series from the start (at 0), so a rate() over a fresh
    /// controller is defined; a receiver that recorded something but is no longer configured keeps its series.
    /// </summary>
    public static void WriteAlerting(StringBuilder text, IServiceProvider sp)
    {
        var alerts = sp.GetRequiredService<AlertMetrics>();
        var delivery = sp.GetService<WebhookDelivery>();
        var recorded = alerts.Receivers().ToDictionary(r => r.Receiver, StringComparer.Ordinal);
        var empty = new long[AlertMetrics.LatencyBuckets.Count];
        var receivers = (delivery?.Receivers.Keys ?? []).Union(recorded.Keys, StringComparer.Ordinal).Order(StringComparer.Ordinal)
            .Select(name => recorded.GetValueOrDefault(name) ?? new ReceiverMetrics(name, 0, 0, 0, 0, 0, empty, 0))
            .ToList();

        PerReceiver(text, "fleetwatch_alert_attempts_total", "HTTP attempts to alert receivers since start, by receiver.", receivers, r => r.Attempts);
        PerReceiver(text, "fleetwatch_alert_retries_total", "Attempts that failed and were scheduled again, by receiver.", receivers, r => r.Retries);
        PerReceiver(text, "fleetwatch_alerts_delivered_total", "Notifications delivered since start, by receiver.", receivers, r => r.Delivered);
        PerReceiver(text, "fleetwatch_alerts_given_up_total", "Notifications given up since start (permanent error or deadline), by receiver.", receivers, r => r.GivenUp);
        PerReceiver(text, "fleetwatch_alert_storm_summaries_total", "Storm summaries delivered to chat receivers (one message for many notifications), by receiver.", receivers, r => r.StormSummaries);
        Counter(text, "fleetwatch_alerts_unrouted_total", "Notifications that matched no route and no default receiver.", alerts.Unrouted);

        const string latency = "fleetwatch_alert_delivery_seconds";
        Header(text, latency, "Seconds from enqueue to the receiver's 2xx, by receiver.", "histogram");
        foreach (var r in receivers)
        {
            var receiver = $"receiver=\"{Escape(r.Receiver)}\"";
            for (var i = 0; i < AlertMetrics.LatencyBuckets.Count; i++)
            {
                Line(text, latency + "_bucket", $"{receiver},le=\"{AlertMetrics.LatencyBuckets[i].ToString("R", CultureInfo.InvariantCulture)}\"", r.LatencyBucketCounts[i]);
            }

            Line(text, latency + "_bucket", $"{receiver},le=\"+Inf\"", r.Delivered);
            Line(text, latency + "_sum", receiver, r.LatencySecondsSum);
            Line(text, latency + "_count", receiver, r.Delivered);
        }

        if (sp.GetService<AlertOutbox>() is { } outbox && delivery is not null)
        {
            var counts = outbox.Counts();
            Header(text, "fleetwatch_alert_outbox_rows", "Notifications in the persistent outbox, by receiver and state.", "gauge");
            foreach (var name in delivery.Receivers.Keys.Order(StringComparer.Ordinal))
            {
                var c = counts.GetValueOrDefault(name) ?? new ReceiverCounts(0, 0, 0, null);
                foreach (var (state, value) in new[] { (DeliveryState.Pending, c.Pending), (DeliveryState.Delivered, c.Delivered), (DeliveryState.GivenUp, c.GivenUp) })
                {
                    Line(text, "fleetwatch_alert_outbox_rows", $"receiver=\"{Escape(name)}\",state=\"{state}\"", value);
                }
            }
        }
    }

    /// <summary>Cordoned nodes by where their return to service stands (label <c>return_state</c>; every state at 0 from the start).</summary>
    public static void WriteCordons(StringBuilder text, IServiceProvider sp)
    {
        if (sp.GetService<NodeReturnService>() is not { } returns)
        {
            return;
        }

        var byState = returns.Cordons().CountBy(c => c.ReturnToService.State).ToDictionary();
        const string name = "fleetwatch_cordoned_nodes";
        Header(text, name, "Cordoned nodes by where their return to service stands.", "gauge");
        foreach (var state in ReturnToServicePolicy.States)
        {
            Line(text, name, $"return_state=\"{state}\"", byState.GetValueOrDefault(state));
        }
    }

    private static void PerReceiver(StringBuilder text, string name, string help, IReadOnlyList<ReceiverMetrics> receivers, Func<ReceiverMetrics, long> value)
    {
        Header(text, name, help, "counter");
        foreach (var r in receivers)
        {
            Line(text, name, $"receiver=\"{Escape(r.Receiver)}\"", value(r));
        }
    }

    private static void Counter(StringBuilder text, string name, string help, long value) => Metric(text, name, help, "counter", value);

    private static void Gauge(StringBuilder text, string name, string help, long value) => Metric(text, name, help, "gauge", value);

    private static void Metric(StringBuilder text, string name, string help, string type, long value)
    {
        Header(text, name, help, type);
        Line(text, name, "", value);
    }
}
