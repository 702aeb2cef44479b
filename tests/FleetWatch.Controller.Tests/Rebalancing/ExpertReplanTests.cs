using FleetWatch.Contracts;
using FleetWatch.Controller.Remediation.Rebalancing;
using FleetWatch.Controller.Stragglers;
using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Quartz;

namespace FleetWatch.Controller.Tests.Rebalancing;

/// <summary>
/// Component tier: the periodic re-plan and the topology reaction, through the real registrations and MassTransit's
/// in-memory test harness (the incident events go over the bus as the controller publishes them).
/// </summary>
public sealed class ExpertReplanTests
{
    private const int Experts = 32;
    private const int SlotsPerGpu = 5;

    [Fact]
    public async Task ScheduledReplan_SendsOnDrift_OnceForTheSameInputs_AndRecordsTheAction()
    {
        await using var provider = Build([]);
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();
        try
        {
            var store = provider.GetRequiredService<ExpertLoadReportStore>();
            store.Put(Report("drifted", Naive(Loads(1)), Loads(1)));
            store.Put(Report("steady", Balanced(Loads(2)), Loads(2)));

            await RunJob(provider);
            await RunJob(provider); // a re-fired trigger: same report, same capacity

            var command = await FirstSent(harness);
            Assert.Equal("drifted", command.Job);
            Assert.Equal("drifted/1", command.PlanId);
            Assert.Contains("load drift", command.Reason, StringComparison.Ordinal);
            Assert.True(command.ExpectedImbalanceBefore - command.ExpectedImbalanceAfter >= 0.02);

            var actions = provider.GetRequiredService<ExpertRebalanceActionLog>();
            var action = Assert.Single(actions.Recent()); // every send is recorded: one action, one send
            Assert.Equal(("drifted", "drifted/1", "scheduled re-plan"), (action.Job, action.PlanId, action.Trigger));
            Assert.Equal(Now, action.At);
            Assert.Equal(command.WeightMoveCount, action.WeightMoves);
            Assert.Equal(command.ExpectedImbalanceAfter, action.ImbalanceAfter);

            // The job applied the plan and reports it: balanced now, so the next run sends nothing.
            store.Put(Report("drifted", command.Placement.Select(r => r.ToArray()).ToArray(), Loads(1), window: 2, version: 1));
            await RunJob(provider);
            Assert.Equal(1, actions.Total);
        }
        finally
        {
            await harness.Stop();
        }
    }

    [Theory]
    [InlineData(0.0, 0.02, true)]
    [InlineData(1.0, 0.02, false)] // each move per layer must buy a whole unit of imbalance: never worth it
    [InlineData(0.0, 10.0, false)] // the gain bar alone is out of reach
    public void Threshold_GatesADriftOnlyPlan(double costPerMove, double minGain, bool sends)
    {
        var report = Report("job", Naive(Loads(3)), Loads(3));
        var options = new ExpertRebalancingOptions { ImbalanceCostPerWeightMove = costPerMove, MinImbalanceImprovement = minGain };
        var decision = ExpertRebalanceDecider.Decide(report, [], cycle: 1, options);
        Assert.Equal(sends, decision.Command is not null);
        Assert.True(sends || decision.Outcome.StartsWith("balanced enough", StringComparison.Ordinal), decision.Outcome);
    }

