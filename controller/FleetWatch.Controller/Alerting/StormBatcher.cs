namespace FleetWatch.Controller.Alerting;

/// <summary>
/// Storm batching of one chat receiver: notifications about at least <see cref="Threshold"/> incidents queued within
/// <see cref="Window"/> of the oldest pending one go out as one summary.
/// </summary>
public sealed record StormPolicy(int Threshold, TimeSpan Window)
{
    /// <summary>
    /// Five incidents in ten seconds: more than a person reads as separate pages, and at Slack's budget of one
    /// message per second (research/dashboard-alerting-anchors.md section 2.2) five messages already queue for five
    /// seconds. alertmanager#2769 reports Slack failing on "20+ alerts at once".
    /// </summary>
    public const int DefaultThreshold = 5;

    public const int MinThreshold = 2;

    public const int MaxThreshold = 10_000;

    /// <summary>
    /// A rack losing power is seen node by node as the silence timeouts expire: the incidents open within a few seconds
    /// of each other (the incident manager's group wait has already folded each node's GPUs). Ten seconds holds the
    /// whole rack; a lone chat message waits that long, a third of Alertmanager's default group_wait of 30 s (section 2.1).
    /// </summary>
    public static readonly TimeSpan DefaultWindow = TimeSpan.FromSeconds(10);

    public static readonly TimeSpan MinWindow = TimeSpan.FromSeconds(1);

    public static readonly TimeSpan MaxWindow = TimeSpan.FromMinutes(5);
}

/// <summary>What a chat receiver's sender does next with its oldest pending row.</summary>
public abstract record StormDecision
{
    private StormDecision()
    {
    }

    /// <summary>Hold: a storm may still be forming (or is, and is collected until its window closes).</summary>
    public sealed record Wait(DateTimeOffset Until) : StormDecision;

    /// <summary>Send the oldest row on its own.</summary>
    public sealed record Single(OutboxRow Row) : StormDecision;

    /// <summary>Send one summary for all these rows (oldest first) and settle them together.</summary>
    public sealed record Summary(IReadOnlyList<OutboxRow> Rows) : StormDecision;
}

/// <summary>
/// The storm decision as a pure function of the pending rows and the time. The batch is never stored: it is always
/// "the pending rows queued within the window of the oldest pending row", which the persistent outbox alone
/// determines. So a restart, or a retry of a failed summary, rebuilds the same batch, every row stays exactly once in
/// the outbox, and the rows move to delivered (or given up) together in one transaction.
/// </summary>
public static class StormBatcher
{
    /// <summary>
    /// <paramref name="window"/>: the receiver's pending rows queued no later than <paramref name="head"/>'s queue time
    /// plus the window, oldest first, <paramref name="head"/> among them. A row already tried once (a failed single or
    /// summary) is not held again: it is retried with the same rows.
    /// </summary>
    public static StormDecision Plan(OutboxRow head, IReadOnlyList<OutboxRow> window, DateTimeOffset now, StormPolicy policy)
    {
        if (HoldUntil(head, now, policy) is { } until)
        {
            return new StormDecision.Wait(until);
        }

        var incidents = window.Select(r => r.Notice.Incident.Id).Distinct(StringComparer.Ordinal).Count();
        return incidents >= policy.Threshold ? new StormDecision.Summary(window) : new StormDecision.Single(head);
    }

    /// <summary>
    /// When the oldest row is still inside its window (and never tried), the end of the window; else null. Even past
    /// the threshold: the rest of the storm is still coming, and it should be the same one message. The sender asks
    /// this before reading the window's rows, so the enqueues of a big storm (each wakes it) cost no reads.
    /// </summary>
    public static DateTimeOffset? HoldUntil(OutboxRow head, DateTimeOffset now, StormPolicy policy)
    {
        var windowEnd = head.CreatedAt + policy.Window;
        return head.Attempts == 0 && now < windowEnd ? windowEnd : null;
    }
}
