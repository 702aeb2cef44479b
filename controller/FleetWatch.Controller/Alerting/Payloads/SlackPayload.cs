using System.Text.Json.Nodes;

namespace FleetWatch.Controller.Alerting;

/// <summary>
/// Slack incoming-webhook message: <c>text</c> (the notification and fallback string) plus Block Kit <c>blocks</c>
/// (header, section with fields, actions, context), as in research/dashboard-alerting-anchors.md section 2.2. Limits
/// kept: header text ≤ 150 characters, section text ≤ 3,000, at most 10 fields. Pure.
/// </summary>
public static class SlackPayload
{
    private const int HeaderMax = 150;
    private const int SectionMax = 3000;

    public static JsonObject Build(AlertNotice notice, string externalUrl)
    {
        var incident = notice.Incident;
        var findings = string.Join("\n", notice.FindingLines(20));
        var text = $"[{notice.Status.ToUpperInvariant()}] {AlertmanagerPayloadBuilder.Summary(incident)}";
        var unix = (incident.ResolvedAt ?? incident.OpenedAt).ToUnixTimeSeconds();
        var when = notice.Resolved ? "Resolved" : "Since";
        return new JsonObject
        {
            ["text"] = AlertNotice.Truncate(text, SectionMax),
            ["blocks"] = new JsonArray(
                new JsonObject
                {
                    ["type"] = "header",
                    ["text"] = new JsonObject { ["type"] = "plain_text", ["text"] = AlertNotice.Truncate(notice.Title, HeaderMax), ["emoji"] = true },
                },
                new JsonObject
                {
                    ["type"] = "section",
                    ["text"] = new JsonObject { ["type"] = "mrkdwn", ["text"] = AlertNotice.Truncate($"*{Escape(notice.Where)}* {Escape(incident.Category)}\n{Escape(findings)}", SectionMax) },
                    ["fields"] = new JsonArray(
                        Field($"*Severity*\n{notice.SeverityName}"),
                        Field($"*Action*\n{Escape(incident.Action)}"),
                        // Slack renders <!date^…> in the reader's time zone, with the UTC text as fallback.
                        Field($"*{when}*\n<!date^{unix}^{{date_short_pretty}} {{time}}|{AlertNotice.Rfc3339(incident.ResolvedAt ?? incident.OpenedAt)}>"),
                        Field($"*Incident*\n{Escape(incident.Id)}")),
                },
                new JsonObject
                {
                    ["type"] = "actions",
                    ["elements"] = new JsonArray(new JsonObject
                    {
                        ["type"] = "button",
                        ["text"] = new JsonObject { ["type"] = "plain_text", ["text"] = "Open node" },
                        ["url"] = notice.NodeUrl(externalUrl),
                    }),
                },
                new JsonObject
                {
                    ["type"] = "context",
                    ["elements"] = new JsonArray(new JsonObject { ["type"] = "mrkdwn", ["text"] = $"{Escape(notice.NotificationKey)} · FleetWatch" }),
                }),
        };
    }

    internal static JsonObject Field(string text) => new() { ["type"] = "mrkdwn", ["text"] = AlertNotice.Truncate(text, 2000) };

    /// <summary>Slack's three control characters in mrkdwn (https://api.slack.com/reference/surfaces/formatting#escaping).</summary>
    internal static string Escape(string text) => text.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal).Replace(">", "&gt;", StringComparison.Ordinal);
}
