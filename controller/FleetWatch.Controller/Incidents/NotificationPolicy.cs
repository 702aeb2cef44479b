using FleetWatch.Contracts;

namespace FleetWatch.Controller.Incidents;

/// <summary>
/// Which incident changes reach the alert receivers: an incident opened, escalated, repeated or resolved at or above
/// the minimum severity. A finding joining an open incident at the same severity is not worth a page (Alertmanager
/// groups it too); a silenced incident's changes never reach here as notifications (<see cref="IncidentChange.Muted"/>).
/// Shared by the live delivery and the replay's <c>alerts_sent</c> count.
/// </summary>
public static class NotificationPolicy
{
    public static bool ShouldNotify(IncidentChange change, Severity minimumSeverity) =>
        change.Incident.Severity >= minimumSeverity && change.IsNotification;
}
