using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using FleetWatch.Agent;
using FleetWatch.Agent.Publishing;
using FleetWatch.Contracts;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace FleetWatch.Agent.Tests.Publishing;

/// <summary>
/// The node agent's RabbitMQ publisher without a broker: the envelope MassTransit's consumers read, and what happens while
/// the broker is away. Delivery through a real RabbitMQ to real MassTransit consumers is in the integration tests
/// (HardwareAgentTests, SpoolOutageTests, NativeAgentTests).
/// </summary>
public sealed class RabbitMqPublisherTests
{
    [Fact]
    public void Envelope_is_masstransits_with_a_camel_case_body_and_no_nulls()
    {
        var id = Guid.Parse("0190a000-0000-7000-8000-000000000001");
        var sample = new GpuXidObserved { Node = "n1", Time = DateTimeOffset.Parse("2026-11-30T01:02:03Z", System.Globalization.CultureInfo.InvariantCulture), Xid = 79, Source = XidSource.Kmsg };

        var bytes = RabbitMqPublisher.Envelope(sample, EnvelopeJson.Default.GpuXidObserved, id, sample.Time, "rabbitmq://h/src", "rabbitmq://h/FleetWatch.Contracts:GpuXidObserved");

        using var doc = JsonDocument.Parse(bytes);
        var root = doc.RootElement;
        Assert.Equal(id, root.GetProperty("messageId").GetGuid());
        Assert.Equal("urn:message:FleetWatch.Contracts:GpuXidObserved", root.GetProperty("messageType")[0].GetString());
        Assert.Equal("rabbitmq://h/FleetWatch.Contracts:GpuXidObserved", root.GetProperty("destinationAddress").GetString());
        var message = root.GetProperty("message");
        Assert.Equal("n1", message.GetProperty("node").GetString());
        Assert.Equal(79, message.GetProperty("xid").GetInt32());
        Assert.Equal((int)XidSource.Kmsg, message.GetProperty("source").GetInt32());
        Assert.False(message.TryGetProperty("gpuUuid", out _)); // null: left out, reads back as null
        Assert.Equal("FleetWatch.Contracts:NodeSample", RabbitMqPublisher.ExchangeName(typeof(NodeSample)));
    }

    [Fact]
    public async Task Broker_away_fails_fast_reconnects_at_most_once_per_interval_and_logs_the_outage_once()
    {
        // A loopback port taken and released again: nothing listens there, so connections are refused.
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-30T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var logs = new CountingLogger();
        var options = Options.Create(new BrokerOptions { Host = "127.0.0.1", Port = port, ReconnectInterval = TimeSpan.FromSeconds(1), ConnectTimeout = TimeSpan.FromSeconds(2) });
        await using var publisher = new RabbitMqPublisher(options, new AgentMetrics(), time, logs);
        var sample = new NodeSample { Node = "n1", Sequence = 1, Time = time.GetUtcNow(), Gpus = [] };

        var first = await Assert.ThrowsAsync<BrokerUnavailableException>(() => publisher.PublishSampleAsync(sample, CancellationToken.None));
        Assert.Contains("unreachable", first.Message);
        // Within the interval: refused at once, without another connection attempt.
        var second = await Assert.ThrowsAsync<BrokerUnavailableException>(() => publisher.PublishSampleAsync(sample, CancellationToken.None));
        Assert.Contains("next attempt in", second.Message);
        time.Advance(TimeSpan.FromSeconds(1.5));
        var third = await Assert.ThrowsAsync<BrokerUnavailableException>(() => publisher.PublishSampleAsync(sample, CancellationToken.None));
        Assert.DoesNotContain("next attempt in", third.Message); // it tried again

        Assert.Equal(1, logs.Warnings); // one line for the outage, not one per attempt
        Assert.Equal(0, publisher.Connects);
        Assert.False(publisher.Connected);
    }

    private sealed class CountingLogger : ILogger<RabbitMqPublisher>
    {
        public int Warnings { get; private set; }

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => NullLogger.Instance.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel == LogLevel.Warning)
            {
                Warnings++;
            }
        }
    }
}
