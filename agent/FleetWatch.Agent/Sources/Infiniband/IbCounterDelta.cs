namespace FleetWatch.Agent.Sources.Infiniband;

/// <summary>How a counter delta was obtained.</summary>
public enum IbCounterDeltaStatus
{
    /// <summary>current − previous.</summary>
    Ok,

    /// <summary>No previous value: the delta is unknown (first sample, or the counter just appeared).</summary>
    NoBaseline,

    /// <summary>
    /// The counter went down: it was reset (<c>perfquery -R</c>, driver reload, HCA reset). The delta counts from
    /// zero, i.e. it is the current value: the events since the reset, a lower bound of the events in the interval.
    /// </summary>
    Reset,

    /// <summary>The counter sits at its width's maximum: the true delta is unknown (<see cref="IbCounterDeltaResult.Delta"/> is null); <see cref="IbCounterDeltaResult.AtLeast"/> is a lower bound.</summary>
    Saturated,
}

/// <summary>One counter delta.</summary>
/// <param name="Status">How it was obtained.</param>
/// <param name="Delta">The delta, never negative; null when unknown (<see cref="IbCounterDeltaStatus.NoBaseline"/>, <see cref="IbCounterDeltaStatus.Saturated"/>).</param>
/// <param name="AtLeast">A lower bound of the true delta, never negative (equals <paramref name="Delta"/> when that is known, 0 without a baseline).</param>
public readonly record struct IbCounterDeltaResult(IbCounterDeltaStatus Status, long? Delta, long AtLeast);

/// <summary>
/// Turns two cumulative readings of one IB counter into a delta with reset and saturation handled explicitly
/// (STYLE.md rule 10). Pure: no state, no I/O. Counters saturate rather than wrap (IBA PortCounters;
/// research/straggler-restore-anchors.md section 1.3), so a drop is always a reset, never a wrap.
/// </summary>
public static class IbCounterDelta
{
    /// <summary>Delta from <paramref name="previous"/> to <paramref name="current"/> for a counter of <paramref name="widthBits"/> bits (see <see cref="IbCounterWidths"/>).</summary>
    public static IbCounterDeltaResult Compute(long? previous, long current, int widthBits)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(current);
        var max = (long)Math.Min(IbCounterWidths.MaxValue(widthBits), long.MaxValue);
        if (previous is not { } prev || prev < 0)
        {
            return current == max
                ? new IbCounterDeltaResult(IbCounterDeltaStatus.Saturated, null, 0)
                : new IbCounterDeltaResult(IbCounterDeltaStatus.NoBaseline, null, 0);
        }

        if (current < prev)
        {
            return new IbCounterDeltaResult(IbCounterDeltaStatus.Reset, current, current);
        }

        // Saturation is "exactly all ones": a value above the maximum means the width was guessed too small
        // (a 64-bit data counter taken for a 32-bit one), and such a counter is simply counting.
        var delta = current - prev;
        return current == max
            ? new IbCounterDeltaResult(IbCounterDeltaStatus.Saturated, null, delta)
            : new IbCounterDeltaResult(IbCounterDeltaStatus.Ok, delta, delta);
    }
}
