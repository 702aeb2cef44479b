using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Serialization;
using FleetWatch.Contracts;

namespace FleetWatch.Controller.Alerting;

/// <summary>
/// Prometheus Alertmanager webhook payload, version "4" (field names exactly as in Alertmanager's
/// docs/configuration.md, research/dashboard-alerting-anchors.md section 2.1).
/// </summary>
public sealed record AlertmanagerWebhookPayload(
    [property: JsonPropertyName("version")] string Version,
    [property: JsonPropertyName("groupKey")] string GroupKey,
    [property: JsonPropertyName("truncatedAlerts")] int TruncatedAlerts,
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("receiver")] string Receiver,
    [property: JsonPropertyName("groupLabels")] IReadOnlyDictionary<string, string> GroupLabels,
    [property: JsonPropertyName("commonLabels")] IReadOnlyDictionary<string, string> CommonLabels,
    [property: JsonPropertyName("commonAnnotations")] IReadOnlyDictionary<string, string> CommonAnnotations,
    [property: JsonPropertyName("externalURL")] string ExternalUrl,
    [property: JsonPropertyName("alerts")] IReadOnlyList<AlertmanagerAlert> Alerts);

public sealed record AlertmanagerAlert(
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("labels")] IReadOnlyDictionary<string, string> Labels,
    [property: JsonPropertyName("annotations")] IReadOnlyDictionary<string, string> Annotations,
    [property: JsonPropertyName("startsAt")] string StartsAt,
    [property: JsonPropertyName("endsAt")] string EndsAt,
    [property: JsonPropertyName("generatorURL")] string GeneratorUrl,
    [property: JsonPropertyName("fingerprint")] string Fingerprint);

/// <summary>Builds the payload for one incident. Pure.</summary>
public static class AlertmanagerPayloadBuilder
{
    /// <summary>Go's zero time: Alertmanager blanks endsAt of firing alerts to it (dispatch/dispatch.go).</summary>
    public const string GoZeroTime = "0001-01-01T00:00:00Z";

    public static AlertmanagerWebhookPayload Build(IncidentSnapshot incident, string receiver, string externalUrl)
    {
        var resolved = incident.ResolvedAt is not null;
        var status = resolved ? "resolved" : "firing";
        var labels = Labels(incident);
        var annotations = new Dictionary<string, string>
        {
            ["summary"] = Summary(incident),
            ["description"] = string.Join("; ", incident.Findings.Select(f => f.Message)),
            ["action"] = incident.Action,
        };
        var groupLabels = new Dictionary<string, string> { ["incident_id"] = incident.Id };
        var alert = new AlertmanagerAlert(
            status,
            labels,
            annotations,
            Rfc3339(incident.OpenedAt),
            incident.ResolvedAt is { } r ? Rfc3339(r) : GoZeroTime,
            $"{externalUrl.TrimEnd('/')}/?node={Uri.EscapeDataString(incident.Node)}",
            Fingerprint(incident.Id));
        return new AlertmanagerWebhookPayload(
            "4",
            $"{{}}:{{incident_id=\"{incident.Id}\"}}",
            0,
            status,
            receiver,
            groupLabels,
            labels,
            annotations,
            externalUrl,
            [alert]);
    }

    public static Dictionary<string, string> Labels(IncidentSnapshot incident)
    {
        var labels = new Dictionary<string, string>
        {
            ["alertname"] = AlertName(incident.Category),
            ["severity"] = incident.Severity.ToString().ToLowerInvariant(),
            ["category"] = incident.Category,
            ["node"] = incident.Node,
            ["incident_id"] = incident.Id,
            ["source"] = "fleetwatch",
        };
        if (incident.GpuIndex is { } gpu)
        {
            labels["gpu"] = gpu.ToString(CultureInfo.InvariantCulture);
        }

        if (incident.GpuUuid is { } uuid)
        {
            labels["gpu_uuid"] = uuid;
        }

        return labels;
    }

    public static string Summary(IncidentSnapshot incident)
    {
        var where = incident.GpuIndex is { } g ? $"{incident.Node} GPU{g}" : incident.Node;
        return $"{incident.Severity.ToString().ToUpperInvariant()} {incident.Category} on {where}: {incident.Findings.FirstOrDefault()?.Message}";
    }

    /// <summary>"gpu_fell_off_bus" → "FleetWatchGpuFellOffBus".</summary>
    public static string AlertName(string category)
    {
        var sb = new StringBuilder("FleetWatch");
        foreach (var part in category.Split('_', StringSplitOptions.RemoveEmptyEntries))
        {
            sb.Append(char.ToUpperInvariant(part[0])).Append(part.AsSpan(1));
        }

        return sb.ToString();
    }

    /// <summary>Stable per incident, so receivers can dedup (Alertmanager's "receivers must be idempotent").</summary>
    public static string Fingerprint(string incidentId) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(incidentId)).AsSpan(0, 8));

    private static string Rfc3339(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
}
