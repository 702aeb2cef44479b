using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using FleetWatch.Contracts;
using FleetWatch.Controller.Alerting;

namespace FleetWatch.Controller.Tests.Alerting;

public sealed class AlertingTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 29, 12, 0, 0, TimeSpan.Zero);

    private static IncidentSnapshot Incident(DateTimeOffset? resolved = null) => new()
    {
        Id = "inc-7",
        Node = "gpu0003",
        GpuIndex = 5,
        Severity = Severity.Critical,
        Category = "gpu_fell_off_bus",
        Action = "restart_node",
        OpenedAt = T0,
        ResolvedAt = resolved,
        Findings = [new FindingInfo { Rule = "xid:79", Severity = Severity.Critical, Message = "Xid 79", FirstSeen = T0, LastSeen = T0 }],
    };

    [Fact]
    public void Payload_has_alertmanager_v4_field_names_and_go_zero_endsAt_when_firing()
    {
        var json = JsonSerializer.Serialize(AlertmanagerPayloadBuilder.Build(Incident(), "oncall", "http://fw"));
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;

        foreach (var field in new[] { "version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels", "commonLabels", "commonAnnotations", "externalURL", "alerts" })
        {
            Assert.True(root.TryGetProperty(field, out _), $"missing {field}");
        }

        Assert.Equal("4", root.GetProperty("version").GetString());
        Assert.Equal("firing", root.GetProperty("status").GetString());
        var alert = root.GetProperty("alerts")[0];
        Assert.Equal("0001-01-01T00:00:00Z", alert.GetProperty("endsAt").GetString());
        Assert.Equal("gpu0003", alert.GetProperty("labels").GetProperty("node").GetString());
        Assert.Equal("5", alert.GetProperty("labels").GetProperty("gpu").GetString());
        Assert.Equal("critical", alert.GetProperty("labels").GetProperty("severity").GetString());
        Assert.Equal("FleetWatchGpuFellOffBus", alert.GetProperty("labels").GetProperty("alertname").GetString());
        Assert.Equal(16, alert.GetProperty("fingerprint").GetString()!.Length);
        Assert.Equal("2026-11-29T12:00:00.000Z", alert.GetProperty("startsAt").GetString());
    }

    [Fact]
    public void Resolved_payload_carries_endsAt_and_same_fingerprint()
    {
        var firing = AlertmanagerPayloadBuilder.Build(Incident(), "oncall", "http://fw");
        var resolved = AlertmanagerPayloadBuilder.Build(Incident(T0.AddMinutes(3)), "oncall", "http://fw");

        Assert.Equal("resolved", resolved.Status);
        Assert.Equal("2026-11-29T12:03:00.000Z", resolved.Alerts[0].EndsAt);
        Assert.Equal(firing.Alerts[0].Fingerprint, resolved.Alerts[0].Fingerprint);
        Assert.Equal(firing.GroupKey, resolved.GroupKey);
    }

    [Theory]
    [InlineData(200, DeliveryVerdict.Delivered)]
    [InlineData(204, DeliveryVerdict.Delivered)]
    [InlineData(500, DeliveryVerdict.Retry)]
    [InlineData(503, DeliveryVerdict.Retry)]
    [InlineData(429, DeliveryVerdict.Retry)]
    [InlineData(408, DeliveryVerdict.Retry)]
    [InlineData(400, DeliveryVerdict.GiveUp)]
    [InlineData(404, DeliveryVerdict.GiveUp)]
    [InlineData(null, DeliveryVerdict.Retry)]
    public void Delivery_verdict_by_status(int? status, DeliveryVerdict verdict) =>
        Assert.Equal(verdict, DeliveryRetry.Judge((HttpStatusCode?)status));

    [Fact]
    public void Backoff_is_exponential_capped_and_honours_retry_after()
    {
        var initial = TimeSpan.FromMilliseconds(500);
        var max = TimeSpan.FromSeconds(60);

        Assert.Equal(500, DeliveryRetry.NextDelay(1, null, T0, initial, max, 0.5).TotalMilliseconds, 1);
        Assert.Equal(1000, DeliveryRetry.NextDelay(2, null, T0, initial, max, 0.5).TotalMilliseconds, 1);
        Assert.Equal(4000, DeliveryRetry.NextDelay(4, null, T0, initial, max, 0.5).TotalMilliseconds, 1);
        Assert.Equal(max, DeliveryRetry.NextDelay(30, null, T0, initial, max, 1.0));
        Assert.InRange(DeliveryRetry.NextDelay(3, null, T0, initial, max, 0.0).TotalMilliseconds, 1499, 1501);
        Assert.Equal(TimeSpan.FromSeconds(7), DeliveryRetry.NextDelay(1, new RetryConditionHeaderValue(TimeSpan.FromSeconds(7)), T0, initial, max, 0.5));
        Assert.Equal(TimeSpan.FromSeconds(20), DeliveryRetry.NextDelay(1, new RetryConditionHeaderValue(T0.AddSeconds(20)), T0, initial, max, 0.5));
    }
}
