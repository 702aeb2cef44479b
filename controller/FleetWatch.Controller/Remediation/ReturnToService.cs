using System.Globalization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Remediation;

/// <summary>
/// What FleetWatch remembers about a cordoned node on its way back to service (persisted, so a controller restart
/// neither forgets an operator's repair mark nor restarts a soak the node kept passing).
/// </summary>
public sealed record RepairRecord
{
    public required string Node { get; init; }

    /// <summary>The cordon this record belongs to (a new cordon of the same node starts a new record).</summary>
    public required DateTimeOffset CordonedAt { get; init; }

    /// <summary>
    /// The node's agent run when it was cordoned; a sample from another run afterwards is evidence of a restart, used
    /// only when the node's boot id is unknown (an agent that does not send one).
    /// </summary>
    public string? RunAtCordon { get; init; }

    /// <summary>The node's boot id when it was cordoned; a sample with another boot id afterwards is evidence of a reboot.</summary>
    public string? BootAtCordon { get; init; }

    /// <summary>"reboot", "agent_restart" or "operator"; null: no evidence of repair yet.</summary>
    public string? RepairKind { get; init; }

    public string? RepairedBy { get; init; }
    public DateTimeOffset? RepairedAt { get; init; }
    public string? RepairDetail { get; init; }

    /// <summary>Start of the current healthy stretch after the repair; null: not healthy now (or no evidence yet).</summary>
    public DateTimeOffset? SoakStart { get; init; }

    /// <summary>Last evaluation that found the node healthy (lets a soak survive a controller restart when samples continued).</summary>
    public DateTimeOffset? LastHealthyAt { get; init; }
}

/// <summary>What to do with one cordoned node now.</summary>
public enum ReturnVerdict
{
    /// <summary>Cordoned by an operator: only an operator returns it.</summary>
    Manual,

    /// <summary>No repair evidence yet, not healthy, or still soaking.</summary>
    Wait,

    /// <summary>Soaked, but the circuit breaker or storm guard holds automatic returns.</summary>
    Hold,

    /// <summary>Uncordon it.</summary>
    Return,
}

/// <summary>
/// The verdict, the record to persist, and why (for the log and the audit). <c>Excused</c>: the start of this process's
/// detector memory, accepted as no gap on its first look (pass it back on later evaluations of the node).
/// </summary>
public sealed record ReturnDecision(ReturnVerdict Verdict, RepairRecord Next, string Reason, DateTimeOffset? Excused = null);

/// <summary>
/// Automatic return to service of a node FleetWatch cordoned: (a) evidence of repair (a reboot after the cordon: a new
/// boot id; from an agent that sends no boot id, a new agent run; or an operator's repaired mark), then (b) healthy for <see cref="ReturnToServiceOptions.Soak"/> (NodeHealth.Problem
/// null at every evaluation; a gap in samples or a condition that changed between evaluations restarts the soak), and
/// (c) the circuit breaker and storm guard quiet. Pure functions; <see cref="NodeReturnService"/> loads and acts.
/// </summary>
public static class ReturnToServicePolicy
{
    /// <summary>Every <see cref="ReturnStatus.State"/>, in the order of the way back.</summary>
    public static readonly IReadOnlyList<string> States =
        ["manual", "disabled", "not_evaluated", "awaiting_repair", "unhealthy", "soaking", "held", "returning"];

    public const string Reboot = "reboot";
    public const string AgentRestart = "agent_restart";
    public const string OperatorMark = "operator";

