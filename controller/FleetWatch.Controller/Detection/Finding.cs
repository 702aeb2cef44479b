using FleetWatch.Contracts;

namespace FleetWatch.Controller.Detection;

/// <summary>An event happens once (one Xid); a condition holds until it clears (a GPU that is lost).</summary>
public enum FindingKind
{
    Event,
    Condition,
}

/// <summary>
/// What a detector reports. For a condition, <see cref="Active"/> false means the rule evaluated and found
/// the condition clear. Time comes from the data, never from a clock (DESIGN.md, Detection).
/// </summary>
public sealed record Finding(
    string Node,
    int? Gpu,
    string Rule,
    FindingKind Kind,
    bool Active,
    Severity Severity,
    string Category,
    string Action,
    string Message,
    DateTimeOffset Time);
