using System.Text;
using System.Text.Json.Nodes;

namespace FleetWatch.Controller.Alerting;

/// <summary>One HTTP POST to a receiver: where, the exact body bytes, extra headers. Holds secrets: never log it.</summary>
public sealed record ReceiverRequest(string Url, byte[] Body, IReadOnlyList<KeyValuePair<string, string>> Headers);

/// <summary>Chooses the payload builder by receiver type and signs generic webhooks. Pure.</summary>
public static class ReceiverRequests
{
    /// <summary>Header with the notification key, so a generic receiver can drop a retry it already has.</summary>
    public const string IdempotencyHeader = "X-FleetWatch-Notification-Key";

    public static ReceiverRequest Build(ReceiverOptions receiver, AlertNotice notice, string externalUrl, DateTimeOffset now)
    {
        JsonNode body = receiver.Type switch
        {
            ReceiverType.Slack => SlackPayload.Build(notice, externalUrl),
            ReceiverType.Teams => TeamsPayload.Build(notice, externalUrl),
            ReceiverType.PagerDuty => PagerDutyPayload.Build(notice, receiver.RoutingKey ?? "", externalUrl),
            ReceiverType.Alertmanager => AlertmanagerApiPayload.Build([notice], externalUrl, now),
            _ => System.Text.Json.JsonSerializer.SerializeToNode(AlertmanagerPayloadBuilder.Build(notice.Incident, receiver.Name, externalUrl))!,
        };
        var bytes = Encoding.UTF8.GetBytes(body.ToJsonString());
        var headers = new List<KeyValuePair<string, string>>();
        if (receiver.Type == ReceiverType.Webhook)
        {
            headers.Add(new(IdempotencyHeader, notice.NotificationKey));
            if (!string.IsNullOrEmpty(receiver.Secret))
            {
                headers.Add(new(receiver.SignatureHeader, WebhookSignature.Sign(receiver.Secret, bytes)));
            }
        }

        return new ReceiverRequest(UrlOf(receiver), bytes, headers);
    }

    /// <summary>A chat receiver's storm summary: one message for many notifications (<see cref="StormSummary"/>).</summary>
    public static ReceiverRequest Summary(ReceiverOptions receiver, IReadOnlyList<AlertNotice> notices, string externalUrl, TimeSpan window)
    {
        var summary = StormSummary.Of(notices);
        JsonNode body = receiver.Type switch
        {
            ReceiverType.Slack => summary.Slack(externalUrl, window),
            ReceiverType.Teams => summary.Teams(externalUrl, window),
            _ => throw new ArgumentException($"receiver type {receiver.Type} does not batch storms", nameof(receiver)),
        };
        return new ReceiverRequest(UrlOf(receiver), Encoding.UTF8.GetBytes(body.ToJsonString()), []);
    }

    /// <summary>The Alertmanager re-post of every firing alert in one array.</summary>
    public static ReceiverRequest Refresh(ReceiverOptions receiver, IEnumerable<AlertNotice> firing, string externalUrl, DateTimeOffset now) =>
        new(UrlOf(receiver), Encoding.UTF8.GetBytes(AlertmanagerApiPayload.Build(firing, externalUrl, now).ToJsonString()), []);

    public static string UrlOf(ReceiverOptions receiver) => receiver.Type switch
    {
        ReceiverType.Alertmanager => AlertmanagerApiPayload.AlertsUrl(receiver.Url),
        ReceiverType.PagerDuty when string.IsNullOrEmpty(receiver.Url) => PagerDutyPayload.DefaultUrl,
        _ => receiver.Url,
    };
}
