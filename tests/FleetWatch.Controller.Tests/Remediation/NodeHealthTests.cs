using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Incidents;
using FleetWatch.Controller.Remediation;

namespace FleetWatch.Controller.Tests.Remediation;

/// <summary>Unit tier: the spare self-check and node health, one pure function of <see cref="NodeFacts"/>, table-driven.</summary>
public sealed class NodeHealthTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 30, 3, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(5);

    /// <summary>A spare as a healthy controller sees it: fresh 8-GPU sample, every condition False, no incident, no cordon.</summary>
    public static NodeFacts Good(string node = "spare-1") => new()
    {
        Node = node,
        Latest = RemediationTestHost.Healthy(node, 10, Now.AddSeconds(-1)),
        LastSeen = Now.AddSeconds(-1),
        KnownGpus = Enumerable.Range(0, 8).ToArray(),
        ReportingSince = Now.AddHours(-1),
        Conditions =
        [
            new DetectionCondition(node, null, "node_silent", ConditionStatus.False, Now.AddHours(-1), null),
            .. Enumerable.Range(0, 8).Select(g => new DetectionCondition(node, g, "gpu_lost", ConditionStatus.False, Now.AddHours(-1), null)),
        ],
        OpenIncidents = [],
    };

    private static NodeFacts WithGpus(NodeFacts f, Func<IReadOnlyList<GpuSample>, IReadOnlyList<GpuSample>> edit) =>
        f with { Latest = f.Latest! with { Gpus = edit(f.Latest.Gpus) } };

    private static NodeFacts WithCondition(NodeFacts f, string rule, int? gpu, ConditionStatus status) =>
        f with { Conditions = [.. f.Conditions!.Where(c => !(c.Rule == rule && c.Gpu == gpu)), new DetectionCondition(f.Node, gpu, rule, status, Now.AddMinutes(-1), "x")] };

    public static TheoryData<string, NodeFacts, string?> SpareCases() => new()
    {
        { "healthy spare", Good(), null },
        { "sample just at the age limit", Good() with { LastSeen = Now - MaxAge }, null },
        { "never sampled (no data)", Good() with { Latest = null, LastSeen = null }, "no sample" },
        { "stale sample", Good() with { LastSeen = Now.AddSeconds(-6) }, "6 s old" },
        { "GPU source error", Good() with { Latest = Good().Latest! with { GpuSourceError = "NVML timeout" } }, "GPU source error: NVML timeout" },
        { "no GPUs in sample", WithGpus(Good(), _ => []), "no GPU" },
        { "a GPU lost", WithGpus(Good(), gs => gs.Select(g => g.Index == 3 ? g with { Lost = true } : g).ToArray()), "GPU 3 lost" },
        { "a GPU missing", WithGpus(Good(), gs => gs.Where(g => g.Index is not (2 or 5)).ToArray()), "GPU 2, 5 missing" },
        { "no detector state", Good() with { Conditions = null }, "no detector conditions" },
        { "node_silent unknown", WithCondition(Good(), "node_silent", null, ConditionStatus.Unknown), "node_silent is Unknown" },
        { "a True condition", WithCondition(Good(), "nvlink_down", 4, ConditionStatus.True), "condition nvlink_down True on GPU 4" },
        { "an Unknown GPU condition is not True", WithCondition(Good(), "power_unreadable", 1, ConditionStatus.Unknown), null },
        { "open incident", Good() with { OpenIncidents = ["inc-42"] }, "open incident inc-42" },
        { "incidents unknown", Good() with { OpenIncidents = null }, "open incidents unknown" },
        { "cordoned", Good() with { Cordon = new CordonRecord("spare-1", "Xid 79", "inc-1", "fleetwatch", Now.AddDays(-1)) }, "cordoned by fleetwatch: Xid 79" },
        { "in maintenance", Good() with { Maintenance = "mnt-7" }, "in maintenance window mnt-7" },
    };

    [Theory]
    [MemberData(nameof(SpareCases))]
    public void SpareProblem_NamesTheFirstReason_NullWhenUsable(string name, NodeFacts facts, string? expected)
    {
        var problem = NodeHealth.SpareProblem(facts, Now, MaxAge);
        if (expected is null)
        {
            Assert.True(problem is null, $"{name}: expected usable, got '{problem}'");
        }
        else
        {
            Assert.True(problem is not null && problem.Contains(expected, StringComparison.Ordinal), $"{name}: expected '{expected}', got '{problem ?? "usable"}'");
        }
    }

    [Fact]
    public void Problem_IgnoresTheCordon_SpareProblemDoesNot()
    {
        var cordoned = Good() with { Cordon = new CordonRecord("spare-1", "r", null, "fleetwatch", Now) };
        Assert.Null(NodeHealth.Problem(cordoned, Now, MaxAge));
        Assert.NotNull(NodeHealth.SpareProblem(cordoned, Now, MaxAge));
    }

    /// <summary>Generated cases: any single defect among many random healthy nodes makes the node unusable.</summary>
    [Fact]
    public void RandomSingleDefects_AreAlwaysCaught()
    {
        var random = new Random(1234);
        for (var i = 0; i < 300; i++)
        {
            var gpus = random.Next(1, 9);
            var good = Good($"n{i}") with
            {
                Latest = RemediationTestHost.Healthy($"n{i}", i, Now) with { Gpus = Enumerable.Range(0, gpus).Select(g => new GpuSample { Index = g, Uuid = $"u{g}" }).ToArray() },
                LastSeen = Now - TimeSpan.FromMilliseconds(random.Next(0, 5000)),
                KnownGpus = Enumerable.Range(0, gpus).ToArray(),
            };
            Assert.Null(NodeHealth.SpareProblem(good, Now, MaxAge));
            var victim = random.Next(gpus);
            NodeFacts bad = random.Next(6) switch
            {
                0 => good with { LastSeen = Now - MaxAge - TimeSpan.FromMilliseconds(random.Next(1, 60_000)) },
                1 => WithGpus(good, gs => gs.Select(g => g.Index == victim ? g with { Lost = true } : g).ToArray()),
                2 => WithGpus(good, gs => gs.Where(g => g.Index != victim).ToArray()),
                3 => WithCondition(good, "xid_critical", victim, ConditionStatus.True),
                4 => good with { OpenIncidents = [$"inc-{i}"] },
                _ => good with { Latest = null },
            };
            Assert.NotNull(NodeHealth.SpareProblem(bad, Now, MaxAge));
        }
    }

    public static TheoryData<string, MuteMatcher[], string, bool> MaintenanceCases() => new()
    {
        { "exact node", [new MuteMatcher("node", "gpu-7")], "gpu-7", true },
        { "other node", [new MuteMatcher("node", "gpu-8")], "gpu-7", false },
        { "regex over a rack", [new MuteMatcher("node", "gpu-[0-9]+", IsRegex: true)], "gpu-7", true },
        { "regex is anchored", [new MuteMatcher("node", "gpu", IsRegex: true)], "gpu-7", false },
        { "negated node", [new MuteMatcher("node", "gpu-7", IsEqual: false)], "gpu-7", false },
        { "category only is not a node window", [new MuteMatcher("category", "thermal_.*", IsRegex: true)], "gpu-7", false },
        { "node and category", [new MuteMatcher("node", "gpu-7"), new MuteMatcher("category", "x")], "gpu-7", true },
    };

    [Theory]
    [MemberData(nameof(MaintenanceCases))]
    public void MaintenanceWindow_CoversANodeOnlyThroughNodeMatchers(string name, MuteMatcher[] matchers, string node, bool expected)
    {
        var window = new Mute("mnt-1", MuteKind.Maintenance, matchers, Now.AddHours(-1), Now.AddHours(1), "ops", Now.AddHours(-2), name);
        Assert.Equal(expected, NodeHealth.Covers(window, node));
    }

    [Theory]
    [InlineData(0UL, new int[0])]
    [InlineData(0b1011UL, new[] { 0, 1, 3 })]
    [InlineData(0xFFUL, new[] { 0, 1, 2, 3, 4, 5, 6, 7 })]
    [InlineData(1UL << 63, new[] { 63 })]
    public void Indexes_OfTheInventoryMask(ulong mask, int[] expected) => Assert.Equal(expected, NodeHealth.Indexes(mask));
}
