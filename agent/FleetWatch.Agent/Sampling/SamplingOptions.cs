using System.ComponentModel.DataAnnotations;
using FleetWatch.Common;

namespace FleetWatch.Agent.Sampling;

/// <summary>Options of the sampler loop (section <c>FleetWatch:Agent</c>).</summary>
public sealed class SamplingOptions
{
    public const string Section = "FleetWatch:Agent";

    /// <summary>Time between two samples of a node. dcgm-exporter's users run 1–30 s; 1 s is our default.</summary>
    [TimeSpanRange("00:00:00.050", "00:10:00")]
    public TimeSpan Tick { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Publishes allowed in flight at once (a 1,250-node simulator needs many; research/deps-and-limits.md section 2).</summary>
    [Range(1, 10_000)]
    public int MaxPublishesInFlight { get; set; } = 128;

    /// <summary>Name of this node when the agent reads real hardware; defaults to the host name.</summary>
    public string? NodeName { get; set; }
}
