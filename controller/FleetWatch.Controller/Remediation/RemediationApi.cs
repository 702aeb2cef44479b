using System.Globalization;
using System.Text.Json;
using FleetWatch.Contracts;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Remediation;

/// <summary>Body of POST /jobs/{id}/checkpoints.</summary>
public sealed record CheckpointBody(long Step, string Uri, int Shards, IReadOnlyList<int> RanksCovered, string? ManifestChecksum = null);

/// <summary>Body of POST /jobs/{id}/steps.</summary>
public sealed record StepBody(long Step, bool Healthy = true);

/// <summary>Body of POST /jobs/{id}/restore/ack.</summary>
public sealed record AckBody(long Cycle);

/// <summary>Optional body of operator actions (cordon, uncordon, mark bad).</summary>
public sealed record OperatorBody(string? Reason = null);

/// <summary>Answer of GET /jobs/{id}/restore: what the job must do when it (re)starts for the latest cycle.</summary>
public sealed record RestorePlan(string JobId, long Cycle, CheckpointRef Checkpoint, IReadOnlyList<string> Nodes, IReadOnlyList<string> ExcludedNodes,
    IReadOnlyList<string> Spares, IReadOnlyList<JobRank> Ranks, string Reason, string State, DateTimeOffset StartedAt);

/// <summary>A spare and what it is doing.</summary>
public sealed record SpareView(string Node, string? Domain, string? Rack, string State, string? JobId);

/// <summary>One job in the API.</summary>
public sealed record JobView(JobRecord Job, IReadOnlyList<CheckpointRecord> Checkpoints, CheckpointRecord? Selected, IReadOnlyList<RestoreCycle> Cycles);

