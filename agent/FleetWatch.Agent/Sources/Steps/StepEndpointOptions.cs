using System.ComponentModel.DataAnnotations;
using System.Net;
using FleetWatch.Common;

namespace FleetWatch.Agent.Sources.Steps;

/// <summary>Options of the node-local step endpoint (section <c>FleetWatch:Agent:Steps</c>).</summary>
public sealed class StepEndpointOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "FleetWatch:Agent:Steps";

    /// <summary>Default TCP port: next to dcgm-exporter's 9400 and node_exporter's 9100 range, unused by either. [FW]</summary>
    public const int DefaultPort = 9478;

    /// <summary>Whether the endpoint runs at all.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// Address to listen on. Must be a loopback address: the endpoint has no authentication, and anyone who can reach it
    /// can make a rank look slow or a job look hung.
    /// </summary>
    public string ListenAddress { get; set; } = "127.0.0.1";

    /// <summary>TCP port; 0 picks a free one (tests read it from <see cref="StepEndpointServer.BoundAddress"/>).</summary>
    [Range(0, 65_535)]
    public int Port { get; set; } = DefaultPort;

    /// <summary>Largest request body; a larger one is refused with 413 and counted. 1 MiB holds ~4,000 reports.</summary>
    [Range(1_024, 16 * 1024 * 1024)]
    public int MaxBodyBytes { get; set; } = 1024 * 1024;

    /// <summary>Reports in one request (the Python reporter sends up to 64 when it has fallen behind).</summary>
    [Range(1, 100_000)]
    public int MaxReportsPerRequest { get; set; } = 4_096;

    /// <summary>
    /// Reports held in memory between two flushes; when full the oldest is dropped and counted. 8 ranks × 1 step/s need 8
    /// per tick; 16,384 is about half an hour of reports at that rate, or 30 s of 64 ranks at 10 steps/s, so a broker
    /// stall of that length loses nothing while memory stays near 5 MB.
    /// </summary>
    [Range(16, 1_000_000)]
    public int BufferCapacity { get; set; } = 16_384;

    /// <summary>How often buffered reports are sent, one message per node and flush (the agent's sample tick).</summary>
    [TimeSpanRange("00:00:00.050", "00:01:00")]
    public TimeSpan FlushInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Reports in one <c>StepTimingsBatch</c> message; a flush with more sends several.</summary>
    [Range(1, 100_000)]
    public int MaxBatchSize { get; set; } = 2_048;

    /// <summary>A publish that takes longer is abandoned (the batch is counted as failed), so a blocked broker never stalls the loop.</summary>
    [TimeSpanRange("00:00:00.100", "00:05:00")]
    public TimeSpan PublishTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Node name put on every report; defaults to <c>FleetWatch:Agent:NodeName</c>, then the host name.</summary>
    public string? NodeName { get; set; }

    /// <summary>Cross-field rules: the address must parse and be loopback.</summary>
    internal static IEnumerable<(string Key, object? Value, string Error)> Validate(StepEndpointOptions o)
    {
        if (!IPAddress.TryParse(o.ListenAddress, out var address))
        {
            yield return ($"{Section}:{nameof(ListenAddress)}", o.ListenAddress, "must be an IP address");
        }
        else if (!IPAddress.IsLoopback(address))
        {
            yield return ($"{Section}:{nameof(ListenAddress)}", o.ListenAddress, "must be a loopback address (the endpoint is unauthenticated)");
        }
    }
}
