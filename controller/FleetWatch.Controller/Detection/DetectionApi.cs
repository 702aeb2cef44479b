using FleetWatch.Controller.Fleet;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace FleetWatch.Controller.Detection;

/// <summary>HTTP API of detection, mapped by the lead under the authenticated <c>/api/v1</c> group.</summary>
public static class DetectionApi
{
    /// <summary>GET <c>/nodes/{node}/conditions</c>: the node's conditions (node_silent first, then per GPU and rule); 404 for a node never seen.</summary>
    public static RouteGroupBuilder MapDetectionApi(this RouteGroupBuilder api)
    {
        api.MapGet("/nodes/{node}/conditions", (string node, DetectionEngine engine, TimeProvider time) =>
            engine.Conditions(node, time.GetUtcNow()) is { } conditions
                ? Results.Ok(conditions)
                : Results.NotFound(new { error = $"node '{node}' is unknown" }));
        return api;
    }
}
