namespace FleetWatch.Integration.Tests.Support;

/// <summary>Where the real services started by scripts/test.sh listen (loopback only).</summary>
public static class Services
{
    public static string RabbitHost => Environment.GetEnvironmentVariable("FLEETWATCH_TEST_RABBITMQ_HOST") ?? "127.0.0.1";

    public static int RabbitPort => int.Parse(Environment.GetEnvironmentVariable("FLEETWATCH_TEST_RABBITMQ_PORT") ?? "5672", System.Globalization.CultureInfo.InvariantCulture);

    public static string VictoriaMetricsUrl => Environment.GetEnvironmentVariable("FLEETWATCH_TEST_VM_URL") ?? "http://127.0.0.1:8428";

    /// <summary>Arguments that put a role on the test RabbitMQ in its own virtual host, so test runs never share queues.</summary>
    public static string[] RabbitArgs(string vhost) =>
    [
        "--FleetWatch:Bus:Transport=RabbitMq",
        $"--FleetWatch:Bus:RabbitMq:Host={RabbitHost}",
        $"--FleetWatch:Bus:RabbitMq:Port={RabbitPort}",
        $"--FleetWatch:Bus:RabbitMq:VirtualHost={vhost}",
    ];
}
