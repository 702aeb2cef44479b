namespace FleetWatch.Contracts;

/// <summary>Health of one GPU cell as the dashboard colours it. No data is <see cref="Unknown"/>, never healthy.</summary>
public enum GpuHealth : byte
{
    Unknown = 0,
    Healthy = 1,
    Warning = 2,
    High = 3,
    Critical = 4,
}

/// <summary>One GPU cell of a fleet frame. Values are rounded for the display.</summary>
public sealed record GpuCell
{
    public required string Node { get; init; }
    public required int Gpu { get; init; }
    public required GpuHealth Health { get; init; }
    public string? Uuid { get; init; }
    public string? Rack { get; init; }
    public short? TemperatureC { get; init; }
    public short? PowerW { get; init; }
    public byte? UtilizationPct { get; init; }
}

/// <summary>Counts shown in the dashboard summary.</summary>
public sealed record FleetCounts(int Healthy, int Warning, int High, int Critical, int Unknown, int Nodes, int OpenIncidents);

/// <summary>
/// Fleet state for dashboards. The controller publishes a delta (changed cells only) at most once a second and a
/// snapshot on request (<see cref="GetFleetSnapshot"/>) or periodically, so a dashboard that joins late catches up.
/// </summary>
public sealed record FleetFrame
{
    /// <summary>Monotonic frame version of the controller run; a delta applies only to the frame before it.</summary>
    public required long Version { get; init; }

    public required string ControllerRun { get; init; }
    public required bool IsSnapshot { get; init; }
    public required DateTimeOffset Time { get; init; }
    public required IReadOnlyList<GpuCell> Cells { get; init; }

    /// <summary>Open incidents (all of them in a snapshot; a delta carries the full open list too, it is short).</summary>
    public required IReadOnlyList<IncidentSnapshot> OpenIncidents { get; init; }

    /// <summary>Recently resolved incidents, newest first, bounded.</summary>
    public IReadOnlyList<IncidentSnapshot> RecentlyResolved { get; init; } = [];

    public required FleetCounts Counts { get; init; }
}

/// <summary>Request for a full <see cref="FleetFrame"/> snapshot (request/response on the bus).</summary>
public sealed record GetFleetSnapshot(string Requester);
