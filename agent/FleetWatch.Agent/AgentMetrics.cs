using System.Diagnostics.Metrics;

namespace FleetWatch.Agent;

/// <summary>The agent's own counters (exported on /metrics).</summary>
public sealed class AgentMetrics
{
    public const string MeterName = "FleetWatch.Agent";

    public AgentMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        SamplesPublished = meter.CreateCounter<long>("fleetwatch_agent_samples_published_total");
        XidsPublished = meter.CreateCounter<long>("fleetwatch_agent_xids_published_total");
        PublishFailures = meter.CreateCounter<long>("fleetwatch_agent_publish_failures_total");
        TickOverruns = meter.CreateCounter<long>("fleetwatch_agent_tick_overruns_total");
    }

    public Counter<long> SamplesPublished { get; }
    public Counter<long> XidsPublished { get; }
    public Counter<long> PublishFailures { get; }
    public Counter<long> TickOverruns { get; }
}
