using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Incidents;

/// <summary>
/// Turns findings into incidents the way Alertmanager turns alerts into notifications (STYLE rule 12):
/// <list type="bullet">
/// <item><b>Group</b>: findings of one GPU form one incident; findings of other GPUs of the same node (or node-wide
/// ones) that arrive within <see cref="IncidentOptions.GroupWait"/> of its opening join it, so a node-wide fault is one
/// incident, not eight; an NVSwitch finding (SXid) makes the node incident its NVLink domain's, and the per-GPU NVLink
/// findings join it whenever they come.</item>
/// <item><b>Wait</b>: the first notification waits for the group to form (<see cref="IncidentOptions.GroupWait"/>,
/// <see cref="IncidentOptions.CriticalGroupWait"/> for critical); joins and escalations during the wait fold into it.</item>
/// <item><b>Inhibit</b>: while an inhibiting finding (silent node, lost GPU) is active, the other findings of its node
/// (or GPU) are attached to its incident as evidence and open or escalate nothing.</item>
/// <item><b>Hysteresis</b>: an incident resolves only when every finding stayed clear for
/// <see cref="IncidentOptions.ResolveHold"/>; a flapping rule keeps one incident.</item>
/// <item><b>Repeat</b>: an open, unacknowledged, unsilenced incident is notified again every
/// <see cref="IncidentOptions.RepeatInterval"/>.</item>
/// <item><b>Silence</b>: an incident matched by a silence or maintenance window is recorded and flagged but not
/// notified; when the mute ends, what receivers are owed flows.</item>
/// </list>
/// Info findings are counted, never an incident (rule 39: one Xid 13 is not a hardware incident). Time is passed in;
/// no clock is read here. With an <see cref="IncidentStore"/>, every change is written through in one transaction per
/// call together with the notification keys it emits, and open incidents and the id counter are reloaded on first use,
/// so a restart loses no incident and re-emits no notification.
/// </summary>
public sealed class IncidentManager
{
    private readonly IncidentOptions _options;
    private readonly TimeSpan _eventHold;
    private readonly string[] _inhibiting;
    private readonly string[] _fabricRules;
    private readonly string[] _fabricCategories;
    private readonly IncidentStore? _store;
    private readonly Lock _gate = new();

    // Live findings, and the subset that are events (expired by time in Tick, so Tick scans only those).
    private readonly Dictionary<FindingKey, EvidenceFinding> _findings = [];
    private readonly Dictionary<FindingKey, EvidenceFinding> _events = [];

    private readonly Dictionary<string, Incident> _open = new(StringComparer.Ordinal);

    // Which open incident takes new findings of a GPU (or, with a null GPU, node-level findings).
    private readonly Dictionary<SlotKey, Incident> _slots = [];

    // The node's newest incident, joined by its other GPUs until its group wait ends.
    private readonly Dictionary<string, Incident> _forming = new(StringComparer.Ordinal);

    // The node's open NVLink-domain incident (an NVSwitch finding joined it).
    private readonly Dictionary<string, Incident> _fabric = new(StringComparer.Ordinal);

    private readonly HashSet<Incident> _owing = []; // receivers are owed a notification (group wait or mute)
    private readonly HashSet<Incident> _clearing = []; // every finding clear: resolving after the hold
    private readonly PriorityQueue<Incident, DateTimeOffset> _repeats = new();
    private readonly LinkedList<Incident> _resolved = new();
    private readonly List<CompiledMute> _mutes = [];

    // Write-through batch of the current call.
    private readonly List<Incident> _dirty = [];
    private readonly List<Incident> _touched = [];
    private readonly List<IncidentChange> _unlogged = [];

    private bool _loaded;
    private long _nextId;
    private long _infoFindings;
    private DateTimeOffset _nextEvidenceFlush = DateTimeOffset.MinValue;
    private DateTimeOffset _owedDue = DateTimeOffset.MaxValue; // earliest end of a group wait among owed incidents
    private DateTimeOffset _lastTick = DateTimeOffset.MinValue;