    /// <param name="cordon">The node's cordon.</param>
    /// <param name="record">What was persisted about it (null: nothing yet).</param>
    /// <param name="facts">The node now.</param>
    /// <param name="guardHold">Why the breaker or storm guard holds returns (<see cref="Guard"/>), or null.</param>
    /// <param name="firstLook">True on this controller process's first evaluation of the node (its detector memory is new).</param>
    /// <param name="excused">What an earlier decision of this process returned as <c>Excused</c>: changes up to it are not gaps.</param>
    /// <param name="now">Evaluation time.</param>
    /// <param name="options">Thresholds.</param>
    public static ReturnDecision Evaluate(CordonRecord cordon, RepairRecord? record, NodeFacts facts, string? guardHold, bool firstLook, DateTimeOffset? excused,
        DateTimeOffset now, RemediationOptions options)
    {
        ArgumentNullException.ThrowIfNull(cordon);
        ArgumentNullException.ThrowIfNull(facts);
        ArgumentNullException.ThrowIfNull(options);
        var r = record is not null && record.CordonedAt == cordon.At
            ? record
            // No record of this cordon (cordoned before this feature, or the record was lost): the run seen now is the
            // baseline, so a restart that happened before this first look is not counted (conservative).
            : new RepairRecord { Node = cordon.Node, CordonedAt = cordon.At, RunAtCordon = facts.Latest?.AgentRun, BootAtCordon = facts.Latest?.BootId };
        if (cordon.Operator != CordonService.SystemOperator)
        {
            return new(ReturnVerdict.Manual, r, ManualReason(cordon));
        }

        // A reboot is the evidence when both boot ids are known: an agent restarted alone (an upgrade, a crash) repaired
        // nothing. Only where the agent sends no boot id does a new agent run stand in for the restart.
        var bootKnown = r.BootAtCordon is not null && facts.Latest?.BootId is not null;
        if (r.RepairedAt is null && facts.LastSeen > cordon.At && facts.Latest is { } latest)
        {
            if (bootKnown && latest.BootId != r.BootAtCordon)
            {
                r = r with { RepairKind = Reboot, RepairedBy = CordonService.SystemOperator, RepairedAt = facts.LastSeen, RepairDetail = $"boot id {r.BootAtCordon} -> {latest.BootId}" };
            }
            else if (!bootKnown && latest.AgentRun is { } run && r.RunAtCordon is { } old && run != old)
            {
                r = r with { RepairKind = AgentRestart, RepairedBy = CordonService.SystemOperator, RepairedAt = facts.LastSeen, RepairDetail = $"agent run {old} -> {run}" };
            }
        }

        if (r.RepairedAt is not { } repairedAt)
        {
            return new(ReturnVerdict.Wait, r, bootKnown
                ? "no repair evidence yet (a reboot of the node or an operator's repaired mark; an agent restart alone is not one)"
                : r.RunAtCordon is null
                ? "no repair evidence: the agent run at the cordon is unknown, waiting for an operator's repaired mark"
                : "no repair evidence yet (a new agent run or an operator's repaired mark)");
        }

        if (NodeHealth.Problem(facts, now, options.HealthMaxSampleAge) is { } problem)
        {
            return new(ReturnVerdict.Wait, r with { SoakStart = null }, (r.SoakStart is null ? "not healthy: " : "soak broken: ") + problem);
        }

        // Healthy now. Anything that changed since the soak began restarts it at that moment, even between two
        // evaluations: a gap in samples moves ReportingSince, a condition that flapped True and back moves its Since.
        var start = r.SoakStart ?? now;
        var changed = facts.Conditions!.Select(c => c.Since).Append(facts.ReportingSince ?? now).Where(t => excused is null || t > excused).Append(repairedAt).Max();
        if (firstLook && r.SoakStart is not null && r.LastHealthyAt is { } last && facts.ReportingSince is { } since && changed == since
            && since <= last + options.HealthMaxSampleAge + options.ReturnToService.Interval)
        {
            // A new controller process starts its detector memory at the first sample it sees; that is no gap when it
            // follows the last healthy evaluation of the previous process within one sample age and one interval.
            excused = since;
        }
        else if (changed > start)
        {
            start = changed;
        }

        r = r with { SoakStart = start, LastHealthyAt = now };
        var soaked = now - start;
        if (soaked < options.ReturnToService.Soak)
        {
            return new(ReturnVerdict.Wait, r, string.Create(CultureInfo.InvariantCulture,
                $"soaking since {start:O} after {r.RepairKind} repair; {(options.ReturnToService.Soak - soaked).TotalMinutes:0.#} min left"), excused);
        }

        if (guardHold is not null)
        {
            return new(ReturnVerdict.Hold, r, guardHold, excused);
        }

        return new(ReturnVerdict.Return, r, string.Create(CultureInfo.InvariantCulture,
            $"returned to service: {r.RepairKind} repair ({r.RepairDetail ?? r.RepairedBy}) at {repairedAt:O}, healthy for {soaked.TotalMinutes:0.#} min (soak {options.ReturnToService.Soak})"),
            excused);
    }

