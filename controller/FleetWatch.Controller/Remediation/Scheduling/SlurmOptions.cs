using System.ComponentModel.DataAnnotations;
using FleetWatch.Common;

namespace FleetWatch.Controller.Remediation.Scheduling;

/// <summary>The Slurm scheduler adapter (section <c>FleetWatch:Schedulers:Slurm</c>).</summary>
public sealed class SlurmOptions
{
    public const string Section = "FleetWatch:Schedulers:Slurm";

    /// <summary>Registers the adapter. Off by default: a controller without Slurm has no <c>scontrol</c> to call.</summary>
    public bool Enabled { get; set; }

    /// <summary>The <c>scontrol</c> binary: an absolute path, or a name looked up on PATH.</summary>
    [Required]
    public string ScontrolPath { get; set; } = "scontrol";

    /// <summary>
    /// The Slurm configuration file, passed to <c>scontrol</c> as <c>SLURM_CONF</c>; empty leaves the tool's default
    /// (<c>/etc/slurm/slurm.conf</c>, or a <c>SLURM_CONF</c> already in the controller's environment).
    /// </summary>
    public string? SlurmConf { get; set; }

    /// <summary>Further environment variables for <c>scontrol</c> (for example <c>SLURM_CLUSTERS</c>).</summary>
    public Dictionary<string, string> Environment { get; set; } = [];

    /// <summary>
    /// Time limit of one <c>scontrol</c> call, after which it is killed and the call fails. Slurm's own
    /// <c>MessageTimeout</c> defaults to 10 s (slurm.conf(5)); 30 s leaves room for its retry.
    /// </summary>
    [TimeSpanRange("00:00:01", "00:10:00")]
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a requeue waits for the job to leave COMPLETING and be pending before it sets exclusions and releases
    /// it (a release sent while the job still completes is overwritten by Slurm's requeue hold). Slurm kills the job's
    /// processes with SIGTERM and, <c>KillWait</c> (default 30 s, slurm.conf(5)) later, SIGKILL; 60 s covers that.
    /// </summary>
    [TimeSpanRange("00:00:01", "00:10:00")]
    public TimeSpan RequeueSettleTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Put before every drain reason FleetWatch sets, unless the reason already begins with its word ("fleetwatch"
    /// followed by ':' or a space). It marks FleetWatch's drains: a node drained by someone else (an administrator's
    /// maintenance) keeps its reason, and FleetWatch never resumes it.
    /// </summary>
    [Required]
    [RegularExpression("^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,31}$")]
    public string ReasonPrefix { get; set; } = "fleetwatch: ";

    internal static IEnumerable<(string Key, object? Value, string Error)> Validate(SlurmOptions o)
    {
        if (o.SlurmConf is { Length: > 0 } conf && !Path.IsPathFullyQualified(conf))
        {
            yield return ($"{Section}:{nameof(SlurmConf)}", conf, "must be an absolute path");
        }

        foreach (var key in o.Environment.Keys)
        {
            if (key.Length == 0 || key.Contains('=', StringComparison.Ordinal))
            {
                yield return ($"{Section}:{nameof(Environment)}", key, "is not a valid environment variable name");
            }
        }
    }
}
