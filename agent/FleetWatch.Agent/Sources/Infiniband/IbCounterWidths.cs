namespace FleetWatch.Agent.Sources.Infiniband;

/// <summary>
/// Bit widths of the sysfs InfiniBand counters, from <c>PORT_PMA_ATTR(name, counter, width, offset)</c> in the
/// kernel's <c>drivers/infiniband/core/sysfs.c</c> (research/straggler-restore-anchors.md section 1.3). The IBA
/// PortCounters saturate (peg at all ones) rather than wrap, so a value at its width's maximum means "this many
/// or more": the counter needs a reset (<c>perfquery -R</c>) before it counts again.
/// </summary>
public static class IbCounterWidths
{
    /// <summary><c>port_xmit_data</c> / <c>port_rcv_data</c> count octets divided by 4 (kernel ABI; prometheus/procfs multiplies by 4).</summary>
    public const int DataWordBytes = 4;

    // Data and packet counters come from PortCountersExtended (64-bit) when the HCA's PMA advertises it,
    // otherwise from PortCounters (32-bit): old cards.
    private static readonly HashSet<string> DataOrPackets = new(StringComparer.Ordinal)
    {
        "port_xmit_data", "port_rcv_data", "port_xmit_packets", "port_rcv_packets",
    };

    /// <summary>True for the counters whose width depends on the extended table (data and packet counts).</summary>
    public static bool IsDataOrPackets(string name) => DataOrPackets.Contains(name);

    /// <summary>True for <c>port_xmit_data</c> and <c>port_rcv_data</c>, whose unit is a 4-byte word.</summary>
    public static bool IsDataWords(string name) => name is "port_xmit_data" or "port_rcv_data";

    /// <summary>
    /// Width of a <c>counters/</c> file. <paramref name="extended"/>: the port uses PortCountersExtended for data
    /// and packets. Unknown names (and every <c>hw_counters/</c> file, printed from a u64) are 64-bit.
    /// </summary>
    public static int ForCounter(string name, bool extended) =>
        FleetWatch.Common.IbErrorCounterWidths.Bits.TryGetValue(name, out var width) ? width : DataOrPackets.Contains(name) && !extended ? 32 : 64;

    /// <summary>The value a counter of <paramref name="widthBits"/> bits pegs at, as a <see cref="ulong"/>.</summary>
    public static ulong MaxValue(int widthBits)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(widthBits, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(widthBits, 64);
        return widthBits == 64 ? ulong.MaxValue : (1UL << widthBits) - 1;
    }

    /// <summary>Bytes for a data counter in 4-byte words, saturating at <see cref="long.MaxValue"/>.</summary>
    public static long DataWordsToBytes(long words) => words > long.MaxValue / DataWordBytes ? long.MaxValue : words * DataWordBytes;
}
