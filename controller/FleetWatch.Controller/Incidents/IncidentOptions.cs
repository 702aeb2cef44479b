using System.ComponentModel.DataAnnotations;

namespace FleetWatch.Controller.Incidents;

/// <summary>Incident lifecycle options (section <c>FleetWatch:Incidents</c>).</summary>
public sealed class IncidentOptions
{
    public const string Section = "FleetWatch:Incidents";

    /// <summary>
    /// An incident resolves only after all its findings stayed clear this long (hysteresis: a flapping signal
    /// keeps one incident open instead of opening fifty).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan ResolveHold { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Resolved incidents kept in memory for the dashboard.</summary>
    [Range(0, 10_000)]
    public int RecentResolvedKept { get; set; } = 50;
}
