using System.ComponentModel.DataAnnotations;
using FleetWatch.Common;

namespace FleetWatch.Controller.Storage;

/// <summary>Where the controller keeps what must survive a restart (section <c>FleetWatch:Storage</c>).</summary>
public sealed class StorageOptions
{
    public const string Section = "FleetWatch:Storage";

    /// <summary>
    /// The SQLite file holding incidents, the notification outbox and log, silences, maintenance windows, the job
    /// registry, checkpoints, cordons and the action audit. Relative paths are resolved against the working directory.
    /// <c>:memory:</c> keeps everything in memory (tests and throwaway demos only: a restart then forgets incidents).
    /// </summary>
    [Required]
    public string Path { get; set; } = "data/fleetwatch-controller.db";

    /// <summary>How long a writer waits for the database lock before failing.</summary>
    [TimeSpanRange("00:00:00.100", "00:01:00")]
    public TimeSpan BusyTimeout { get; set; } = TimeSpan.FromSeconds(5);
}
