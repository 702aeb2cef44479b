using System.Runtime.Serialization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using FleetWatch.Agent.Publishing;
using FleetWatch.Contracts;
using FleetWatch.Controller.Ingest;
using FleetWatch.Controller.Tests.Detection;
using MassTransit;
using MassTransit.Serialization;

namespace FleetWatch.Controller.Tests.Ingest;

/// <summary>
/// The one-pass reader of NodeSample envelopes gives the consumer what MassTransit's own deserializer gives, for the
/// envelopes the agents write, and leaves everything else to MassTransit's deserializer.
/// </summary>
public sealed class NodeSampleEnvelopeDeserializerTests
{
    private static readonly JsonSerializerOptions Wire = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        TypeInfoResolver = new DefaultJsonTypeInfoResolver(),
    };

    private static readonly Guid MessageId = Guid.Parse("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");

    /// <summary>A sample with every part filled: 8 busy GPUs, NVLinks, IB ports, a boot id.</summary>
    private static NodeSample Rich() => CatalogueRuleTests.Node8() with
    {
        Node = "gpu0042", Sequence = 77, AgentRun = "run-9", BootId = "6f1c9a52-3a4e-4d7b-9a51-0b6c2f0d1e11", Rack = "rack-3",
        NvLinks = [.. Enumerable.Range(0, 18).Select(l => new NvLinkSample { GpuIndex = 2, Link = l, Up = l != 5, ReplayErrors = l, RecoveryErrors = 0, CrcFlitErrors = 3 })],
        IbPorts = [new IbPortSample { Device = "mlx5_0", Port = 1, State = "ACTIVE", PhysState = "LinkUp", RateGbps = 400, Counters = new Dictionary<string, long> { ["symbol_error"] = 4, ["port_rcv_data"] = 123_456_789_012 }, SaturatedCounters = ["link_downed"] }],
    };

    private static byte[] Envelope<T>(T message) =>
        RabbitMqPublisher.Envelope(message, (JsonTypeInfo<T>)Wire.GetTypeInfo(typeof(T)), MessageId, new DateTimeOffset(2026, 11, 30, 5, 0, 0, TimeSpan.Zero),
            "rabbitmq://broker/fleetwatch/gpu0042_agent", "rabbitmq://broker/fleetwatch/FleetWatch.Contracts:NodeSample");

    private static string Json<T>(T value) => JsonSerializer.Serialize(value, Wire);

    [Fact]
    public void An_agents_sample_is_read_in_one_pass_into_what_masstransit_would_have_given()
    {
        var body = new BytesMessageBody(Envelope(Rich()));
        var reader = new NodeSampleEnvelopeDeserializer();

        var fast = reader.Deserialize(body, EmptyHeaders.Instance);
        var standard = SystemTextJsonMessageSerializer.Instance.Deserialize(body, EmptyHeaders.Instance);

        Assert.Equal(1, reader.FastPath);
        Assert.True(fast.TryGetMessage<NodeSample>(out var mine));
        Assert.True(standard.TryGetMessage<NodeSample>(out var theirs));
        Assert.Equal(Json(theirs), Json(mine));
        Assert.Equal(Json(Rich()), Json(mine));
        Assert.Equal((standard.MessageId, standard.SentTime, standard.SourceAddress, standard.DestinationAddress),
            (fast.MessageId, fast.SentTime, fast.SourceAddress, fast.DestinationAddress));
        Assert.Equal(MessageId, fast.MessageId);
        Assert.Equal(standard.SupportedMessageTypes, fast.SupportedMessageTypes);
        Assert.True(fast.IsSupportedMessageType<NodeSample>());
        Assert.Equal(standard.Host?.MachineName, fast.Host?.MachineName);
    }

    [Fact]
    public void Another_message_type_goes_through_masstransits_deserializer()
    {
        var xid = new GpuXidObserved { Node = "gpu0042", GpuIndex = 2, Xid = 79, Time = SampleBuilder.T0, Message = "GPU has fallen off the bus" };
        var reader = new NodeSampleEnvelopeDeserializer();

        var context = reader.Deserialize(new BytesMessageBody(Envelope(xid)), EmptyHeaders.Instance);

        Assert.Equal(0, reader.FastPath);
        Assert.False(context.IsSupportedMessageType<NodeSample>());
        Assert.True(context.TryGetMessage<GpuXidObserved>(out var read));
        Assert.Equal((79, 2), (read!.Xid, read.GpuIndex));
    }

    [Fact]
    public void A_sample_the_typed_read_refuses_faults_as_it_did_before()
    {
        // Valid JSON in a NodeSample envelope, but "gpus" is not a list: MassTransit's deserializer takes it, and asking
        // for the NodeSample fails the same way as before, so the consumer faults and the message lands in the error queue.
        var text = Encoding.UTF8.GetString(Envelope(Rich()));
        var broken = text.Replace("\"gpus\":[", "\"gpus\":\"not a list\",\"x\":[", StringComparison.Ordinal);
        Assert.NotEqual(text, broken);
        var body = new BytesMessageBody(Encoding.UTF8.GetBytes(broken));
        var reader = new NodeSampleEnvelopeDeserializer();

        var context = reader.Deserialize(body, EmptyHeaders.Instance);

        Assert.Equal(0, reader.FastPath);
        var mine = Assert.ThrowsAny<Exception>(() => context.TryGetMessage<NodeSample>(out _));
        var theirs = Assert.ThrowsAny<Exception>(() => SystemTextJsonMessageSerializer.Instance.Deserialize(body, EmptyHeaders.Instance).TryGetMessage<NodeSample>(out _));
        Assert.Equal(theirs.GetType(), mine.GetType());
    }

    [Theory]
    [InlineData("{ this is not json")]
    [InlineData("")]
    [InlineData("[1,2,3]")]
    public void Garbage_is_refused_by_masstransits_deserializer_with_its_own_error(string garbage)
    {
        var body = new BytesMessageBody(Encoding.UTF8.GetBytes(garbage));
        var reader = new NodeSampleEnvelopeDeserializer();

        Assert.Throws<SerializationException>(() => reader.Deserialize(body, EmptyHeaders.Instance));
        Assert.Throws<SerializationException>(() => SystemTextJsonMessageSerializer.Instance.Deserialize(body, EmptyHeaders.Instance));
        Assert.Equal(0, reader.FastPath);
    }
}