/// <summary>HTTP API of the job registry, checkpoints, cordons, spares and the action audit.</summary>
public static class RemediationApi
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Maps the routes relative to <paramref name="api"/> (the lead mounts it at <c>/api/v1</c> behind authentication).</summary>
    public static RouteGroupBuilder MapRemediationApi(this RouteGroupBuilder api)
    {
        ArgumentNullException.ThrowIfNull(api);

        api.MapPost("/jobs", async (HttpRequest request, RestoreOrchestrator orchestrator) =>
        {
            var (job, error) = await ReadAsync<JobRegistered>(request).ConfigureAwait(false);
            error ??= job is null ? "body: a JobRegistered object is required" : ValidateJob(job);
            if (error is not null)
            {
                return Results.BadRequest(new { error });
            }

            return Results.Ok(orchestrator.Register(job!));
        });

        api.MapGet("/jobs", (JobRegistry registry) => Results.Ok(registry.All()));

        api.MapGet("/jobs/{id}", (string id, JobRegistry registry, RestoreOrchestrator orchestrator) =>
        {
            if (registry.Get(id) is not { } job)
            {
                return Results.NotFound();
            }

            var inventory = orchestrator.Inventory(job);
            return Results.Ok(new JobView(job, inventory, CheckpointSelector.Select(inventory, job.Ranks.Select(r => r.Rank).ToArray()), orchestrator.Cycles(id)));
        });

        api.MapPost("/jobs/{id}/checkpoints", async (string id, HttpRequest request, JobRegistry registry, RestoreOrchestrator orchestrator) =>
        {
            if (registry.Get(id) is null)
            {
                return Results.NotFound();
            }

            var (body, error) = await ReadAsync<CheckpointBody>(request).ConfigureAwait(false);
            error ??= body is null ? "body: {step, uri, shards, ranksCovered} is required"
                : body.Step < 0 ? $"step: must be >= 0, got {body.Step}"
                : string.IsNullOrWhiteSpace(body.Uri) ? "uri: must be set"
                : body.RanksCovered is null || body.RanksCovered.Count == 0 ? "ranksCovered: must list the ranks the shards hold"
                : null;
            if (error is not null)
            {
                return Results.BadRequest(new { error });
            }

            orchestrator.OnCheckpoint(new CheckpointSaved { JobId = id, Step = body!.Step, Uri = body.Uri, Shards = body.Shards, RanksCovered = body.RanksCovered!, ManifestChecksum = body.ManifestChecksum });
            return Results.Ok(new { jobId = id, step = body.Step });
        });

        api.MapPost("/jobs/{id}/checkpoints/{step:long}/bad", async (string id, long step, HttpRequest request, JobRegistry registry, RemediationStore store,
            RestoreOrchestrator orchestrator, TimeProvider time) =>
        {
            if (registry.Get(id) is not { } job || orchestrator.Inventory(job).FirstOrDefault(c => c.Step == step) is not { } checkpoint)
            {
                return Results.NotFound();
            }

            var (body, _) = await ReadAsync<OperatorBody>(request).ConfigureAwait(false);
            var who = Operator(request.HttpContext);
            var reason = $"marked bad by {who}: {body?.Reason ?? "no reason given"}";
            store.UpsertCheckpoint(checkpoint with { BadReason = reason });
            var now = time.GetUtcNow();
            store.TryRecord(Audit.Of(string.Create(CultureInfo.InvariantCulture, $"mark_bad:{id}:{step}"), now, "mark_bad", null, id, null, null, reason,
                checkpoint.Uri, who, ActionStates.Done));
            return Results.Ok(new { jobId = id, step, badReason = reason });
        });

        api.MapPost("/jobs/{id}/steps", async (string id, HttpRequest request, JobRegistry registry, RestoreOrchestrator orchestrator) =>
        {
            if (registry.Get(id) is null)
            {
                return Results.NotFound();
            }

            var (body, error) = await ReadAsync<StepBody>(request).ConfigureAwait(false);
            error ??= body is null ? "body: {step} is required" : body.Step < 0 ? $"step: must be >= 0, got {body.Step}" : null;
            if (error is not null)
            {
                return Results.BadRequest(new { error });
            }

            await orchestrator.OnStepAsync(id, body!.Step, body.Healthy, null, request.HttpContext.RequestAborted).ConfigureAwait(false);
            return Results.NoContent();
        });

        api.MapPost("/jobs/{id}/finished", (string id, JobRegistry registry, RestoreOrchestrator orchestrator) =>
        {
            if (registry.Get(id) is null)
            {
                return Results.NotFound();
            }

            orchestrator.OnFinished(id, null);
            return Results.NoContent();
        });

        api.MapGet("/jobs/{id}/restore", (string id, JobRegistry registry, RestoreOrchestrator orchestrator) =>
        {
            if (registry.Get(id) is not { } job || orchestrator.Cycles(id) is not [.., var last])
            {
                return Results.NotFound();
            }

            var ranks = job.Ranks.Where(r => !last.Excluded.Contains(r.Node)).ToArray();
            return Results.Ok(new RestorePlan(id, last.Cycle, new CheckpointRef(last.CheckpointStep, last.CheckpointUri), last.Nodes, last.Excluded, last.Spares,
                ranks, last.Kind, last.State, last.StartedAt));
        });

        api.MapPost("/jobs/{id}/restore/ack", async (string id, HttpRequest request, RestoreOrchestrator orchestrator) =>
        {
            var (body, error) = await ReadAsync<AckBody>(request).ConfigureAwait(false);
            if (error is not null || body is null)
            {
                return Results.BadRequest(new { error = error ?? "body: {cycle} is required" });
            }

            return await orchestrator.OnAcknowledgedAsync(id, body.Cycle, request.HttpContext.RequestAborted).ConfigureAwait(false)
                ? Results.NoContent()
                : Results.NotFound();
        });

        api.MapGet("/spares", (IOptions<RemediationOptions> options, RemediationStore store) =>
        {
            var use = store.SpareUse();
            var cordoned = store.Cordons().Select(c => c.Node).ToHashSet(StringComparer.Ordinal);
            return Results.Ok(options.Value.Spares.Select(s => new SpareView(s.Node, s.Domain, s.Rack,
                cordoned.Contains(s.Node) ? "cordoned" : use.ContainsKey(s.Node) ? "in_use" : "free",
                use.TryGetValue(s.Node, out var u) ? u.JobId : null)).ToArray());
        });

        api.MapGet("/cordons", (NodeReturnService returns) => Results.Ok(returns.Cordons()));

        api.MapPost("/nodes/{node}/cordon", async (string node, HttpRequest request, CordonService cordons) =>
        {
            var (body, _) = await ReadAsync<OperatorBody>(request).ConfigureAwait(false);
            var who = Operator(request.HttpContext);
            var outcome = await cordons.CordonAsync(node, body?.Reason ?? $"cordoned by {who}", null, who, null, request.HttpContext.RequestAborted).ConfigureAwait(false);
            return outcome == CordonOutcome.Refused
                ? Results.Conflict(new { error = $"node {node}: circuit breaker refused the cordon (see /actions)" })
                : Results.Ok(new { node, outcome = outcome.ToString() });
        });

        api.MapPost("/nodes/{node}/uncordon", async (string node, HttpRequest request, CordonService cordons) =>
        {
            var (body, _) = await ReadAsync<OperatorBody>(request).ConfigureAwait(false);
            return await cordons.UncordonAsync(node, Operator(request.HttpContext), body?.Reason, request.HttpContext.RequestAborted).ConfigureAwait(false)
                ? Results.Ok(new { node, uncordoned = true })
                : Results.NotFound();
        });

        api.MapPost("/nodes/{node}/repaired", async (string node, HttpRequest request, NodeReturnService returns, IOptions<RemediationOptions> options) =>
        {
            var (body, _) = await ReadAsync<OperatorBody>(request).ConfigureAwait(false);
            var r = options.Value.ReturnToService;
            return await returns.MarkRepairedAsync(node, Operator(request.HttpContext), body?.Reason, request.HttpContext.RequestAborted).ConfigureAwait(false) switch
            {
                RepairMarkOutcome.NotCordoned => Results.NotFound(),
                RepairMarkOutcome.ManualCordon => Results.Conflict(new { error = $"node {node} was cordoned by an operator; return it with POST /nodes/{node}/uncordon" }),
                _ => Results.Ok(new { node, repaired = true, automaticReturn = r.Enabled, soak = r.Soak }),
            };
        });

        api.MapGet("/actions", (string? node, string? job, int? limit, RemediationStore store) =>
        {
            var n = limit ?? 100;
            return n is < 1 or > 10_000
                ? Results.BadRequest(new { error = $"limit: must be in [1, 10000], got {n}" })
                : Results.Ok(store.Actions(node, job, n));
        });

        return api;
    }

    /// <summary>The authenticated operator, or "anonymous" (the audit records who did it).</summary>
    public static string Operator(HttpContext context) =>
        context?.User.Identity?.Name is { Length: > 0 } name ? name : "anonymous";

    private static string? ValidateJob(JobRegistered job)
    {
        if (string.IsNullOrWhiteSpace(job.JobId))
        {
            return "jobId: must be set";
        }

        if (job.Ranks is null || job.Ranks.Count == 0)
        {
            return "ranks: must list at least one rank";
        }

        if (job.Ranks.GroupBy(r => r.Rank).FirstOrDefault(g => g.Count() > 1) is { } dup)
        {
            return string.Create(CultureInfo.InvariantCulture, $"ranks: rank {dup.Key} is listed twice");
        }

        if (job.Ranks.FirstOrDefault(r => string.IsNullOrWhiteSpace(r.Node) || r.GpuIndex < 0 || r.Rank < 0) is { } bad)
        {
            return string.Create(CultureInfo.InvariantCulture, $"ranks: rank {bad.Rank} needs a node and a GPU index >= 0 (got '{bad.Node}', {bad.GpuIndex})");
        }

        if (job.Scheduler is not ("slurm" or "kubernetes" or "none"))
        {
            return $"scheduler: must be slurm, kubernetes or none, got '{job.Scheduler}'";
        }

        if (!SparePicker.IsKnownPolicy(job.SparePolicy))
        {
            return $"sparePolicy: must be {SparePicker.SameDomainFirst}, {SparePicker.SameDomainOnly} or {SparePicker.None}, got '{job.SparePolicy}'";
        }

        if (job.WebhookUrl is not null && !(Uri.TryCreate(job.WebhookUrl, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"))
        {
            return "webhookUrl: must be an absolute http(s) URL";
        }

        return null;
    }

    private static async Task<(T? Value, string? Error)> ReadAsync<T>(HttpRequest request)
        where T : class
    {
        if (request.ContentLength is 0 || (request.ContentLength is null && !request.HasJsonContentType()))
        {
            return (null, null);
        }

        try
        {
            return (await JsonSerializer.DeserializeAsync<T>(request.Body, Json, request.HttpContext.RequestAborted).ConfigureAwait(false), null);
        }
        catch (JsonException ex)
        {
            return (null, $"body: {ex.Message}");
        }
    }
}
