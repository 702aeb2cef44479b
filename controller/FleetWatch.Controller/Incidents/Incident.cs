using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;

namespace FleetWatch.Controller.Incidents;

/// <summary>One finding's evidence inside an incident, live while its rule holds.</summary>
internal sealed class EvidenceFinding
{
    public EvidenceFinding(Finding finding, Incident incident, DateTimeOffset now, bool inhibited)
    {
        Incident = incident;
        Gpu = finding.Gpu;
        Rule = finding.Rule;
        Kind = finding.Kind;
        Severity = finding.Severity;
        Message = finding.Message;
        FirstSeen = finding.Time;
        LastSeen = now;
        LastDataTime = finding.Time;
        Live = !inhibited;
        Inhibited = inhibited;
    }

    public EvidenceFinding(FindingState s, Incident incident)
    {
        Incident = incident;
        Gpu = s.Gpu;
        Rule = s.Rule;
        Kind = s.Kind;
        Severity = s.Severity;
        Message = s.Message;
        FirstSeen = s.FirstSeen;
        LastSeen = s.LastSeen;
        LastDataTime = s.LastDataTime;
        Count = s.Count;
        Live = s.Live;
        Inhibited = s.Inhibited;
    }

    public Incident Incident { get; }
    public int? Gpu { get; }
    public string Rule { get; }
    public FindingKind Kind { get; }
    public Severity Severity { get; private set; }
    public string Message { get; private set; }
    public DateTimeOffset FirstSeen { get; }

    /// <summary>Controller time of the last report (event expiry runs on it).</summary>
    public DateTimeOffset LastSeen { get; private set; }

    public DateTimeOffset LastDataTime { get; private set; }

    /// <summary>Occurrences: events seen, or times a condition became active again (flaps).</summary>
    public int Count { get; private set; } = 1;

    public bool Live { get; private set; }
    public bool Inhibited { get; private set; }

    public void Refresh(Finding f, DateTimeOffset now)
    {
        LastSeen = now;
        LastDataTime = f.Time;
        Message = f.Message;
        if (f.Severity > Severity)
        {
            Severity = f.Severity;
        }

        if (f.Kind == FindingKind.Event)
        {
            Count++;
        }
    }

    /// <summary>The rule fires again after it cleared (a flap), or an inhibited finding now counts in its own right.</summary>
    public void Revive(Finding f, DateTimeOffset now, bool inhibited)
    {
        if (f.Kind == FindingKind.Condition)
        {
            Count++;
        }

        Refresh(f, now);
        Live = !inhibited;
        Inhibited = inhibited;
    }

    public void Expire() => Live = false;

    public FindingInfo ToInfo() => new()
    {
        Rule = Rule,
        Severity = Severity,
        Message = Message,
        GpuIndex = Gpu,
        FirstSeen = FirstSeen,
        LastSeen = LastDataTime,
        Count = Count,
        Inhibited = Inhibited,
    };

    public FindingState ToState() => new(Gpu, Rule, Kind, Severity, Message, FirstSeen, LastSeen, LastDataTime, Count, Live, Inhibited);
}

/// <summary>The persisted form of one finding of an incident.</summary>
internal sealed record FindingState(
    int? Gpu, string Rule, FindingKind Kind, Severity Severity, string Message, DateTimeOffset FirstSeen, DateTimeOffset LastSeen,
    DateTimeOffset LastDataTime, int Count, bool Live, bool Inhibited);

/// <summary>The persisted form of an incident: everything needed to carry on after a restart.</summary>
internal sealed record IncidentRecord(
    string Id,
    string Node,
    DateTimeOffset OpenedAt,
    Severity Severity,
    string Category,
    string Action,
    DateTimeOffset? ResolvedAt,
    DateTimeOffset? ClearSince,
    IReadOnlyList<int> Gpus,
    bool NodeWide,
    bool Fabric,
    Severity? NotifiedSeverity,
    int Repeats,
    DateTimeOffset? LastNotifiedAt,
    string? AcknowledgedBy,
    DateTimeOffset? AcknowledgedAt,
    IReadOnlyList<IncidentNote> Notes,
    IReadOnlyList<FindingState> Findings);

/// <summary>
/// An incident's mutable state, owned by <see cref="IncidentManager"/> and touched only under its lock: the group it
/// covers (GPUs of one node, the node, or the node's NVLink domain), its evidence, and what receivers were told.
/// </summary>
internal sealed class Incident
{
    public Incident(string id, Finding first, DateTimeOffset now)
    {
        Id = id;
        Node = first.Node;
        OpenedAt = now;
        Severity = first.Severity;
        Category = first.Category;
        Action = first.Action;
    }

