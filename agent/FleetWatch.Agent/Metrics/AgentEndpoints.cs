using FleetWatch.Agent.Publishing;
using FleetWatch.Agent.Sampling;
using FleetWatch.Agent.Sources.Infiniband;
using FleetWatch.Agent.Sources.Kmsg;
using FleetWatch.Agent.Sources.Nvml;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Metrics;

/// <summary>The agent's HTTP surface: /metrics (Prometheus text), /healthz/live and /healthz/ready.</summary>
public static class AgentEndpoints
{
    public static IEndpointRouteBuilder MapAgentEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet("/metrics", (IServiceProvider sp) =>
        {
            var state = sp.GetRequiredService<AgentState>();
            var text = PrometheusText.Render(state.Latest, state.LastXidByGpu, Counters(sp));
            return Results.Text(text, "text/plain; version=0.0.4; charset=utf-8");
        });
        app.MapGet("/healthz/live", () => Results.Text("live"));
        app.MapGet("/healthz/ready", (IServiceProvider sp, TimeProvider time) =>
        {
            // Ready once a sample was taken within the last three ticks (the simulator has no single sample).
            var state = sp.GetRequiredService<AgentState>();
            var tick = sp.GetRequiredService<IOptions<SamplingOptions>>().Value.Tick;
            var last = state.LastSampleTicks;
            var fresh = last > 0 && time.GetUtcNow().UtcTicks - last <= (tick * 3).Ticks;
            return fresh || sp.GetService<Simulation.SimulatedFleet>() is not null
                ? Results.Text("ready")
                : Results.Json(new NotReady("not ready", last == 0 ? "no sample yet" : "last sample is older than three ticks"), AgentEndpointJson.Default.NotReady, statusCode: 503);
        });
        return app;
    }

    private static IEnumerable<AgentCounter> Counters(IServiceProvider sp)
    {
        var m = sp.GetRequiredService<AgentMetrics>();
        yield return new("fleetwatch_agent_samples_published_total", "Samples published to the bus.", true, m.SamplesPublished.Value);
        yield return new("fleetwatch_agent_xids_published_total", "Xid events published to the bus.", true, m.XidsPublished.Value);
        yield return new("fleetwatch_agent_publish_failures_total", "Publishes that failed and were not spooled.", true, m.PublishFailures.Value);
        if (sp.GetService<SpoolingPublisher>() is { } spool)
        {
            yield return new("fleetwatch_agent_spool_pending", "Messages waiting in the disk spool.", false, spool.Pending);
            yield return new("fleetwatch_agent_spooled_total", "Messages written to the disk spool.", true, spool.Spooled);
            yield return new("fleetwatch_agent_spool_replayed_total", "Spooled messages published after the broker came back.", true, spool.Replayed);
            yield return new("fleetwatch_agent_spool_dropped_total", "Spooled messages dropped at the spool's size bound.", true, spool.Dropped);
        }

        if (sp.GetService<NvmlGpuSource>() is { } nvml)
        {
            yield return new("fleetwatch_agent_nvml_errors_total", "NVML calls that failed unexpectedly.", true, nvml.Errors);
            yield return new("fleetwatch_agent_nvml_hangs_total", "NVML reads that did not return in time (driver hang).", true, nvml.Hangs);
        }

        if (sp.GetService<KmsgXidWatcher>() is { } kmsg)
        {
            var c = kmsg.Counters;
            yield return new("fleetwatch_agent_kmsg_records_total", "Kernel log records read.", true, c.Records);
            yield return new("fleetwatch_agent_kmsg_events_total", "Xid, SXid and fallen-off-bus events found.", true, c.Events);
            yield return new("fleetwatch_agent_kmsg_malformed_total", "Kernel log lines skipped as malformed.", true, c.Malformed);
            yield return new("fleetwatch_agent_kmsg_lost_records_total", "Kernel log records lost (sequence gaps, overruns).", true, c.LostRecords);
        }

        if (sp.GetService<Sources.Steps.StepEndpointCounters>() is { } steps)
        {
            yield return new("fleetwatch_agent_steps_accepted_total", "Step reports accepted by the endpoint.", true, steps.Accepted);
            yield return new("fleetwatch_agent_steps_rejected_requests_total", "Step requests refused (bad body, too large).", true, steps.RejectedRequests);
            yield return new("fleetwatch_agent_steps_dropped_total", "Step reports dropped because the buffer was full.", true, steps.Dropped);
            yield return new("fleetwatch_agent_steps_published_total", "Step reports published to the bus.", true, steps.Published);
        }

        if (sp.GetService<SysfsInfinibandSource>() is { } ib)
        {
            yield return new("fleetwatch_agent_ib_skipped_files_total", "InfiniBand sysfs files skipped as unreadable or garbage.", true, ib.SkippedFiles);
        }
    }
}

/// <summary>The readiness probe's answer while not ready.</summary>
/// <param name="Status">Always "not ready".</param>
/// <param name="Reason">Why.</param>
public sealed record NotReady(string Status, string Reason);

/// <summary>The agent endpoints' JSON, source-generated (Native AOT).</summary>
[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
[System.Text.Json.Serialization.JsonSerializable(typeof(NotReady))]
internal sealed partial class AgentEndpointJson : System.Text.Json.Serialization.JsonSerializerContext;
