using FleetWatch.Controller.Fleet;
using FleetWatch.Controller.Remediation.Rebalancing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace FleetWatch.Controller.Api;

/// <summary>
/// The dashboard's read side of the controller API (issue 8): a node's recent history, search over GPU identities, and the
/// jobs view's straggler matrix. Routes are relative to the <c>/api/v1</c> group the host mounts behind authentication.
/// </summary>
public static class NodeApi
{
    /// <summary>Most search hits returned.</summary>
    public const int MaxSearchHits = 50;

    /// <summary>The state these endpoints read: <see cref="NodeHistory"/> (fed by the detection pipeline) and <see cref="StragglerHeatmap"/> (fed by the live straggler service).</summary>
    public static IServiceCollection AddControllerApiState(this IServiceCollection services)
    {
        services.AddNodeHistory();
        services.TryAddSingleton<StragglerHeatmap>();
        return services;
    }

    /// <summary>
    /// <c>GET /nodes/{node}</c>: 30 minutes of per-GPU series, IB ports and Xids (404 for a node never seen);
    /// <c>GET /search?q=</c>: GPUs by node name, UUID or PCI bus id, and jobs by name.
    /// </summary>
    public static RouteGroupBuilder MapNodeApi(this RouteGroupBuilder api)
    {
        ArgumentNullException.ThrowIfNull(api);
        api.MapGet("/nodes/{node}", (string node, NodeHistory history) =>
            history.Read(node) is { } view ? Results.Ok(view) : Results.NotFound(new { error = $"node = '{node}' is not known" }));
        api.MapGet("/search", (string? q, NodeHistory history, StragglerHeatmap heatmap) =>
        {
            if (string.IsNullOrWhiteSpace(q) || q.Length > 256)
            {
                return Results.BadRequest(new { error = $"q = '{q}': give 1 to 256 characters" });
            }

            var jobs = heatmap.Jobs().Where(j => j.Contains(q.Trim(), StringComparison.OrdinalIgnoreCase)).Take(MaxSearchHits).ToList();
            return Results.Ok(new { gpus = history.Search(q, MaxSearchHits), jobs });
        });
        return api;
    }

    /// <summary>
    /// <c>GET /jobs/{id}/stragglers</c>: rank × time scores, the detector's flagged ranks and hang state, and the job's expert
    /// re-placements (imbalance before and after); <c>GET /stragglers/scores</c>: every rank's current score, for the fleet view.
    /// </summary>
    public static RouteGroupBuilder MapStragglerApi(this RouteGroupBuilder api)
    {
        ArgumentNullException.ThrowIfNull(api);
        api.MapGet("/jobs/{id}/stragglers", (string id, StragglerHeatmap heatmap, TimeProvider time, IServiceProvider services) =>
        {
            var view = heatmap.Read(id, time.GetUtcNow());
            var rebalances = services.GetService<ExpertRebalanceActionLog>()?.Recent().Where(a => a.Job == id).ToList() ?? [];
            if (view is null && rebalances.Count == 0)
            {
                return Results.NotFound(new { error = $"job = '{id}' has no step reports in the last {StragglerHeatmap.Window.TotalMinutes:0} minutes" });
            }

            return Results.Ok(new
            {
                job = id,
                start = view?.Start,
                bucketSeconds = StragglerHeatmap.BucketWidth.TotalSeconds,
                ranks = view?.Ranks ?? [],
                scores = view?.Scores ?? [],
                detector = view?.Detector,
                rebalances,
            });
        });
        api.MapGet("/stragglers/scores", (StragglerHeatmap heatmap, TimeProvider time) => Results.Ok(heatmap.CurrentScores(time.GetUtcNow())));
        return api;
    }
}
