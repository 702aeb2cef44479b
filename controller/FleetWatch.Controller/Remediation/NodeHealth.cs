using System.Globalization;
using System.Numerics;
using System.Text.RegularExpressions;
using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Fleet;
using FleetWatch.Controller.Incidents;
using Microsoft.Extensions.DependencyInjection;

namespace FleetWatch.Controller.Remediation;

/// <summary>
/// What the controller knows about one node now, gathered from its fleet state, detectors, incidents, maintenance
/// windows and cordons. A null member is "no data": the checks read it as not healthy (STYLE.md rule 11).
/// </summary>
public sealed record NodeFacts
{
    public required string Node { get; init; }

    /// <summary>The newest accepted sample; null: the controller has none.</summary>
    public NodeSample? Latest { get; init; }

    /// <summary>When <see cref="Latest"/> arrived.</summary>
    public DateTimeOffset? LastSeen { get; init; }

    /// <summary>GPU indexes the node has reported since the controller started (the detectors' inventory): one absent now is missing.</summary>
    public IReadOnlyCollection<int> KnownGpus { get; init; } = [];

    /// <summary>Since when the node reports without a gap of the detectors' NodeUnknownAfter.</summary>
    public DateTimeOffset? ReportingSince { get; init; }

    /// <summary>The detectors' conditions of the node (node_silent first); null: no detector state.</summary>
    public IReadOnlyList<DetectionCondition>? Conditions { get; init; }

    /// <summary>Ids of open incidents on the node; null: the incident manager is not known to this process.</summary>
    public IReadOnlyList<string>? OpenIncidents { get; init; }

    public CordonRecord? Cordon { get; init; }

    /// <summary>Id of an active maintenance window that covers the node, if any.</summary>
    public string? Maintenance { get; init; }
}

/// <summary>Whether a node is healthy now, and whether a spare may be used. Pure functions of <see cref="NodeFacts"/>.</summary>
public static class NodeHealth
{
    /// <summary>
    /// Null when the node is healthy now: a sample no older than <paramref name="maxSampleAge"/>, every GPU it ever
    /// reported present and not lost, no True condition, node_silent False, no open incident, no maintenance window.
    /// Otherwise the first reason it is not.
    /// </summary>
    public static string? Problem(NodeFacts facts, DateTimeOffset now, TimeSpan maxSampleAge)
    {
        ArgumentNullException.ThrowIfNull(facts);
        if (facts.Maintenance is { } window)
        {
            return $"in maintenance window {window}";
        }

        if (facts.Latest is not { } sample || facts.LastSeen is not { } seen)
        {
            return "no sample from the node (no data is not healthy)";
        }

        if (now - seen > maxSampleAge)
        {
            return string.Create(CultureInfo.InvariantCulture, $"newest sample is {(now - seen).TotalSeconds:0.#} s old (limit {maxSampleAge.TotalSeconds:0.#} s)");
        }

        if (sample.GpuSourceError is { } error)
        {
            return $"GPU source error: {error}";
        }

        if (sample.Gpus.Count == 0)
        {
            return "the newest sample reports no GPU";
        }

        if (sample.Gpus.FirstOrDefault(g => g.Lost) is { } lost)
        {
            return string.Create(CultureInfo.InvariantCulture, $"GPU {lost.Index} lost (off the bus)");
        }

        var present = sample.Gpus.Select(g => g.Index).ToHashSet();
        if (facts.KnownGpus.Where(g => !present.Contains(g)).Order().ToArray() is [_, ..] missing)
        {
            return $"GPU {string.Join(", ", missing)} missing from the newest sample";
        }

        if (facts.Conditions is not { } conditions)
        {
            return "no detector conditions for the node (unknown)";
        }

        if (conditions.FirstOrDefault(c => c.Rule == "node_silent") is { Status: not ConditionStatus.False } silent)
        {
            return $"node_silent is {silent.Status}";
        }

        var raised = conditions.Where(c => c.Status == ConditionStatus.True).ToArray();
        if (raised.Length > 0)
        {
            var first = raised[0];
            return $"condition {first.Rule} True" + (first.Gpu is { } g ? string.Create(CultureInfo.InvariantCulture, $" on GPU {g}") : "")
                + (raised.Length > 1 ? string.Create(CultureInfo.InvariantCulture, $" (and {raised.Length - 1} more)") : "");
        }

        if (facts.OpenIncidents is not { } incidents)
        {
            return "open incidents unknown";
        }

        return incidents.Count > 0 ? $"open incident {string.Join(", ", incidents)}" : null;
    }

