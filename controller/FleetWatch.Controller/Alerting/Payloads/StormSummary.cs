using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using FleetWatch.Contracts;

namespace FleetWatch.Controller.Alerting;

/// <summary>
/// One chat message for a storm of notifications: the incidents counted (firing by severity and by category, and
/// resolved), the first <see cref="Listed"/> with node and GPU, and a link to the dashboard's incidents view. An
/// incident notified twice in the window (opened then escalated or resolved) counts once, in its latest state. Pure.
/// </summary>
public sealed class StormSummary
{
    /// <summary>
    /// Incidents listed one per line. Ten lines of at most 200 characters stay inside Slack's 3,000 characters per
    /// section text and Teams' 28 KB card (research/dashboard-alerting-anchors.md sections 2.2 and 2.3) however large
    /// the storm; the rest is a "+K more" line, like Alertmanager's truncatedAlerts.
    /// </summary>
    public const int Listed = 10;

    private StormSummary(IReadOnlyList<AlertNotice> latest, int notifications)
    {
        Incidents = latest;
        Notifications = notifications;
        Firing = latest.Count(n => !n.Resolved);
        Resolved = latest.Count - Firing;
        BySeverity = latest.Where(n => !n.Resolved).GroupBy(n => n.Incident.Severity).OrderByDescending(g => g.Key)
            .Select(g => (g.Key.ToString().ToLowerInvariant(), g.Count())).ToList();
        ByCategory = latest.Where(n => !n.Resolved).GroupBy(n => n.Incident.Category, StringComparer.Ordinal)
            .OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal).Select(g => (g.Key, g.Count())).ToList();
        Worst = latest.Where(n => !n.Resolved).Select(n => n.Incident.Severity).DefaultIfEmpty(Severity.Info).Max();
    }

    /// <summary>The latest notice of each incident, in the order the incidents first appeared.</summary>
    public IReadOnlyList<AlertNotice> Incidents { get; }

    public int Notifications { get; }

    public int Firing { get; }

    public int Resolved { get; }

    public IReadOnlyList<(string Severity, int Count)> BySeverity { get; }

    public IReadOnlyList<(string Category, int Count)> ByCategory { get; }

    public Severity Worst { get; }

    public static StormSummary Of(IReadOnlyList<AlertNotice> notices)
    {
        var order = new List<string>();
        var latest = new Dictionary<string, AlertNotice>(StringComparer.Ordinal);
        foreach (var notice in notices)
        {
            if (!latest.ContainsKey(notice.Incident.Id))
            {
                order.Add(notice.Incident.Id);
            }

            latest[notice.Incident.Id] = notice;
        }

        return new StormSummary(order.Select(id => latest[id]).ToList(), notices.Count);
    }

    /// <summary>"🔴 Alert storm: 50 incidents (48 firing, 2 resolved)".</summary>
    public string Title
    {
        get
        {
            var icon = Firing == 0 ? "✅" : Worst >= Severity.High ? "🔴" : "🟠";
            return $"{icon} Alert storm: {N(Incidents.Count)} incidents ({N(Firing)} firing, {N(Resolved)} resolved)";
        }
    }

    /// <summary>"critical 40, high 8" (firing only); "none" when nothing fires.</summary>
    public string SeverityLine => BySeverity.Count == 0 ? "none" : string.Join(", ", BySeverity.Select(s => $"{s.Severity} {N(s.Count)}"));

    public string CategoryLine => ByCategory.Count == 0 ? "none" : string.Join(", ", ByCategory.Select(c => $"{c.Category} {N(c.Count)}"));

    /// <summary>The first <see cref="Listed"/> incidents, one line each, plus "+K more".</summary>
    public IReadOnlyList<string> Lines()
    {
        var lines = Incidents.Take(Listed)
            .Select(n => AlertNotice.Truncate($"{(n.Resolved ? "resolved" : n.SeverityName)} · {n.Where} · {n.Incident.Category} · {n.Incident.Id}", 200))
            .ToList();
        if (Incidents.Count > Listed)
        {
            lines.Add($"+{N(Incidents.Count - Listed)} more");
        }

        return lines;
    }

    public static string IncidentsUrl(string externalUrl) => $"{externalUrl.TrimEnd('/')}/#/incidents";

    /// <summary>Slack: text + blocks (header, counts, list, button, context), as the single-incident message.</summary>
    public JsonObject Slack(string externalUrl, TimeSpan window)
    {
        var list = new StringBuilder();
        foreach (var line in Lines())
        {
            list.Append("• ").Append(SlackPayload.Escape(line)).Append('\n');
        }

        return new JsonObject
        {
            ["text"] = $"[STORM] {Title}: {SeverityLine}",
            ["blocks"] = new JsonArray(
                new JsonObject { ["type"] = "header", ["text"] = new JsonObject { ["type"] = "plain_text", ["text"] = AlertNotice.Truncate(Title, 150), ["emoji"] = true } },
                new JsonObject
                {
                    ["type"] = "section",
                    ["fields"] = new JsonArray(
                        SlackPayload.Field($"*Firing by severity*\n{SeverityLine}"),
                        SlackPayload.Field($"*Firing by category*\n{SlackPayload.Escape(CategoryLine)}")),
                },
                new JsonObject { ["type"] = "section", ["text"] = new JsonObject { ["type"] = "mrkdwn", ["text"] = AlertNotice.Truncate(list.ToString().TrimEnd(), 3000) } },
                new JsonObject
                {
                    ["type"] = "actions",
                    ["elements"] = new JsonArray(new JsonObject
                    {
                        ["type"] = "button",
                        ["text"] = new JsonObject { ["type"] = "plain_text", ["text"] = "Open incidents" },
                        ["url"] = IncidentsUrl(externalUrl),
                    }),
                },
                new JsonObject
                {
                    ["type"] = "context",
                    ["elements"] = new JsonArray(new JsonObject { ["type"] = "mrkdwn", ["text"] = $"{N(Notifications)} notifications within {Seconds(window)} s, in one message · FleetWatch" }),
                }),
        };
    }

    /// <summary>Teams: one Adaptive Card (title, counts as facts, the list, a button), far below the 28 KB limit.</summary>
    public JsonObject Teams(string externalUrl, TimeSpan window)
    {
        var facts = new JsonArray(
            TeamsPayload.Fact("Incidents", N(Incidents.Count)),
            TeamsPayload.Fact("Firing by severity", SeverityLine),
            TeamsPayload.Fact("Firing by category", AlertNotice.Truncate(CategoryLine, 500)),
            TeamsPayload.Fact("Resolved", N(Resolved)),
            TeamsPayload.Fact("Window", $"{N(Notifications)} notifications within {Seconds(window)} s"));
        var body = new JsonArray(
            new JsonObject
            {
                ["type"] = "TextBlock",
                ["text"] = Title,
                ["weight"] = "Bolder",
                ["size"] = "Medium",
                ["color"] = Firing == 0 ? "Good" : Worst >= Severity.High ? "Attention" : "Warning",
                ["wrap"] = true,
            },
            new JsonObject { ["type"] = "FactSet", ["facts"] = facts });
        foreach (var line in Lines())
        {
            body.Add(new JsonObject { ["type"] = "TextBlock", ["text"] = "- " + line, ["wrap"] = true, ["spacing"] = "None" });
        }

        return TeamsPayload.Message(body, new JsonObject { ["type"] = "Action.OpenUrl", ["title"] = "Open incidents", ["url"] = IncidentsUrl(externalUrl) });
    }

    private static string N(int n) => n.ToString(CultureInfo.InvariantCulture);

    private static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.#", CultureInfo.InvariantCulture);
}