    [Fact]
    public async Task Schedule_IsRegistered_WithTheConfiguredInterval_BesideTheFleetSweep()
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["FleetWatch:ExpertRebalancing:ReplanInterval"] = "00:03:00" })
            .Build();

        // The controller's composition: the sweep's AddQuartz and ours must land in one scheduler.
        await using var provider = new ServiceCollection()
            .AddLogging()
            .AddFleetSweep(configuration)
            .AddExpertRebalancing(configuration)
            .BuildServiceProvider(true);
        var scheduler = await provider.GetRequiredService<ISchedulerFactory>().GetScheduler();
        Assert.NotNull(await scheduler.GetJobDetail(FleetWatch.Controller.Scheduling.FleetSweepJob.Key));
        Assert.NotNull(await scheduler.GetJobDetail(ExpertReplanJob.Key));
        var trigger = Assert.IsAssignableFrom<ISimpleTrigger>(await scheduler.GetTrigger(ExpertReplanJob.TriggerKey));
        Assert.Equal(TimeSpan.FromMinutes(3), trigger.RepeatInterval);
        Assert.Equal(ExpertReplanJob.Key, trigger.JobKey);
    }

    [Fact]
    public async Task CriticalGpuIncident_RemovesTheGpu_ReplansAffectedJobsOnly_AndResolveRestoresIt()
    {
        await using var provider = Build([]);
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();
        try
        {
            var store = provider.GetRequiredService<ExpertLoadReportStore>();
            var view = provider.GetRequiredService<IGpuCapacityView>();
            store.Put(Report("moe-a", Balanced(Loads(4)), Loads(4)));
            store.Put(Report("moe-b", Balanced(Loads(5)), Loads(5), nodes: ["node-7", "node-8"]));

            await harness.Bus.Publish(new IncidentOpened(Incident("inc-1", "node-1", 2, Severity.Critical, "gpu_fell_off_bus")));
            Assert.True(await harness.Consumed.Any<IncidentOpened>());
            Assert.True(await harness.Sent.Any<ApplyExpertPlacement>());

            var command = await FirstSent(harness);
            Assert.Equal("moe-a", command.Job);
            Assert.Equal(7, command.Gpus.Count);
            Assert.DoesNotContain(command.Gpus, g => g is { Node: "node-1", Gpu: 2 });
            Assert.All(command.Placement, row => Assert.Equal(Experts, row.Distinct().Count()));
            Assert.Contains("node-1/2 unavailable", command.Reason, StringComparison.Ordinal);
            Assert.Equal(new GpuCapacityChange("node-1", 2, GpuCapacityState.Unavailable), Assert.Single(view.Current()));
            var actions = provider.GetRequiredService<ExpertRebalanceActionLog>();
            Assert.Equal("incident inc-1 opened", Assert.Single(actions.Recent()).Trigger); // moe-b was not re-planned

            // Redelivered: same inputs, no second plan.
            var responder = provider.GetRequiredService<ExpertTopologyResponder>();
            var again = Incident("inc-1", "node-1", 2, Severity.Critical, "gpu_fell_off_bus");
            Assert.Equal(0, await responder.OnIncidentAsync(again, resolved: false, harness.Bus, CancellationToken.None));

            await harness.Bus.Publish(new IncidentResolved(Incident("inc-1", "node-1", 2, Severity.Critical, "gpu_fell_off_bus") with { ResolvedAt = Now }));
            Assert.True(await harness.Consumed.Any<IncidentResolved>());
            Assert.Null((await harness.Consumed.SelectAsync<IncidentResolved>().First()).Exception);
            Assert.Empty(view.Current());

            // The job still reports its original, balanced placement on all 8 GPUs: restored capacity needs no move.
            Assert.Equal(1, actions.Total);
        }
        finally
        {
            await harness.Stop();
        }
    }

    [Fact]
    public async Task StragglerIncident_SlowsTheGpu_AndTheNewPlanGivesItLessLoad()
    {
        await using var provider = Build(new() { ["FleetWatch:ExpertRebalancing:StragglerSpeed"] = "0.5" });
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();
        try
        {
            var loads = Loads(6, kind: "uniform");
            provider.GetRequiredService<ExpertLoadReportStore>().Put(Report("moe-a", Balanced(loads), loads));
            await harness.Bus.Publish(new IncidentOpened(Incident("inc-2", "node-0", 1, Severity.High, FleetWatch.Controller.Stragglers.Live.StragglerIncidentFindings.StragglerCategory)));
            Assert.True(await harness.Sent.Any<ApplyExpertPlacement>());

            var command = await FirstSent(harness);
            Assert.Equal(8, command.Gpus.Count);
            Assert.Equal(
                new GpuCapacityChange("node-0", 1, GpuCapacityState.Degraded, 0.5),
                Assert.Single(provider.GetRequiredService<IGpuCapacityView>().Current()));

            // The second GPU's slots are node-0/1: it now carries clearly less than the mean GPU load in every layer.
            for (var l = 0; l < loads.Length; l++)
            {
                var row = command.Placement[l];
                var counts = Enumerable.Range(0, Experts).Select(e => row.Count(x => x == e)).ToArray();
                var onSlow = Enumerable.Range(SlotsPerGpu, SlotsPerGpu).Sum(j => loads[l][row[j]] / counts[row[j]]);
                Assert.True(onSlow < loads[l].Sum() / 8 * 0.75, $"layer {l}: {onSlow} vs mean {loads[l].Sum() / 8}");
            }
        }
        finally
        {
            await harness.Stop();
        }
    }

    public static TheoryData<string, Severity, int?, string, GpuCapacityChange[]> IncidentCases => new()
    {
        { "warning changes nothing", Severity.Warning, 3, "over_temperature", [] },
        { "high NVLink errors remove the GPU", Severity.High, 3, "nvlink_errors", [new("node-0", 3, GpuCapacityState.Unavailable)] },
        { "critical over-temperature slows it", Severity.Critical, 3, "over_temperature", [new("node-0", 3, GpuCapacityState.Degraded, 0.8)] },
        {
            "node silent removes every GPU a job reports on the node", Severity.Critical, null, "node_silent",
            [.. Enumerable.Range(0, 4).Select(g => new GpuCapacityChange("node-0", g, GpuCapacityState.Unavailable))]
        },
    };

    [Theory]
    [MemberData(nameof(IncidentCases))]
    public void Map_IncidentToCapacity(string name, Severity severity, int? gpu, string category, GpuCapacityChange[] expected)
    {
        var known = Gpus(["node-0", "node-1"]).Concat(Gpus(["node-0"]));
        var changes = ExpertTopologyResponder.Map(Incident("i", "node-0", gpu, severity, category), new ExpertRebalancingOptions(), known);
        Assert.True(expected.SequenceEqual(changes), name);
    }

    [Fact]
    public void Tracker_KeepsTheWorstLiveSource_AndRestoresWhenAllAreGone()
    {
        var view = new InMemoryGpuCapacityView();
        var tracker = new ExpertCapacityTracker(view);
        tracker.Set("straggler j/3", [new("n", 1, GpuCapacityState.Degraded, 0.7)]);
        tracker.Set("incident x", [new("n", 1, GpuCapacityState.Degraded, 0.9)]);
        Assert.Equal(0.7, Assert.Single(view.Current()).Speed);
        tracker.Set("incident y", [new("n", 1, GpuCapacityState.Unavailable)]);
        Assert.Equal(GpuCapacityState.Unavailable, Assert.Single(view.Current()).State);
        tracker.Remove("incident y");
        tracker.Remove("straggler j/3");
        Assert.Equal(new GpuCapacityChange("n", 1, GpuCapacityState.Degraded, 0.9), Assert.Single(view.Current()));
        Assert.Equal([("n", 1)], tracker.Remove("incident x"));
        Assert.Empty(view.Current());
    }

    [Fact]
    public async Task FlaggedStraggler_ReplansAtItsScore_ClearedRestores()
    {
        await using var provider = Build([]);
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();
        try
        {
            var loads = Loads(7, kind: "uniform");
            provider.GetRequiredService<ExpertLoadReportStore>().Put(Report("moe-s", Balanced(loads), loads));
            var responder = provider.GetRequiredService<ExpertTopologyResponder>();
            var view = provider.GetRequiredService<IGpuCapacityView>();

            Assert.Equal(1, await responder.OnStragglerAsync(new StragglerFlagged("moe-s", 1000, 9, "node-1", 0, "pp0", 12, 0.6, double.NaN), harness.Bus, CancellationToken.None));
            Assert.Equal(0.6, Assert.Single(view.Current()).Speed);
            Assert.Contains("straggler moe-s/9", provider.GetRequiredService<ExpertRebalanceActionLog>().Recent().Single().Trigger, StringComparison.Ordinal);

            Assert.Equal(0, await responder.OnStragglerAsync(new StragglerCleared("moe-s", 2000, 9, 20, StragglerClearReason.Recovered), harness.Bus, CancellationToken.None));
            Assert.Empty(view.Current());
        }
        finally
        {
            await harness.Stop();
        }
    }

    [Fact]
    public void ActionLog_IsBounded_AndIdempotentPerPlan()
    {
        var log = new ExpertRebalanceActionLog(Options.Create(new ExpertRebalancingOptions { ActionLogCapacity = 3 }));
        for (var i = 1; i <= 5; i++)
        {
            Assert.True(log.TryRecord(Action($"j/{i}")));
        }

        Assert.False(log.TryRecord(Action("j/5")));
        Assert.Equal(["j/3", "j/4", "j/5"], log.Recent().Select(a => a.PlanId));
        Assert.Equal(5, log.Total);
        Assert.True(log.TryRecord(Action("j/1"))); // evicted entries are forgotten; plan ids never repeat per job anyway
    }

    [Theory]
    [InlineData("ImbalanceCostPerWeightMove", "-1", "FleetWatch:ExpertRebalancing:ImbalanceCostPerWeightMove must be in [0, 1], got -1")]
    [InlineData("StragglerSpeed", "0", "FleetWatch:ExpertRebalancing:StragglerSpeed must be in [0.05, 1], got 0")]
    [InlineData("ActionLogCapacity", "0", "FleetWatch:ExpertRebalancing:ActionLogCapacity must be in [1, 100000], got 0")]
    public async Task BadOption_FailsValidation_WithKeyAndValue(string key, string value, string message)
    {
        await using var provider = Build(new() { [$"FleetWatch:ExpertRebalancing:{key}"] = value });
        var e = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<ExpertRebalancingOptions>>().Value);
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    private static readonly DateTimeOffset Now = new(2026, 11, 29, 13, 0, 0, TimeSpan.Zero);

    private static ServiceProvider Build(Dictionary<string, string?> settings) =>
        new ServiceCollection()
            .AddSingleton<TimeProvider>(new FakeTimeProvider(Now))
            .AddExpertRebalancing(new ConfigurationBuilder().AddInMemoryCollection(settings).Build())
            .AddMassTransitTestHarness(x =>
            {
                // Planning takes a while on a loaded machine: the harness must not call the bus idle mid-test.
                x.SetTestTimeouts(testTimeout: TimeSpan.FromSeconds(30), testInactivityTimeout: TimeSpan.FromSeconds(5));
                x.AddExpertRebalancingConsumers();
            })
            .BuildServiceProvider(true);

    /// <summary>The first command sent (the harness's Select would wait for the bus to go idle).</summary>
    private static async Task<ApplyExpertPlacement> FirstSent(ITestHarness harness)
    {
        Assert.True(await harness.Sent.Any<ApplyExpertPlacement>());
        return (await harness.Sent.SelectAsync<ApplyExpertPlacement>().First()).Context.Message;
    }

    private static async Task RunJob(IServiceProvider provider)
    {
        var job = ActivatorUtilities.CreateInstance<ExpertReplanJob>(provider, NullLogger<ExpertReplanJob>.Instance);
        await job.Execute(null!, CancellationToken.None);
    }

    private static double[][] Loads(int seed, string kind = "zipf") => ExpertPlannerTests.Loads(kind, layers: 3, Experts, seed);

    private static ExpertSlotGpu[] Gpus(string[] nodes) =>
        [.. nodes.SelectMany(n => Enumerable.Range(0, 4).Select(g => new ExpertSlotGpu(n, g, SlotsPerGpu)))];

    private static int[][] Balanced(double[][] loads) =>
        ExpertPlanner.Plan(new ExpertPlanRequest(loads, [.. Enumerable.Range(0, 8).Select(_ => new ExpertGpu(0, SlotsPerGpu))])).Phy2Log;

    /// <summary>Round-robin, as a job starts before any rebalance: hot experts pile up.</summary>
    private static int[][] Naive(double[][] loads) =>
        [.. loads.Select(_ => Enumerable.Range(0, 8 * SlotsPerGpu).Select(j => j % Experts).ToArray())];

    private static ExpertLoadReport Report(
        string job, int[][] placement, double[][] loads, string[]? nodes = null, int window = 1, long version = 0) =>
        RebalanceTestKit.Report(job, loads, Gpus(nodes ?? ["node-0", "node-1"]), placement) with
        {
            WindowEnd = new DateTimeOffset(2026, 11, 29, 12, 5 * window, 0, TimeSpan.Zero),
            PlacementVersion = version,
        };

    private static IncidentSnapshot Incident(string id, string node, int? gpu, Severity severity, string category) => new()
    {
        Id = id,
        Node = node,
        GpuIndex = gpu,
        Severity = severity,
        Category = category,
        Action = "drain_and_reset_gpu",
        OpenedAt = Now,
        Findings = [],
    };

    private static ExpertRebalanceAction Action(string planId) =>
        new(Now, "j", planId, "test", "load drift", 1.3, 1.01, 1.02, 10, 8);
}