    private static string ManualReason(CordonRecord cordon) => $"cordoned by {cordon.Operator} by hand; only an operator returns it";

    /// <summary>What <c>GET /cordons</c> says of one cordon, from its persisted record and this process's last decision about it.</summary>
    public static ReturnStatus Status(CordonRecord cordon, RepairRecord? record, ReturnDecision? last, DateTimeOffset? evaluatedAt, bool enabled)
    {
        ArgumentNullException.ThrowIfNull(cordon);
        var r = last?.Next ?? (record?.CordonedAt == cordon.At ? record : null);
        var state = cordon.Operator != CordonService.SystemOperator ? "manual"
            : !enabled ? "disabled"
            : last is null ? "not_evaluated"
            : last.Verdict switch
            {
                ReturnVerdict.Hold => "held",
                ReturnVerdict.Return => "returning",
                ReturnVerdict.Manual => "manual",
                _ => r?.RepairedAt is null ? "awaiting_repair" : r.SoakStart is null ? "unhealthy" : "soaking",
            };
        var reason = state switch
        {
            "manual" => ManualReason(cordon),
            "disabled" => "automatic return to service is off, FleetWatch:Remediation:ReturnToService:Enabled; uncordon by hand",
            "not_evaluated" => "not evaluated yet by this controller",
            _ => last!.Reason,
        };
        return new ReturnStatus(state, reason, state is "manual" or "disabled" ? null : evaluatedAt, r?.RepairKind, r?.RepairDetail, r?.RepairedAt, r?.SoakStart);
    }

    /// <summary>
    /// Why automatic returns of the node are held, or null: a circuit-breaker refusal within StormWindow (something
    /// fleet-wide is wrong), the node named a suspect since its cordon (nvrx-watch suspect_node), a restart storm or
    /// no-progress halt within StormWindow of a job this node's failure restarted, or MaxReturnsPerDay automatic returns
    /// of the node in the last 24 h (a node that keeps failing after each return needs a human).
    /// </summary>
    public static string? Guard(CordonRecord cordon, IReadOnlyList<RemediationAction> nodeActions, IReadOnlyList<RemediationAction> jobActions,
        DateTimeOffset? lastBreakerAt, DateTimeOffset now, RemediationOptions options)
    {
        ArgumentNullException.ThrowIfNull(cordon);
        ArgumentNullException.ThrowIfNull(nodeActions);
        ArgumentNullException.ThrowIfNull(jobActions);
        ArgumentNullException.ThrowIfNull(options);
        if (lastBreakerAt is { } breaker && now - breaker < options.StormWindow)
        {
            return $"circuit breaker refused a cordon at {breaker:O}; automatic returns held for {options.StormWindow}";
        }

        if (nodeActions.FirstOrDefault(a => a.Kind == "page" && a.Detail == "suspect_node" && a.At >= cordon.At) is { } suspect)
        {
            return $"node named a suspect (ended consecutive short runs of job {suspect.JobId}) since its cordon; an operator decides";
        }

        if (jobActions.FirstOrDefault(a => now - a.At < options.StormWindow
                && ((a.Kind == "page" && a.Detail == "restart_storm") || (a.Kind == "halt" && a.Detail == "no_progress"))) is { } storm)
        {
            return $"job {storm.JobId} this node's failure restarted is storming ({storm.Detail} at {storm.At:O}); held for {options.StormWindow}";
        }

        var returns = nodeActions.Count(a => a.Kind == "uncordon" && a.Operator == CordonService.SystemOperator && now - a.At < TimeSpan.FromDays(1));
        return returns >= options.ReturnToService.MaxReturnsPerDay
            ? string.Create(CultureInfo.InvariantCulture, $"returned automatically {returns} times in 24 h (limit {options.ReturnToService.MaxReturnsPerDay}); an operator decides")
            : null;
    }
}

