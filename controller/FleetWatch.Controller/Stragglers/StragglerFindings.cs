namespace FleetWatch.Controller.Stragglers;

/// <summary>
/// What the straggler and hang detector reports. Conditions come in raise/clear pairs (Alertmanager's model):
/// <see cref="StragglerFlagged"/> / <see cref="StragglerCleared"/> and <see cref="HangDetected"/> / <see cref="HangCleared"/>.
/// </summary>
/// <param name="Job">The training job.</param>
/// <param name="AtMs">When the detector decided, on the job's clock.</param>
public abstract record StragglerFinding(string Job, long AtMs);

/// <summary>
/// A rank is persistently slower than its peer group (or than its own peer-normalised history).
/// </summary>
/// <param name="Job">The training job.</param>
/// <param name="AtMs">End of <paramref name="FirstFlaggedStep"/>: the decision used only reports up to then.</param>
/// <param name="Rank">The rank.</param>
/// <param name="Node">Its node.</param>
/// <param name="Gpu">Its GPU index on the node.</param>
/// <param name="PeerGroup">Its peer group.</param>
/// <param name="FirstFlaggedStep">The step at whose end the rank was flagged.</param>
/// <param name="Score">Peer reference time / the rank's time over the window, in (0, 1]; lower is slower.</param>
/// <param name="IndividualScore">The rank's own baseline / its current peer-normalised time, in (0, 1]; NaN without a baseline.</param>
public sealed record StragglerFlagged(
    string Job, long AtMs, int Rank, string Node, int Gpu, string PeerGroup, long FirstFlaggedStep, double Score, double IndividualScore)
    : StragglerFinding(Job, AtMs);

/// <summary>Why a straggler condition ended.</summary>
public enum StragglerClearReason
{
    /// <summary>The rank kept pace with its peers for the configured number of windows.</summary>
    Recovered,

    /// <summary>The job restarted; every rank's history starts afresh.</summary>
    JobRestarted,
}

/// <summary>A flagged rank is no longer a straggler.</summary>
/// <param name="Job">The training job.</param>
/// <param name="AtMs">When it was cleared.</param>
/// <param name="Rank">The rank.</param>
/// <param name="Step">The step at whose end it was cleared.</param>
/// <param name="Reason">Why.</param>
public sealed record StragglerCleared(string Job, long AtMs, int Rank, long Step, StragglerClearReason Reason)
    : StragglerFinding(Job, AtMs);

/// <summary>No rank of the job completed a step for several median step intervals.</summary>
/// <param name="Job">The training job.</param>
/// <param name="AtMs">When the silence crossed the timeout (detection time).</param>
/// <param name="LastStep">The last step any rank completed.</param>
/// <param name="LastProgressMs">End of the last report from the job.</param>
/// <param name="MedianStepMs">The job's median step interval the timeout was computed from.</param>
/// <param name="SuspectRanks">Ranks that stopped first: their last step is before <paramref name="LastStep"/>.</param>
public sealed record HangDetected(
    string Job, long AtMs, long LastStep, long LastProgressMs, double MedianStepMs, IReadOnlyList<int> SuspectRanks)
    : StragglerFinding(Job, AtMs);

/// <summary>A job reported as hung made progress again (it was a long pause, such as a checkpoint, or it restarted).</summary>
/// <param name="Job">The training job.</param>
/// <param name="AtMs">End of the first report after the silence.</param>
/// <param name="Step">That report's step.</param>
public sealed record HangCleared(string Job, long AtMs, long Step) : StragglerFinding(Job, AtMs);
