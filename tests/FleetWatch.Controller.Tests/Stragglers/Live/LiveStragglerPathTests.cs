using FleetWatch.Controller.Stragglers;
using FleetWatch.Contracts;
using FleetWatch.Controller.Fleet;
using FleetWatch.Controller.Incidents;
using FleetWatch.Controller.Stragglers.Live;
using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace FleetWatch.Controller.Tests.Stragglers.Live;

/// <summary>
/// Component test of the whole live path: <see cref="StepTimingsBatch"/> messages on the in-memory bus → the step
/// consumers → the single detector loop → findings with attribution → the incident manager. Virtual time throughout.
/// </summary>
public sealed class LiveStragglerPathTests : IAsyncDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 29, 12, 0, 0, TimeSpan.Zero);
    private const int Ranks = 16;
    private const int SlowRank = 5; // node n1, GPU 5

    private readonly FakeTimeProvider _time = new(T0);
    private IHost? _host;

    public async ValueTask DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.StopAsync();
            _host.Dispose();
        }
    }

    private async Task<(IServiceProvider Services, ITestHarness Harness, LiveStragglerService Live)> StartAsync(Dictionary<string, string?> settings)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        var services = builder.Services;
        services.AddSingleton<TimeProvider>(_time);
        services.AddMetrics();
        services.AddDetection(builder.Configuration);
        services.AddAlerting(builder.Configuration);
        services.AddLiveStragglers(builder.Configuration);
        services.AddMassTransitTestHarness(bus => bus.AddStragglerConsumers());
        _host = builder.Build();
        await _host.StartAsync();
        var harness = _host.Services.GetRequiredService<ITestHarness>();
        return (_host.Services, harness, _host.Services.GetRequiredService<LiveStragglerService>());
    }

    /// <summary>A synchronous job: every rank ends step s at the same time; rank <see cref="SlowRank"/> computes 20 % longer.</summary>
    private static StepTimingsBatch Batch(string node, int firstRank, long step, Random noise, TimeSpan shift = default) => new()
    {
        Node = node,
        Time = T0.AddSeconds(step + 1) + shift,
        Steps = Enumerable.Range(firstRank, 8).Select(rank => new StepTimings
        {
            Job = "train-1",
            Rank = rank,
            Node = node,
            Gpu = rank % 8,
            Step = step,
            PeerGroup = "dp",
            DurationMs = 900 * (rank == SlowRank ? 1.2 : 1.0) * (1 + (0.04 * (noise.NextDouble() - 0.5))),
            EndTime = T0.AddSeconds(step + 1) + shift,
        }).ToList(),
    };

    private static NodeSample Telemetry(string node, ulong gpu5Reasons) => new()
    {
        Node = node,
        Sequence = 1,
        AgentRun = "run",
        Time = T0,
        Gpus = Enumerable.Range(0, 8).Select(i => new GpuSample { Index = i, Uuid = $"GPU-{node}-{i}", ClockEventReasons = i == 5 ? gpu5Reasons : 0 }).ToList(),
    };

    private static async Task WaitForAsync(Func<bool> condition, string what)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        while (!condition())
        {
            Assert.False(cts.IsCancellationRequested, $"timed out waiting for {what}");
            await Task.Delay(5);
        }
    }

    /// <summary>Publishes steps [from, to) through the bus, one batch per node, each step at its own virtual second.</summary>
    private async Task FeedAsync(ITestHarness harness, LiveStragglerService live, long from, long to, Random noise, TimeSpan shift = default)
    {
        for (var step = from; step < to; step++)
        {
            _time.SetUtcNow(T0.AddSeconds(step + 1).AddMilliseconds(300) + shift);
            await harness.Bus.Publish(Batch("n1", 0, step, noise, shift));
            await harness.Bus.Publish(Batch("n2", 8, step, noise, shift));
            var expected = Ranks * (step + 1);
            await WaitForAsync(() => live.ReportsReceived >= expected, $"step {step} to be consumed");
            await live.FlushAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task A_slow_rank_becomes_one_straggler_incident_with_its_cause_and_silence_becomes_a_critical_hang()
    {
        var (services, harness, live) = await StartAsync(new()
        {
            ["FleetWatch:Stragglers:Live:EscalateAfter"] = "00:00:20",
        });
        var fleet = services.GetRequiredService<FleetState>();
        var incidents = services.GetRequiredService<IncidentManager>();
        fleet.Accept(Telemetry("n1", gpu5Reasons: 0x8), T0, out _);
        fleet.Accept(Telemetry("n2", gpu5Reasons: 0), T0, out _);

        await FeedAsync(harness, live, 0, 60, new Random(11));

        var open = Assert.Single(incidents.Open());
        Assert.Equal(("n1", (int?)5, "straggler_rank", "evict_rank_at_checkpoint"), (open.Node, open.GpuIndex, open.Category, open.Action));
        var finding = Assert.Single(open.Findings);
        Assert.Equal("straggler:train-1:rank5", finding.Rule);
        Assert.Contains("job train-1 rank 5", finding.Message, StringComparison.Ordinal);
        Assert.Contains("cause: compute (GPU 5 clock event HW slowdown (0x8))", finding.Message, StringComparison.Ordinal);
        // Opened as a warning, raised to high once it had lasted EscalateAfter.
        Assert.True(await harness.Published.Any<IncidentOpened>(m => m.Context.Message.Incident.Severity == Severity.Warning));
        Assert.Equal(Severity.High, open.Severity);
        Assert.Contains("persisting", finding.Message, StringComparison.Ordinal);
        Assert.Equal(0, live.LoopErrors);

        // Every rank stops reporting.
        var lastStepEnd = T0.AddSeconds(60);
        for (var s = 1; s <= 20 && !incidents.Open().Any(i => i.Category == "job_hang"); s++)
        {
            _time.SetUtcNow(lastStepEnd.AddSeconds(s));
            await live.FlushAsync(CancellationToken.None);
        }

        var hang = Assert.Single(incidents.Open(), i => i.Category == "job_hang");
        Assert.Equal((Severity.Critical, "restore_from_checkpoint", "n1", (int?)null), (hang.Severity, hang.Action, hang.Node, hang.GpuIndex));
        Assert.Contains("job train-1 hung", Assert.Single(hang.Findings).Message, StringComparison.Ordinal);
        // Median step 1 s, hang after 5 medians, plus the 2 s ingest lag: raised within 10 s of silence, not minutes.
        Assert.InRange(_time.GetUtcNow() - lastStepEnd, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(10));

        // The job resumes where it stopped: the hang condition clears (the incident then resolves after the hold, like any other).
        var resumeShift = _time.GetUtcNow() - T0.AddSeconds(60);
        await FeedAsync(harness, live, 60, 62, new Random(12), resumeShift);
        _time.Advance(TimeSpan.FromSeconds(3));
        await live.FlushAsync(CancellationToken.None);
        // The condition is clear at once; the incident itself resolves after the resolve hold like any other.
        Assert.False(incidents.ActiveSeverities().ContainsKey(("n1", null)));
        Assert.Single(incidents.Open(), i => i.Category == "job_hang");
        Assert.Equal(0, live.LoopErrors);
    }

    [Theory]
    [InlineData("0.9", Severity.High)]     // the 20 % slow rank (score ≈ 0.83) hurts the job materially: high at once
    [InlineData("0.7", Severity.Warning)]  // below the bar, and EscalateAfter (1 h) not reached: stays a warning
    public async Task A_straggler_that_materially_slows_the_job_is_raised_at_once(string escalateBelowScore, Severity expected)
    {
        var (_, harness, live) = await StartAsync(new()
        {
            ["FleetWatch:Stragglers:Live:EscalateAfter"] = "01:00:00",
            ["FleetWatch:Stragglers:Live:EscalateBelowScore"] = escalateBelowScore,
        });
        var incidents = _host!.Services.GetRequiredService<IncidentManager>();

        await FeedAsync(harness, live, 0, 60, new Random(11));

        var open = Assert.Single(incidents.Open());
        Assert.Equal(("straggler_rank", expected), (open.Category, open.Severity));
        if (expected == Severity.High)
        {
            Assert.Contains("holds the synchronous job back", Assert.Single(open.Findings).Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_job_that_goes_silent_is_forgotten_but_its_hang_incident_stays_open()
    {
        var (services, harness, live) = await StartAsync(new()
        {
            ["FleetWatch:Stragglers:Live:ForgetJobAfter"] = "00:01:00",
        });
        var incidents = services.GetRequiredService<IncidentManager>();
        var detector = services.GetRequiredService<StragglerDetector>();

        await FeedAsync(harness, live, 0, 30, new Random(5));
        Assert.Single(detector.Jobs);

        var lastStepEnd = T0.AddSeconds(30);
        for (var s = 1; s <= 90; s++)
        {
            _time.SetUtcNow(lastStepEnd.AddSeconds(s));
            await live.FlushAsync(CancellationToken.None);
        }

        Assert.Empty(detector.Jobs); // bounded: the silent job's state is gone after ForgetJobAfter
        Assert.Single(incidents.Open(), i => i.Category == "job_hang"); // the hang is not "resolved" by forgetting it
        Assert.True(incidents.ActiveSeverities().ContainsKey(("n1", null)));
        Assert.Equal(0, live.LoopErrors);
    }

    [Fact]
    public async Task A_healthy_job_opens_nothing()
    {
        var (services, harness, live) = await StartAsync([]);
        var fleet = services.GetRequiredService<FleetState>();
        fleet.Accept(Telemetry("n1", gpu5Reasons: 0x8), T0, out _); // throttling alone is not a straggler

        // Rank 5 runs at the same speed as the others here.
        for (var step = 0L; step < 40; step++)
        {
            _time.SetUtcNow(T0.AddSeconds(step + 1).AddMilliseconds(300));
            var noise = new Random((int)step);
            foreach (var (node, first) in new[] { ("n1", 0), ("n2", 8) })
            {
                var batch = Batch(node, first, step, noise);
                await harness.Bus.Publish(batch with { Steps = batch.Steps.Select(s => s with { DurationMs = 900 + noise.Next(20) }).ToList() });
            }

            var expected = Ranks * (step + 1);
            await WaitForAsync(() => live.ReportsReceived >= expected, $"step {step} to be consumed");
            await live.FlushAsync(CancellationToken.None);
        }

        Assert.Empty(services.GetRequiredService<IncidentManager>().Open());
    }

    [Theory]
    [InlineData(16, false)] // every rank said it finished: the job ended, its silence is no hang
    [InlineData(15, true)]  // one rank never finished: the others' final reports do not hide the hang
    public async Task A_job_that_ends_normally_is_not_reported_hung(int finishingRanks, bool hangExpected)
    {
        var (services, harness, live) = await StartAsync([]);
        var incidents = services.GetRequiredService<IncidentManager>();
        await FeedAsync(harness, live, 0, 30, new Random(3));
        foreach (var (node, first) in new[] { ("n1", 0), ("n2", 8) })
        {
            var last = Batch(node, first, 29, new Random(4));
            var finals = last.Steps.Where(s => s.Rank < finishingRanks).Select(s => s with { Final = true }).ToList();
            await harness.Bus.Publish(last with { Steps = finals });
        }

        await WaitForAsync(() => live.ReportsReceived >= (Ranks * 30) + finishingRanks, "the final reports to be consumed");
        var lastStepEnd = T0.AddSeconds(30);
        for (var s = 1; s <= 20; s++)
        {
            _time.SetUtcNow(lastStepEnd.AddSeconds(s));
            await live.FlushAsync(CancellationToken.None);
        }

        Assert.Equal(hangExpected, incidents.Open().Any(i => i.Category == "job_hang"));
        // Rank 5 was flagged; when the job ends its condition clears too (the incident resolves after the hold).
        Assert.Contains(incidents.Open(), i => i.Category == "straggler_rank");
        Assert.Equal(hangExpected, incidents.ActiveSeverities().ContainsKey(("n1", 5)));
        Assert.Equal(0, live.LoopErrors);
    }

    [Fact]
    public void Invalid_live_options_fail_at_start_with_key_and_value()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["FleetWatch:Stragglers:Live:Tick"] = "00:00:00",
            ["FleetWatch:Stragglers:Live:Attribution:IbErrorDelta"] = "-1",
        }).Build();
        using var provider = new ServiceCollection().AddLiveStragglers(configuration).BuildServiceProvider();

        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<LiveStragglerOptions>>().Value);
        Assert.Contains("FleetWatch:Stragglers:Live:Tick = '00:00:00'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("FleetWatch:Stragglers:Live:Attribution:IbErrorDelta = '-1'", ex.Message, StringComparison.Ordinal);
    }
}
