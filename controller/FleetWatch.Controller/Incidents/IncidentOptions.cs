using System.ComponentModel.DataAnnotations;
using FleetWatch.Common;

namespace FleetWatch.Controller.Incidents;

/// <summary>Incident lifecycle options (section <c>FleetWatch:Incidents</c>): grouping, waiting, inhibition, repeat, resolve.</summary>
public sealed class IncidentOptions
{
    public const string Section = "FleetWatch:Incidents";

    /// <summary>
    /// An incident resolves only after all its findings stayed clear this long (hysteresis: a flapping signal
    /// keeps one incident open instead of opening fifty).
    /// </summary>
    [TimeSpanRange("00:00:00", "1.00:00:00")]
    public TimeSpan ResolveHold { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Resolved incidents kept in memory for the dashboard.</summary>
    [Range(0, 10_000)]
    public int RecentResolvedKept { get; set; } = 50;

    /// <summary>
    /// Group wait: findings of other GPUs of the same node that arrive within this time of an incident opening join
    /// it (a node-wide fault is one incident, not eight), and the incident's first notification waits this long so it
    /// carries the whole group. Alertmanager's default <c>group_wait</c> is 30 s; a fault seen on eight GPUs arrives in
    /// the same sample or within milliseconds on the Xid lane, so a few seconds is enough here.
    /// </summary>
    [TimeSpanRange("00:00:00", "00:05:00")]
    public TimeSpan GroupWait { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Group wait of the first notification of a critical incident. Zero pages at once (Xid 79 must page within
    /// about 1 s p99, issue 4); the group still forms during <see cref="GroupWait"/> and later GPUs join without a
    /// second page. Must not exceed <see cref="GroupWait"/>.
    /// </summary>
    [TimeSpanRange("00:00:00", "00:05:00")]
    public TimeSpan CriticalGroupWait { get; set; } = TimeSpan.Zero;

    /// <summary>An open, unacknowledged, unsilenced incident is notified again this often (Alertmanager's default <c>repeat_interval</c>: 4 h).</summary>
    [TimeSpanRange("00:00:01", "7.00:00:00")]
    public TimeSpan RepeatInterval { get; set; } = TimeSpan.FromHours(4);

    /// <summary>
    /// Rules that inhibit the other findings of their node (node-level rule) or GPU (per-GPU rule): while one is
    /// active, the others are attached to its incident as evidence and neither open nor escalate an incident.
    /// Null means <c>node_silent</c> and <c>gpu_lost</c>. (Lists here are null by default because the configuration
    /// binder appends to a pre-filled list: a configured list replaces the default instead.)
    /// </summary>
    public IReadOnlyList<string>? InhibitingRules { get; set; }

    /// <summary>
    /// Rule prefixes of node-level NVSwitch findings (SXids): such a finding groups the node's NVLink domain, so the
    /// per-GPU NVLink findings it causes join its incident (the switch explains them). Null means <c>sxid:</c>.
    /// </summary>
    public IReadOnlyList<string>? FabricRulePrefixes { get; set; }

    /// <summary>Category prefixes of per-GPU findings that belong to the NVLink domain of their node.</summary>
    /// <remarks>Null means <c>nvlink</c> and <c>nvswitch</c>.</remarks>
    public IReadOnlyList<string>? FabricCategoryPrefixes { get; set; }

    public IReadOnlyList<string> EffectiveInhibitingRules => InhibitingRules ?? ["node_silent", "gpu_lost"];

    public IReadOnlyList<string> EffectiveFabricRulePrefixes => FabricRulePrefixes ?? ["sxid:"];

    public IReadOnlyList<string> EffectiveFabricCategoryPrefixes => FabricCategoryPrefixes ?? ["nvlink", "nvswitch"];

    /// <summary>
    /// Finding counts and last-seen times of open incidents reach the store at least this often; a structural change
    /// (open, join, escalate, clear, resolve, notify, acknowledge) is written at once.
    /// </summary>
    [TimeSpanRange("00:00:01", "01:00:00")]
    public TimeSpan EvidenceFlushInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Cross-field rules (data annotations check each value's range).</summary>
    public static IEnumerable<(string Key, object? Value, string Error)> Validate(IncidentOptions o)
    {
        if (o.CriticalGroupWait > o.GroupWait)
        {
            yield return ($"{Section}:CriticalGroupWait", o.CriticalGroupWait, $"must not exceed GroupWait ({o.GroupWait})");
        }

        foreach (var (name, list) in new[] { ("InhibitingRules", o.EffectiveInhibitingRules), ("FabricRulePrefixes", o.EffectiveFabricRulePrefixes), ("FabricCategoryPrefixes", o.EffectiveFabricCategoryPrefixes) })
        {
            for (var i = 0; i < list.Count; i++)
            {
                if (string.IsNullOrWhiteSpace(list[i]))
                {
                    yield return ($"{Section}:{name}:{i}", list[i], "must not be empty");
                }
            }
        }
    }
}
