using System.Text.RegularExpressions;
using FleetWatch.Contracts;

namespace FleetWatch.Controller.Alerting;

/// <summary>
/// Picks the receivers of one incident the way Alertmanager walks its child routes (research/dashboard-alerting-anchors.md
/// section 2.1): routes in order, the first match wins unless it has <c>continue</c>; nothing matched → the default
/// receivers. With no routes configured every receiver gets everything (the behaviour of the older Webhooks list).
/// Pure: built once from validated options.
/// </summary>
public sealed class AlertRouter
{
    private readonly IReadOnlyList<CompiledRoute> _routes;
    private readonly IReadOnlyList<string> _defaults;
    private readonly IReadOnlyList<string> _all;

    public AlertRouter(AlertingOptions options)
    {
        _all = options.AllReceivers().Select(r => r.Name).ToList();
        _defaults = options.DefaultReceivers.ToList();
        _routes = options.Routes.Select(r => new CompiledRoute(
            r.Receivers.ToList(),
            r.MinSeverity,
            r.Match.Select(m => (m.Key, new Regex($"^(?:{m.Value})$", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)))).ToList(),
            r.Continue)).ToList();
    }

    /// <summary>Receiver names for the incident, each once, in route order.</summary>
    public IReadOnlyList<string> Route(IncidentSnapshot incident)
    {
        if (_routes.Count == 0)
        {
            return _all;
        }

        var labels = AlertmanagerPayloadBuilder.Labels(incident);
        var result = new List<string>();
        var matched = false;
        foreach (var route in _routes)
        {
            if (!route.Matches(incident, labels))
            {
                continue;
            }

            matched = true;
            foreach (var name in route.Receivers)
            {
                if (!result.Contains(name, StringComparer.Ordinal))
                {
                    result.Add(name);
                }
            }

            if (!route.Continue)
            {
                break;
            }
        }

        return matched ? result : _defaults;
    }

    private sealed record CompiledRoute(IReadOnlyList<string> Receivers, Severity? MinSeverity, IReadOnlyList<(string Label, Regex Pattern)> Match, bool Continue)
    {
        public bool Matches(IncidentSnapshot incident, IReadOnlyDictionary<string, string> labels)
        {
            if (MinSeverity is { } min && incident.Severity < min)
            {
                return false;
            }

            foreach (var (label, pattern) in Match)
            {
                var ok = label == "rule"
                    ? incident.Findings.Any(f => pattern.IsMatch(f.Rule))
                    : pattern.IsMatch(labels.TryGetValue(label, out var value) ? value : ""); // a missing label is "" as in Alertmanager
                if (!ok)
                {
                    return false;
                }
            }

            return true;
        }
    }
}
