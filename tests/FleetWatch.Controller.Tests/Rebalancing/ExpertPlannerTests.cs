using FleetWatch.Controller.Remediation.Rebalancing;

namespace FleetWatch.Controller.Tests.Rebalancing;

/// <summary>Validity properties of <see cref="ExpertPlanner"/> over odd topologies (table-driven).</summary>
public sealed class ExpertPlannerTests
{
    /// <summary>name, experts, slots per GPU (one entry per GPU), nodes per GPU (null: one node), load kind.</summary>
    public static TheoryData<string, int, int[], int[]?, string> Topologies => new()
    {
        { "8,8,8,7 GPUs per node (one GPU lost)", 64, Repeat(31, 3), NodesOf(8, 8, 8, 7), "zipf" },
        { "one GPU", 16, [20], null, "hot" },
        { "one GPU, slots == experts", 16, [16], null, "zipf" },
        { "uneven slots (not divisible)", 30, [5, 4, 4, 5, 3, 4, 4, 3], null, "zipf" },
        { "more GPUs than experts", 4, Repeat(8, 1), null, "hot" },
        { "more GPUs than experts, 2 slots", 6, Repeat(10, 2), null, "zipf" },
        { "slots exceed experts x GPUs (duplicates unavoidable)", 2, Repeat(2, 4), null, "zipf" },
        { "no spare slots", 16, Repeat(8, 2), null, "hot" },
        { "all loads zero", 12, Repeat(4, 4), null, "zero" },
        { "single hot expert", 32, Repeat(8, 5), NodesOf(4, 4), "single" },
        { "a GPU with zero slots", 10, [4, 0, 4, 4], null, "zipf" },
        { "uniform loads", 64, Repeat(16, 5), NodesOf(8, 8), "uniform" },
    };

