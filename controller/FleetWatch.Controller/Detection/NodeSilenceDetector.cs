using FleetWatch.Contracts;

namespace FleetWatch.Controller.Detection;

/// <summary>Condition status in the Kubernetes sense: no data is Unknown, never healthy.</summary>
[System.Text.Json.Serialization.JsonConverter(typeof(System.Text.Json.Serialization.JsonStringEnumConverter<ConditionStatus>))]
public enum ConditionStatus
{
    Unknown,
    False,
    True,
}

/// <summary>Node silent: no sample for a configured time. Pure function of the last-seen time and now.</summary>
public static class NodeSilenceDetector
{
    public static (ConditionStatus Status, Finding Finding) Evaluate(string node, DateTimeOffset? lastSeen, DateTimeOffset now, DetectionOptions options)
    {
        if (lastSeen is not { } seen)
        {
            // A node that was never seen is not healthy and not silent: we know nothing.
            return (ConditionStatus.Unknown, Silent(node, false, now, "never reported"));
        }

        var quiet = now - seen;
        if (quiet >= options.NodeSilentAfter)
        {
            return (ConditionStatus.True, Silent(node, true, now, $"no sample for {quiet.TotalSeconds:F0} s (last at {seen:O})"));
        }

        return quiet >= options.NodeUnknownAfter
            ? (ConditionStatus.Unknown, Silent(node, false, now, $"no sample for {quiet.TotalSeconds:F0} s"))
            : (ConditionStatus.False, Silent(node, false, now, "reporting"));
    }

    private static Finding Silent(string node, bool active, DateTimeOffset now, string detail) =>
        new(node, null, "node_silent", FindingKind.Condition, active, Severity.Critical, "node_silent", "check_node", $"node {node}: {detail}", now);
}
