using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using FleetWatch.Agent;
using FleetWatch.Agent.Sources.Steps;
using FleetWatch.Contracts;
using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Tests.Steps;

public sealed class StepEndpointTests
{
    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static string Report(int rank, long step, double ms = 100) =>
        $$"""{"job":"j1","rank":{{rank}},"step":{{step}},"duration_ms":{{ms}},"gpu":{{rank % 8}},"peer_group":"pp0","end_unix_ms":1764417600000}""";

    [Fact]
    public async Task Good_reports_are_accepted_and_published_as_one_batch_per_flush()
    {
        var publisher = new RecordingStepPublisher();
        await using var host = await StepEndpointHost.StartAsync(configure: s => s.AddSingleton<IStepTimingsPublisher>(publisher));
        using var http = new HttpClient { BaseAddress = host.BaseAddress };

        Assert.True(IPAddress.IsLoopback(IPAddress.Parse(host.BaseAddress.Host)));
        for (var rank = 0; rank < 8; rank++)
        {
            using var response = await http.PostAsync(StepEndpointServer.Path, Json(Report(rank, 5)));
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        }

        using (var many = await http.PostAsync(StepEndpointServer.Path, Json($"[{Report(0, 6)},{Report(1, 6)}]")))
        {
            Assert.Equal(HttpStatusCode.Accepted, many.StatusCode);
            Assert.Equal(2, (await many.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("accepted").GetInt32());
        }

        await host.Flusher.FlushAsync(CancellationToken.None);

        var batch = Assert.Single(publisher.Batches);
        Assert.Equal("node-7", batch.Node);
        Assert.Equal(10, batch.Steps.Count);
        Assert.All(batch.Steps, s => Assert.Equal("node-7", s.Node));
        Assert.Equal([0, 1, 2, 3, 4, 5, 6, 7, 0, 1], batch.Steps.Select(s => s.Rank)); // arrival order
        Assert.Equal((10L, 10L, 0L, 0L), (host.Counters.Accepted, host.Counters.Published, host.Counters.RejectedRequests, host.Counters.Dropped));
    }

    [Fact]
    public async Task Bad_requests_get_a_4xx_naming_the_problem_and_are_counted()
    {
        var publisher = new RecordingStepPublisher();
        await using var host = await StepEndpointHost.StartAsync(
            new() { ["FleetWatch:Agent:Steps:MaxBodyBytes"] = "2048" },
            s => s.AddSingleton<IStepTimingsPublisher>(publisher));
        using var http = new HttpClient { BaseAddress = host.BaseAddress };

        async Task<(HttpStatusCode, string)> Post(string path, string body)
        {
            using var r = await http.PostAsync(path, Json(body));
            var text = await r.Content.ReadAsStringAsync();
            var json = JsonDocument.Parse(text).RootElement;
            return (r.StatusCode, json.TryGetProperty("error", out var e) ? e.GetString()! : "");
        }

        var (status, error) = await Post(StepEndpointServer.Path, """{"job":"j1","step":1,"duration_ms":5,"gpu":0}""");
        Assert.Equal((HttpStatusCode.BadRequest, true), (status, error.StartsWith("rank:", StringComparison.Ordinal)));

        (status, error) = await Post(StepEndpointServer.Path, "{nope");
        Assert.Equal((HttpStatusCode.BadRequest, true), (status, error.StartsWith("body:", StringComparison.Ordinal)));

        (status, error) = await Post(StepEndpointServer.Path, "[" + string.Join(",", Enumerable.Repeat(Report(1, 1), 40)) + "]");
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Contains("2048", error, StringComparison.Ordinal);

        (status, _) = await Post("/v2/other", Report(1, 1));
        Assert.Equal(HttpStatusCode.NotFound, status);

        using (var get = await http.GetAsync(StepEndpointServer.Path))
        {
            Assert.Equal(HttpStatusCode.MethodNotAllowed, get.StatusCode);
        }

        // Still serving after all that.
        (status, _) = await Post(StepEndpointServer.Path, Report(3, 1));
        Assert.Equal(HttpStatusCode.Accepted, status);
        Assert.Equal((5L, 1L), (host.Counters.RejectedRequests, host.Counters.Accepted));

        var counters = await http.GetFromJsonAsync<JsonElement>(StepEndpointServer.StatusPath);
        Assert.Equal(5, counters.GetProperty("rejected_requests").GetInt64());
        Assert.Equal(1, counters.GetProperty("buffered").GetInt64());
    }

    [Fact]
    public async Task A_full_buffer_drops_the_oldest_and_counts_them_and_a_failed_publish_is_counted()
    {
        var publisher = new RecordingStepPublisher { Fail = true };
        await using var host = await StepEndpointHost.StartAsync(
            new() { ["FleetWatch:Agent:Steps:BufferCapacity"] = "16" },
            s => s.AddSingleton<IStepTimingsPublisher>(publisher));
        using var http = new HttpClient { BaseAddress = host.BaseAddress };

        for (var step = 0; step < 20; step++)
        {
            using var r = await http.PostAsync(StepEndpointServer.Path, Json(Report(0, step)));
            Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
        }

        Assert.Equal(4, host.Counters.Dropped);
        await host.Flusher.FlushAsync(CancellationToken.None);
        Assert.Equal(1, host.Counters.PublishFailures);
        Assert.Empty(publisher.Batches);

        // The broker is back: what arrives next goes out, and the batch says how many were lost so far.
        publisher.Fail = false;
        using (var r = await http.PostAsync(StepEndpointServer.Path, Json(Report(0, 20))))
        {
            Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
        }

        await host.Flusher.FlushAsync(CancellationToken.None);
        var batch = Assert.Single(publisher.Batches);
        Assert.Equal(20, Assert.Single(batch.Steps).Step);
        Assert.Equal(4, batch.DroppedTotal);
    }

    [Fact]
    public void The_buffer_keeps_the_newest_reports()
    {
        using var meters = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var counters = new StepEndpointCounters(meters.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>());
        var buffer = new StepBuffer(Options.Create(new StepEndpointOptions { BufferCapacity = 16 }), counters);
        var reports = Enumerable.Range(0, 50).Select(i => new StepTimings
        {
            Job = "j", Rank = 0, Node = "n", Gpu = 0, Step = i, PeerGroup = "g", DurationMs = 1, EndTime = DateTimeOffset.UnixEpoch,
        }).ToList();

        buffer.Add(reports);

        Assert.Equal(34, counters.Dropped);
        Assert.Equal(Enumerable.Range(34, 16).Select(i => (long)i), buffer.Take(100).Select(r => r.Step));
    }

    [Fact]
    public async Task Batches_split_at_the_batch_size_and_travel_on_the_bus()
    {
        await using var host = await StepEndpointHost.StartAsync(
            new() { ["FleetWatch:Agent:Steps:MaxBatchSize"] = "8" },
            s => s.AddMassTransitTestHarness().AddAgentBus());
        var harness = host.Services.GetRequiredService<ITestHarness>();
        using var http = new HttpClient { BaseAddress = host.BaseAddress };
        var body = "[" + string.Join(",", Enumerable.Range(0, 20).Select(r => Report(r, 1))) + "]";
        using (var r = await http.PostAsync(StepEndpointServer.Path, Json(body)))
        {
            Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
        }

        await host.Flusher.FlushAsync(CancellationToken.None);

        Assert.True(await harness.Published.Any<StepTimingsBatch>());
        var batches = harness.Published.Select<StepTimingsBatch>().Select(m => m.Context.Message).ToList();
        Assert.Equal([8, 8, 4], batches.Select(b => b.Steps.Count));
        Assert.Equal(Enumerable.Range(0, 20), batches.SelectMany(b => b.Steps).Select(s => s.Rank));
        Assert.Equal(20, host.Counters.Published);
    }

    [Fact]
    public async Task Composes_with_the_bus_under_scope_validation()
    {
        // The agent host runs with scope validation in Development: a singleton must not hold a scoped bus service.
        var configuration = new ConfigurationBuilder().Build();
        var services = new ServiceCollection().AddLogging().AddMassTransit(x => x.UsingInMemory()).AddAgentBus().AddStepEndpoint(configuration);
        await using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateScopes = true, ValidateOnBuild = true });
        Assert.Throws<InvalidOperationException>(() => provider.GetRequiredService<IPublishEndpoint>()); // why the publisher takes IBus

        Assert.IsType<BusStepTimingsPublisher>(provider.GetRequiredService<IStepTimingsPublisher>());
        Assert.NotNull(provider.GetRequiredService<StepBatchPublisher>());
        Assert.Equal(StepEndpointOptions.DefaultPort, provider.GetRequiredService<IOptions<StepEndpointOptions>>().Value.Port);
    }

    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("10.1.2.3")]
    [InlineData("localhost-ish")]
    public void A_non_loopback_address_fails_at_start_naming_the_key(string address)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["FleetWatch:Agent:Steps:ListenAddress"] = address,
        }).Build();
        using var provider = new ServiceCollection().AddStepEndpoint(configuration).BuildServiceProvider();

        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<StepEndpointOptions>>().Value);
        Assert.Contains($"FleetWatch:Agent:Steps:ListenAddress = '{address}'", ex.Message, StringComparison.Ordinal);
    }
}
