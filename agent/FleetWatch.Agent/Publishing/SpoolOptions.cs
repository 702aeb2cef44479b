using System.ComponentModel.DataAnnotations;
using FleetWatch.Common;

namespace FleetWatch.Agent.Publishing;

/// <summary>On-disk spool used while the broker is away (section <c>FleetWatch:Agent:Spool</c>).</summary>
public sealed class SpoolOptions
{
    public const string Section = "FleetWatch:Agent:Spool";

    /// <summary>Spool while the broker is away (on by default; the all-in-one mode has no broker and turns it off).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Spool folder, one per agent process; must survive an agent restart (a host path under a DaemonSet).</summary>
    [Required]
    public string Path { get; set; } = "/var/lib/fleetwatch/spool";

    /// <summary>
    /// Bound of the spool on disk. At 1 node × 5 KB/s a 256 MiB spool holds about 14 hours of samples; beyond it the
    /// oldest samples are dropped and counted (Xid events only when nothing else is left).
    /// </summary>
    [Range(1L << 20, 1L << 40)]
    public long MaxBytes { get; set; } = 256L << 20;

    /// <summary>A publish that has not completed by then counts as "broker away" (MassTransit blocks instead of failing).</summary>
    [TimeSpanRange("00:00:00.100", "00:05:00")]
    public TimeSpan PublishTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Delay between replay attempts while the broker stays away.</summary>
    [TimeSpanRange("00:00:00.050", "00:05:00")]
    public TimeSpan RetryInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Messages per spool segment file.</summary>
    [Range(1, 1_000_000)]
    public int SegmentMessages { get; set; } = 1000;
}
