namespace FleetWatch.Contracts;

/// <summary>Severity buckets of research/gpu-health-anchors.md section 7 (CRIT, HIGH, WARN, INFO).</summary>
public enum Severity
{
    Info = 0,
    Warning = 1,
    High = 2,
    Critical = 3,
}

/// <summary>One finding inside an incident: the rule that fired and its evidence.</summary>
public sealed record FindingInfo
{
    public required string Rule { get; init; }
    public required Severity Severity { get; init; }
    public required string Message { get; init; }
    public int? GpuIndex { get; init; }
    public required DateTimeOffset FirstSeen { get; init; }
    public required DateTimeOffset LastSeen { get; init; }
    public int Count { get; init; } = 1;
}

/// <summary>The state of an incident at one moment; carried by the incident events.</summary>
public sealed record IncidentSnapshot
{
    public required string Id { get; init; }
    public required string Node { get; init; }
    public int? GpuIndex { get; init; }
    public string? GpuUuid { get; init; }
    public required Severity Severity { get; init; }

    /// <summary>FleetWatch category name (README, "Categories and actions").</summary>
    public required string Category { get; init; }

    /// <summary>Recommended action name (README, "Categories and actions").</summary>
    public required string Action { get; init; }

    public required DateTimeOffset OpenedAt { get; init; }
    public DateTimeOffset? ResolvedAt { get; init; }
    public required IReadOnlyList<FindingInfo> Findings { get; init; }
}

public sealed record IncidentOpened(IncidentSnapshot Incident);

public sealed record IncidentUpdated(IncidentSnapshot Incident);

public sealed record IncidentResolved(IncidentSnapshot Incident);
