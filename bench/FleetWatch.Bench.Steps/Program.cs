using System.Diagnostics;
using System.Globalization;
using System.Text;
using FleetWatch.Agent.Sources.Steps;
using FleetWatch.Contracts;
using FleetWatch.Controller;
using FleetWatch.Controller.Stragglers.Live;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Time.Testing;

namespace FleetWatch.Bench.Steps;

/// <summary>
/// Step-timing path benchmark: (1) the agent's step endpoint, requests and reports per second and CPU per report, with 8
/// concurrent "ranks" posting over loopback HTTP (client and server in this one process, so the CPU figure is an upper
/// bound for the agent); (2) the controller's live loop (reorder by end time, detector, findings) per step of a 1,024- and a
/// 10,240-rank job. Run in Release: <c>dotnet run -c Release --project bench/FleetWatch.Bench.Steps</c> (<c>--quick</c>).
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var quick = args.Contains("--quick");
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        Console.WriteLine("# FleetWatch step-timing path benchmark");
        await EndpointAsync(ranks: 8, requestsPerRank: quick ? 1_000 : 5_000);
        await LiveLoopAsync(1_024, quick ? 60 : 200);
        await LiveLoopAsync(10_240, quick ? 40 : 100);
        return 0;
    }

    private sealed class CountingPublisher : IStepTimingsPublisher
    {
        public long Reports;

        public Task PublishStepsAsync(StepTimingsBatch batch, CancellationToken cancellationToken)
        {
            Interlocked.Add(ref Reports, batch.Steps.Count);
            return Task.CompletedTask;
        }
    }

    private static async Task EndpointAsync(int ranks, int requestsPerRank)
    {
        var publisher = new CountingPublisher();
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["FleetWatch:Agent:Steps:Port"] = "0", ["FleetWatch:Agent:Steps:NodeName"] = "bench" });
        builder.Services.AddSingleton<IStepTimingsPublisher>(publisher);
        builder.Services.AddStepEndpoint(builder.Configuration);
        using var host = builder.Build();
        await host.StartAsync();
        var address = host.Services.GetRequiredService<StepEndpointServer>().BoundAddress!;
        using var http = new HttpClient { BaseAddress = address };
        async Task Rank(int rank, int count)
        {
            for (var step = 0; step < count; step++)
            {
                var body = $$$"""{"job":"bench","rank":{{{rank}}},"step":{{{step}}},"duration_ms":1000.5,"gpu":{{{rank}}},"peer_group":"pp0","end_unix_ms":1764417600000,"sections":{"fwd":400.1,"bwd":600.4}}""";
                using var content = new StringContent(body, Encoding.UTF8, "application/json");
                using var response = await http.PostAsync(StepEndpointServer.Path, content);
                response.EnsureSuccessStatusCode();
            }
        }

        await Task.WhenAll(Enumerable.Range(0, ranks).Select(r => Rank(r, 200))); // warm-up
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, ranks).Select(r => Rank(r, requestsPerRank)));
        var wall = clock.Elapsed;
        var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu0;
        await host.Services.GetRequiredService<StepBatchPublisher>().FlushAsync(CancellationToken.None);
        var total = ranks * requestsPerRank;
        Console.WriteLine();
        Console.WriteLine($"## Agent step endpoint ({ranks} concurrent ranks, one report per request, loopback HTTP/1.1)");
        Console.WriteLine($"requests: {total:N0} in {wall.TotalSeconds:0.00} s = {total / wall.TotalSeconds:N0} requests/s");
        Console.WriteLine($"CPU per report (client + server): {cpu.TotalMicroseconds / total:0.0} µs");
        Console.WriteLine($"at 8 ranks x 1 step/s: {8 * cpu.TotalMicroseconds / total / 1e6 * 100:0.000} % of one core");
        Console.WriteLine($"published: {publisher.Reports:N0} reports");
        await host.StopAsync();
    }

    private static async Task LiveLoopAsync(int ranks, int steps)
    {
        var start = new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero);
        var time = new FakeTimeProvider(start);
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddSingleton<TimeProvider>(time);
        builder.Services.AddMetrics();
        builder.Services.AddDetection(builder.Configuration);
        builder.Services.AddAlerting(builder.Configuration);
        builder.Services.AddLiveStragglers(builder.Configuration);
        builder.Services.AddMassTransit(x => x.UsingInMemory());
        using var host = builder.Build();
        await host.StartAsync();
        var live = host.Services.GetRequiredService<LiveStragglerService>();
        var rng = new Random(ranks);
        var batches = Enumerable.Range(0, ranks / 8).Select(n => $"n{n:00000}").ToArray();
        var perStep = new List<double>(steps);
        for (var step = 0; step < steps; step++)
        {
            var end = start.AddSeconds(step + 1);
            time.SetUtcNow(end.AddMilliseconds(300));
            var clock = Stopwatch.StartNew();
            for (var n = 0; n < ranks / 8; n++)
            {
                var list = new List<StepTimings>(8);
                for (var g = 0; g < 8; g++)
                {
                    var rank = (n * 8) + g;
                    list.Add(new StepTimings
                    {
                        Job = "bench", Rank = rank, Node = batches[n], Gpu = g, Step = step, PeerGroup = $"pp{rank / 64:000}",
                        DurationMs = 900 * (1 + (0.05 * rng.NextDouble())) * (rank % 997 == 3 ? 1.2 : 1.0), EndTime = end,
                    });
                }

                await live.EnqueueAsync(list, CancellationToken.None);
            }

            await live.FlushAsync(CancellationToken.None);
            perStep.Add(clock.Elapsed.TotalMilliseconds);
        }

        perStep.Sort();
        var steady = perStep.Skip(perStep.Count / 10).ToList();
        Console.WriteLine();
        Console.WriteLine($"## Controller live loop, {ranks:N0} ranks ({ranks / 8:N0} batches per step), {steps} steps");
        Console.WriteLine($"per step: median {steady[steady.Count / 2]:0.00} ms, p90 {steady[(int)(steady.Count * 0.9)]:0.00} ms, max {perStep[^1]:0.00} ms (enqueue, reorder, detector, findings)");
        Console.WriteLine($"incidents open: {host.Services.GetRequiredService<FleetWatch.Controller.Incidents.IncidentManager>().Open().Count} (slow ranks: {Enumerable.Range(0, ranks).Count(r => r % 997 == 3)})");
        await host.StopAsync();
    }
}
