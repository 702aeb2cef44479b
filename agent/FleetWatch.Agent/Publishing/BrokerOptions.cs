using System.ComponentModel.DataAnnotations;
using FleetWatch.Common;

namespace FleetWatch.Agent.Publishing;

/// <summary>
/// The RabbitMQ broker a node agent publishes to (section <c>FleetWatch:Bus:RabbitMq</c>, the same keys the controller and the
/// <c>fleetwatch</c> CLI read, so one configuration file shape serves every role; the CLI's bus options extend this class
/// with the consumer settings). The password is a secret and never logged.
/// </summary>
public class BrokerOptions
{
    public const string Section = "FleetWatch:Bus:RabbitMq";

    [Required]
    public string Host { get; set; } = "127.0.0.1";

    [Range(1, 65535)]
    public int Port { get; set; } = 5672;

    [Required]
    public string VirtualHost { get; set; } = "/";

    [Required]
    public string Username { get; set; } = "guest";

    public string Password { get; set; } = "guest";

    /// <summary>
    /// Least time between two connection attempts while the broker is away. Publishes in between fail at once (the spool
    /// takes them) instead of each waiting for a TCP connect, and the log gets one line per outage, not one per attempt.
    /// </summary>
    [TimeSpanRange("00:00:00.050", "00:05:00")]
    public TimeSpan ReconnectInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long a publish waits for the broker's confirm (and for an earlier publish still waiting). Past it the message is
    /// spooled; a broker that blocks publishing (memory or disk alarm) keeps the connection, a silent one is reconnected.
    /// </summary>
    [TimeSpanRange("00:00:00.100", "00:05:00")]
    public TimeSpan ConfirmTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>TCP connect and AMQP handshake limit of one attempt.</summary>
    [TimeSpanRange("00:00:00.100", "00:05:00")]
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);
}
