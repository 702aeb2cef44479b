using FleetWatch.Contracts;

namespace FleetWatch.Controller.Incidents;

/// <summary>What happened to an incident as a result of new findings or the passing of time.</summary>
public enum IncidentChangeKind
{
    Opened,
    Updated,
    Resolved,
}

/// <summary>
/// An incident change; <c>Escalated</c> marks an update whose severity rose (receivers are paged again only then);
/// <c>Repeat</c> counts re-notifications of an unchanged open incident (repeat interval).
/// </summary>
public sealed record IncidentChange(IncidentChangeKind Kind, IncidentSnapshot Incident, bool Escalated = false, int Repeat = 0)
{
    /// <summary>
    /// Identifies this notification across controller restarts: an incident opens once, rises to each severity at
    /// most once and resolves once, so (id, kind, severity, repeat) never repeats for a different notification. The
    /// outbox and notification log key on it, which makes a re-derived change after a restart a no-op.
    /// </summary>
    public string NotificationKey => $"{Incident.Id}/{Kind}/{Incident.Severity}/{Repeat}";

    /// <summary>
    /// A resolution the receivers must not hear of because they never heard of the incident (it was silenced, or in a
    /// maintenance window, for its whole life). The bus still carries it.
    /// </summary>
    public bool Muted { get; init; }

    /// <summary>
    /// A notification for receivers (opened, escalated, repeated, resolved) rather than information for the bus (a
    /// finding joining at the same severity). Exactly these are recorded in the notification log, once per key.
    /// </summary>
    public bool IsNotification => !Muted && (Kind != IncidentChangeKind.Updated || Escalated || Repeat > 0);
}
