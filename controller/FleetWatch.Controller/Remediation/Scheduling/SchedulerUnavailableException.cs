namespace FleetWatch.Controller.Remediation.Scheduling;

/// <summary>
/// The scheduler could not be asked (slurmctld or the API server unreachable, the tool missing or timing out). Thrown
/// by state reads, where an answer of "not drained" would be a lie; actions return a failed <see cref="SchedulerResult"/> instead.
/// </summary>
public sealed class SchedulerUnavailableException : Exception
{
    public SchedulerUnavailableException()
    {
    }

    public SchedulerUnavailableException(string message)
        : base(message)
    {
    }

    public SchedulerUnavailableException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
