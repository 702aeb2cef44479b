using Microsoft.Extensions.Logging;

namespace FleetWatch.Controller.Remediation.Scheduling;

/// <summary>Builds an adapter's <see cref="SchedulerResult"/>s and logs each one, so every scheduler action leaves the same trace.</summary>
internal sealed partial class SchedulerOutcomes(ILogger logger, string scheduler)
{
    /// <summary>The action happened, or its effect was already in place.</summary>
    public SchedulerResult Done(string action, string target, string detail)
    {
        LogAction(logger, scheduler, action, target, detail);
        return new SchedulerResult(true, detail);
    }

    /// <summary>The scheduler refused or could not be asked.</summary>
    public SchedulerResult Failed(string action, string target, string detail)
    {
        LogFailure(logger, scheduler, action, target, detail);
        return new SchedulerResult(false, detail);
    }

    /// <summary>FleetWatch itself declined: an invalid argument, or a change that is not FleetWatch's to make.</summary>
    public SchedulerResult Refused(string action, string target, string detail)
    {
        LogRefusal(logger, scheduler, action, target, detail);
        return new SchedulerResult(false, $"refused: {detail}");
    }

    [LoggerMessage(EventId = 7201, Level = LogLevel.Information, Message = "{Scheduler} {Action} {Target}: {Detail}")]
    private static partial void LogAction(ILogger logger, string scheduler, string action, string target, string detail);

    [LoggerMessage(EventId = 7202, Level = LogLevel.Warning, Message = "{Scheduler} {Action} {Target} failed: {Detail}")]
    private static partial void LogFailure(ILogger logger, string scheduler, string action, string target, string detail);

    [LoggerMessage(EventId = 7203, Level = LogLevel.Warning, Message = "{Scheduler} {Action} {Target} refused: {Detail}")]
    private static partial void LogRefusal(ILogger logger, string scheduler, string action, string target, string detail);
}
