using Microsoft.Extensions.Logging;

namespace FleetWatch.Dashboard;

/// <summary>Generated log messages of the HTTP side (stable event ids 2100+).</summary>
internal static partial class DashboardLog
{
    [LoggerMessage(EventId = 2100, Level = LogLevel.Warning,
        Message = "FleetWatch:Dashboard:Auth:Mode = Unsecured: the dashboard and its API are open to anyone who can reach them, fault injection included")]
    public static partial void Unsecured(ILogger logger);

    [LoggerMessage(EventId = 2101, Level = LogLevel.Information, Message = "Dashboard auth mode {Mode}")]
    public static partial void AuthMode(ILogger logger, DashboardAuthMode mode);

    [LoggerMessage(EventId = 2110, Level = LogLevel.Information,
        Message = "Operator {User} (via {Via}, from {Remote}) injected fault {Kind} on node {Node} gpu {Gpu} xid {Xid} for {For}")]
    public static partial void FaultInjected(
        ILogger logger, string user, string via, string? remote, string kind, string node, int? gpu, int? xid, TimeSpan? @for);

    [LoggerMessage(EventId = 2111, Level = LogLevel.Information,
        Message = "Operator {User} (via {Via}, from {Remote}) sent a rejected fault request: {Field}: {Reason}")]
    public static partial void FaultRejected(ILogger logger, string user, string via, string? remote, string field, string reason);
}
