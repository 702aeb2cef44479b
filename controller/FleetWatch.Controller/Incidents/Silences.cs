using System.Text.RegularExpressions;
using FleetWatch.Contracts;

namespace FleetWatch.Controller.Incidents;

/// <summary>A silence is ad hoc ("stop paging me about n17"); a maintenance window is planned work on nodes. Both mute the same way.</summary>
public enum MuteKind
{
    Silence,
    Maintenance,
}

/// <summary>
/// One matcher, as in Alertmanager's silences: <c>name</c> is one of <see cref="MuteMatcher.Names"/>; <c>isEqual</c>
/// false negates it; <c>isRegex</c> matches the whole value against a regular expression.
/// </summary>
public sealed record MuteMatcher(string Name, string Value, bool IsRegex = false, bool IsEqual = true)
{
    /// <summary>The incident labels a matcher may name. Multi-valued labels (gpu, rule) match when any value does.</summary>
    public static IReadOnlyList<string> Names { get; } = ["node", "gpu", "rule", "category", "action", "severity", "groupKey"];
}

/// <summary>A silence or maintenance window: incidents matching every matcher between start and end are recorded but not notified.</summary>
public sealed record Mute(
    string Id,
    MuteKind Kind,
    IReadOnlyList<MuteMatcher> Matchers,
    DateTimeOffset StartsAt,
    DateTimeOffset EndsAt,
    string CreatedBy,
    DateTimeOffset CreatedAt,
    string? Comment)
{
    public bool ActiveAt(DateTimeOffset now) => StartsAt <= now && now < EndsAt;
}

/// <summary>A mute with its matchers compiled.</summary>
internal sealed class CompiledMute
{
    // A bounded match time: a pathological pattern from the API must not stall the incident lock.
    private static readonly TimeSpan RegexTimeout = TimeSpan.FromMilliseconds(50);
    private readonly (MuteMatcher Matcher, Regex? Regex)[] _matchers;

    public CompiledMute(Mute mute)
    {
        Mute = mute;
        _matchers = mute.Matchers.Select(m => (m, m.IsRegex ? Compile(m.Value) : null)).ToArray();
    }

    public Mute Mute { get; }

    /// <summary>Compiles an anchored pattern (Alertmanager anchors matcher regexes too); throws ArgumentException when invalid.</summary>
    public static Regex Compile(string pattern) => new($"^(?:{pattern})$", RegexOptions.CultureInvariant, RegexTimeout);

    public bool Matches(Incident incident)
    {
        foreach (var (matcher, regex) in _matchers)
        {
            var any = false;
            foreach (var value in Values(incident, matcher.Name))
            {
                if (regex is null ? string.Equals(value, matcher.Value, StringComparison.Ordinal) : SafeMatch(regex, value))
                {
                    any = true;
                    break;
                }
            }

            if (any != matcher.IsEqual)
            {
                return false;
            }
        }

        return true;
    }

    private static bool SafeMatch(Regex regex, string value)
    {
        try
        {
            return regex.IsMatch(value);
        }
        catch (RegexMatchTimeoutException)
        {
            return false;
        }
    }

    private static IEnumerable<string> Values(Incident incident, string name)
    {
        switch (name)
        {
            case "node":
                yield return incident.Node;
                break;
            case "gpu":
                foreach (var g in incident.Gpus)
                {
                    yield return g.ToString(System.Globalization.CultureInfo.InvariantCulture);
                }

                break;
            case "rule":
                foreach (var key in incident.Findings.Keys)
                {
                    yield return key.Rule;
                }

                break;
            case "category":
                yield return incident.Category;
                break;
            case "action":
                yield return incident.Action;
                break;
            case "severity":
                yield return SeverityName(incident.Severity);
                break;
            case "groupKey":
                yield return incident.GroupKey;
                break;
        }
    }

    public static string SeverityName(Severity s) => s switch
    {
        Severity.Info => "info",
        Severity.Warning => "warning",
        Severity.High => "high",
        _ => "critical",
    };
}
