using System.Globalization;
using FleetWatch.Contracts;
using FleetWatch.Controller.Incidents;

namespace FleetWatch.Controller.Alerting;

/// <summary>What every payload builder reads: one incident change, as queued in the outbox.</summary>
public sealed record AlertNotice(IncidentChangeKind Kind, IncidentSnapshot Incident, string NotificationKey)
{
    /// <summary>The outbox <c>kind</c> of an operator's acknowledgement (not an incident change of its own).</summary>
    public const string AcknowledgedKind = "Acknowledged";

    /// <summary>
    /// An operator acknowledged the incident in FleetWatch (PagerDuty gets <c>event_action: acknowledge</c>). Its
    /// <see cref="Kind"/> is <see cref="IncidentChangeKind.Updated"/>: the incident itself did not change.
    /// </summary>
    public bool Acknowledgement { get; init; }

    /// <summary>How the outbox stores <see cref="Kind"/> (and shows it in the deliveries API).</summary>
    public string StoredKind => Acknowledgement ? AcknowledgedKind : Kind.ToString();

    /// <summary>
    /// The acknowledgement of an incident: its key has no severity or repeat, because an incident is acknowledged once
    /// (a second acknowledgement only adds a note), so a second enqueue, or one after a restart, is a no-op in the outbox.
    /// </summary>
    public static AlertNotice Acknowledged(IncidentSnapshot incident) =>
        new(IncidentChangeKind.Updated, incident, $"{incident.Id}/{AcknowledgedKind}") { Acknowledgement = true };

    /// <summary>Reads back an outbox row's kind and snapshot.</summary>
    public static AlertNotice FromStored(string kind, IncidentSnapshot incident, string notificationKey) =>
        kind == AcknowledgedKind
            ? new AlertNotice(IncidentChangeKind.Updated, incident, notificationKey) { Acknowledgement = true }
            : new AlertNotice(Enum.Parse<IncidentChangeKind>(kind), incident, notificationKey);

    /// <summary>Resolved notices carry a resolve time; everything else is firing.</summary>
    public bool Resolved => Kind == IncidentChangeKind.Resolved || Incident.ResolvedAt is not null;

    public string Status => Resolved ? "resolved" : "firing";

    public string Where => Incident.GpuIndex is { } g ? $"{Incident.Node} / GPU{g.ToString(CultureInfo.InvariantCulture)}" : Incident.Node;

    /// <summary>"🔴 FIRING: FleetWatchGpuFellOffBus on gpu0003 / GPU5" (✅ RESOLVED for a resolve).</summary>
    public string Title => $"{(Resolved ? "✅ RESOLVED" : Incident.Severity >= Severity.High ? "🔴 FIRING" : "🟠 FIRING")}: {AlertmanagerPayloadBuilder.AlertName(Incident.Category)} on {Where}";

    public string SeverityName => Incident.Severity.ToString().ToLowerInvariant();

    public string NodeUrl(string externalUrl) => $"{externalUrl.TrimEnd('/')}/?node={Uri.EscapeDataString(Incident.Node)}";

    /// <summary>Findings as one line each, capped so a storm cannot blow the receiver's size limit.</summary>
    public IReadOnlyList<string> FindingLines(int max)
    {
        var lines = Incident.Findings.Take(max).Select(f => f.Count > 1 ? $"{f.Rule}: {f.Message} (×{f.Count.ToString(CultureInfo.InvariantCulture)})" : $"{f.Rule}: {f.Message}").ToList();
        if (Incident.Findings.Count > max)
        {
            lines.Add($"+{(Incident.Findings.Count - max).ToString(CultureInfo.InvariantCulture)} more");
        }

        return lines;
    }

    public static string Rfc3339(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    public static string Truncate(string text, int max) => text.Length <= max ? text : string.Concat(text.AsSpan(0, max - 1), "…");
}
