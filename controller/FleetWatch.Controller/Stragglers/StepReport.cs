namespace FleetWatch.Controller.Stragglers;

/// <summary>
/// One rank's report that it completed a training step: the detector's input, a value type so that feeding
/// ten thousand of them per step allocates nothing. Times are milliseconds on the job's clock (the data carries
/// the time; the detector reads no clock).
/// </summary>
/// <param name="Job">Training job.</param>
/// <param name="Rank">Global rank, 0-based.</param>
/// <param name="Node">Node the rank runs on.</param>
/// <param name="Gpu">GPU index on the node.</param>
/// <param name="PeerGroup">Ranks doing the same work (pipeline stage, role); ranks are compared only within it.</param>
/// <param name="Step">Step number; going back to an earlier step later in time is a restart.</param>
/// <param name="EndMs">When the step ended.</param>
/// <param name="DurationMs">The rank's own time for the step.</param>
public readonly record struct StepReport(
    string Job, int Rank, string Node, int Gpu, string PeerGroup, long Step, long EndMs, double DurationMs);
