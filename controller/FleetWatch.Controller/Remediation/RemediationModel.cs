using FleetWatch.Contracts;

namespace FleetWatch.Controller.Remediation;

/// <summary>A registered job as the controller keeps it (registry row plus progress).</summary>
public sealed record JobRecord
{
    public required string JobId { get; init; }
    public required IReadOnlyList<JobRank> Ranks { get; init; }
    public required string Scheduler { get; init; }
    public string? SchedulerJobId { get; init; }
    public string? CheckpointDir { get; init; }
    public required string SparePolicy { get; init; }
    /// <summary>The job launcher's webhook: a secret (it may embed a token), never serialized to API clients or browsers.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string? WebhookUrl { get; init; }

    /// <summary>Whether the job registered a launcher webhook (what the API shows instead of the URL).</summary>
    public bool HasWebhook => WebhookUrl is not null;

    public required DateTimeOffset RegisteredAt { get; init; }
    public DateTimeOffset? FinishedAt { get; init; }

    /// <summary>First step the job ever completed; null: it has not run yet, so a failure is a startup failure (never restarted).</summary>
    public DateTimeOffset? FirstStepAt { get; init; }

    public long? LastStep { get; init; }

    /// <summary>Set when the storm guard stopped restarting the job; an operator re-registration clears it.</summary>
    public string? HaltedReason { get; init; }

    public bool Running => FinishedAt is null;

    /// <summary>Distinct nodes in order of their first rank.</summary>
    public IReadOnlyList<string> Nodes => Ranks.OrderBy(r => r.Rank).Select(r => r.Node).Distinct(StringComparer.Ordinal).ToArray();
}

/// <summary>
/// One checkpoint of a job, reported by it (<c>Source</c> "reported") or found by a directory scan ("scan").
/// <c>BadReason</c> is non-null once a restore from it failed verification (or an operator marked it): never selected again.
/// </summary>
public sealed record CheckpointRecord(
    string JobId,
    long Step,
    string Uri,
    int Shards,
    IReadOnlyList<int> RanksCovered,
    string? ManifestChecksum,
    string Source,
    DateTimeOffset SavedAt,
    string? BadReason = null);

/// <summary>States of a restore cycle.</summary>
public static class CycleStates
{
    public const string Sent = "sent";
    public const string Acknowledged = "acknowledged";
    public const string Healthy = "healthy";
    public const string Failed = "failed";

    public static bool InFlight(string state) => state is Sent or Acknowledged;
}

/// <summary>One restore (or in-place restart) of a job: the command sent and what came of it.</summary>
public sealed record RestoreCycle
{
    public required string JobId { get; init; }
    public required long Cycle { get; init; }

    /// <summary>"hardware", "software" or "fallback" (the command's reason).</summary>
    public required string Kind { get; init; }

    public string? IncidentId { get; init; }

    /// <summary>The node whose failure ended the previous run (suspect-node rule).</summary>
    public string? TriggerNode { get; init; }

    public required long CheckpointStep { get; init; }
    public required string CheckpointUri { get; init; }
    public required IReadOnlyList<string> Excluded { get; init; }
    public required IReadOnlyList<string> Spares { get; init; }
    public required IReadOnlyList<string> Nodes { get; init; }
    public required string State { get; init; }
    public required DateTimeOffset StartedAt { get; init; }
    public DateTimeOffset? AckedAt { get; init; }
    public DateTimeOffset? FirstStepAt { get; init; }
    public DateTimeOffset? HealthyAt { get; init; }
    public required DateTimeOffset Deadline { get; init; }
    public string? Detail { get; init; }
}

/// <summary>Action states of the audit log.</summary>
public static class ActionStates
{
    public const string Requested = "requested";
    public const string InFlight = "in_flight";
    public const string Done = "done";
    public const string Failed = "failed";
}

/// <summary>One audited remediation action (cordon, uncordon, restore, restart, fallback, halt, page, mark_bad).</summary>
public sealed record RemediationAction
{
    public long Id { get; init; }
    public required DateTimeOffset At { get; init; }
    public required string Kind { get; init; }
    public string? Node { get; init; }
    public string? JobId { get; init; }
    public long? Cycle { get; init; }
    public string? IncidentId { get; init; }
    public required string Reason { get; init; }
    public string? Evidence { get; init; }
    public required string Operator { get; init; }
    public required string State { get; init; }
    public string? Detail { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }

    /// <summary>Identity of the action across restarts (for example <c>restore:job-1:inc-7</c>); null: not deduplicated.</summary>
    public string? Key { get; init; }
}

/// <summary>Builds audit rows (one shape for the orchestrator, the cordon service and the API).</summary>
public static class Audit
{
    public static RemediationAction Of(string? key, DateTimeOffset at, string kind, string? node, string? job, long? cycle, string? incident, string reason,
        string? evidence, string operatorName, string state, string? detail = null) =>
        new()
        {
            Key = key, At = at, Kind = kind, Node = node, JobId = job, Cycle = cycle, IncidentId = incident, Reason = reason, Evidence = evidence,
            Operator = operatorName, State = state, Detail = detail, UpdatedAt = at,
        };
}

/// <summary>A node FleetWatch holds out of service.</summary>
public sealed record CordonRecord(string Node, string Reason, string? IncidentId, string Operator, DateTimeOffset At);

/// <summary>A cordon as <c>GET /cordons</c> shows it: the cordon, and where its way back to service stands.</summary>
public sealed record CordonView(string Node, string Reason, string? IncidentId, string Operator, DateTimeOffset At, ReturnStatus ReturnToService);

/// <summary>
/// Where a cordoned node's automatic return to service stands. <c>State</c>: <c>manual</c> (an operator's cordon),
/// <c>disabled</c> (ReturnToService off), <c>not_evaluated</c> (this controller has not looked yet),
/// <c>awaiting_repair</c>, <c>unhealthy</c> (repaired but failing the health check), <c>soaking</c>, <c>held</c>
/// (breaker, storm or daily limit) or <c>returning</c>. <c>Reason</c> is the last evaluation's own words.
/// </summary>
public sealed record ReturnStatus(string State, string? Reason, DateTimeOffset? EvaluatedAt, string? RepairKind, string? RepairDetail, DateTimeOffset? RepairedAt,
    DateTimeOffset? SoakStart);
