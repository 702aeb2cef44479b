using System.Text;
using System.Text.Json;

namespace FleetWatch.Controller.Remediation.Rebalancing;

/// <summary>One case of <c>bench-data/eplb</c> (FORMATS.md section 3), reduced to what the planner needs.</summary>
public sealed record RebalanceCase(string Name, double[][] Weight, IReadOnlyList<ExpertGpu> Gpus, int NumGroups)
{
    /// <summary>
    /// Parses a case file. Returns null with a reason when the content is not a usable case (the caller skips and
    /// counts it; FORMATS.md: never crash on malformed content).
    /// </summary>
    public static RebalanceCase? Parse(string json, string fallbackName, out string? reason)
    {
        reason = null;
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            var name = root.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String
                ? n.GetString()!
                : fallbackName;
            var replicas = root.GetProperty("num_replicas").GetInt32();
            var gpus = root.GetProperty("num_gpus").GetInt32();
            var groups = root.TryGetProperty("num_groups", out var ng) ? ng.GetInt32() : 1;
            if (gpus <= 0 || replicas <= 0 || replicas % gpus != 0)
            {
                reason = $"num_replicas {replicas} does not split evenly over num_gpus {gpus}";
                return null;
            }

            var weight = new List<double[]>();
            foreach (var row in root.GetProperty("weight").EnumerateArray())
            {
                var values = new double[row.GetArrayLength()];
                var i = 0;
                foreach (var v in row.EnumerateArray())
                {
                    values[i++] = v.GetDouble();
                }

                weight.Add(values);
            }

            if (weight.Count == 0 || weight.Any(r => r.Length != weight[0].Length || r.Any(x => !(x >= 0))))
            {
                reason = "weight must be a non-empty rectangular table of non-negative numbers";
                return null;
            }

            var nodes = NodeOfGpu(root, gpus);
            var slotsPerGpu = replicas / gpus;
            var topology = new ExpertGpu[gpus];
            for (var g = 0; g < gpus; g++)
            {
                topology[g] = new ExpertGpu(nodes[g], slotsPerGpu, nodes[g]);
            }

            return new RebalanceCase(name, [.. weight], topology, groups);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            reason = $"not a rebalance case: {e.Message}";
            return null;
        }
    }

    /// <summary>Writes <c>{"phy2log": [[...], ...]}</c>, one layer per line.</summary>
    public static string FormatPhy2Log(int[][] phy2log)
    {
        var sb = new StringBuilder(phy2log.Length * ((phy2log.Length == 0 ? 0 : phy2log[0].Length * 4) + 4));
        sb.Append("{\"phy2log\":[\n");
        for (var l = 0; l < phy2log.Length; l++)
        {
            sb.Append('[').AppendJoin(',', phy2log[l]).Append(']');
            sb.Append(l + 1 < phy2log.Length ? ",\n" : "\n");
        }

        return sb.Append("]}\n").ToString();
    }

    private static int[] NodeOfGpu(JsonElement root, int gpus)
    {
        // gpus_per_node is the physical topology (uneven after a failure, e.g. 8,8,8,7); when it is absent or does
        // not add up, every GPU counts as its own node, which only matters for locality.
        var nodes = new int[gpus];
        if (root.TryGetProperty("gpus_per_node", out var gpn) && gpn.ValueKind == JsonValueKind.Array)
        {
            var counts = gpn.EnumerateArray().Select(x => x.GetInt32()).ToArray();
            if (counts.Sum() == gpus && counts.All(c => c >= 0))
            {
                var g = 0;
                for (var node = 0; node < counts.Length; node++)
                {
                    for (var k = 0; k < counts[node]; k++)
                    {
                        nodes[g++] = node;
                    }
                }

                return nodes;
            }
        }

        for (var g = 0; g < gpus; g++)
        {
            nodes[g] = g;
        }

        return nodes;
    }
}
