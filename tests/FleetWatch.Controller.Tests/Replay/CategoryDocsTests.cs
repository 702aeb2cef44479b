using System.Text.Json;
using System.Text.RegularExpressions;
using FleetWatch.Controller.Detection;

namespace FleetWatch.Controller.Tests.Replay;

/// <summary>Every category and action FleetWatch emits is documented in docs/categories.md.</summary>
public sealed partial class CategoryDocsTests
{
    [Fact]
    public void Every_xid_catalogue_category_and_action_is_documented()
    {
        var documented = Documented();
        foreach (var rule in XidCatalog.LoadEmbedded().Rules)
        {
            Assert.True(documented.Contains(rule.Category), $"category '{rule.Category}' ({rule.Rule}) is not in docs/categories.md");
            Assert.True(documented.Contains(rule.Action), $"action '{rule.Action}' ({rule.Rule}) is not in docs/categories.md");
        }
    }

    [Fact]
    public void Every_sample_rule_category_and_action_is_documented()
    {
        // The detector source is the list of what it can emit: every "category", "action" literal pair in it.
        var folder = Path.Combine(RepoPaths.Root, "controller", "FleetWatch.Controller", "Detection");
        var source = string.Concat(Directory.GetFiles(folder, "*.cs").Order(StringComparer.Ordinal).Select(File.ReadAllText));
        var documented = Documented();
        var pairs = SeverityCategoryAction().Matches(source);
        Assert.True(pairs.Count >= 15, $"found only {pairs.Count} category/action pairs in the detectors");
        foreach (Match m in pairs)
        {
            Assert.True(documented.Contains(m.Groups[1].Value), $"category '{m.Groups[1].Value}' is not in docs/categories.md");
            Assert.True(documented.Contains(m.Groups[2].Value), $"action '{m.Groups[2].Value}' is not in docs/categories.md");
        }
    }

    /// <summary>Checks the categories and actions of replay report incidents.</summary>
    internal static void AssertDocumented(IEnumerable<JsonElement> incidents)
    {
        var documented = Documented();
        foreach (var i in incidents)
        {
            Assert.Contains(i.GetProperty("category").GetString()!, documented);
            Assert.Contains(i.GetProperty("action").GetString()!, documented);
        }
    }

    /// <summary>Names in the first column of the docs tables, as `name`.</summary>
    private static HashSet<string> Documented()
    {
        var path = Path.Combine(RepoPaths.Root, "docs", "categories.md");
        Assert.True(File.Exists(path), $"{path} is missing");
        return [.. DocumentedName().Matches(File.ReadAllText(path)).Select(m => m.Groups[1].Value)];
    }

    [GeneratedRegex(@"^\|\s*`([a-z0-9_]+)`", RegexOptions.Multiline)]
    private static partial Regex DocumentedName();

    // Severity.X, "category", "action" (the action may follow "cond ? ") in a Finding constructor or an Add(...) call of the detectors.
    [GeneratedRegex(@"(?:Severity\.\w+(?:\s*:\s*Severity\.\w+)?|severity),\s*""([a-z0-9_]+)"",\s*(?:\w+ \? )?""([a-z0-9_]+)""")]
    private static partial Regex SeverityCategoryAction();
}
