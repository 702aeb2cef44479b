using System.Globalization;
using System.Text.Json.Nodes;
using FleetWatch.Contracts;

namespace FleetWatch.Controller.Alerting;

/// <summary>
/// PagerDuty Events API v2 event (research/dashboard-alerting-anchors.md section 2.4): <c>trigger</c> while firing,
/// <c>acknowledge</c> when an operator acknowledges the incident in FleetWatch, <c>resolve</c> when resolved, all with
/// <c>dedup_key</c> = the incident id, so every update of one incident lands on one PagerDuty alert, the
/// acknowledgement stops its escalation and the resolve closes it. Required fields: routing_key, event_action, and for a trigger
/// payload.summary (≤ 1024 characters), payload.source and payload.severity. Pure.
/// </summary>
public static class PagerDutyPayload
{
    public const string DefaultUrl = "https://events.pagerduty.com/v2/enqueue";

    public static JsonObject Build(AlertNotice notice, string routingKey, string externalUrl)
    {
        var incident = notice.Incident;
        var dedupKey = AlertNotice.Truncate(incident.Id, 255);
        if (notice.Resolved || notice.Acknowledgement)
        {
            // Acknowledge and resolve carry only the keys (the research file's examples); PagerDuty drops them for an
            // unknown dedup_key. A resolve wins over an acknowledgement of an incident resolved meanwhile.
            return new JsonObject { ["routing_key"] = routingKey, ["dedup_key"] = dedupKey, ["event_action"] = notice.Resolved ? "resolve" : "acknowledge" };
        }

        var details = new JsonObject
        {
            ["incident_id"] = incident.Id,
            ["category"] = incident.Category,
            ["action"] = incident.Action,
            ["notification_key"] = notice.NotificationKey,
            ["findings"] = new JsonArray([.. notice.FindingLines(20).Select(l => (JsonNode?)JsonValue.Create(l))]),
        };
        if (incident.GpuUuid is { } uuid)
        {
            details["gpu_uuid"] = uuid;
        }

        return new JsonObject
        {
            ["routing_key"] = routingKey,
            ["event_action"] = "trigger",
            ["dedup_key"] = dedupKey,
            ["payload"] = new JsonObject
            {
                ["summary"] = AlertNotice.Truncate(AlertmanagerPayloadBuilder.Summary(incident), 1024),
                ["source"] = incident.Node,
                ["severity"] = Severity(incident.Severity),
                ["timestamp"] = AlertNotice.Rfc3339(incident.OpenedAt),
                ["component"] = incident.GpuIndex is { } g ? $"gpu{g.ToString(CultureInfo.InvariantCulture)}" : "node",
                ["group"] = incident.Node,
                ["class"] = incident.Category,
                ["custom_details"] = details,
            },
            ["client"] = "FleetWatch",
            ["client_url"] = notice.NodeUrl(externalUrl),
            ["links"] = new JsonArray(new JsonObject { ["href"] = notice.NodeUrl(externalUrl), ["text"] = "Node page" }),
        };
    }

    /// <summary>PagerDuty knows critical, error, warning and info; FleetWatch's High is PagerDuty's error.</summary>
    public static string Severity(Severity severity) => severity switch
    {
        Contracts.Severity.Critical => "critical",
        Contracts.Severity.High => "error",
        Contracts.Severity.Warning => "warning",
        _ => "info",
    };
}
