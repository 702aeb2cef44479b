using System.Collections.Frozen;
using System.Text.Json;
using System.Text.Json.Serialization;
using FleetWatch.Contracts;

namespace FleetWatch.Controller.Detection;

/// <summary>One row of the Xid table: what an Xid means and what to do (NVIDIA's buckets, research section 7).</summary>
public sealed record XidRule(Severity Severity, string Category, string Action, string Rule, string Description, bool AppClass);

/// <summary>
/// The Xid table, shipped as versioned data (node-problem-detector's "rules as data"): NVIDIA's buckets drift
/// between driver versions, so the table changes without a code change. An Xid not in the table is a warning
/// (rule 41), never silence.
/// </summary>
public sealed class XidCatalog
{
    private readonly FrozenDictionary<int, XidRule> _rules;

    private XidCatalog(string version, FrozenDictionary<int, XidRule> rules, XidRule unknown)
    {
        Version = version;
        _rules = rules;
        Unknown = unknown;
    }

    public string Version { get; }

    public XidRule Unknown { get; }

    public int Count => _rules.Count;

    /// <summary>Every distinct rule of the table, the unknown-Xid rule included (for documentation checks).</summary>
    public IEnumerable<XidRule> Rules => _rules.Values.Distinct().Append(Unknown);

    /// <summary>The rule for an Xid; <see cref="Unknown"/> for one the table does not know.</summary>
    public XidRule Lookup(int xid) => _rules.TryGetValue(xid, out var rule) ? rule : Unknown;

    public bool Knows(int xid) => _rules.ContainsKey(xid);

    /// <summary>The catalogue shipped inside the controller assembly.</summary>
    public static XidCatalog LoadEmbedded()
    {
        using var stream = typeof(XidCatalog).Assembly.GetManifestResourceStream("FleetWatch.Controller.Detection.Data.xid-catalog.v1.json")
            ?? throw new InvalidOperationException("embedded Xid catalogue xid-catalog.v1.json is missing from the controller assembly");
        return Load(stream, "embedded xid-catalog.v1.json");
    }

    /// <summary>Loads a catalogue file; a malformed one fails with the file and the offending entry named.</summary>
    public static XidCatalog Load(Stream json, string origin)
    {
        var file = JsonSerializer.Deserialize(json, CatalogJsonContext.Default.CatalogFile)
            ?? throw new InvalidDataException($"{origin}: empty Xid catalogue");
        if (string.IsNullOrWhiteSpace(file.Version))
        {
            throw new InvalidDataException($"{origin}: 'version' is required");
        }

        var rules = new Dictionary<int, XidRule>();
        for (var i = 0; i < file.Entries.Count; i++)
        {
            var e = file.Entries[i];
            var rule = ToRule(e, $"{origin}: entries[{i}]");
            foreach (var xid in e.Xids)
            {
                if (!rules.TryAdd(xid, rule))
                {
                    throw new InvalidDataException($"{origin}: entries[{i}]: Xid {xid} appears twice");
                }
            }
        }

        return new XidCatalog(file.Version, rules.ToFrozenDictionary(), ToRule(file.Unknown, $"{origin}: unknown"));
    }

    private static XidRule ToRule(CatalogEntry e, string where)
    {
        if (!Enum.TryParse<Severity>(e.Severity, ignoreCase: true, out var severity))
        {
            throw new InvalidDataException($"{where}: severity '{e.Severity}' is not one of info, warning, high, critical");
        }

        if (string.IsNullOrWhiteSpace(e.Category) || string.IsNullOrWhiteSpace(e.Action))
        {
            throw new InvalidDataException($"{where}: category and action are required");
        }

        return new XidRule(severity, e.Category, e.Action, e.Rule ?? "", e.Description ?? "", e.AppClass);
    }

    internal sealed class CatalogFile
    {
        public string Version { get; set; } = "";
        public CatalogEntry Unknown { get; set; } = new();
        public List<CatalogEntry> Entries { get; set; } = [];
    }

    internal sealed class CatalogEntry
    {
        public List<int> Xids { get; set; } = [];
        public string Severity { get; set; } = "";
        public string Category { get; set; } = "";
        public string Action { get; set; } = "";
        public string? Rule { get; set; }
        public string? Description { get; set; }
        public bool AppClass { get; set; }
    }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, ReadCommentHandling = JsonCommentHandling.Skip)]
[JsonSerializable(typeof(XidCatalog.CatalogFile))]
internal sealed partial class CatalogJsonContext : JsonSerializerContext;