    [Theory]
    [MemberData(nameof(Topologies))]
    public void Plan_IsValid_AndReportsWhatItComputes(string name, int experts, int[] slots, int[]? nodes, string kind)
    {
        var gpus = slots.Select((s, g) => new ExpertGpu(nodes?[g] ?? 0, s)).ToArray();
        var loads = Loads(kind, layers: 6, experts, seed: name.Length);
        var plan = ExpertPlanner.Plan(new ExpertPlanRequest(loads, gpus));
        var total = slots.Sum();
        var duplicatesAvoidable = (long)experts * slots.Count(s => s > 0) >= total;
        for (var l = 0; l < loads.Length; l++)
        {
            var row = plan.Phy2Log[l];
            Assert.Equal(total, row.Length);
            Assert.All(row, e => Assert.InRange(e, 0, experts - 1));
            Assert.Equal(experts, row.Distinct().Count());
            if (duplicatesAvoidable)
            {
                Assert.Equal(0, plan.DuplicatesOnGpu[l]);
                var start = 0;
                foreach (var s in slots)
                {
                    Assert.Equal(s, row.Skip(start).Take(s).Distinct().Count());
                    start += s;
                }
            }

            var recomputed = RebalanceTestKit.Imbalance(loads[l], row, slots);
            Assert.Equal(recomputed, plan.Imbalance[l], 9);
            Assert.True(plan.Imbalance[l] >= plan.LowerBound[l] - 1e-9, $"{name} layer {l}: below the bound");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Plan_RandomTopologiesAndCurrentPlacements_StayValid(int seed)
    {
        // Property check over 60 random instances per seed: uneven slots, speeds, zero loads, and current
        // placements with holes (-1), bad ids and duplicates.
        var rng = new Random(seed);
        for (var instance = 0; instance < 60; instance++)
        {
            var experts = rng.Next(1, 40);
            var gpuCount = rng.Next(1, 12);
            var slots = Enumerable.Range(0, gpuCount).Select(_ => rng.Next(0, 7)).ToArray();
            if (slots.Sum() < experts)
            {
                slots[rng.Next(gpuCount)] += experts - slots.Sum();
            }

            var gpus = slots.Select((s, g) => new ExpertGpu(g % 3, s, Speed: rng.Next(4) == 0 ? 0.5 : 1.0)).ToArray();
            var loads = Enumerable.Range(0, 3).Select(_ => Enumerable.Range(0, experts)
                .Select(_ => rng.Next(4) == 0 ? 0.0 : Math.Round(Math.Exp(3 * rng.NextDouble()) * 100)).ToArray()).ToArray();
            var total = slots.Sum();
            var current = loads.Select(_ => Enumerable.Range(0, total).Select(_ => rng.Next(-2, experts + 2)).ToArray()).ToArray();
            var budget = rng.Next(3) == 0 ? (int?)rng.Next(0, 5) : null;
            foreach (var plan in new[]
            {
                ExpertPlanner.Plan(new ExpertPlanRequest(loads, gpus)),
                ExpertPlanner.Plan(new ExpertPlanRequest(loads, gpus, current), new ExpertPlannerOptions { MaxWeightMovesPerLayer = budget }),
            })
            {
                for (var l = 0; l < loads.Length; l++)
                {
                    var row = plan.Phy2Log[l];
                    Assert.Equal(total, row.Length);
                    Assert.All(row, e => Assert.InRange(e, 0, experts - 1));
                    Assert.Equal(experts, row.Distinct().Count());
                    var start = 0;
                    foreach (var s in slots)
                    {
                        // Unless slots outnumber experts x GPUs (duplicates then unavoidable overall), a GPU holds an
                        // expert twice only if it has more slots than there are experts.
                        if ((long)experts * slots.Count(x => x > 0) >= total)
                        {
                            Assert.Equal(Math.Min(s, experts), row.Skip(start).Take(s).Distinct().Count());
                        }

                        start += s;
                    }

                    Assert.Equal(RebalanceTestKit.Imbalance(loads[l], row, slots, gpus.Select(g => g.Speed).ToArray()), plan.Imbalance[l], 9);
                }
            }
        }
    }

    [Fact]
    public void Plan_SplitsASingleHotExpertOverManyGpus()
    {
        // One expert carries half the tokens: it needs about half the GPUs' worth of replicas to balance.
        var loads = Loads("single", layers: 1, experts: 32, seed: 1);
        var gpus = Enumerable.Range(0, 8).Select(g => new ExpertGpu(g / 4, 6)).ToArray();
        var plan = ExpertPlanner.Plan(new ExpertPlanRequest(loads, gpus));
        Assert.True(plan.Phy2Log[0].Count(e => e == 0) >= 4);
        Assert.True(plan.Imbalance[0] < 1.05, $"imbalance {plan.Imbalance[0]}");
    }

    [Fact]
    public void Plan_GivesASlowGpuLessLoad()
    {
        var loads = Loads("uniform", layers: 2, experts: 64, seed: 3);
        var gpus = Enumerable.Range(0, 8).Select(g => new ExpertGpu(0, 10, Speed: g == 3 ? 0.5 : 1.0)).ToArray();
        var plan = ExpertPlanner.Plan(new ExpertPlanRequest(loads, gpus));
        for (var l = 0; l < loads.Length; l++)
        {
            var speeds = gpus.Select(g => g.Speed).ToArray();
            Assert.Equal(RebalanceTestKit.Imbalance(loads[l], plan.Phy2Log[l], gpus.Select(g => g.Slots).ToArray(), speeds), plan.Imbalance[l], 9);

            // Raw tokens per GPU: the half-speed GPU must carry clearly less than the others' average. (Its 10 slots
            // must hold 10 pieces, so reaching exactly half needs small pieces; the imbalance reports the rest.)
            var count = new int[64];
            foreach (var e in plan.Phy2Log[l])
            {
                count[e]++;
            }

            var raw = Enumerable.Range(0, 8).Select(g => plan.Phy2Log[l].Skip(g * 10).Take(10).Sum(e => loads[l][e] / count[e])).ToArray();
            var others = raw.Where((_, g) => g != 3).Average();
            Assert.True(raw[3] < 0.6 * others, $"layer {l}: slow GPU {raw[3]:F0} vs others {others:F0}");
            Assert.True(plan.Imbalance[l] < 1.1, $"layer {l}: {plan.Imbalance[l]}");
        }
    }

    [Fact]
    public void Plan_PreferGroupNode_KeepsGroupsHome_ForALittleBalance()
    {
        // 64 experts in 8 groups on 4 nodes x 4 GPUs: a soft preference, never EPLB's hard node confinement.
        var loads = Loads("zipf", layers: 4, experts: 64, seed: 21);
        var gpus = Enumerable.Range(0, 16).Select(g => new ExpertGpu(g / 4, 5)).ToArray();
        var flat = ExpertPlanner.Plan(new ExpertPlanRequest(loads, gpus));
        var local = ExpertPlanner.Plan(
            new ExpertPlanRequest(loads, gpus),
            new ExpertPlannerOptions { Locality = ExpertLocality.PreferGroupNode, ExpertGroups = 8, LocalityTolerance = 0.02 });
        var flatShare = ExpertPlanner.Plan(
            new ExpertPlanRequest(loads, gpus),
            new ExpertPlannerOptions { Locality = ExpertLocality.PreferGroupNode, ExpertGroups = 8, LocalityTolerance = 0 });
        Assert.True(local.HomeNodeShare.Average() > flatShare.HomeNodeShare.Average() + 0.2,
            $"home share {local.HomeNodeShare.Average():F2} vs {flatShare.HomeNodeShare.Average():F2} without tolerance");
        Assert.True(local.MeanImbalance <= flat.MeanImbalance + 0.1, $"{local.MeanImbalance} vs {flat.MeanImbalance}");
        Assert.All(local.Phy2Log, row => Assert.Equal(64, row.Distinct().Count()));
    }

    [Fact]
    public void Plan_IsDeterministic()
    {
        var loads = Loads("zipf", layers: 4, experts: 64, seed: 9);
        var gpus = Enumerable.Range(0, 15).Select(g => new ExpertGpu(g / 8, 5)).ToArray();
        var a = ExpertPlanner.Plan(new ExpertPlanRequest(loads, gpus));
        var b = ExpertPlanner.Plan(new ExpertPlanRequest(loads, gpus));
        Assert.Equal(a.Phy2Log, b.Phy2Log);
    }

    [Theory]
    [InlineData(16, 3, 5, "needs at least 6 slots per GPU on 3 GPUs")]
    [InlineData(8, 0, 4, "needs at least 8 slots per GPU on 0 GPUs")]
    public void Plan_RefusesTooFewSlots_WithWhatWouldFit(int experts, int gpuCount, int slots, string message)
    {
        var gpus = Enumerable.Range(0, Math.Max(gpuCount, 1)).Select(_ => new ExpertGpu(0, gpuCount == 0 ? 0 : slots)).ToArray();
        var e = Assert.Throws<ArgumentException>(() => ExpertPlanner.Plan(new ExpertPlanRequest([new double[experts]], gpus)));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Plan_WithCurrentPlacement_KeepsSurvivorsAndRestoresLostExperts()
    {
        var loads = Loads("zipf", layers: 3, experts: 64, seed: 5);
        var healthy = Enumerable.Range(0, 16).Select(g => new ExpertGpu(g / 8, 5)).ToArray();
        var balanced = ExpertPlanner.Plan(new ExpertPlanRequest(loads, healthy));
        var survivors = healthy.Take(15).ToArray();
        var current = balanced.Phy2Log.Select(r => r.Take(75).ToArray()).ToArray();
        var fresh = ExpertPlanner.Plan(new ExpertPlanRequest(loads, survivors));
        var repair = ExpertPlanner.Plan(new ExpertPlanRequest(loads, survivors, current), new ExpertPlannerOptions { MaxWeightMovesPerLayer = 0 });
        var tuned = ExpertPlanner.Plan(new ExpertPlanRequest(loads, survivors, current));
        for (var l = 0; l < loads.Length; l++)
        {
            // Budget 0: only experts whose every replica sat on the lost GPU are copied (at most its 5 slots).
            var orphans = balanced.Phy2Log[l].Skip(75).Distinct().Count(e => !current[l].Contains(e));
            Assert.Equal(64, repair.Phy2Log[l].Distinct().Count());
            Assert.InRange(repair.WeightMoves[l], orphans, orphans);
            Assert.Equal(64, tuned.Phy2Log[l].Distinct().Count());
            Assert.True(tuned.Imbalance[l] <= fresh.Imbalance[l] + 0.005 + 1e-9, $"layer {l}: {tuned.Imbalance[l]} vs {fresh.Imbalance[l]}");
            Assert.True(tuned.WeightMoves[l] < Moves(current[l], fresh.Phy2Log[l], 5), $"layer {l}: no fewer moves than a fresh plan");
            if (orphans > 0)
            {
                Assert.Equal(double.PositiveInfinity, tuned.ImbalanceBefore![l]);
            }
        }
    }

    internal static int Moves(int[] current, int[] plan, int slotsPerGpu)
    {
        var moves = 0;
        for (var j = 0; j < plan.Length; j++)
        {
            var g = j / slotsPerGpu;
            moves += current.Skip(g * slotsPerGpu).Take(slotsPerGpu).Contains(plan[j]) ? 0 : 1;
        }

        return moves;
    }

    internal static double[][] Loads(string kind, int layers, int experts, int seed)
    {
        var rng = new Random(seed);
        var result = new double[layers][];
        for (var l = 0; l < layers; l++)
        {
            var w = new double[experts];
            var perm = Enumerable.Range(1, experts).OrderBy(_ => rng.Next()).ToArray();
            for (var e = 0; e < experts; e++)
            {
                w[e] = kind switch
                {
                    "zipf" => Math.Round(100_000 * Math.Pow(perm[e], -1.1) * (0.85 + (0.3 * rng.NextDouble()))),
                    "hot" => Math.Round(1000 * (0.8 + (0.4 * rng.NextDouble())) * (perm[e] == 1 ? 12 : 1)),
                    "uniform" => Math.Round(1000 * (0.95 + (0.1 * rng.NextDouble()))),
                    "single" => e == 0 ? 31_000 : 1000,
                    _ => 0,
                };
            }

            result[l] = w;
        }

        return result;
    }

    private static int[] Repeat(int gpus, int slots) => Enumerable.Repeat(slots, gpus).ToArray();

    private static int[] NodesOf(params int[] gpusPerNode) =>
        gpusPerNode.SelectMany((n, node) => Enumerable.Repeat(node, n)).ToArray();
}
