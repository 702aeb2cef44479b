using FleetWatch.Contracts;
using FleetWatch.Controller.Alerting;
using MassTransit;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Controller.Incidents;

/// <summary>
/// Sends incident changes out: as bus events (for other services) and to alert delivery. Each notification key is
/// handed to delivery once: the incident manager logs the key in the same transaction as the change that emitted it,
/// so a re-derived change after a restart is never emitted again; this class records the hand-off, and on start
/// (<see cref="RecoverAsync"/>) hands over what a crash left between the two (delivery's outbox is keyed on the same
/// notification key, so that rare second hand-off is a no-op there).
/// </summary>
public sealed partial class IncidentNotifier(
    IBus bus, WebhookDelivery webhooks, TimeProvider time, ILogger<IncidentNotifier> logger, IncidentStore? store = null)
{
    public async Task NotifyAsync(IReadOnlyList<IncidentChange> changes, CancellationToken ct)
    {
        List<string>? handed = null;
        try
        {
            foreach (var change in changes)
            {
                LogChange(logger, change.Kind, change.Incident.Id, change.Incident.Severity, change.Incident.Category, change.Incident.Node, change.Incident.GpuIndex);
                webhooks.Enqueue(change);
                if (change.IsNotification)
                {
                    (handed ??= []).Add(change.NotificationKey);
                }

                object message = change.Kind switch
                {
                    IncidentChangeKind.Opened => new IncidentOpened(change.Incident),
                    IncidentChangeKind.Updated => new IncidentUpdated(change.Incident),
                    _ => new IncidentResolved(change.Incident),
                };
                await bus.Publish(message, ct).ConfigureAwait(false);
            }
        }
        finally
        {
            if (handed is not null && store is not null)
            {
                store.MarkHanded(handed, time.GetUtcNow());
            }
        }
    }

    /// <summary>Hands to delivery the notifications that were emitted but not handed over before the last stop.</summary>
    public async Task<int> RecoverAsync(CancellationToken ct)
    {
        if (store is null)
        {
            return 0;
        }

        var pending = store.PendingHandOffs();
        if (pending.Count > 0)
        {
            LogRecovering(logger, pending.Count);
            await NotifyAsync(pending, ct).ConfigureAwait(false);
        }

        return pending.Count;
    }

    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Incident {IncidentId} {Kind}: {Severity} {Category} on {Node} GPU {Gpu}")]
    private static partial void LogChange(ILogger logger, IncidentChangeKind kind, string incidentId, Severity severity, string category, string node, int? gpu);

    [LoggerMessage(EventId = 201, Level = LogLevel.Warning, Message = "{Count} notification(s) were emitted but not handed to delivery before the last stop; handing them over now")]
    private static partial void LogRecovering(ILogger logger, int count);
}
