using FleetWatch.Contracts;
using FleetWatch.Controller.Remediation;

namespace FleetWatch.Controller.Tests.Remediation;

/// <summary>Unit tier: checkpoint selection, directory scan, classification, spares and the storm guard, table-driven.</summary>
public sealed class RemediationRulesTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 29, 12, 0, 0, TimeSpan.Zero);
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "fw-ckpt-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static CheckpointRecord Cp(long step, int[] ranks, string? bad = null, string source = "reported") =>
        new("j", step, $"s3://c/step_{step}", ranks.Length, ranks, null, source, T0, bad);

    private static readonly int[] All4 = [0, 1, 2, 3];

    public static TheoryData<string, CheckpointRecord[], long?, long?> SelectionCases() => new()
    {
        { "newest complete wins", [Cp(10, All4), Cp(20, All4), Cp(30, All4)], null, 30 },
        { "newest misses a rank", [Cp(10, All4), Cp(20, All4), Cp(30, [0, 1, 3])], null, 20 },
        { "newest marked bad", [Cp(10, All4), Cp(20, All4, bad: "NaN after restore")], null, 10 },
        { "shards of one step split over two records", [Cp(10, All4), Cp(20, [0, 1]), Cp(20, [2, 3], source: "scan")], null, 20 },
        { "bad mark on either record of a step", [Cp(10, All4), Cp(20, All4), Cp(20, All4, bad: "x", source: "scan")], null, 10 },
        { "fallback below the failed step", [Cp(10, All4), Cp(20, All4), Cp(30, All4)], 30L, 20 },
        { "nothing covers every rank", [Cp(10, [0]), Cp(20, [1, 2, 3])], null, null },
        { "no checkpoints", [], null, null },
        { "ranks beyond the job are irrelevant", [Cp(10, [0, 1, 2, 3, 4, 5])], null, 10 },
    };

    [Theory]
    [MemberData(nameof(SelectionCases))]
    public void Selection_NewestCompleteNotBad(string name, CheckpointRecord[] candidates, long? below, long? expected)
    {
        var chosen = CheckpointSelector.Select(candidates, All4, below);
        Assert.True(expected == chosen?.Step, $"{name}: expected {expected?.ToString() ?? "none"}, got {chosen?.Step.ToString() ?? "none"}");
    }

    [Fact]
    public void Selection_RandomInventories_MatchTheRule()
    {
        // Generated cases: the chosen step is complete, not bad, and no newer step is both.
        var random = new Random(11);
        for (var trial = 0; trial < 500; trial++)
        {
            var ranks = Enumerable.Range(0, random.Next(1, 9)).ToArray();
            var candidates = Enumerable.Range(1, random.Next(0, 8)).Select(i => Cp(i * 10,
                ranks.Where(_ => random.NextDouble() > 0.15).ToArray(), random.NextDouble() < 0.2 ? "bad" : null)).ToArray();
            var chosen = CheckpointSelector.Select(candidates, ranks);
            bool Good(CheckpointRecord c) => c.BadReason is null && ranks.All(c.RanksCovered.Contains);
            if (chosen is null)
            {
                Assert.DoesNotContain(candidates, Good);
            }
            else
            {
                Assert.True(Good(chosen));
                Assert.DoesNotContain(candidates, c => c.Step > chosen.Step && Good(c));
            }
        }
    }

    [Fact]
    public async Task Scan_IncompleteNewest_TrackerLies_MissingShard()
    {
        await Write(10, All4, marker: true);
        await Write(20, All4, marker: true);
        await Write(30, All4, marker: false);               // save interrupted before the marker
        await Write(40, All4, marker: true, dropShard: 2);  // manifest names a shard that is not there
        await Write(50, [0, 1, 2], marker: true);           // complete directory, but a rank is missing
        // The tracker was advanced before the save of 30 finished (NVIDIA/Megatron-LM#5281).
        await File.WriteAllTextAsync(Path.Combine(_dir, "latest"), "30");

        var scan = CheckpointDirectoryScanner.Scan("j", _dir, T0);

        Assert.Equal([10L, 20L, 50L], scan.Complete.Select(c => c.Step));
        Assert.Equal([30L, 40L], scan.Incomplete);
        Assert.Equal(30, scan.TrackerStep);
        Assert.True(scan.TrackerLies);
        Assert.Equal(20, CheckpointSelector.Select(scan.Complete, All4)!.Step);
        Assert.NotNull(scan.Complete[0].ManifestChecksum);
    }

    [Fact]
    public async Task Scan_ShardNamesWithoutManifest_AndMegatronIterDirs()
    {
        var dir = Path.Combine(_dir, "iter_0000120");
        Directory.CreateDirectory(dir);
        foreach (var r in All4)
        {
            await File.WriteAllTextAsync(Path.Combine(dir, $"rank_{r}.pt"), "x");
        }

        await File.WriteAllTextAsync(Path.Combine(dir, CheckpointDirectoryScanner.CompletionMarker), "");
        await File.WriteAllTextAsync(Path.Combine(_dir, "latest"), "120");

        var scan = CheckpointDirectoryScanner.Scan("j", _dir, T0);

        Assert.Equal(120, Assert.Single(scan.Complete).Step);
        Assert.Equal(All4, scan.Complete[0].RanksCovered);
        Assert.False(scan.TrackerLies);
    }

    [Fact]
    public void Scan_MissingDirectory_IsEmptyNotAnError() =>
        Assert.Empty(CheckpointDirectoryScanner.Scan("j", Path.Combine(_dir, "nope"), T0).Complete);

    private async Task Write(long step, int[] ranks, bool marker, int? dropShard = null)
    {
        Directory.CreateDirectory(_dir);
        if (marker)
        {
            await FleetWatch.Controller.Remediation.JobSimulator.JobSimulator.WriteCheckpointAsync(_dir, step, ranks, CancellationToken.None);
            if (dropShard is { } d)
            {
                File.Delete(Path.Combine(_dir, $"step_{step}", $"shard_{d}.bin"));
            }
        }
        else
        {
            var dir = Path.Combine(_dir, $"step_{step}");
            Directory.CreateDirectory(dir);
            foreach (var r in ranks)
            {
                await File.WriteAllTextAsync(Path.Combine(dir, $"shard_{r}.bin"), "x");
            }
        }
    }

    [Theory]
    [InlineData("gpu_fell_off_bus", "restart_node", Severity.Critical, FaultClass.Hardware)]
    [InlineData("ecc_double_bit", "drain_and_reset_gpu", Severity.Critical, FaultClass.Hardware)]
    [InlineData("nvlink_error", "drain_and_diagnose_nvlink", Severity.High, FaultClass.Hardware)]
    [InlineData("node_silent", "check_node", Severity.Critical, FaultClass.Hardware)]
    [InlineData("ib_link_down", "drain_node", Severity.Critical, FaultClass.Hardware)]
    [InlineData("memory_contained", "restart_app", Severity.Warning, FaultClass.Software)]
    [InlineData("app_error", "restart_app", Severity.Info, FaultClass.Software)]
    [InlineData("job_hang", "restore_from_checkpoint", Severity.High, FaultClass.Software)]
    [InlineData("straggler_rank", "evict_rank_at_checkpoint", Severity.High, FaultClass.Observe)]
    [InlineData("nvlink_crc", "drain_at_checkpoint", Severity.High, FaultClass.Observe)]
    [InlineData("hw_slowdown", "check_cooling_and_power", Severity.Warning, FaultClass.Observe)]
    [InlineData("xid_unknown", "contact_support", Severity.Warning, FaultClass.Observe)]
    [InlineData("row_remap_pending", "reset_gpu_at_next_drain", Severity.Warning, FaultClass.Observe)]
    public void Classify_ByCategoryActionAndSeverity(string category, string action, Severity severity, FaultClass expected) =>
        Assert.Equal(expected, FaultClassifier.Classify(RemediationTestHost.Incident("i", "n", 0, category, action, severity, T0)));

    [Fact]
    public void Classify_ResolvedIncident_IsObserve() =>
        Assert.Equal(FaultClass.Observe,
            FaultClassifier.Classify(RemediationTestHost.Incident("i", "n", 0, "gpu_fell_off_bus", "restart_node", Severity.Critical, T0) with { ResolvedAt = T0 }));

    private static readonly SpareNode[] Spares =
    [
        new() { Node = "s-b", Domain = "B", Rack = "r2" },
        new() { Node = "s-c", Domain = "C", Rack = "r1" },
        new() { Node = "s-a", Domain = "A", Rack = "r1" },
    ];

    [Theory]
    [InlineData("A", "r1", "", "same_domain_first", "s-a")]
    [InlineData("A", "r1", "s-a", "same_domain_first", "s-c")]      // same rack next
    [InlineData("A", "r9", "s-a", "same_domain_first", "s-b")]      // then any
    [InlineData("A", "r1", "s-a", "same_domain_only", null)]
    [InlineData("A", "r1", "", "none", null)]
    [InlineData("A", "r1", "s-a,s-b,s-c", "same_domain_first", null)] // exhausted
    public void Spare_SameDomainFirst(string domain, string rack, string taken, string policy, string? expected)
    {
        var unavailable = taken.Split(',', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
        Assert.Equal(expected, SparePicker.Pick(Spares, unavailable, domain, rack, policy)?.Node);
    }

    private static RestoreCycle Cycle(long n, long step, DateTimeOffset at, string? trigger = "n1") => new()
    {
        JobId = "j", Cycle = n, Kind = "hardware", TriggerNode = trigger, CheckpointStep = step, CheckpointUri = "u", Excluded = [], Spares = [], Nodes = [],
        State = CycleStates.Healthy, StartedAt = at, Deadline = at,
    };

    [Theory]
    [InlineData(new long[] { }, 100, null)]
    [InlineData(new long[] { 100 }, 100, null)]
    [InlineData(new long[] { 100, 100 }, 100, null)]
    [InlineData(new long[] { 100, 100, 100 }, 100, "no_progress")]   // three restarts from 100 after the first
    [InlineData(new long[] { 100, 90, 80 }, 70, "no_progress")]     // fallbacks go back: no progress either
    [InlineData(new long[] { 100, 100, 100 }, 110, null)]           // progress resets the count
    [InlineData(new long[] { 100, 110, 110, 110 }, 120, null)]
    public void StormGuard_StopsAfterThreeCyclesWithoutProgress(long[] previous, long next, string? halt)
    {
        var cycles = previous.Select((s, i) => Cycle(i + 1, s, T0.AddHours(i))).ToArray();
        var verdict = StormGuard.Evaluate(cycles, next, "n1", T0.AddHours(-1), T0.AddHours(previous.Length), new RemediationOptions());
        Assert.Equal(halt, verdict.HaltKind);
    }

    [Fact]
    public void StormGuard_FiveCyclesInThirtyMinutes_Pages()
    {
        var o = new RemediationOptions();
        var four = Enumerable.Range(0, 4).Select(i => Cycle(i + 1, 100 + (i * 10), T0.AddMinutes(i * 6), trigger: $"n{i}")).ToArray();
        Assert.True(StormGuard.Evaluate(four, 200, "n9", T0.AddHours(-1), T0.AddMinutes(25), o).Storm);
        Assert.False(StormGuard.Evaluate(four, 200, "n9", T0.AddHours(-1), T0.AddMinutes(45), o).Storm);
        Assert.False(StormGuard.Evaluate(four[1..], 200, "n9", T0.AddHours(-1), T0.AddMinutes(25), o).Storm);
    }

    [Fact]
    public void StormGuard_SameNodeEndsThreeShortRuns_IsSuspect()
    {
        var o = new RemediationOptions();
        var start = T0.AddHours(-5);
        // Runs: start..c1 (long, ended by n7), c1..c2 short (n7), c2..now short (n7): only two short runs → not yet.
        var cycles = new[] { Cycle(1, 100, T0, "n7"), Cycle(2, 110, T0.AddMinutes(5), "n7") };
        Assert.Null(StormGuard.Evaluate(cycles, 120, "n7", start, T0.AddMinutes(9), o).SuspectNode);
        // Three short runs in a row, each ended by n7.
        cycles = [Cycle(1, 100, T0, "n7"), Cycle(2, 110, T0.AddMinutes(5), "n7")];
        Assert.Equal("n7", StormGuard.Evaluate(cycles, 120, "n7", T0.AddMinutes(-4), T0.AddMinutes(9), o).SuspectNode);
        // A different node ended one of them.
        cycles = [Cycle(1, 100, T0, "n3"), Cycle(2, 110, T0.AddMinutes(5), "n7")];
        Assert.Null(StormGuard.Evaluate(cycles, 120, "n7", T0.AddMinutes(-4), T0.AddMinutes(9), o).SuspectNode);
        // The last run lasted longer than 10 minutes.
        cycles = [Cycle(1, 100, T0, "n7"), Cycle(2, 110, T0.AddMinutes(5), "n7")];
        Assert.Null(StormGuard.Evaluate(cycles, 120, "n7", T0.AddMinutes(-4), T0.AddMinutes(30), o).SuspectNode);
    }
}