    public IncidentManager(IOptions<IncidentOptions> options, IOptions<DetectionOptions> detection, IncidentStore? store = null)
    {
        _options = options.Value;
        _eventHold = detection.Value.EventHold;
        _inhibiting = [.. _options.EffectiveInhibitingRules];
        _fabricRules = [.. _options.EffectiveFabricRulePrefixes];
        _fabricCategories = [.. _options.EffectiveFabricCategoryPrefixes];
        _store = store;
    }

    public long InfoFindings => Interlocked.Read(ref _infoFindings);

    /// <summary>Applies findings observed at <paramref name="now"/>; returns the incident changes they cause.</summary>
    public IReadOnlyList<IncidentChange> Apply(IEnumerable<Finding> findings, DateTimeOffset now)
    {
        List<IncidentChange>? changes = null;
        lock (_gate)
        {
            EnsureLoaded(now);
            if (now >= _owedDue)
            {
                // A group wait ended before these findings came (no sweep ran since): what was due then goes first.
                ReconcileOwed(now, ref changes);
            }

            if (findings is List<Finding> list)
            {
                // The hot path (one call per node sample): no enumerator allocation.
                foreach (var finding in list)
                {
                    ApplyOne(finding, now, ref changes);
                }
            }
            else
            {
                foreach (var finding in findings)
                {
                    ApplyOne(finding, now, ref changes);
                }
            }

            if (now >= _owedDue)
            {
                // A group wait ended: notify now rather than at the next sweep.
                ReconcileOwed(now, ref changes);
            }

            WriteThrough(now);
        }

        return changes ?? (IReadOnlyList<IncidentChange>)[];
    }

    /// <summary>
    /// The time-driven part at <paramref name="now"/>: expires event findings, sends notifications whose group wait or
    /// mute ended, resolves incidents whose findings stayed clear long enough, repeats unacknowledged ones.
    /// </summary>
    public IReadOnlyList<IncidentChange> Tick(DateTimeOffset now)
    {
        List<IncidentChange>? changes = null;
        lock (_gate)
        {
            EnsureLoaded(now);
            if (_mutes.Count > 0 && MuteBoundaryPassed(now))
            {
                RefreshSilenced(now); // a window started or a silence ran out: flags change, held notifications flow
            }

            _lastTick = now;
            if (_events.Count > 0)
            {
                ExpireEvents(now);
            }

            if (_owing.Count > 0)
            {
                ReconcileOwed(now, ref changes);
            }

            if (_clearing.Count > 0)
            {
                ResolveCleared(now, ref changes);
            }

            while (_repeats.TryPeek(out var incident, out var due) && due <= now)
            {
                _repeats.Dequeue();
                Repeat(incident, due, now, ref changes);
            }

            if (now >= _nextEvidenceFlush)
            {
                // Counts and last-seen times of open incidents, batched: written at most once per flush interval.
                foreach (var incident in _touched)
                {
                    MarkDirty(incident);
                }

                _touched.Clear();
                _nextEvidenceFlush = now + _options.EvidenceFlushInterval;
            }

            WriteThrough(now);
        }

        return changes ?? (IReadOnlyList<IncidentChange>)[];
    }

    /// <summary>Open incidents, oldest first.</summary>
    public IReadOnlyList<IncidentSnapshot> Open()
    {
        lock (_gate)
        {
            EnsureLoaded(null);
            return _open.Values.OrderBy(i => i.OpenedAt).ThenBy(i => i.Id, StringComparer.Ordinal).Select(i => i.Snapshot()).ToList();
        }
    }

    /// <summary>Recently resolved incidents kept in memory (<see cref="IncidentOptions.RecentResolvedKept"/>), newest first.</summary>
    public IReadOnlyList<IncidentSnapshot> RecentlyResolved()
    {
        lock (_gate)
        {
            return _resolved.Select(i => i.Snapshot()).ToList();
        }
    }

