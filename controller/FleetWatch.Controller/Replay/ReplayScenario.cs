using System.Collections.Frozen;
using System.Globalization;
using System.Text.Json;

namespace FleetWatch.Controller.Replay;

/// <summary>The simulated fleet of a scenario (FORMATS.md section 4).</summary>
public sealed record ReplayFleetSpec(int Nodes, int GpusPerNode, int NvLinksPerGpu, int IbPortsPerNode, double TickSeconds);

/// <summary>One injected fault; fields that do not apply to its kind are null. <see cref="Index"/> is its place in <c>faults</c>.</summary>
public sealed record ReplayFault
{
    public required int Index { get; init; }
    public required double AtSeconds { get; init; }
    public required int Node { get; init; }
    public required string Kind { get; init; }
    public int? Gpu { get; init; }
    public double? ForSeconds { get; init; }
    public int? Xid { get; init; }
    public double? PerSecond { get; init; }
    public int? Link { get; init; }
    public int? Port { get; init; }
    public string? Counter { get; init; }
    public int? Count { get; init; }
    public int? TemperatureC { get; init; }

    /// <summary>True at <paramref name="seconds"/> when the fault has started and its <c>for_s</c> (if any) has not run out.</summary>
    public bool ActiveAt(double seconds) => seconds >= AtSeconds && (ForSeconds is not { } f || seconds < AtSeconds + f);
}

/// <summary>A replay scenario: fleet, duration, seed and faults, validated against the vocabulary of FORMATS.md section 4.</summary>
public sealed record ReplayScenario(ReplayFleetSpec Fleet, double DurationSeconds, int Seed, IReadOnlyList<ReplayFault> Faults)
{
    /// <summary>The fault kinds and, for each, the fields it requires beyond at_s, node, kind and the optional for_s.</summary>
    public static readonly FrozenDictionary<string, string[]> Kinds = new Dictionary<string, string[]>
    {
        ["xid"] = ["gpu", "xid"],
        ["ecc_dbe"] = ["gpu"],
        ["ecc_sbe"] = ["gpu", "per_s"],
        ["row_remap_failure"] = ["gpu"],
        ["row_remap_pending"] = ["gpu"],
        ["retired_pages"] = ["gpu", "count"],
        ["over_temperature"] = ["gpu", "temp_c"],
        ["hw_slowdown"] = ["gpu"],
        ["power_cap"] = ["gpu"],
        ["nvlink_errors"] = ["gpu", "link", "counter", "per_s"],
        ["nvlink_down"] = ["gpu", "link"],
        ["ib_link_down"] = ["port"],
        ["ib_errors"] = ["port", "counter", "per_s"],
        ["pcie_replay"] = ["gpu", "per_s"],
        ["gpu_lost"] = ["gpu"],
        ["node_silent"] = [],
    }.ToFrozenDictionary(StringComparer.Ordinal);

    /// <summary>NVLink error counters a fault may drive (NVML nvmlNvLinkErrorCounter_t DL_CRC_FLIT/DATA, DL_REPLAY/RECOVERY).</summary>
    public static readonly FrozenSet<string> NvLinkCounters = FrozenSet.ToFrozenSet(["crc_flit", "crc_data", "replay", "recovery"], StringComparer.Ordinal);

    /// <summary>
    /// InfiniBand sysfs counters (ports/N/counters/, kernel sysfs-class-infiniband ABI) with their widths in bits:
    /// PortCounters saturate at all-ones instead of wrapping (research/straggler-restore-anchors.md section 1.3).
    /// </summary>
    public static readonly FrozenDictionary<string, int> IbCounterWidths = FleetWatch.Common.IbErrorCounterWidths.Bits
        .Concat(new Dictionary<string, int>
        {
            // The simulated fleet has extended (64-bit) data and packet counters, like ConnectX-7.
            ["port_xmit_data"] = 64,
            ["port_rcv_data"] = 64,
            ["port_xmit_packets"] = 64,
            ["port_rcv_packets"] = 64,
        })
        .ToFrozenDictionary(StringComparer.Ordinal);

    private static readonly FrozenSet<string> AllFields = FrozenSet.ToFrozenSet(Kinds.Values.SelectMany(f => f), StringComparer.Ordinal);
    private static readonly FrozenSet<string> CommonFields = FrozenSet.ToFrozenSet(["at_s", "node", "kind", "for_s"], StringComparer.Ordinal);
    private static readonly FrozenSet<string> FleetFields = FrozenSet.ToFrozenSet(["nodes", "gpus_per_node", "nvlinks_per_gpu", "ib_ports_per_node", "tick_s"], StringComparer.Ordinal);
    private static readonly FrozenSet<string> TopFields = FrozenSet.ToFrozenSet(["fleet", "duration_s", "seed", "faults"], StringComparer.Ordinal);

