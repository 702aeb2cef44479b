namespace FleetWatch.Controller.Tests.Rebalancing;

/// <summary>
/// Test-only port of DeepSeek EPLB's placement (deepseek-ai/EPLB eplb.py at d52c72d, as described step by step in
/// research/eplb.md section 1): D'Hondt replication, LPT with exact cardinality, hierarchical when
/// num_groups % num_nodes == 0, else global. It yields GPU loads only, to score generated cases for which no
/// recorded EPLB result exists. A test checks it against EPLB's recorded results on the public cases.
/// </summary>
internal static class EplbReference
{
    /// <summary>Per-layer imbalance (max GPU load / mean) of EPLB's placement.</summary>
    public static double[] Imbalance(double[][] weight, int replicas, int groups, int nodes, int gpus)
    {
        if (groups % nodes != 0)
        {
            (groups, nodes) = (1, 1);
        }

        var result = new double[weight.Length];
        for (var l = 0; l < weight.Length; l++)
        {
            result[l] = Layer(weight[l], replicas, groups, nodes, gpus);
        }

        return result;
    }

    private static double Layer(double[] w, int replicas, int groups, int nodes, int gpus)
    {
        var experts = w.Length;
        var groupSize = experts / groups;
        var groupLoad = new double[groups];
        for (var e = 0; e < experts; e++)
        {
            groupLoad[e / groupSize] += w[e];
        }

        // Step 1: groups -> nodes (LPT with groups/nodes groups per node).
        var groupNode = Pack(groupLoad, nodes);
        var gpusPerNode = gpus / nodes;
        var slotsPerNode = replicas / nodes;
        var max = 0.0;
        for (var node = 0; node < nodes; node++)
        {
            // Node-local experts in meta-logical order: the node's groups by rank of arrival, experts in order.
            var local = new List<double>();
            foreach (var g in Enumerable.Range(0, groups).Where(g => groupNode.Pack[g] == node)
                         .OrderBy(g => groupNode.Rank[g]))
            {
                for (var e = g * groupSize; e < (g + 1) * groupSize; e++)
                {
                    local.Add(w[e]);
                }
            }

            // Step 2: D'Hondt inside the node; physical order = experts first, then replicas as created.
            var n = local.Count;
            var count = Enumerable.Repeat(1, n).ToArray();
            var phy = Enumerable.Range(0, n).ToList();
            for (var extra = slotsPerNode - n; extra > 0; extra--)
            {
                var best = 0;
                for (var e = 1; e < n; e++)
                {
                    if (local[e] / count[e] > local[best] / count[best])
                    {
                        best = e;
                    }
                }

                count[best]++;
                phy.Add(best);
            }

            // Step 3: replicas -> GPUs of the node (LPT with slots-per-GPU items each).
            var pieces = phy.Select(e => local[e] / count[e]).ToArray();
            var packed = Pack(pieces, gpusPerNode);
            var loads = new double[gpusPerNode];
            for (var i = 0; i < pieces.Length; i++)
            {
                loads[packed.Pack[i]] += pieces[i];
            }

            max = Math.Max(max, loads.Max());
        }

        var mean = w.Sum() / gpus;
        return mean > 0 ? max / mean : 1.0;
    }

    /// <summary>EPLB's balanced_packing: heaviest first to the lightest pack with room; identity at one per pack.</summary>
    private static (int[] Pack, int[] Rank) Pack(double[] items, int packs)
    {
        var perPack = items.Length / packs;
        var pack = new int[items.Length];
        var rank = new int[items.Length];
        if (perPack == 1)
        {
            for (var i = 0; i < items.Length; i++)
            {
                pack[i] = i;
            }

            return (pack, rank);
        }

        var order = Enumerable.Range(0, items.Length).OrderByDescending(i => (float)items[i]).ThenBy(i => i).ToArray();
        var weight = new double[packs];
        var fill = new int[packs];
        foreach (var i in order)
        {
            var best = -1;
            for (var p = 0; p < packs; p++)
            {
                if (fill[p] < perPack && (best < 0 || weight[p] < weight[best]))
                {
                    best = p;
                }
            }

            pack[i] = best;
            rank[i] = fill[best]++;
            weight[best] += items[i];
        }

        return (pack, rank);
    }
}