    /// <summary>Resolved incidents, newest first: from the store when there is one, else those kept in memory.</summary>
    public IReadOnlyList<IncidentSnapshot> Resolved(int limit)
    {
        if (_store is not null)
        {
            return _store.Resolved(limit).Select(r => new Incident(r).Snapshot()).ToList();
        }

        lock (_gate)
        {
            return _resolved.Take(limit).Select(i => i.Snapshot()).ToList();
        }
    }

    /// <summary>One incident by id, open or resolved; null when unknown.</summary>
    public IncidentSnapshot? Find(string id)
    {
        lock (_gate)
        {
            EnsureLoaded(null);
            if (Lookup(id) is { } incident)
            {
                return incident.Snapshot();
            }
        }

        return _store?.Get(id) is { } record ? new Incident(record).Snapshot() : null;
    }

    /// <summary>
    /// Acknowledges an incident (an operator owns it): it is no longer repeated. Returns null for an unknown id.
    /// An acknowledged incident stays acknowledged; a second acknowledgement only adds its note.
    /// </summary>
    public IncidentSnapshot? Acknowledge(string id, string by, string? note, DateTimeOffset now) => Edit(id, now, incident =>
    {
        if (incident.AcknowledgedBy is null)
        {
            incident.AcknowledgedBy = by;
            incident.AcknowledgedAt = now;
        }

        if (!string.IsNullOrWhiteSpace(note))
        {
            incident.Notes.Add(new IncidentNote(now, by, note));
        }
    });

    /// <summary>Adds an operator's note. Returns null for an unknown id.</summary>
    public IncidentSnapshot? AddNote(string id, string by, string text, DateTimeOffset now) =>
        Edit(id, now, incident => incident.Notes.Add(new IncidentNote(now, by, text)));

    /// <summary>Silences and maintenance windows of a kind that have not ended, or every stored one still loaded.</summary>
    public IReadOnlyList<Mute> Mutes(MuteKind kind, DateTimeOffset now, bool includeEnded = false)
    {
        lock (_gate)
        {
            EnsureLoaded(now);
            return _mutes.Select(m => m.Mute).Where(m => m.Kind == kind && (includeEnded || m.EndsAt > now)).OrderBy(m => m.StartsAt).ToList();
        }
    }

    /// <summary>Adds a silence or maintenance window (stored first). Incidents it covers stop notifying at once.</summary>
    public void AddMute(Mute mute, DateTimeOffset now)
    {
        lock (_gate)
        {
            EnsureLoaded(now); // before the write, or the load would bring the new mute in a second time
            _store?.SaveMute(mute);
            _mutes.Add(new CompiledMute(mute));
            RefreshSilenced(now);
        }
    }