    /// <summary>Parses and validates a scenario; a problem throws <see cref="ScenarioException"/> naming the field (and the fault's index).</summary>
    public static ReplayScenario Parse(string json)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new ScenarioException($"not valid JSON: {e.Message}");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new ScenarioException("the scenario must be a JSON object");
            }

            Unknown(root, TopFields, "scenario");
            var fleetElement = Required(root, "fleet", "scenario");
            if (fleetElement.ValueKind != JsonValueKind.Object)
            {
                throw new ScenarioException("fleet must be an object");
            }

            Unknown(fleetElement, FleetFields, "fleet");
            var fleet = new ReplayFleetSpec(
                Int(fleetElement, "nodes", "fleet", 1, 100_000) ?? throw Missing("fleet", "nodes"),
                Int(fleetElement, "gpus_per_node", "fleet", 1, 64) ?? throw Missing("fleet", "gpus_per_node"),
                Int(fleetElement, "nvlinks_per_gpu", "fleet", 0, 64) ?? 0,
                Int(fleetElement, "ib_ports_per_node", "fleet", 0, 64) ?? 0,
                Number(fleetElement, "tick_s", "fleet", 0.1, 3600) ?? 1);
            var duration = Number(root, "duration_s", "scenario", 0, 30 * 86_400) ?? throw Missing("scenario", "duration_s");
            var seed = Int(root, "seed", "scenario", int.MinValue, int.MaxValue) ?? 0;
            var faultsElement = Required(root, "faults", "scenario");
            if (faultsElement.ValueKind != JsonValueKind.Array)
            {
                throw new ScenarioException("faults must be an array");
            }

            var faults = new List<ReplayFault>();
            var index = 0;
            foreach (var f in faultsElement.EnumerateArray())
            {
                faults.Add(ParseFault(f, index++, fleet, duration));
            }

            return new ReplayScenario(fleet, duration, seed, faults);
        }
    }

    private static ReplayFault ParseFault(JsonElement f, int index, ReplayFleetSpec fleet, double duration)
    {
        var where = $"faults[{index}]";
        if (f.ValueKind != JsonValueKind.Object)
        {
            throw new ScenarioException($"{where}: must be an object");
        }

        var kindElement = Required(f, "kind", where);
        var kind = kindElement.ValueKind == JsonValueKind.String ? kindElement.GetString()! : throw new ScenarioException($"{where}: kind must be a string");
        if (!Kinds.TryGetValue(kind, out var fields))
        {
            throw new ScenarioException($"{where}: unknown kind '{kind}' (known: {string.Join(", ", Kinds.Keys.Order(StringComparer.Ordinal))})");
        }

        foreach (var property in f.EnumerateObject())
        {
            // A field of another kind is tolerated only as an explicit null ("gpu": null on a node-level fault).
            var applies = CommonFields.Contains(property.Name) || Array.IndexOf(fields, property.Name) >= 0;
            if (!applies && !(property.Value.ValueKind == JsonValueKind.Null && AllFields.Contains(property.Name)))
            {
                throw new ScenarioException($"{where}: field '{property.Name}' is not known for kind '{kind}'");
            }
        }

        foreach (var field in fields)
        {
            if (!f.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null)
            {
                throw new ScenarioException($"{where}: kind '{kind}' needs field '{field}'");
            }
        }

        var counter = f.TryGetProperty("counter", out var c) ? (c.ValueKind == JsonValueKind.String ? c.GetString() : throw new ScenarioException($"{where}: counter must be a string")) : null;
        if (counter is not null)
        {
            var known = kind == "nvlink_errors" ? NvLinkCounters.Contains(counter) : IbCounterWidths.ContainsKey(counter);
            if (!known)
            {
                throw new ScenarioException($"{where}: unknown {(kind == "nvlink_errors" ? "NVLink" : "InfiniBand")} counter '{counter}'");
            }
        }

        return new ReplayFault
        {
            Index = index,
            AtSeconds = Number(f, "at_s", where, 0, duration) ?? throw Missing(where, "at_s"),
            Node = Int(f, "node", where, 0, fleet.Nodes - 1) ?? throw Missing(where, "node"),
            Kind = kind,
            Gpu = Int(f, "gpu", where, 0, fleet.GpusPerNode - 1),
            ForSeconds = Number(f, "for_s", where, 0.000_001, 30 * 86_400),
            Xid = Int(f, "xid", where, 0, 100_000),
            PerSecond = Number(f, "per_s", where, 0, 1e9),
            Link = Int(f, "link", where, 0, fleet.NvLinksPerGpu - 1),
            Port = Int(f, "port", where, 0, fleet.IbPortsPerNode - 1),
            Counter = counter,
            Count = Int(f, "count", where, 0, 1_000_000),
            TemperatureC = Int(f, "temp_c", where, -50, 200),
        };
    }

    private static void Unknown(JsonElement element, FrozenSet<string> allowed, string where)
    {
        foreach (var property in element.EnumerateObject())
        {
            if (!allowed.Contains(property.Name))
            {
                throw new ScenarioException($"{where}: unknown field '{property.Name}'");
            }
        }
    }

    private static JsonElement Required(JsonElement element, string name, string where) =>
        element.TryGetProperty(name, out var value) ? value : throw Missing(where, name);

    private static ScenarioException Missing(string where, string name) => new($"{where}: field '{name}' is required");

    private static double? Number(JsonElement element, string name, string where, double min, double max)
    {
        if (!element.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out var d) || !double.IsFinite(d))
        {
            throw new ScenarioException($"{where}: {name} must be a number");
        }

        return d < min || d > max
            ? throw new ScenarioException(string.Create(CultureInfo.InvariantCulture, $"{where}: {name} = {d} is outside [{min}, {max}]"))
            : d;
    }

    private static int? Int(JsonElement element, string name, string where, int min, int max)
    {
        if (!element.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out var i))
        {
            throw new ScenarioException($"{where}: {name} must be an integer");
        }

        return i < min || i > max
            ? throw new ScenarioException(string.Create(CultureInfo.InvariantCulture, $"{where}: {name} = {i} is outside [{min}, {max}]"))
            : i;
    }
}

/// <summary>A scenario that does not follow FORMATS.md section 4; the message names the field and the fault's index.</summary>
public sealed class ScenarioException(string message) : Exception(message);
