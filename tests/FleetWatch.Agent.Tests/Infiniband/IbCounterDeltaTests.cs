using FleetWatch.Agent.Sources.Infiniband;

namespace FleetWatch.Agent.Tests.Infiniband;

public sealed class IbCounterDeltaTests
{
    public static TheoryData<long?, long, int, IbCounterDeltaStatus, long?, long> Cases => new()
    {
        // previous, current, width -> status, delta, at least
        { null, 5, 16, IbCounterDeltaStatus.NoBaseline, null, 0 },
        { 5, 5, 16, IbCounterDeltaStatus.Ok, 0, 0 },
        { 5, 12, 16, IbCounterDeltaStatus.Ok, 7, 7 },
        { 0, 65534, 16, IbCounterDeltaStatus.Ok, 65534, 65534 },
        // Reaches saturation: true delta unknown, at least the distance to the maximum.
        { 65000, 65535, 16, IbCounterDeltaStatus.Saturated, null, 535 },
        // Stays saturated: unknown, at least 0, never negative.
        { 65535, 65535, 16, IbCounterDeltaStatus.Saturated, null, 0 },
        { 250, 255, 8, IbCounterDeltaStatus.Saturated, null, 5 },
        { 3, 15, 4, IbCounterDeltaStatus.Saturated, null, 12 },
        { 3, 14, 4, IbCounterDeltaStatus.Ok, 11, 11 },
        // First reading already saturated.
        { null, 255, 8, IbCounterDeltaStatus.Saturated, null, 0 },
        // Reset (perfquery -R, driver reload): counted from zero, never negative.
        { 100, 4, 16, IbCounterDeltaStatus.Reset, 4, 4 },
        { 65535, 0, 16, IbCounterDeltaStatus.Reset, 0, 0 },
        { 65535, 9, 16, IbCounterDeltaStatus.Reset, 9, 9 },
        // 32-bit data counter of an old card.
        { 4294967000, 4294967295, 32, IbCounterDeltaStatus.Saturated, null, 295 },
        { 4000000000, 4100000000, 32, IbCounterDeltaStatus.Ok, 100000000, 100000000 },
        // 64-bit counters: long.MaxValue stands for a clamped 2^64-1 reading.
        { 1L << 40, (1L << 40) + 123, 64, IbCounterDeltaStatus.Ok, 123, 123 },
        { long.MaxValue - 10, long.MaxValue, 64, IbCounterDeltaStatus.Saturated, null, 10 },
        // A previous value above the width (width guessed too small) still gives a non-negative delta.
        { 70000, 70010, 16, IbCounterDeltaStatus.Ok, 10, 10 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Delta_handles_reset_and_saturation(long? previous, long current, int width, IbCounterDeltaStatus status, long? delta, long atLeast)
    {
        var r = IbCounterDelta.Compute(previous, current, width);
        Assert.Equal(new IbCounterDeltaResult(status, delta, atLeast), r);
        Assert.True(r.AtLeast >= 0);
        Assert.True(r.Delta is null or >= 0);
    }

    [Fact]
    public void Widths_follow_the_kernel_table()
    {
        Assert.Equal(16, IbCounterWidths.ForCounter("symbol_error", extended: true));
        Assert.Equal(8, IbCounterWidths.ForCounter("link_downed", extended: true));
        Assert.Equal(4, IbCounterWidths.ForCounter("excessive_buffer_overrun_errors", extended: false));
        Assert.Equal(32, IbCounterWidths.ForCounter("port_xmit_wait", extended: true));
        Assert.Equal(64, IbCounterWidths.ForCounter("port_xmit_data", extended: true));
        Assert.Equal(32, IbCounterWidths.ForCounter("port_xmit_data", extended: false));
        Assert.Equal(64, IbCounterWidths.ForCounter("unicast_xmit_packets", extended: false));
        Assert.Equal(65535UL, IbCounterWidths.MaxValue(16));
        Assert.Equal(ulong.MaxValue, IbCounterWidths.MaxValue(64));
        Assert.Equal(long.MaxValue, IbCounterWidths.DataWordsToBytes(long.MaxValue / 2));
    }

    [Fact]
    public void Bad_width_or_negative_reading_is_a_programming_error()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => IbCounterDelta.Compute(1, 2, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => IbCounterDelta.Compute(1, 2, 65));
        Assert.Throws<ArgumentOutOfRangeException>(() => IbCounterDelta.Compute(1, -2, 16));
    }
}
