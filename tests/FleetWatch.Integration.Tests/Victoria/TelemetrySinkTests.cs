using System.Text.Json;
using FleetWatch.Contracts;
using FleetWatch.Controller.Telemetry;
using FleetWatch.Integration.Tests.Support;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace FleetWatch.Integration.Tests.Victoria;

/// <summary>Integration tier: the InfluxDB.Client sink against a real VictoriaMetrics (InfluxDB v2 write API).</summary>
public sealed class TelemetrySinkTests
{
    [Fact]
    public async Task Every_sample_written_through_the_sink_is_readable_back()
    {
        const int nodes = 50, ticks = 6, gpus = 8;
        var run = $"t{Guid.NewGuid():N}"[..10];
        var options = Options.Create(new TelemetrySinkOptions { Enabled = true, Url = Services.VictoriaMetricsUrl, BatchPoints = 500, FlushInterval = TimeSpan.FromMilliseconds(200) });
        var sink = new InfluxTelemetrySink(options, TimeProvider.System, NullLogger<InfluxTelemetrySink>.Instance);
        await ((IHostedService)sink).StartAsync(CancellationToken.None);
        // Current timestamps: VictoriaMetrics drops points older than its retention.
        var t0 = DateTimeOffset.UtcNow.AddMinutes(-5);
        for (var tick = 0; tick < ticks; tick++)
        {
            for (var n = 0; n < nodes; n++)
            {
                sink.Enqueue(new NodeSample
                {
                    Node = $"{run}-n{n:D3}",
                    Sequence = tick,
                    Time = t0.AddSeconds(tick),
                    Gpus = Enumerable.Range(0, gpus).Select(g => new GpuSample { Index = g, Uuid = $"GPU-{run}-{n}-{g}", TemperatureC = 40 + tick, PowerW = 500.5 }).ToList(),
                });
            }
        }

        await Wait.UntilAsync(() => sink.PointsWritten == nodes * ticks * gpus, TimeSpan.FromSeconds(60), "all points written",
            () => $"written {sink.PointsWritten}, failed batches {sink.FailedBatches}, dropped {sink.Dropped}");
        await ((IHostedService)sink).StopAsync(CancellationToken.None);
        Assert.Equal(0, sink.Dropped);
        Assert.Equal(0, sink.FailedBatches);

        using var http = new HttpClient { BaseAddress = new Uri(Services.VictoriaMetricsUrl) };
        (await http.PostAsync("/internal/force_flush", null)).EnsureSuccessStatusCode();
        var match = Uri.EscapeDataString($"{{__name__=\"gpu_temp\",node=~\"{run}-.*\"}}");
        var values = 0;
        var series = 0;
        await Wait.UntilAsync(() =>
        {
            var body = http.GetStringAsync($"/api/v1/export?match[]={match}").Result;
            var lines = body.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            series = lines.Length;
            values = lines.Sum(l => JsonDocument.Parse(l).RootElement.GetProperty("values").GetArrayLength());
            return values == nodes * ticks * gpus;
        }, TimeSpan.FromSeconds(30), "every point readable from /api/v1/export", () => $"{series} series, {values} values");

        Assert.Equal(nodes * gpus, series);
    }
}
