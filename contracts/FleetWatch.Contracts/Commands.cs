namespace FleetWatch.Contracts;

/// <summary>Fault kinds the simulated GPU source can inject (a subset of FORMATS.md section 4's vocabulary).</summary>
public enum SimulatedFaultKind
{
    Xid,
    EccDbe,
    OverTemperature,
    NvLinkErrors,
    IbLinkDown,
    NodeSilent,
    GpuLost,
    Clear,
}

/// <summary>Command to simulated agents: inject (or clear) a fault on a node. Ignored by agents with real hardware.</summary>
public sealed record InjectSimulatedFault
{
    public required string Node { get; init; }
    public required SimulatedFaultKind Kind { get; init; }
    public int? Gpu { get; init; }
    public int? Xid { get; init; }
    public int? TemperatureC { get; init; }
    public int? Link { get; init; }
    public int? Port { get; init; }

    /// <summary>How long the fault lasts; null means until cleared.</summary>
    public TimeSpan? For { get; init; }
}
