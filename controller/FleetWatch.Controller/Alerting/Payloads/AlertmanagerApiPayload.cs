using System.Text.Json.Nodes;

namespace FleetWatch.Controller.Alerting;

/// <summary>
/// Body of Alertmanager's <c>POST /api/v2/alerts</c>: a JSON array of <c>{labels, annotations, startsAt, endsAt,
/// generatorURL}</c> (docs/alerts_api.md; research/dashboard-alerting-anchors.md section 2.1). Labels identify the
/// alert, so one incident is one Alertmanager alert across updates. A firing alert carries no <c>endsAt</c>:
/// Alertmanager then ends it at now + resolve_timeout unless FleetWatch posts it again first, which it does every
/// <see cref="ReceiverOptions.ResendInterval"/>. A resolve sets <c>endsAt</c>. Pure.
/// </summary>
public static class AlertmanagerApiPayload
{
    public const string Path = "/api/v2/alerts";

    public static JsonObject Alert(AlertNotice notice, string externalUrl, DateTimeOffset now)
    {
        var incident = notice.Incident;
        var labels = new JsonObject();
        foreach (var (k, v) in AlertmanagerPayloadBuilder.Labels(incident).OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            labels[k] = v;
        }

        var alert = new JsonObject
        {
            ["labels"] = labels,
            ["annotations"] = new JsonObject
            {
                ["summary"] = AlertmanagerPayloadBuilder.Summary(incident),
                ["description"] = string.Join("; ", notice.FindingLines(20)),
                ["action"] = incident.Action,
            },
            ["startsAt"] = AlertNotice.Rfc3339(incident.OpenedAt),
            ["generatorURL"] = notice.NodeUrl(externalUrl),
        };
        if (notice.Resolved)
        {
            // endsAt in the past (or now) resolves it; never before startsAt, which Alertmanager rejects.
            var end = incident.ResolvedAt ?? now;
            alert["endsAt"] = AlertNotice.Rfc3339(end < incident.OpenedAt ? incident.OpenedAt : end);
        }

        return alert;
    }

    public static JsonArray Build(IEnumerable<AlertNotice> notices, string externalUrl, DateTimeOffset now) =>
        new([.. notices.Select(n => (JsonNode?)Alert(n, externalUrl, now))]);

    public static string AlertsUrl(string baseUrl) => baseUrl.TrimEnd('/').EndsWith(Path, StringComparison.Ordinal) ? baseUrl : baseUrl.TrimEnd('/') + Path;
}
