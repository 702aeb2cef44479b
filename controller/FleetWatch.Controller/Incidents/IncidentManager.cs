using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Incidents;

/// <summary>What happened to an incident as a result of new findings or the passing of time.</summary>
public enum IncidentChangeKind
{
    Opened,
    Updated,
    Resolved,
}

/// <summary>
/// An incident change; <c>Escalated</c> marks an update whose severity rose (receivers are paged again only then);
/// <c>Repeat</c> counts re-notifications of an unchanged open incident (repeat interval).
/// </summary>
public sealed record IncidentChange(IncidentChangeKind Kind, IncidentSnapshot Incident, bool Escalated = false, int Repeat = 0)
{
    /// <summary>
    /// Identifies this notification across controller restarts: an incident opens once, rises to each severity at
    /// most once and resolves once, so (id, kind, severity, repeat) never repeats for a different notification. The
    /// outbox and notification log key on it, which makes a re-derived change after a restart a no-op.
    /// </summary>
    public string NotificationKey => $"{Incident.Id}/{Kind}/{Incident.Severity}/{Repeat}";
}

/// <summary>
/// Turns findings into incidents: one incident per GPU (or per node for node-wide findings), opened by the first
/// finding of severity warning or above, updated when a new rule joins or the severity rises, resolved when every
/// finding has stayed clear for <see cref="IncidentOptions.ResolveHold"/>. One fault gives one incident, not one
/// per sample. Info findings are counted, never an incident (rule 39: one Xid 13 is not a hardware incident).
/// Time is passed in; no clock is read here.
/// </summary>
public sealed class IncidentManager(IOptions<IncidentOptions> options, IOptions<DetectionOptions> detection)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<FindingKey, ActiveFinding> _findings = [];
    private readonly Dictionary<IncidentKey, Incident> _open = [];
    private readonly LinkedList<IncidentSnapshot> _resolved = new();
    private long _nextId;
    private long _infoFindings;

    public long InfoFindings => Interlocked.Read(ref _infoFindings);

    /// <summary>Applies findings observed at <paramref name="now"/>; returns the incident changes they cause.</summary>
    public IReadOnlyList<IncidentChange> Apply(IEnumerable<Finding> findings, DateTimeOffset now)
    {
        List<IncidentChange>? changes = null;
        lock (_gate)
        {
            foreach (var finding in findings)
            {
                var key = new FindingKey(finding.Node, finding.Gpu, finding.Rule);
                if (!finding.Active)
                {
                    if (finding.Kind == FindingKind.Condition && _findings.Remove(key, out var cleared))
                    {
                        cleared.Expire();
                        MarkClearIfEmpty(cleared.Incident, now);
                    }

                    continue;
                }

                if (finding.Severity == Severity.Info)
                {
                    Interlocked.Increment(ref _infoFindings);
                    continue;
                }

                if (_findings.TryGetValue(key, out var existing))
                {
                    existing.Refresh(finding, now);
                    if (existing.Incident.ClearSince is not null)
                    {
                        existing.Incident.ClearSince = null;
                    }

                    if (finding.Severity > existing.Incident.Severity)
                    {
                        existing.Incident.Raise(finding);
                        (changes ??= []).Add(new IncidentChange(IncidentChangeKind.Updated, existing.Incident.Snapshot(), Escalated: true));
                    }

                    continue;
                }

                var incidentKey = new IncidentKey(finding.Node, finding.Gpu);
                var opened = false;
                if (!_open.TryGetValue(incidentKey, out var incident))
                {
                    incident = new Incident($"inc-{++_nextId}", finding, now);
                    _open[incidentKey] = incident;
                    opened = true;
                }

                var active = new ActiveFinding(finding, incident, now);
                _findings[key] = active;
                var rejoined = !incident.Findings.TryAdd(finding.Rule, active);
                if (rejoined)
                {
                    incident.Findings[finding.Rule] = active; // a flapping rule returns: same incident, no new page
                }

                incident.ClearSince = null;
                if (opened)
                {
                    (changes ??= []).Add(new IncidentChange(IncidentChangeKind.Opened, incident.Snapshot()));
                }
                else if (finding.Severity > incident.Severity || !rejoined)
                {
                    var escalated = finding.Severity > incident.Severity;
                    if (escalated)
                    {
                        incident.Raise(finding);
                    }

                    (changes ??= []).Add(new IncidentChange(IncidentChangeKind.Updated, incident.Snapshot(), escalated));
                }
            }
        }

        return changes ?? (IReadOnlyList<IncidentChange>)[];
    }

    /// <summary>Expires event findings and resolves incidents whose findings stayed clear long enough.</summary>
    public IReadOnlyList<IncidentChange> Tick(DateTimeOffset now)
    {
        List<IncidentChange>? changes = null;
        var hold = detection.Value.EventHold;
        lock (_gate)
        {
            List<FindingKey>? expired = null;
            foreach (var (key, finding) in _findings)
            {
                if (finding.Kind == FindingKind.Event && now - finding.LastSeen >= hold)
                {
                    (expired ??= []).Add(key);
                }
            }

            foreach (var key in expired ?? [])
            {
                if (_findings.Remove(key, out var finding))
                {
                    finding.Expire();
                    MarkClearIfEmpty(finding.Incident, now);
                }
            }

            List<IncidentKey>? resolved = null;
            foreach (var (key, incident) in _open)
            {
                if (incident.ClearSince is { } since && now - since >= options.Value.ResolveHold)
                {
                    incident.ResolvedAt = now;
                    (resolved ??= []).Add(key);
                    var snapshot = incident.Snapshot();
                    (changes ??= []).Add(new IncidentChange(IncidentChangeKind.Resolved, snapshot));
                    _resolved.AddFirst(snapshot);
                    while (_resolved.Count > options.Value.RecentResolvedKept)
                    {
                        _resolved.RemoveLast();
                    }
                }
            }

            foreach (var key in resolved ?? [])
            {
                _open.Remove(key);
            }
        }

        return changes ?? (IReadOnlyList<IncidentChange>)[];
    }

    /// <summary>Open incidents, oldest first.</summary>
    public IReadOnlyList<IncidentSnapshot> Open()
    {
        lock (_gate)
        {
            return _open.Values.OrderBy(i => i.OpenedAt).Select(i => i.Snapshot()).ToList();
        }
    }

    public IReadOnlyList<IncidentSnapshot> RecentlyResolved()
    {
        lock (_gate)
        {
            return _resolved.ToList();
        }
    }

    /// <summary>The highest severity of active findings per (node, GPU); GPU null means node-wide.</summary>
    public Dictionary<(string Node, int? Gpu), Severity> ActiveSeverities()
    {
        var result = new Dictionary<(string, int?), Severity>();
        lock (_gate)
        {
            foreach (var (key, finding) in _findings)
            {
                var k = (key.Node, key.Gpu);
                if (!result.TryGetValue(k, out var s) || finding.Severity > s)
                {
                    result[k] = finding.Severity;
                }
            }
        }

        return result;
    }

    private static void MarkClearIfEmpty(Incident incident, DateTimeOffset now)
    {
        foreach (var f in incident.Findings.Values)
        {
            if (f.Live)
            {
                return;
            }
        }

        incident.ClearSince ??= now;
    }

    private readonly record struct FindingKey(string Node, int? Gpu, string Rule);

    private readonly record struct IncidentKey(string Node, int? Gpu);

    private sealed class ActiveFinding(Finding finding, Incident incident, DateTimeOffset now)
    {
        public Incident Incident { get; } = incident;
        public FindingKind Kind { get; } = finding.Kind;
        public Severity Severity { get; private set; } = finding.Severity;
        public string Message { get; private set; } = finding.Message;
        public DateTimeOffset FirstSeen { get; } = finding.Time;
        public DateTimeOffset LastSeen { get; private set; } = now;
        public DateTimeOffset LastDataTime { get; private set; } = finding.Time;
        public int Count { get; private set; } = 1;
        public bool Live { get; private set; } = true;

        public void Refresh(Finding f, DateTimeOffset now)
        {
            LastSeen = now;
            LastDataTime = f.Time;
            Message = f.Message;
            Live = true;
            if (f.Severity > Severity)
            {
                Severity = f.Severity;
            }

            if (f.Kind == FindingKind.Event)
            {
                Count++;
            }
        }

        public void Expire() => Live = false;

        public FindingInfo ToInfo(string rule, int? gpu) => new()
        {
            Rule = rule,
            Severity = Severity,
            Message = Message,
            GpuIndex = gpu,
            FirstSeen = FirstSeen,
            LastSeen = LastDataTime,
            Count = Count,
        };
    }

    private sealed class Incident(string id, Finding first, DateTimeOffset now)
    {
        public string Id { get; } = id;
        public string Node { get; } = first.Node;
        public int? Gpu { get; } = first.Gpu;
        public Severity Severity { get; private set; } = first.Severity;
        public string Category { get; private set; } = first.Category;
        public string Action { get; private set; } = first.Action;
        public DateTimeOffset OpenedAt { get; } = now;
        public DateTimeOffset? ClearSince { get; set; }
        public DateTimeOffset? ResolvedAt { get; set; }

        /// <summary>Every finding that joined the incident (kept as evidence after it clears), by rule.</summary>
        public Dictionary<string, ActiveFinding> Findings { get; } = new(StringComparer.Ordinal);

        public void Raise(Finding f)
        {
            Severity = f.Severity;
            Category = f.Category;
            Action = f.Action;
        }

        public IncidentSnapshot Snapshot() => new()
        {
            Id = Id,
            Node = Node,
            GpuIndex = Gpu,
            Severity = Severity,
            Category = Category,
            Action = Action,
            OpenedAt = OpenedAt,
            ResolvedAt = ResolvedAt,
            Findings = Findings.Select(kv => kv.Value.ToInfo(kv.Key, Gpu)).ToList(),
        };
    }
}
