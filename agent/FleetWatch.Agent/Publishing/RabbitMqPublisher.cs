using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using FleetWatch.Agent.Sources.Steps;
using FleetWatch.Contracts;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;

namespace FleetWatch.Agent.Publishing;

/// <summary>
/// Publishes the node agent's messages straight to RabbitMQ with the official client, in MassTransit's message envelope
/// and publish topology, so the controller's MassTransit consumers receive them exactly as if MassTransit had sent them:
/// one durable fanout exchange per message type named <c>FleetWatch.Contracts:NodeSample</c>, a JSON envelope of content
/// type <c>application/vnd.masstransit+json</c> whose <c>messageType</c> is <c>urn:message:FleetWatch.Contracts:NodeSample</c>
/// (MassTransit documentation, "Message Envelope" and RabbitMQ publish topology).
/// <para>
/// Why not MassTransit in the agent: an agent only publishes three message types, and MassTransit's reflection-built
/// pipelines rule out Native AOT, which is what brings the agent on every GPU node under 60 MB resident (issue 3; README,
/// "Agent footprint"). Every publish waits for the broker's confirm, so a message counts as sent only once RabbitMQ has
/// it; while the connection is down, blocked by a resource alarm or within <see cref="BrokerOptions.ReconnectInterval"/>
/// of a failed attempt, a publish fails at once with <see cref="BrokerUnavailableException"/> and the
/// <see cref="SpoolingPublisher"/> keeps the message on disk. The log gets one line when the broker goes away and one when
/// it is back, not one per attempt.
/// </para>
/// </summary>
public sealed partial class RabbitMqPublisher : ITelemetryPublisher, IStepTimingsPublisher, IAsyncDisposable
{
    /// <summary>MassTransit's JSON envelope content type: the controller's default deserializer.</summary>
    public const string ContentType = "application/vnd.masstransit+json";

    private readonly BrokerOptions _options;
    private readonly AgentMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<RabbitMqPublisher> _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly HashSet<string> _declared = [];
    private readonly string _brokerAddress;
    private readonly string _sourceAddress;
    private IConnection? _connection;
    private IChannel? _channel;
    private long _nextAttemptTicks;
    private volatile string? _blockedReason;
    private bool _away;
    private long _connects;

    public RabbitMqPublisher(IOptions<BrokerOptions> options, AgentMetrics metrics, TimeProvider time, ILogger<RabbitMqPublisher> logger)
    {
        _options = options.Value;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        var vhost = _options.VirtualHost.Trim('/');
        _brokerAddress = $"rabbitmq://{_options.Host}:{_options.Port}/{(vhost.Length == 0 ? "" : vhost + "/")}";
        _sourceAddress = $"{_brokerAddress}{Environment.MachineName}_fleetwatch-agent";
    }

    /// <summary>Connections opened since start (1 when the broker never went away).</summary>
    public long Connects => Interlocked.Read(ref _connects);

    /// <summary>Whether a connection is open and not blocked by the broker now.</summary>
    public bool Connected => _channel is { IsOpen: true } && _blockedReason is null;

    public async Task PublishSampleAsync(NodeSample sample, CancellationToken cancellationToken)
    {
        await PublishAsync(sample, EnvelopeJson.Default.NodeSample, cancellationToken).ConfigureAwait(false);
        _metrics.SamplesPublished.Add(1);
    }

    public async Task PublishXidAsync(GpuXidObserved xid, CancellationToken cancellationToken)
    {
        await PublishAsync(xid, EnvelopeJson.Default.GpuXidObserved, cancellationToken).ConfigureAwait(false);
        _metrics.XidsPublished.Add(1);
    }

    public Task PublishStepsAsync(StepTimingsBatch batch, CancellationToken cancellationToken) =>
        PublishAsync(batch, EnvelopeJson.Default.StepTimingsBatch, cancellationToken);

    /// <summary>The exchange MassTransit publishes a message type to (and its consumers bind): "Namespace:TypeName".</summary>
    public static string ExchangeName(Type type) => $"{type.Namespace}:{type.Name}";

