namespace FleetWatch.Agent;

/// <summary>A monotonically increasing count, readable for /metrics.</summary>
public sealed class AgentCount
{
    private long _value;

    public long Value => Interlocked.Read(ref _value);

    public void Add(long n) => Interlocked.Add(ref _value, n);
}

/// <summary>The agent's own counters (exported on /metrics as fleetwatch_agent_*).</summary>
public sealed class AgentMetrics
{
    /// <summary>Name of the agent's System.Diagnostics.Metrics meter (for OpenTelemetry exporters).</summary>
    public const string MeterName = "FleetWatch.Agent";

    public AgentCount SamplesPublished { get; } = new();
    public AgentCount XidsPublished { get; } = new();
    public AgentCount PublishFailures { get; } = new();
    public AgentCount TickOverruns { get; } = new();
}
