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

    /// <summary>
    /// Attached as evidence only: an inhibiting finding (a silent node, a lost GPU) explains it, so it neither opened
    /// nor escalated the incident (Alertmanager's inhibition).
    /// </summary>
    public bool Inhibited { get; init; }
}

/// <summary>An operator's note on an incident.</summary>
public sealed record IncidentNote(DateTimeOffset At, string By, string Text);

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

    /// <summary>What grouped the findings: <c>node/gpu</c>, <c>node</c> (several GPUs or a node-wide finding) or <c>node/nvlink</c> (an NVSwitch domain).</summary>
    public string? GroupKey { get; init; }

    /// <summary>Every GPU the incident covers (one for a GPU incident; several when a node-wide fault was grouped).</summary>
    public IReadOnlyList<int> Gpus { get; init; } = [];

    public string? AcknowledgedBy { get; init; }
    public DateTimeOffset? AcknowledgedAt { get; init; }
    public IReadOnlyList<IncidentNote> Notes { get; init; } = [];

    /// <summary>The silence or maintenance window muting the incident's notifications, or null.</summary>
    public string? SilencedBy { get; init; }
}

public sealed record IncidentOpened(IncidentSnapshot Incident);

public sealed record IncidentUpdated(IncidentSnapshot Incident);

public sealed record IncidentResolved(IncidentSnapshot Incident);
