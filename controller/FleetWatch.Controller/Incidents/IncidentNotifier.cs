using FleetWatch.Contracts;
using FleetWatch.Controller.Alerting;
using MassTransit;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Controller.Incidents;

/// <summary>Sends incident changes out: as bus events (for other services) and to the alert receivers.</summary>
public sealed partial class IncidentNotifier(IBus bus, WebhookDelivery webhooks, ILogger<IncidentNotifier> logger)
{
    public async Task NotifyAsync(IReadOnlyList<IncidentChange> changes, CancellationToken ct)
    {
        foreach (var change in changes)
        {
            LogChange(logger, change.Kind, change.Incident.Id, change.Incident.Severity, change.Incident.Category, change.Incident.Node, change.Incident.GpuIndex);
            webhooks.Enqueue(change);
            object message = change.Kind switch
            {
                IncidentChangeKind.Opened => new IncidentOpened(change.Incident),
                IncidentChangeKind.Updated => new IncidentUpdated(change.Incident),
                _ => new IncidentResolved(change.Incident),
            };
            await bus.Publish(message, ct).ConfigureAwait(false);
        }
    }

    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Incident {IncidentId} {Kind}: {Severity} {Category} on {Node} GPU {Gpu}")]
    private static partial void LogChange(ILogger logger, IncidentChangeKind kind, string incidentId, Severity severity, string category, string node, int? gpu);
}
