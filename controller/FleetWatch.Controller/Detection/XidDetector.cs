using FleetWatch.Contracts;

namespace FleetWatch.Controller.Detection;

/// <summary>Classifies an observed Xid with the catalogue. Pure: no clock, no I/O.</summary>
public static class XidDetector
{
    public static Finding Classify(GpuXidObserved xid, XidCatalog catalog)
    {
        if (xid.Kind == "fallen_off_bus" || xid.Xid is null)
        {
            // The text-only "has fallen off the bus" line is rule 1 without a number.
            var fell = catalog.Lookup(79);
            return new Finding(xid.Node, xid.GpuIndex, "xid:79", FindingKind.Event, true, fell.Severity, fell.Category, fell.Action,
                $"GPU {Where(xid)} has fallen off the bus ({xid.Source})", xid.Time);
        }

        var number = xid.Xid.Value;
        if (xid.Kind == "sxid")
        {
            // NVSwitch SXid: fatal ones take down the whole baseboard (rule 22).
            var fatal = xid.Message.Contains("Fatal", StringComparison.OrdinalIgnoreCase) && !xid.Message.Contains("Non-fatal", StringComparison.OrdinalIgnoreCase);
            return new Finding(xid.Node, null, $"sxid:{number}", FindingKind.Event, true, fatal ? Severity.Critical : Severity.Warning,
                "nvswitch_error", fatal ? "restart_node" : "trend", $"NVSwitch SXid {number}: {xid.Message}", xid.Time);
        }

        var rule = catalog.Lookup(number);
        var known = catalog.Knows(number);
        var message = known
            ? $"Xid {number} ({rule.Description}) on {Where(xid)}: {xid.Message}"
            : $"Xid {number} is not in catalogue {catalog.Version} on {Where(xid)}: {xid.Message}";
        return new Finding(xid.Node, xid.GpuIndex, $"xid:{number}", FindingKind.Event, true, rule.Severity, rule.Category, rule.Action, message.TrimEnd(' ', ':'), xid.Time);
    }

    private static string Where(GpuXidObserved xid) =>
        xid.GpuIndex is { } g ? $"{xid.Node} GPU {g}" : $"{xid.Node} {xid.PciBusId ?? xid.GpuUuid ?? "(unknown GPU)"}";
}
