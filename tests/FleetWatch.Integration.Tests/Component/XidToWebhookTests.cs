using FleetWatch.Cli.Hosting;
using FleetWatch.Contracts;
using FleetWatch.Controller.Fleet;
using FleetWatch.Integration.Tests.Support;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace FleetWatch.Integration.Tests.Component;

/// <summary>
/// Component tier: the real all-in-one host in process (in-memory bus), simulated GPUs, fake time, and a real
/// loopback webhook receiver.
/// </summary>
public sealed class XidToWebhookTests
{
    [Fact]
    public async Task Xid79_gives_one_critical_incident_one_firing_post_then_one_resolved_post()
    {
        await using var receiver = await LoopbackReceiver.StartAsync();
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero));
        await using var app = FleetWatchHost.Build(Role.AllInOne,
        [
            "--urls", "http://127.0.0.1:0",
            "--FleetWatch:Simulation:Nodes=4",
            "--FleetWatch:Simulation:DemoFaults=false",
            "--FleetWatch:Storage:Path=:memory:", // incidents persist: a file shared between runs would carry them over
            "--FleetWatch:Detection:EventHold=00:00:20",
            "--FleetWatch:Incidents:ResolveHold=00:00:05",
            "--FleetWatch:Alerting:Webhooks:0:Name=oncall",
            $"--FleetWatch:Alerting:Webhooks:0:Url={receiver.Url("/hook")}",
        ], b =>
        {
            b.Services.AddSingleton<TimeProvider>(time);
            b.Logging.SetMinimumLevel(LogLevel.Warning);
        });
        await app.StartAsync();
        var frames = app.Services.GetRequiredService<FleetFrameBuilder>();
        var bus = app.Services.GetRequiredService<IBus>();
        var pipeline = app.Services.GetRequiredService<DetectionPipeline>();

        async Task Advance(int seconds)
        {
            for (var i = 0; i < seconds; i++)
            {
                time.Advance(TimeSpan.FromSeconds(1));
                await Task.Delay(30);
                // The Quartz trigger runs on wall-clock time; under fake time the test drives the same sweep itself.
                await pipeline.SweepAsync(CancellationToken.None);
            }
        }

        await Advance(3);
        await Wait.UntilAsync(() => Snapshot(frames).Counts.Healthy == 32, TimeSpan.FromSeconds(10), "32 healthy GPUs");

        await bus.Publish(new InjectSimulatedFault { Node = "gpu0001", Kind = SimulatedFaultKind.Xid, Gpu = 5, Xid = 79, For = TimeSpan.FromSeconds(30) });
        await Wait.UntilAsync(() => !receiver.Posts.IsEmpty, TimeSpan.FromSeconds(10), "the firing webhook POST");
        await Advance(5);
        var frame = Snapshot(frames);
        var incident = Assert.Single(frame.OpenIncidents);
        Assert.Equal(("gpu0001", 5, Severity.Critical, "gpu_fell_off_bus"), (incident.Node, incident.GpuIndex, incident.Severity, incident.Category));
        Assert.Equal(GpuHealth.Critical, frame.Cells.Single(c => c.Node == "gpu0001" && c.Gpu == 5).Health);
        Assert.Equal(31, frame.Counts.Healthy);

        var firing = Assert.Single(receiver.Posts).Json;
        Assert.Equal("4", firing.GetProperty("version").GetString());
        Assert.Equal("firing", firing.GetProperty("status").GetString());
        Assert.Equal("oncall", firing.GetProperty("receiver").GetString());
        var labels = firing.GetProperty("alerts")[0].GetProperty("labels");
        Assert.Equal(("gpu0001", "5", "critical"), (labels.GetProperty("node").GetString(), labels.GetProperty("gpu").GetString(), labels.GetProperty("severity").GetString()));

        // The fault lasts 30 s, the Xid finding holds 20 s, the incident resolves 5 s after everything clears.
        await Advance(45);
        // Under load the last samples may be consumed after the last advance: keep time moving and sweeping, as the
        // clock and the Quartz trigger would, until the resolve goes out (bounded).
        await Wait.UntilAsync(() =>
        {
            time.Advance(TimeSpan.FromSeconds(1));
            pipeline.SweepAsync(CancellationToken.None).GetAwaiter().GetResult();
            return receiver.Posts.Count >= 2;
        }, TimeSpan.FromSeconds(20), "the resolved webhook POST", () => $"{receiver.Posts.Count} posts");
        await Advance(10);
        await Task.Delay(500);

        Assert.Equal(2, receiver.Posts.Count);
        var resolved = receiver.Posts.Last().Json;
        Assert.Equal("resolved", resolved.GetProperty("status").GetString());
        Assert.Equal(firing.GetProperty("alerts")[0].GetProperty("fingerprint").GetString(), resolved.GetProperty("alerts")[0].GetProperty("fingerprint").GetString());
        var after = Snapshot(frames);
        Assert.Empty(after.OpenIncidents);
        Assert.Equal(32, after.Counts.Healthy);

        // The controller's /metrics shows both notifications delivered to the receiver, in valid exposition format.
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        using var http = new HttpClient();
        var metrics = await http.GetStringAsync(address.TrimEnd('/') + "/metrics");
        Assert.Contains("fleetwatch_alert_outbox_rows{receiver=\"oncall\",state=\"delivered\"} 2\n", metrics, StringComparison.Ordinal);
        Assert.Contains("fleetwatch_alert_outbox_rows{receiver=\"oncall\",state=\"given_up\"} 0\n", metrics, StringComparison.Ordinal);
        Assert.Contains("fleetwatch_incidents_open 0\n", metrics, StringComparison.Ordinal);
        await Promtool.CheckMetricsAsync(metrics);
        await app.StopAsync();
    }

    /// <summary>The full state now (the builder's frames are deltas; its snapshot is the state behind the last one).</summary>
    private static FleetFrame Snapshot(FleetFrameBuilder frames)
    {
        frames.Next();
        return frames.LastSnapshot();
    }
}
