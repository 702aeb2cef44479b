using FleetWatch.Controller.Alerting;
using FleetWatch.Controller.Fleet;
using FleetWatch.Controller.Incidents;
using FleetWatch.Controller.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace FleetWatch.Controller;

/// <summary>Counters an operator (and the benchmarks) read to see that nothing is lost.</summary>
public sealed record ControllerStatus(
    int Nodes,
    long SamplesAccepted,
    long SamplesDuplicate,
    long SamplesStale,
    long Xids,
    long InfoFindings,
    int OpenIncidents,
    long AlertsDelivered,
    long AlertAttempts,
    long AlertsGivenUp,
    long TelemetryPointsWritten,
    long TelemetrySamplesDropped,
    long TelemetryBatchesFailed);

public static class ControllerEndpoints
{
    /// <summary>GET /metrics: Prometheus text of the controller's counters (<see cref="ControllerMetricsText"/>); unauthenticated like every scrape target, counts only.</summary>
    public static IEndpointRouteBuilder MapControllerMetrics(this IEndpointRouteBuilder app)
    {
        app.MapGet("/metrics", (IServiceProvider sp) => Results.Text(ControllerMetricsText.Render(sp), "text/plain; version=0.0.4; charset=utf-8"));
        return app;
    }

    /// <summary>GET /api/controller/status: ingest, alert and sink counters.</summary>
    public static IEndpointRouteBuilder MapControllerStatus(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/controller/status", (IServiceProvider sp) =>
        {
            var fleet = sp.GetRequiredService<FleetState>();
            var metrics = sp.GetRequiredService<FleetMetrics>();
            var incidents = sp.GetRequiredService<IncidentManager>();
            var alerts = sp.GetRequiredService<AlertMetrics>();
            var sink = sp.GetRequiredService<InfluxTelemetrySink>();
            return Results.Ok(new ControllerStatus(fleet.NodeCount, metrics.Accepted, metrics.Duplicates, metrics.Stale, metrics.Xids, incidents.InfoFindings,
                incidents.Open().Count, alerts.Delivered, alerts.Attempts, alerts.GivenUp, sink.PointsWritten, sink.Dropped, sink.FailedBatches));
        });
        return app;
    }
}
