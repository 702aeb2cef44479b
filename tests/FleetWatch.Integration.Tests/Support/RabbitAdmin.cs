using System.Diagnostics;
using RabbitMQ.Client;

namespace FleetWatch.Integration.Tests.Support;

/// <summary>Admin tasks on the real RabbitMQ: a fresh virtual host per test, raw publishes, queue depths.</summary>
public static class RabbitAdmin
{
    public static async Task<string> CreateVirtualHostAsync(string prefix)
    {
        var vhost = $"{prefix}-{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 13, 60)];
        await RunAsync("add_vhost", vhost);
        await RunAsync("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*");
        return vhost;
    }

    public static Task DeleteVirtualHostAsync(string vhost) => RunAsync("delete_vhost", vhost);

    public static async Task<IConnection> ConnectAsync(string vhost) =>
        await new ConnectionFactory { HostName = Services.RabbitHost, Port = Services.RabbitPort, VirtualHost = vhost, UserName = "guest", Password = "guest" }
            .CreateConnectionAsync();

    /// <summary>Messages ready in a queue, or -1 when it does not exist (yet).</summary>
    public static async Task<long> ReadyAsync(IConnection connection, string queue)
    {
        await using var channel = await connection.CreateChannelAsync();
        try
        {
            var ok = await channel.QueueDeclarePassiveAsync(queue);
            return ok.MessageCount;
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
        {
            return -1;
        }
    }

    public static async Task RunAsync(params string[] args)
    {
        var info = new ProcessStartInfo("rabbitmqctl") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var stderr = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"rabbitmqctl {string.Join(' ', args)} failed ({p.ExitCode}): {stderr}");
        }
    }
}
