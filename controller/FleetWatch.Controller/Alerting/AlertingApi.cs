using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace FleetWatch.Controller.Alerting;

/// <summary>One receiver as the API shows it: name, type and outbox counts. Never its URL, routing key or secret.</summary>
public sealed record ReceiverView(string Name, string Type, long Pending, long Delivered, long GivenUp, string? LastError);

/// <summary>HTTP API of alert delivery, mounted by the host under <c>/api/v1</c> behind authentication.</summary>
public static class AlertingApi
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 1000;

    /// <summary>
    /// GET <c>/alerts/deliveries?incident=&amp;state=&amp;limit=</c>: outbox rows, newest first. GET <c>/alerts/receivers</c>:
    /// every configured receiver with its pending / delivered / given-up counts and last error.
    /// </summary>
    public static RouteGroupBuilder MapAlertingApi(this RouteGroupBuilder api)
    {
        api.MapGet("/alerts/deliveries", (HttpContext context, AlertOutbox outbox) =>
        {
            var query = context.Request.Query;
            var incident = query["incident"].FirstOrDefault();
            var state = query["state"].FirstOrDefault();
            if (string.IsNullOrEmpty(state))
            {
                state = null;
            }
            else if (!DeliveryState.IsKnown(state))
            {
                return Results.BadRequest(new { error = $"state = '{state}': must be one of {DeliveryState.Pending}, {DeliveryState.Delivered}, {DeliveryState.GivenUp}" });
            }

            var limit = DefaultLimit;
            var rawLimit = query["limit"].FirstOrDefault();
            if (!string.IsNullOrEmpty(rawLimit) && (!int.TryParse(rawLimit, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit < 1 || limit > MaxLimit))
            {
                return Results.BadRequest(new { error = $"limit = '{rawLimit}': must be an integer from 1 to {MaxLimit}" });
            }

            return Results.Ok(outbox.Query(string.IsNullOrEmpty(incident) ? null : incident, state, limit));
        });

        api.MapGet("/alerts/receivers", (AlertOutbox outbox, WebhookDelivery delivery) =>
        {
            var counts = outbox.Counts();
            return Results.Ok(delivery.Receivers.Values.Select(r =>
            {
                var c = counts.GetValueOrDefault(r.Name) ?? new ReceiverCounts(0, 0, 0, null);
                return new ReceiverView(r.Name, r.Type.ToString().ToLowerInvariant(), c.Pending, c.Delivered, c.GivenUp, c.LastError);
            }).ToList());
        });
        return api;
    }
}