    /// <summary>
    /// Null when <paramref name="facts"/>' node may replace a failed one now (section 5.4 step 4: self-check the spare before
    /// admitting it): healthy (<see cref="Problem"/>) and not cordoned. Otherwise why not.
    /// </summary>
    public static string? SpareProblem(NodeFacts facts, DateTimeOffset now, TimeSpan maxSampleAge)
    {
        ArgumentNullException.ThrowIfNull(facts);
        return facts.Cordon is { } cordon ? $"cordoned by {cordon.Operator}: {cordon.Reason}" : Problem(facts, now, maxSampleAge);
    }

    /// <summary>
    /// Whether a maintenance window is about <paramref name="node"/>: it has a node matcher and every node matcher accepts
    /// the node (a window on a category alone mutes pages fleet-wide; it does not put nodes in maintenance).
    /// </summary>
    public static bool Covers(Mute window, string node)
    {
        ArgumentNullException.ThrowIfNull(window);
        var matchers = window.Matchers.Where(m => m.Name == "node").ToArray();
        return matchers.Length > 0 && matchers.All(m => Accepts(m, node) == m.IsEqual);
    }

    /// <summary>GPU indexes set in the detectors' inventory bit mask.</summary>
    public static int[] Indexes(ulong mask)
    {
        var result = new int[BitOperations.PopCount(mask)];
        for (var (i, k) = (0, 0); mask != 0; i++, mask >>= 1)
        {
            if ((mask & 1) != 0)
            {
                result[k++] = i;
            }
        }

        return result;
    }

    private static bool Accepts(MuteMatcher matcher, string node)
    {
        if (!matcher.IsRegex)
        {
            return string.Equals(matcher.Value, node, StringComparison.Ordinal);
        }

        try
        {
            return CompiledMute.Compile(matcher.Value).IsMatch(node);
        }
        catch (Exception ex) when (ex is ArgumentException or RegexMatchTimeoutException)
        {
            // A pattern that cannot be evaluated covers the node: doubt keeps a node out of service, never puts it in.
            return matcher.IsEqual;
        }
    }
}

/// <summary>
/// Gathers <see cref="NodeFacts"/> from the controller's fleet state, detection engine and incident manager when this
/// process has them (a remediation-only host has none: every node is then "no data", so not usable).
/// </summary>
public sealed class NodeFactsSource(RemediationStore store, IServiceProvider services, TimeProvider time)
{
    /// <summary>One consistent read of cordons, open incidents and maintenance windows, for many nodes.</summary>
    public NodeFactsView Snapshot()
    {
        var now = time.GetUtcNow();
        var incidents = services.GetService<IncidentManager>();
        return new NodeFactsView(
            now,
            store.Cordons().ToDictionary(c => c.Node, StringComparer.Ordinal),
            incidents?.Open().ToLookup(i => i.Node, i => i.Id, StringComparer.Ordinal),
            incidents?.Mutes(MuteKind.Maintenance, now).Where(m => m.ActiveAt(now)).ToArray() ?? [],
            services.GetService<FleetState>(),
            services.GetService<DetectionEngine>());
    }
}

/// <summary>A snapshot from <see cref="NodeFactsSource.Snapshot"/>; <see cref="Facts"/> reads one node's live state.</summary>
public sealed class NodeFactsView
{
    private readonly Dictionary<string, CordonRecord> _cordons;
    private readonly ILookup<string, string>? _incidents;
    private readonly IReadOnlyList<Mute> _maintenance;
    private readonly FleetState? _fleet;
    private readonly DetectionEngine? _engine;

    internal NodeFactsView(DateTimeOffset now, Dictionary<string, CordonRecord> cordons, ILookup<string, string>? incidents, IReadOnlyList<Mute> maintenance,
        FleetState? fleet, DetectionEngine? engine)
    {
        Now = now;
        _cordons = cordons;
        _incidents = incidents;
        _maintenance = maintenance;
        _fleet = fleet;
        _engine = engine;
    }

    public DateTimeOffset Now { get; }

    public NodeFacts Facts(string node)
    {
        NodeSample? latest = null;
        DateTimeOffset? lastSeen = null, reportingSince = null;
        ulong known = 0;
        if (_fleet is not null && _fleet.TryGetNode(node, out var state, out lastSeen))
        {
            latest = _fleet.Latest(node);
            lock (state)
            {
                (known, reportingSince) = (state.KnownGpus, state.ReportingSince);
            }
        }

        return new NodeFacts
        {
            Node = node,
            Latest = latest,
            LastSeen = lastSeen,
            KnownGpus = NodeHealth.Indexes(known),
            ReportingSince = reportingSince,
            Conditions = _engine?.Conditions(node, Now),
            OpenIncidents = _incidents?[node].ToArray(),
            Cordon = _cordons.GetValueOrDefault(node),
            Maintenance = _maintenance.FirstOrDefault(m => NodeHealth.Covers(m, node))?.Id,
        };
    }
}