/// <summary>What an operator's repaired mark came to.</summary>
public enum RepairMarkOutcome
{
    Recorded,
    NotCordoned,

    /// <summary>The node was cordoned by an operator: it goes back by an operator's uncordon, not automatically.</summary>
    ManualCordon,
}

/// <summary>
/// Loads the state of every cordoned node, calls <see cref="ReturnToServicePolicy"/>, persists what changed and
/// uncordons through <see cref="CordonService"/> (same scheduler adapters, same audit as an operator's uncordon).
/// </summary>
public sealed partial class NodeReturnService(
    RemediationStore store,
    CordonService cordons,
    NodeFactsSource nodeFacts,
    IOptions<RemediationOptions> options,
    TimeProvider time,
    ILogger<NodeReturnService> logger)
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    // The last decision about every node this process has evaluated: whether this is its first look, the detector-memory
    // start accepted as continuous then (Excused), and what GET /cordons shows (read without the gate).
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (DateTimeOffset At, ReturnDecision Decision)> _last = new(StringComparer.Ordinal);

    /// <summary>Every cordon with where its return to service stands (<see cref="ReturnToServicePolicy.Status"/>).</summary>
    public IReadOnlyList<CordonView> Cordons()
    {
        var enabled = options.Value.ReturnToService.Enabled;
        var records = store.Repairs().ToDictionary(r => r.Node, StringComparer.Ordinal);
        return store.Cordons().Select(c =>
        {
            var last = _last.TryGetValue(c.Node, out var l) && l.Decision.Next.CordonedAt == c.At ? l : default;
            return new CordonView(c.Node, c.Reason, c.IncidentId, c.Operator, c.At,
                ReturnToServicePolicy.Status(c, records.GetValueOrDefault(c.Node), last.Decision, last.Decision is null ? null : last.At, enabled));
        }).ToArray();
    }

    /// <summary>One evaluation of every cordoned node (does nothing while ReturnToService is disabled). Returns the decisions.</summary>
    public async Task<IReadOnlyList<ReturnDecision>> EvaluateAsync(CancellationToken ct)
    {
        var o = options.Value;
        if (!o.ReturnToService.Enabled)
        {
            return [];
        }

        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var view = nodeFacts.Snapshot();
            var now = view.Now;
            var records = store.Repairs().ToDictionary(r => r.Node, StringComparer.Ordinal);
            var breaker = store.LastActionAt("breaker:");
            var decisions = new List<ReturnDecision>();
            foreach (var cordon in store.Cordons())
            {
                var record = records.GetValueOrDefault(cordon.Node);
                var nodeActions = store.Actions(cordon.Node, null, 500);
                var jobActions = nodeActions.Where(a => a.Kind == "restore" && a.JobId is not null && a.At >= cordon.At).Select(a => a.JobId!).Distinct(StringComparer.Ordinal)
                    .SelectMany(j => store.Actions(null, j, 500)).ToArray();
                var guard = ReturnToServicePolicy.Guard(cordon, nodeActions, jobActions, breaker, now, o);
                var firstLook = !_last.TryGetValue(cordon.Node, out var looked);
                var decision = ReturnToServicePolicy.Evaluate(cordon, record, view.Facts(cordon.Node), guard, firstLook, looked.Decision?.Excused, now, o);
                _last[cordon.Node] = (now, decision);
                decisions.Add(decision);
                if (decision.Verdict == ReturnVerdict.Manual)
                {
                    continue;
                }

                var next = decision.Next;
                if (record?.RepairedAt is null && next.RepairKind is ReturnToServicePolicy.AgentRestart or ReturnToServicePolicy.Reboot)
                {
                    store.TryRecord(Audit.Of(string.Create(CultureInfo.InvariantCulture, $"repaired:{cordon.Node}:{cordon.At.ToUnixTimeMilliseconds()}:agent"), now, "repaired",
                        cordon.Node, null, null, cordon.IncidentId, $"evidence of repair: {next.RepairDetail}", null, CordonService.SystemOperator, ActionStates.Done));
                    LogEvidence(logger, cordon.Node, next.RepairDetail!);
                }

                if (record?.SoakStart is { } was && next.SoakStart != was)
                {
                    LogSoakRestarted(logger, cordon.Node, decision.Reason);
                }

                if (next != record)
                {
                    store.UpsertRepair(next);
                }

                if (decision.Verdict == ReturnVerdict.Return)
                {
                    if (await cordons.ReturnToServiceAsync(cordon.Node, cordon.At, decision.Reason, ct).ConfigureAwait(false))
                    {
                        LogReturned(logger, cordon.Node, decision.Reason);
                    }
                }
                else if (decision.Verdict == ReturnVerdict.Hold)
                {
                    LogHeld(logger, cordon.Node, decision.Reason);
                }
            }

            return decisions;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>An operator says the node is repaired: the evidence is recorded (and audited under their name); the soak starts afresh from now.</summary>
    public async Task<RepairMarkOutcome> MarkRepairedAsync(string node, string operatorName, string? note, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (store.Cordons().FirstOrDefault(c => c.Node == node) is not { } cordon)
            {
                return RepairMarkOutcome.NotCordoned;
            }

            if (cordon.Operator != CordonService.SystemOperator)
            {
                return RepairMarkOutcome.ManualCordon;
            }

            var now = time.GetUtcNow();
            var record = store.Repairs().FirstOrDefault(r => r.Node == node && r.CordonedAt == cordon.At)
                ?? new RepairRecord { Node = node, CordonedAt = cordon.At };
            // Telemetry from before the repair says nothing about the repaired node: the soak starts after the mark.
            store.UpsertRepair(record with
            {
                RepairKind = ReturnToServicePolicy.OperatorMark, RepairedBy = operatorName, RepairedAt = now, RepairDetail = note ?? $"marked repaired by {operatorName}",
                SoakStart = null, LastHealthyAt = null,
            });
            store.TryRecord(Audit.Of(null, now, "repaired", node, null, null, cordon.IncidentId, note ?? "marked repaired", null, operatorName, ActionStates.Done,
                options.Value.ReturnToService.Enabled ? $"returns after {options.Value.ReturnToService.Soak} healthy" : "automatic return disabled: uncordon by hand"));
            return RepairMarkOutcome.Recorded;
        }
        finally
        {
            _gate.Release();
        }
    }

    [LoggerMessage(EventId = 6401, Level = LogLevel.Information, Message = "Node {Node} shows evidence of repair: {Detail}")]
    private static partial void LogEvidence(ILogger logger, string node, string detail);

    [LoggerMessage(EventId = 6402, Level = LogLevel.Information, Message = "Soak of node {Node} restarted: {Reason}")]
    private static partial void LogSoakRestarted(ILogger logger, string node, string reason);

    [LoggerMessage(EventId = 6403, Level = LogLevel.Warning, Message = "Node {Node} {Reason}")]
    private static partial void LogReturned(ILogger logger, string node, string reason);

    [LoggerMessage(EventId = 6404, Level = LogLevel.Warning, Message = "Node {Node} soaked but held in its cordon: {Reason}")]
    private static partial void LogHeld(ILogger logger, string node, string reason);
}

/// <summary>Evaluates cordoned nodes for return every <see cref="ReturnToServiceOptions.Interval"/>; idle while ReturnToService is disabled.</summary>
public sealed partial class ReturnToServiceLoop(NodeReturnService service, IOptions<RemediationOptions> options, TimeProvider time, ILogger<ReturnToServiceLoop> logger)
    : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        options.Value.ReturnToService.Enabled
            ? PeriodicLoop.RunAsync(options.Value.ReturnToService.Interval, time, service.EvaluateAsync, ex => LogFailed(logger, ex), stoppingToken)
            : Task.CompletedTask;

    [LoggerMessage(EventId = 6405, Level = LogLevel.Error, Message = "Return-to-service evaluation failed")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
