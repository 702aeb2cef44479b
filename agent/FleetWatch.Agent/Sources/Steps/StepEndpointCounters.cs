using System.Diagnostics.Metrics;

namespace FleetWatch.Agent.Sources.Steps;

/// <summary>
/// What the step endpoint did, as plain counters (read by tests and the agent's status) and as observable instruments on
/// the agent's meter (exported on <c>/metrics</c>). Every refused body and every dropped report is counted, never silent.
/// </summary>
public sealed class StepEndpointCounters
{
    private long _accepted;
    private long _rejected;
    private long _dropped;
    private long _published;
    private long _batches;
    private long _publishFailures;

    /// <summary>Registers the observable instruments on the agent's meter.</summary>
    public StepEndpointCounters(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        var meter = meterFactory.Create(AgentMetrics.MeterName);
        meter.CreateObservableCounter("fleetwatch_agent_steps_accepted_total", () => Accepted, description: "Step reports accepted by the endpoint");
        meter.CreateObservableCounter("fleetwatch_agent_steps_rejected_requests_total", () => RejectedRequests, description: "Requests refused (bad body, too large)");
        meter.CreateObservableCounter("fleetwatch_agent_steps_dropped_total", () => Dropped, description: "Step reports dropped because the buffer was full");
        meter.CreateObservableCounter("fleetwatch_agent_steps_published_total", () => Published, description: "Step reports published to the bus");
        meter.CreateObservableCounter("fleetwatch_agent_steps_publish_failures_total", () => PublishFailures, description: "Batches whose publish failed or timed out");
    }

    /// <summary>Reports accepted into the buffer.</summary>
    public long Accepted => Interlocked.Read(ref _accepted);

    /// <summary>Requests refused with a 4xx (malformed JSON, a bad field, too large, wrong method or content).</summary>
    public long RejectedRequests => Interlocked.Read(ref _rejected);

    /// <summary>Reports dropped, oldest first, because the buffer was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Reports published inside a batch.</summary>
    public long Published => Interlocked.Read(ref _published);

    /// <summary>Batches published.</summary>
    public long Batches => Interlocked.Read(ref _batches);

    /// <summary>Batches whose publish failed or timed out (their reports are lost and counted here by batch).</summary>
    public long PublishFailures => Interlocked.Read(ref _publishFailures);

    internal void OnAccepted(int count) => Interlocked.Add(ref _accepted, count);

    internal void OnRejected() => Interlocked.Increment(ref _rejected);

    internal void OnDropped() => Interlocked.Increment(ref _dropped);

    internal void OnPublished(int count)
    {
        Interlocked.Add(ref _published, count);
        Interlocked.Increment(ref _batches);
    }

    internal void OnPublishFailed() => Interlocked.Increment(ref _publishFailures);
}