    public Incident(IncidentRecord r)
    {
        Id = r.Id;
        Node = r.Node;
        OpenedAt = r.OpenedAt;
        Severity = r.Severity;
        Category = r.Category;
        Action = r.Action;
        ResolvedAt = r.ResolvedAt;
        ClearSince = r.ClearSince;
        Gpus.UnionWith(r.Gpus);
        NodeWide = r.NodeWide;
        Fabric = r.Fabric;
        NotifiedSeverity = r.NotifiedSeverity;
        Repeats = r.Repeats;
        LastNotifiedAt = r.LastNotifiedAt;
        AcknowledgedBy = r.AcknowledgedBy;
        AcknowledgedAt = r.AcknowledgedAt;
        Notes.AddRange(r.Notes);
        foreach (var f in r.Findings)
        {
            Findings[(f.Gpu, f.Rule)] = new EvidenceFinding(f, this);
        }
    }

    public string Id { get; }
    public string Node { get; }
    public DateTimeOffset OpenedAt { get; }
    public Severity Severity { get; private set; }
    public string Category { get; private set; }
    public string Action { get; private set; }
    public DateTimeOffset? ClearSince { get; set; }
    public DateTimeOffset? ResolvedAt { get; set; }

    /// <summary>GPUs whose findings joined (a node-wide fault seen on several GPUs within the group wait).</summary>
    public SortedSet<int> Gpus { get; } = [];

    /// <summary>A node-level finding joined: the incident covers the whole node.</summary>
    public bool NodeWide { get; set; }

    /// <summary>An NVSwitch finding joined: the node's NVLink findings belong here.</summary>
    public bool Fabric { get; set; }

    /// <summary>The severity receivers were last told of; null while the first notification is owed.</summary>
    public Severity? NotifiedSeverity { get; set; }

    public int Repeats { get; set; }
    public DateTimeOffset? LastNotifiedAt { get; set; }

    /// <summary>When the next repeat is due; the repeat queue ignores stale entries that do not match it.</summary>
    public DateTimeOffset? RepeatDue { get; set; }

    public string? AcknowledgedBy { get; set; }
    public DateTimeOffset? AcknowledgedAt { get; set; }
    public List<IncidentNote> Notes { get; } = [];

    /// <summary>The silence or maintenance window muting the incident when it was last evaluated.</summary>
    public string? SilencedBy { get; set; }

    /// <summary>Structural change not yet in the store.</summary>
    public bool Dirty { get; set; }

    /// <summary>Evidence (counts, last seen) changed since the last write.</summary>
    public bool Touched { get; set; }

    /// <summary>Every finding that joined (kept as evidence after it clears), by GPU and rule.</summary>
    public Dictionary<(int? Gpu, string Rule), EvidenceFinding> Findings { get; } = [];

    public int? GpuIndex => !NodeWide && Gpus.Count == 1 ? Gpus.Min : null;

    public string GroupKey => Fabric ? $"{Node}/nvlink" : GpuIndex is { } g ? $"{Node}/{g}" : Node;

    public void Raise(Finding f)
    {
        Severity = f.Severity;
        Category = f.Category;
        Action = f.Action;
    }

    public bool AllClear()
    {
        foreach (var f in Findings.Values)
        {
            if (f.Live)
            {
                return false;
            }
        }

        return true;
    }

    public IncidentSnapshot Snapshot() => new()
    {
        Id = Id,
        Node = Node,
        GpuIndex = GpuIndex,
        Severity = Severity,
        Category = Category,
        Action = Action,
        OpenedAt = OpenedAt,
        ResolvedAt = ResolvedAt,
        Findings = Findings.Values.Select(f => f.ToInfo()).ToList(),
        GroupKey = GroupKey,
        Gpus = [.. Gpus],
        AcknowledgedBy = AcknowledgedBy,
        AcknowledgedAt = AcknowledgedAt,
        Notes = [.. Notes],
        SilencedBy = SilencedBy,
    };

    public IncidentRecord ToRecord() => new(
        Id, Node, OpenedAt, Severity, Category, Action, ResolvedAt, ClearSince, [.. Gpus], NodeWide, Fabric, NotifiedSeverity, Repeats,
        LastNotifiedAt, AcknowledgedBy, AcknowledgedAt, [.. Notes], Findings.Values.Select(f => f.ToState()).ToList());
}
