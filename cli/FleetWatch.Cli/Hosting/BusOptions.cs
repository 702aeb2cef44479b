using System.ComponentModel.DataAnnotations;

namespace FleetWatch.Cli.Hosting;

/// <summary>Message transport (section <c>FleetWatch:Bus</c>). All-in-one uses the in-memory transport; distributed mode RabbitMQ.</summary>
public sealed class BusOptions
{
    public const string Section = "FleetWatch:Bus";

    public BusTransport Transport { get; set; } = BusTransport.InMemory;

    public RabbitMqOptions RabbitMq { get; set; } = new();
}

public enum BusTransport
{
    InMemory,
    RabbitMq,
}

/// <summary>RabbitMQ connection (the keys the node agent reads too) and the consumer settings. The password is never logged.</summary>
public sealed class RabbitMqOptions : FleetWatch.Agent.Publishing.BrokerOptions
{
    /// <summary>Unacknowledged messages per consumer (default endpoints use 16; 256 is ~25 % faster here, deps-and-limits.md section 2).</summary>
    [Range(1, 65535)]
    public int PrefetchCount { get; set; } = 256;

    [Range(1, 4096)]
    public int ConcurrentMessageLimit { get; set; } = 64;
}
