using System.Text;
using System.Text.Json.Nodes;
using FleetWatch.Contracts;

namespace FleetWatch.Controller.Alerting;

/// <summary>
/// Microsoft Teams Workflows webhook message: <c>type: message</c> with one attachment of content type
/// <c>application/vnd.microsoft.card.adaptive</c> holding an Adaptive Card 1.4 (research/dashboard-alerting-anchors.md
/// section 2.3). Only <c>Action.OpenUrl</c> (webhooks cannot submit). Kept under Teams' 28 KB message limit by
/// dropping findings from the fact set. Pure.
/// </summary>
public static class TeamsPayload
{
    public const string CardContentType = "application/vnd.microsoft.card.adaptive";
    public const string CardVersion = "1.4";

    /// <summary>Teams: "The message size limit is 28 KB"; some clients measured about 21 KB in practice, so aim below that.</summary>
    public const int MaxBytes = 20 * 1024;

    public static JsonObject Build(AlertNotice notice, string externalUrl)
    {
        for (var findings = 20; ; findings = findings / 2)
        {
            var message = Build(notice, externalUrl, findings);
            if (findings == 0 || Encoding.UTF8.GetByteCount(message.ToJsonString()) <= MaxBytes)
            {
                return message;
            }
        }
    }

    private static JsonObject Build(AlertNotice notice, string externalUrl, int maxFindings)
    {
        var incident = notice.Incident;
        var facts = new JsonArray(
            Fact("Node", notice.Where),
            Fact("Severity", notice.SeverityName),
            Fact("Category", incident.Category),
            Fact("Action", incident.Action),
            Fact(notice.Resolved ? "Resolved" : "Since", AlertNotice.Rfc3339(incident.ResolvedAt ?? incident.OpenedAt)),
            Fact("Incident", incident.Id));
        foreach (var line in notice.FindingLines(maxFindings))
        {
            facts.Add(Fact("Finding", AlertNotice.Truncate(line, 500)));
        }

        var body = new JsonArray(
            new JsonObject
            {
                ["type"] = "TextBlock",
                ["text"] = notice.Title,
                ["weight"] = "Bolder",
                ["size"] = "Medium",
                // Alertmanager's msteamsv2 colours the title by status: Good when resolved, Attention when firing.
                ["color"] = notice.Resolved ? "Good" : incident.Severity >= Severity.High ? "Attention" : "Warning",
                ["wrap"] = true,
            },
            new JsonObject { ["type"] = "TextBlock", ["text"] = AlertNotice.Truncate(AlertmanagerPayloadBuilder.Summary(incident), 1000), ["wrap"] = true },
            new JsonObject { ["type"] = "FactSet", ["facts"] = facts });
        return Message(body, new JsonObject { ["type"] = "Action.OpenUrl", ["title"] = "Open node", ["url"] = notice.NodeUrl(externalUrl) });
    }

    /// <summary>The Workflows message around one Adaptive Card with this body and one action.</summary>
    internal static JsonObject Message(JsonArray body, JsonObject action) => new()
    {
        ["type"] = "message",
        ["attachments"] = new JsonArray(new JsonObject
        {
            ["contentType"] = CardContentType,
            ["contentUrl"] = null,
            ["content"] = new JsonObject
            {
                ["$schema"] = "http://adaptivecards.io/schemas/adaptive-card.json",
                ["type"] = "AdaptiveCard",
                ["version"] = CardVersion,
                ["msteams"] = new JsonObject { ["width"] = "full" },
                ["body"] = body,
                ["actions"] = new JsonArray(action),
            },
        }),
    };

    internal static JsonObject Fact(string title, string value) => new() { ["title"] = title, ["value"] = value };
}