    /// <summary>Ends a silence or maintenance window now (kept for the record). False when unknown or already ended.</summary>
    public bool ExpireMute(MuteKind kind, string id, DateTimeOffset now)
    {
        Mute ended;
        lock (_gate)
        {
            EnsureLoaded(now);
            var index = _mutes.FindIndex(m => m.Mute.Kind == kind && m.Mute.Id == id && m.Mute.EndsAt > now);
            if (index < 0)
            {
                return false;
            }

            ended = _mutes[index].Mute with { EndsAt = now };
            _mutes[index] = new CompiledMute(ended);
            // What the mute held back flows at the next tick (owed incidents are reconciled there).
            RefreshSilenced(now);
        }

        _store?.SaveMute(ended);
        return true;
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

    private void ApplyOne(Finding finding, DateTimeOffset now, ref List<IncidentChange>? changes)
    {
        var key = new FindingKey(finding.Node, finding.Gpu, finding.Rule);
        if (!finding.Active)
        {
            // Most findings of a healthy fleet are clear conditions of rules that never fired: nothing to look up.
            if (finding.Kind == FindingKind.Condition && _findings.Count > 0 && _findings.Remove(key, out var cleared))
            {
                cleared.Expire();
                MarkClearIfEmpty(cleared.Incident, now);
                MarkDirty(cleared.Incident);
            }

            return;
        }

        if (finding.Severity == Severity.Info)
        {
            Interlocked.Increment(ref _infoFindings);
            return;
        }

        if (_findings.TryGetValue(key, out var existing))
        {
            // The common case: a finding already known is seen again.
            var incident = existing.Incident;
            existing.Refresh(finding, now);
            Touch(incident);
            if (incident.ClearSince is not null)
            {
                incident.ClearSince = null;
                _clearing.Remove(incident);
                MarkDirty(incident);
            }

            if (finding.Severity > incident.Severity && Inhibitor(finding) is null)
            {
                incident.Raise(finding);
                MarkDirty(incident);
                Reconcile(incident, now, joined: false, ref changes);
            }

            return;
        }

        if (Inhibitor(finding) is { } source)
        {
            AttachInhibited(source.Incident, finding, now);
            return;
        }

        var target = Route(finding, now);
        var opened = target is null;
        if (target is null)
        {
            target = new Incident($"inc-{++_nextId}", finding, now);
            _open[target.Id] = target;
            _forming[finding.Node] = target; // Route found no group forming on this node: this one starts it
        }

        var joined = Join(target, finding, now);
        if (finding.Severity > target.Severity)
        {
            target.Raise(finding);
        }

        MarkDirty(target);
        Reconcile(target, now, joined: joined && !opened, ref changes);
    }

    /// <summary>The open incident a new finding belongs to, or null when it opens its own.</summary>
    private Incident? Route(Finding finding, DateTimeOffset now)
    {
        if (_slots.TryGetValue(new SlotKey(finding.Node, finding.Gpu), out var slot))
        {
            return slot;
        }

        if (finding.Gpu is not null && _fabric.TryGetValue(finding.Node, out var fabric) && HasPrefix(finding.Category, _fabricCategories))
        {
            return fabric; // the node's NVSwitch explains its GPUs' NVLink errors
        }

        if (_forming.TryGetValue(finding.Node, out var forming) && now - forming.OpenedAt < _options.GroupWait)
        {
            return forming; // the same fault seen on another GPU (or node-wide) while the group forms
        }

        return null;
    }

    /// <summary>Adds the finding to the incident; true when it is new evidence (not a known rule coming back).</summary>
    private bool Join(Incident incident, Finding finding, DateTimeOffset now)
    {
        if (finding.Gpu is { } gpu)
        {
            incident.Gpus.Add(gpu);
        }
        else
        {
            incident.NodeWide = true;
        }

        _slots[new SlotKey(finding.Node, finding.Gpu)] = incident;
        if (finding.Gpu is null && HasPrefix(finding.Rule, _fabricRules))
        {
            incident.Fabric = true;
            _fabric[finding.Node] = incident;
        }

        var key = new FindingKey(finding.Node, finding.Gpu, finding.Rule);
        bool fresh;
        if (incident.Findings.TryGetValue((finding.Gpu, finding.Rule), out var evidence))
        {
            evidence.Revive(finding, now, inhibited: false); // a flapping rule returns: same incident, no new page
            fresh = false;
        }
        else
        {
            evidence = new EvidenceFinding(finding, incident, now, inhibited: false);
            incident.Findings[(finding.Gpu, finding.Rule)] = evidence;
            fresh = true;
        }

        _findings[key] = evidence;
        if (finding.Kind == FindingKind.Event)
        {
            _events[key] = evidence;
        }

        if (incident.ClearSince is not null)
        {
            incident.ClearSince = null;
            _clearing.Remove(incident);
        }

        return fresh;
    }

    /// <summary>The active inhibiting finding that explains this one (its node's or its GPU's), or null.</summary>
    private EvidenceFinding? Inhibitor(Finding finding)
    {
        foreach (var rule in _inhibiting)
        {
            if (string.Equals(rule, finding.Rule, StringComparison.Ordinal))
            {
                return null; // an inhibiting rule is never inhibited itself
            }
        }

        foreach (var rule in _inhibiting)
        {
            if (_findings.TryGetValue(new FindingKey(finding.Node, null, rule), out var node))
            {
                return node;
            }

            if (finding.Gpu is not null && _findings.TryGetValue(new FindingKey(finding.Node, finding.Gpu, rule), out var gpu))
            {
                return gpu;
            }
        }

        return null;
    }

    private void AttachInhibited(Incident incident, Finding finding, DateTimeOffset now)
    {
        if (incident.Findings.TryGetValue((finding.Gpu, finding.Rule), out var evidence))
        {
            if (evidence.Live)
            {
                evidence.Refresh(finding, now);
            }
            else
            {
                evidence.Revive(finding, now, inhibited: true);
            }

            Touch(incident);
            return;
        }

        incident.Findings[(finding.Gpu, finding.Rule)] = new EvidenceFinding(finding, incident, now, inhibited: true);
        MarkDirty(incident);
    }

    /// <summary>
    /// Brings what receivers know of the incident up to date, or notes that it is owed: the first notification after
    /// the group wait, an escalation, both held while a silence or maintenance window covers the incident.
    /// </summary>
    private void Reconcile(Incident incident, DateTimeOffset now, bool joined, ref List<IncidentChange>? changes)
    {
        var wait = incident.Severity == Severity.Critical ? _options.CriticalGroupWait : _options.GroupWait;
        if (incident.NotifiedSeverity is null && now - incident.OpenedAt < wait)
        {
            _owing.Add(incident); // folded into the first notification
            if (incident.OpenedAt + wait < _owedDue)
            {
                _owedDue = incident.OpenedAt + wait;
            }

            return;
        }

        var mute = MuteOf(incident, now);
        if (incident.SilencedBy != mute?.Id)
        {
            incident.SilencedBy = mute?.Id;
            MarkDirty(incident);
        }

        var owed = incident.NotifiedSeverity is not { } told || incident.Severity > told;
        if (owed && mute is not null)
        {
            _owing.Add(incident);
            return;
        }

        _owing.Remove(incident);
        if (incident.NotifiedSeverity is null)
        {
            Notify(incident, new IncidentChange(IncidentChangeKind.Opened, incident.Snapshot()), now, ref changes);
        }
        else if (owed)
        {
            Notify(incident, new IncidentChange(IncidentChangeKind.Updated, incident.Snapshot(), Escalated: true), now, ref changes);
        }
        else if (joined)
        {
            (changes ??= []).Add(new IncidentChange(IncidentChangeKind.Updated, incident.Snapshot()));
        }
    }

    /// <summary>Re-evaluates every incident that is owed a notification (group wait or mute ended).</summary>
    private void ReconcileOwed(DateTimeOffset now, ref List<IncidentChange>? changes)
    {
        _owedDue = DateTimeOffset.MaxValue;
        foreach (var incident in _owing.OrderBy(i => i.OpenedAt).ThenBy(i => i.Id.Length).ThenBy(i => i.Id, StringComparer.Ordinal).ToList())
        {
            Reconcile(incident, now, joined: false, ref changes);
        }
    }

    private void Notify(Incident incident, IncidentChange change, DateTimeOffset now, ref List<IncidentChange>? changes)
    {
        incident.NotifiedSeverity = incident.Severity;
        incident.LastNotifiedAt = now;
        ScheduleRepeat(incident, now);
        MarkDirty(incident);
        Emit(change, ref changes);
    }

    private void Emit(IncidentChange change, ref List<IncidentChange>? changes)
    {
        (changes ??= []).Add(change);
        if (_store is not null && change.IsNotification)
        {
            _unlogged.Add(change);
        }
    }

    private void ScheduleRepeat(Incident incident, DateTimeOffset now)
    {
        var due = now + _options.RepeatInterval;
        incident.RepeatDue = due;
        _repeats.Enqueue(incident, due);
    }

    private void Repeat(Incident incident, DateTimeOffset due, DateTimeOffset now, ref List<IncidentChange>? changes)
    {
        if (incident.RepeatDue != due || incident.ResolvedAt is not null || incident.AcknowledgedBy is not null)
        {
            return; // stale entry (re-notified since), resolved, or an operator owns it
        }

        if (MuteOf(incident, now) is not null || incident.NotifiedSeverity is null)
        {
            ScheduleRepeat(incident, now); // muted: try again one interval later, as Alertmanager does
            return;
        }

        incident.Repeats++;
        Notify(incident, new IncidentChange(IncidentChangeKind.Updated, incident.Snapshot(), Repeat: incident.Repeats), now, ref changes);
    }

    private void ExpireEvents(DateTimeOffset now)
    {
        List<FindingKey>? expired = null;
        foreach (var (key, finding) in _events)
        {
            if (now - finding.LastSeen >= _eventHold)
            {
                (expired ??= []).Add(key);
            }
        }

        foreach (var key in expired ?? [])
        {
            _events.Remove(key);
            if (_findings.Remove(key, out var finding))
            {
                finding.Expire();
                MarkClearIfEmpty(finding.Incident, now);
                MarkDirty(finding.Incident);
            }
        }
    }

    private void ResolveCleared(DateTimeOffset now, ref List<IncidentChange>? changes)
    {
        List<Incident>? resolved = null;
        foreach (var incident in _clearing)
        {
            if (incident.ClearSince is { } since && now - since >= _options.ResolveHold)
            {
                (resolved ??= []).Add(incident);
            }
        }

        foreach (var incident in resolved ?? [])
        {
            incident.ResolvedAt = now;
            incident.RepeatDue = null;
            RemoveOpen(incident);
            MarkDirty(incident);
            // Receivers that never heard of the incident (muted or still in its group wait) hear nothing now either.
            var muted = incident.NotifiedSeverity is null;
            Emit(new IncidentChange(IncidentChangeKind.Resolved, incident.Snapshot()) { Muted = muted }, ref changes);
            _resolved.AddFirst(incident);
            while (_resolved.Count > _options.RecentResolvedKept)
            {
                _resolved.RemoveLast();
            }
        }
    }

    private void RemoveOpen(Incident incident)
    {
        _open.Remove(incident.Id);
        _clearing.Remove(incident);
        _owing.Remove(incident);
        foreach (var gpu in incident.Gpus)
        {
            RemoveIf(_slots, new SlotKey(incident.Node, gpu), incident);
        }

        RemoveIf(_slots, new SlotKey(incident.Node, null), incident);
        RemoveIf(_forming, incident.Node, incident);
        RemoveIf(_fabric, incident.Node, incident);
        foreach (var (gpu, rule) in incident.Findings.Keys)
        {
            // Inhibited evidence is never live; anything still live here left with the incident.
            var key = new FindingKey(incident.Node, gpu, rule);
            if (_findings.TryGetValue(key, out var f) && f.Incident == incident)
            {
                _findings.Remove(key);
                _events.Remove(key);
            }
        }
    }

    private static void RemoveIf<TKey>(Dictionary<TKey, Incident> map, TKey key, Incident incident)
        where TKey : notnull
    {
        if (map.TryGetValue(key, out var current) && current == incident)
        {
            map.Remove(key);
        }
    }

    private void MarkClearIfEmpty(Incident incident, DateTimeOffset now)
    {
        if (incident.ClearSince is null && incident.AllClear())
        {
            incident.ClearSince = now;
            _clearing.Add(incident);
        }
    }

    private void MarkDirty(Incident incident)
    {
        if (_store is not null && !incident.Dirty)
        {
            incident.Dirty = true;
            _dirty.Add(incident);
        }
    }

    private void Touch(Incident incident)
    {
        if (_store is not null && !incident.Touched)
        {
            incident.Touched = true;
            _touched.Add(incident);
        }
    }

    /// <summary>Writes this call's changed incidents and emitted notification keys in one transaction.</summary>
    private void WriteThrough(DateTimeOffset now)
    {
        if (_store is null || (_dirty.Count == 0 && _unlogged.Count == 0))
        {
            return;
        }

        var records = new List<IncidentRecord>(_dirty.Count);
        foreach (var incident in _dirty)
        {
            records.Add(incident.ToRecord());
        }

        if (_store.TrySave(records, _unlogged, _nextId, now))
        {
            foreach (var incident in _dirty)
            {
                incident.Dirty = false;
                incident.Touched = false;
            }

            _dirty.Clear();
            _unlogged.Clear();
        }

        // On failure the batch stays and goes with the next call; the changes are still returned (a page late in the
        // log beats a page lost).
    }

    private void RefreshSilenced(DateTimeOffset now)
    {
        foreach (var incident in _open.Values)
        {
            var id = MuteOf(incident, now)?.Id;
            if (incident.SilencedBy != id)
            {
                incident.SilencedBy = id;
                MarkDirty(incident);
                if (id is null && (incident.NotifiedSeverity is null || incident.Severity > incident.NotifiedSeverity))
                {
                    _owing.Add(incident);
                }
            }
        }

        if (_dirty.Count > 0)
        {
            WriteThrough(now);
        }
    }

    private bool MuteBoundaryPassed(DateTimeOffset now)
    {
        foreach (var mute in _mutes)
        {
            var m = mute.Mute;
            if ((m.StartsAt > _lastTick && m.StartsAt <= now) || (m.EndsAt > _lastTick && m.EndsAt <= now))
            {
                return true;
            }
        }

        return false;
    }

    private Mute? MuteOf(Incident incident, DateTimeOffset now)
    {
        foreach (var mute in _mutes)
        {
            if (mute.Mute.ActiveAt(now) && mute.Matches(incident))
            {
                return mute.Mute;
            }
        }

        return null;
    }

    private Incident? Lookup(string id)
    {
        if (_open.TryGetValue(id, out var open))
        {
            return open;
        }

        foreach (var resolved in _resolved)
        {
            if (resolved.Id == id)
            {
                return resolved;
            }
        }

        return null;
    }

    private IncidentSnapshot? Edit(string id, DateTimeOffset now, Action<Incident> edit)
    {
        lock (_gate)
        {
            EnsureLoaded(now);
            var incident = Lookup(id);
            if (incident is null && _store?.Get(id) is { } record)
            {
                incident = new Incident(record); // resolved long ago: edit the stored copy
            }

            if (incident is null)
            {
                return null;
            }

            edit(incident);
            MarkDirty(incident);
            WriteThrough(now);
            return incident.Snapshot();
        }
    }

    private void EnsureLoaded(DateTimeOffset? now)
    {
        if (_loaded)
        {
            return;
        }

        _loaded = true;
        if (_store is null)
        {
            return;
        }

        var stored = _store.Load(now ?? DateTimeOffset.MinValue);
        _nextId = Math.Max(_nextId, stored.Counter);
        foreach (var mute in stored.Mutes)
        {
            _mutes.Add(new CompiledMute(mute));
        }

        foreach (var record in stored.Open)
        {
            var incident = new Incident(record);
            _open[incident.Id] = incident;
            foreach (var gpu in incident.Gpus)
            {
                _slots[new SlotKey(incident.Node, gpu)] = incident;
            }

            if (incident.NodeWide)
            {
                _slots[new SlotKey(incident.Node, null)] = incident;
            }

            if (incident.Fabric)
            {
                _fabric[incident.Node] = incident;
            }

            foreach (var evidence in incident.Findings.Values)
            {
                if (evidence.Live)
                {
                    var key = new FindingKey(incident.Node, evidence.Gpu, evidence.Rule);
                    _findings[key] = evidence;
                    if (evidence.Kind == FindingKind.Event)
                    {
                        _events[key] = evidence;
                    }
                }
            }

            if (incident.ClearSince is not null)
            {
                _clearing.Add(incident);
            }

            if (incident.NotifiedSeverity is null || incident.Severity > incident.NotifiedSeverity)
            {
                _owing.Add(incident);
            }
            else if (incident.LastNotifiedAt is { } last)
            {
                incident.RepeatDue = last + _options.RepeatInterval;
                _repeats.Enqueue(incident, incident.RepeatDue.Value);
            }
        }
    }

    private static bool HasPrefix(string value, string[] prefixes)
    {
        foreach (var p in prefixes)
        {
            if (value.StartsWith(p, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    private readonly record struct FindingKey(string Node, int? Gpu, string Rule);

    private readonly record struct SlotKey(string Node, int? Gpu);
}
