using System.Net.Mime;
using System.Text.Json;
using System.Text.Json.Serialization;
using FleetWatch.Contracts;
using MassTransit;
using MassTransit.Metadata;
using MassTransit.Serialization;

namespace FleetWatch.Controller.Ingest;

/// <summary>
/// MassTransit's JSON envelope of a <see cref="NodeSample"/>, read in one pass. MassTransit's own deserializer first
/// parses the envelope's <c>message</c> into a JsonDocument and then reads the NodeSample out of it; at 10,000 GPUs that
/// DOM build is most of the controller's deserialization cost, which a thread-time trace put at about 40 % of its busy
/// time (README, "Where the controller's time goes"). Here the message is read straight into the NodeSample with the
/// same serializer options, and handed to MassTransit's own serializer context, which returns it to the consumer as is.
/// Anything else (another message type, JSON the typed read refuses) goes to MassTransit's deserializer unchanged, so a
/// malformed message faults and lands in the error queue exactly as before.
/// </summary>
public sealed class NodeSampleEnvelopeDeserializer : IMessageDeserializer
{
    private static readonly string SampleUrn = MessageUrn.ForTypeString<NodeSample>();
    private readonly SystemTextJsonMessageSerializer _standard = SystemTextJsonMessageSerializer.Instance;

    public ContentType ContentType => SystemTextJsonMessageSerializer.JsonContentType;

    /// <summary>Messages read in one pass (the rest went to MassTransit's deserializer).</summary>
    public long FastPath => Interlocked.Read(ref _fastPath);

    private long _fastPath;

    public void Probe(ProbeContext context) => _standard.Probe(context);

    public ConsumeContext Deserialize(ReceiveContext receiveContext)
    {
        ArgumentNullException.ThrowIfNull(receiveContext);
        return new BodyConsumeContext(receiveContext, Deserialize(receiveContext.Body, receiveContext.TransportHeaders, receiveContext.InputAddress));
    }

    public SerializerContext Deserialize(MessageBody body, Headers headers, Uri? destinationAddress = null)
    {
        ArgumentNullException.ThrowIfNull(body);
        SampleEnvelope? envelope;
        try
        {
            envelope = JsonSerializer.Deserialize<SampleEnvelope>(body.GetBytes(), SystemTextJsonMessageSerializer.Options);
        }
        catch (JsonException)
        {
            envelope = null;
        }

        if (envelope is not { Sample: not null, MessageType: { } types } || Array.IndexOf(types, SampleUrn) < 0)
        {
            return _standard.Deserialize(body, headers, destinationAddress);
        }

        Interlocked.Increment(ref _fastPath);
        return new SystemTextJsonSerializerContext(_standard, SystemTextJsonMessageSerializer.Options, ContentType, new EnvelopeMessageContext(envelope, _standard), types,
            envelope, envelope.Sample);
    }

    public MessageBody GetMessageBody(string text) => _standard.GetMessageBody(text);

    /// <summary>The envelope with its message typed (MassTransit's own envelope types it <c>object</c>, read as a JsonElement).</summary>
    private sealed class SampleEnvelope : MessageEnvelope
    {
        public string? MessageId { get; set; }
        public string? RequestId { get; set; }
        public string? CorrelationId { get; set; }
        public string? ConversationId { get; set; }
        public string? InitiatorId { get; set; }
        public string? SourceAddress { get; set; }
        public string? DestinationAddress { get; set; }
        public string? ResponseAddress { get; set; }
        public string? FaultAddress { get; set; }
        public string[]? MessageType { get; set; }

        [JsonPropertyName("message")]
        public NodeSample? Sample { get; set; }

        public DateTime? ExpirationTime { get; set; }
        public DateTime? SentTime { get; set; }
        public Dictionary<string, object?>? Headers { get; set; }
        public BusHostInfo? Host { get; set; }

        object? MessageEnvelope.Message => Sample;

        HostInfo? MessageEnvelope.Host => Host;
    }
}

/// <summary>Registers <see cref="NodeSampleEnvelopeDeserializer"/> for MassTransit's JSON content type on one receive endpoint.</summary>
public sealed class NodeSampleEnvelopeDeserializerFactory(NodeSampleEnvelopeDeserializer deserializer) : ISerializerFactory
{
    public ContentType ContentType => deserializer.ContentType;

    public IMessageSerializer CreateSerializer() => SystemTextJsonMessageSerializer.Instance;

    public IMessageDeserializer CreateDeserializer() => deserializer;
}