    /// <summary>Serializes <paramref name="message"/> in MassTransit's JSON envelope.</summary>
    public static byte[] Envelope<T>(T message, JsonTypeInfo<T> typeInfo, Guid messageId, DateTimeOffset sentTime, string sourceAddress, string destinationAddress)
    {
        var buffer = new ArrayBufferWriter<byte>(4096);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("messageId", messageId);
            w.WriteString("sourceAddress", sourceAddress);
            w.WriteString("destinationAddress", destinationAddress);
            w.WriteStartArray("messageType");
            w.WriteStringValue($"urn:message:{ExchangeName(typeof(T))}");
            w.WriteEndArray();
            w.WritePropertyName("message");
            JsonSerializer.Serialize(w, message, typeInfo);
            w.WriteString("sentTime", sentTime);
            w.WriteStartObject("headers");
            w.WriteEndObject();
            w.WriteStartObject("host");
            w.WriteString("machineName", Environment.MachineName);
            w.WriteString("processName", "fleetwatch-agent");
            w.WriteNumber("processId", Environment.ProcessId);
            w.WriteString("frameworkVersion", Environment.Version.ToString());
            w.WriteString("operatingSystemVersion", Environment.OSVersion.VersionString);
            w.WriteEndObject();
            w.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private async Task PublishAsync<T>(T message, JsonTypeInfo<T> typeInfo, CancellationToken ct)
    {
        var exchange = ExchangeName(typeof(T));
        var now = _time.GetUtcNow();
        var messageId = Guid.CreateVersion7(now);
        var body = Envelope(message, typeInfo, messageId, now, _sourceAddress, $"{_brokerAddress}{exchange}");
        // One publish at a time (the confirm is awaited). A publish stuck behind a blocked or silent broker must not
        // collect waiters for hours: after ConfirmTimeout the next one gives up and the spool keeps its message.
        if (!await _gate.WaitAsync(_options.ConfirmTimeout, ct).ConfigureAwait(false))
        {
            throw new BrokerUnavailableException($"publish to {exchange}: an earlier publish is still waiting for the broker");
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_options.ConfirmTimeout);
        try
        {
            var channel = await ChannelAsync(ct).ConfigureAwait(false);
            if (_declared.Add(exchange))
            {
                // The controller declares the same exchange when it starts; an agent started first must not lose its
                // publishes to a missing exchange (that closes the channel), so it declares it too, with MassTransit's arguments.
                await channel.ExchangeDeclareAsync(exchange, ExchangeType.Fanout, durable: true, autoDelete: false, cancellationToken: timeout.Token).ConfigureAwait(false);
            }

            var properties = new BasicProperties
            {
                ContentType = ContentType,
                DeliveryMode = DeliveryModes.Persistent,
                MessageId = messageId.ToString(),
            };
            await channel.BasicPublishAsync(exchange, "", mandatory: false, properties, body, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            // No confirm in time. Blocked by a resource alarm (the broker said so): keep the connection, it resumes when
            // the alarm clears. Otherwise the connection is presumed dead and is replaced.
            _declared.Remove(exchange);
            if (_blockedReason is null)
            {
                await DropConnectionAsync($"no confirm within {_options.ConfirmTimeout.TotalSeconds:0.#} s").ConfigureAwait(false);
            }

            throw new BrokerUnavailableException(_blockedReason is { } reason
                ? $"publish to {exchange}: the broker blocks publishing ({reason})"
                : $"publish to {exchange}: no confirm within {_options.ConfirmTimeout.TotalSeconds:0.#} s");
        }
        catch (Exception ex) when (ex is RabbitMQClientException or IOException or System.Net.Sockets.SocketException or InvalidOperationException
            && ex is not BrokerUnavailableException)
        {
            await DropConnectionAsync(ex.Message).ConfigureAwait(false);
            throw new BrokerUnavailableException($"publish to {exchange} failed: {ex.Message}", ex);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>The open channel, connecting first when needed (under <see cref="_gate"/>).</summary>
    private async Task<IChannel> ChannelAsync(CancellationToken ct)
    {
        if (_blockedReason is { } blocked)
        {
            throw new BrokerUnavailableException($"the broker blocks publishing: {blocked}");
        }

        if (_channel is { IsOpen: true } open)
        {
            return open;
        }

        await DropConnectionAsync(null).ConfigureAwait(false);
        var now = _time.GetUtcNow().UtcTicks;
        if (now < Interlocked.Read(ref _nextAttemptTicks))
        {
            throw new BrokerUnavailableException($"broker {_options.Host}:{_options.Port} unreachable; next attempt in {TimeSpan.FromTicks(_nextAttemptTicks - now).TotalMilliseconds:0} ms");
        }

        Interlocked.Exchange(ref _nextAttemptTicks, now + _options.ReconnectInterval.Ticks);
        var factory = new ConnectionFactory
        {
            HostName = _options.Host,
            Port = _options.Port,
            VirtualHost = _options.VirtualHost,
            UserName = _options.Username,
            Password = _options.Password,
            ClientProvidedName = $"fleetwatch-agent {Environment.MachineName}",
            // This class reconnects itself (at most once per ReconnectInterval); the client's own recovery would retry
            // in the background and keep publishes waiting instead of letting the spool take them.
            AutomaticRecoveryEnabled = false,
            TopologyRecoveryEnabled = false,
            RequestedConnectionTimeout = _options.ConnectTimeout,
            SocketReadTimeout = _options.ConnectTimeout,
            SocketWriteTimeout = _options.ConnectTimeout,
            HandshakeContinuationTimeout = _options.ConnectTimeout,
            // A connection that died without a TCP reset (a switch reboot) is noticed within about two heartbeats, not the
            // client's default of two minutes; until then publishes time out into the spool.
            RequestedHeartbeat = TimeSpan.FromSeconds(10),
        };
        IChannel channel;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(_options.ConnectTimeout);
            var connection = await factory.CreateConnectionAsync(timeout.Token).ConfigureAwait(false);
            connection.ConnectionBlockedAsync += OnBlockedAsync;
            connection.ConnectionUnblockedAsync += OnUnblockedAsync;
            _connection = connection;
            channel = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), timeout.Token).ConfigureAwait(false);
            _channel = channel;
        }
        catch (Exception ex) when (ex is RabbitMQClientException or IOException or System.Net.Sockets.SocketException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            await DropConnectionAsync(ex.Message).ConfigureAwait(false);
            throw new BrokerUnavailableException($"broker {_options.Host}:{_options.Port} unreachable: {ex.Message}", ex);
        }

        Interlocked.Increment(ref _connects);
        if (_away)
        {
            _away = false;
            LogBack(_logger, _options.Host, _options.Port);
        }
        else
        {
            LogConnected(_logger, _options.Host, _options.Port, _options.VirtualHost);
        }

        return channel;
    }

    private Task OnBlockedAsync(object sender, ConnectionBlockedEventArgs e)
    {
        _blockedReason = e.Reason;
        LogBlocked(_logger, e.Reason);
        return Task.CompletedTask;
    }

    private Task OnUnblockedAsync(object sender, AsyncEventArgs e)
    {
        _blockedReason = null;
        LogUnblocked(_logger);
        return Task.CompletedTask;
    }

    /// <summary>Closes what is left of a failed connection; logs the outage once (<paramref name="reason"/> not null).</summary>
    private async Task DropConnectionAsync(string? reason)
    {
        if (reason is not null && !_away)
        {
            _away = true;
            LogAway(_logger, _options.Host, _options.Port, reason);
        }

        var channel = _channel;
        var connection = _connection;
        _channel = null;
        _connection = null;
        _blockedReason = null;
        _declared.Clear();
        if (connection is not null)
        {
            connection.ConnectionBlockedAsync -= OnBlockedAsync;
            connection.ConnectionUnblockedAsync -= OnUnblockedAsync;
        }

        // Disposing a dead connection can itself throw or wait on a socket: bounded, and never the caller's problem.
        try
        {
            if (channel is not null)
            {
                await channel.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(1), _time).ConfigureAwait(false);
            }

            if (connection is not null)
            {
                await connection.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(1), _time).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is RabbitMQClientException or IOException or TimeoutException or System.Net.Sockets.SocketException or OperationCanceledException)
        {
            LogDisposeFailed(_logger, ex.Message);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_channel is { IsOpen: true } channel)
            {
                await channel.CloseAsync().WaitAsync(TimeSpan.FromSeconds(2), _time).ConfigureAwait(false);
            }

            _away = true; // a clean shutdown is not an outage to report
            await DropConnectionAsync(null).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RabbitMQClientException or IOException or TimeoutException or OperationCanceledException)
        {
            LogDisposeFailed(_logger, ex.Message);
        }
        finally
        {
            _gate.Release();
        }
    }

    [LoggerMessage(EventId = 150, Level = LogLevel.Information, Message = "Connected to RabbitMQ at {Host}:{Port}, virtual host {VirtualHost}")]
    private static partial void LogConnected(ILogger logger, string host, int port, string virtualHost);

    [LoggerMessage(EventId = 151, Level = LogLevel.Warning, Message = "RabbitMQ at {Host}:{Port} is away ({Reason}); messages go to the spool, reconnecting in the background")]
    private static partial void LogAway(ILogger logger, string host, int port, string reason);

    [LoggerMessage(EventId = 152, Level = LogLevel.Information, Message = "RabbitMQ at {Host}:{Port} is back")]
    private static partial void LogBack(ILogger logger, string host, int port);

    [LoggerMessage(EventId = 153, Level = LogLevel.Warning, Message = "RabbitMQ blocks publishing ({Reason}, a resource alarm); messages go to the spool")]
    private static partial void LogBlocked(ILogger logger, string reason);

    [LoggerMessage(EventId = 154, Level = LogLevel.Information, Message = "RabbitMQ unblocked publishing")]
    private static partial void LogUnblocked(ILogger logger);

    [LoggerMessage(EventId = 155, Level = LogLevel.Debug, Message = "Closing a failed RabbitMQ connection: {Error}")]
    private static partial void LogDisposeFailed(ILogger logger, string error);
}

/// <summary>The broker is away, blocking, or refused a publish: the message was not sent (the spool keeps it).</summary>
public sealed class BrokerUnavailableException(string message, Exception? inner = null) : IOException(message, inner);

/// <summary>
/// The message bodies inside the envelope, as MassTransit's System.Text.Json serializer writes them: camelCase names,
/// nulls left out (the CLI's bus sets <c>WhenWritingNull</c> too). Source-generated, so the agent runs under Native AOT.
/// </summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(NodeSample))]
[JsonSerializable(typeof(GpuXidObserved))]
[JsonSerializable(typeof(StepTimingsBatch))]
internal sealed partial class EnvelopeJson : JsonSerializerContext;
