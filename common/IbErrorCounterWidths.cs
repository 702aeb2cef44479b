// Linked into the agent (sysfs reader) and the controller (replay's simulated fleet): one table of the kernel ABI.
using System.Collections.Frozen;

namespace FleetWatch.Common;

/// <summary>
/// Widths in bits of the InfiniBand PortCounters error counters under ports/N/counters/ (kernel
/// sysfs-class-infiniband ABI): they saturate at all-ones instead of wrapping (research/straggler-restore-anchors.md
/// section 1.3). Data and packet counters are 32 or 64 bits depending on the card and are not listed here.
/// </summary>
internal static class IbErrorCounterWidths
{
    public static readonly FrozenDictionary<string, int> Bits = new Dictionary<string, int>
    {
        ["symbol_error"] = 16,
        ["link_error_recovery"] = 8,
        ["link_downed"] = 8,
        ["port_rcv_errors"] = 16,
        ["port_rcv_remote_physical_errors"] = 16,
        ["port_rcv_switch_relay_errors"] = 16,
        ["port_xmit_discards"] = 16,
        ["port_xmit_constraint_errors"] = 8,
        ["port_rcv_constraint_errors"] = 8,
        ["local_link_integrity_errors"] = 4,
        ["excessive_buffer_overrun_errors"] = 4,
        ["VL15_dropped"] = 16,
        ["port_xmit_wait"] = 32,
    }.ToFrozenDictionary(StringComparer.Ordinal);
}
