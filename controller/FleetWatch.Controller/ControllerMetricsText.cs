using System.Text;
using FleetWatch.Controller.Alerting;
using FleetWatch.Controller.Fleet;
using FleetWatch.Controller.Incidents;
using FleetWatch.Controller.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using static FleetWatch.Common.PrometheusExposition;

namespace FleetWatch.Controller;

/// <summary>
/// The controller's Prometheus exposition (text format 0.0.4): ingest, incident, alert-delivery and telemetry-sink
/// counters, and the alert outbox by receiver and state, so a given-up page is visible to the monitoring that watches
/// FleetWatch itself. Counts only: no URL, key or secret.
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
        Gauge(text, "fleetwatch_controller_nodes", "Nodes known to the controller.", sp.GetRequiredService<FleetState>().NodeCount);

        var incidents = sp.GetRequiredService<IncidentManager>();
        Gauge(text, "fleetwatch_incidents_open", "Open incidents.", incidents.Open().Count);
        Counter(text, "fleetwatch_findings_info_total", "Info findings counted without an incident.", incidents.InfoFindings);

        var alerts = sp.GetRequiredService<AlertMetrics>();
        Counter(text, "fleetwatch_alert_attempts_total", "HTTP attempts to alert receivers since start.", alerts.Attempts);
        Counter(text, "fleetwatch_alerts_delivered_total", "Notifications delivered since start.", alerts.Delivered);
        Counter(text, "fleetwatch_alerts_given_up_total", "Notifications given up since start (permanent error or deadline).", alerts.GivenUp);
        if (sp.GetService<AlertOutbox>() is { } outbox && sp.GetService<WebhookDelivery>() is { } delivery)
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

        var sink = sp.GetRequiredService<InfluxTelemetrySink>();
        Counter(text, "fleetwatch_telemetry_points_written_total", "Points written to the InfluxDB v2 endpoint.", sink.PointsWritten);
        Counter(text, "fleetwatch_telemetry_samples_dropped_total", "Samples dropped by the telemetry sink's bounded queue.", sink.Dropped);
        Counter(text, "fleetwatch_telemetry_batches_failed_total", "Write batches that failed.", sink.FailedBatches);
        return text.ToString();
    }

    private static void Counter(StringBuilder text, string name, string help, long value) => Metric(text, name, help, "counter", value);

    private static void Gauge(StringBuilder text, string name, string help, long value) => Metric(text, name, help, "gauge", value);

    private static void Metric(StringBuilder text, string name, string help, string type, long value)
    {
        Header(text, name, help, type);
        Line(text, name, "", value);
    }
}
