using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Http.Json;
using FleetWatch.Contracts;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Remediation;

/// <summary>
/// The restore loop of research/straggler-restore-anchors.md section 5.4: (1) an incident arrives, (2) it is classified
/// (hardware / software / slow), (4) the bad node is cordoned, (5) the newest complete checkpoint is selected, (6) the job
/// is commanded (<see cref="RestoreFromCheckpoint"/>, idempotent per job and cycle, on the bus, through the scheduler
/// adapter and to the job's webhook), (7) the restored run is verified (acknowledgement, then <see cref="RemediationOptions.VerifySteps"/>
/// steps before the deadline; otherwise the checkpoint is marked bad and the previous complete one restored), (8) the
/// storm guard stops or pages, (9) every step is audited and pages go out as <see cref="RemediationHalted"/>.
/// Step 3 (choose by cost) is reduced to the class: software faults restart in place, hardware faults replace the node.
/// State lives in <see cref="RemediationStore"/>; one gate serialises the decisions (a few per hour in a healthy fleet).
/// </summary>
public sealed partial class RestoreOrchestrator(
    RemediationStore store,
    JobRegistry registry,
    CordonService cordons,
    SchedulerAdapters adapters,
    NodeFactsSource nodeFacts,
    IOptions<RemediationOptions> options,
    IServiceProvider services,
    TimeProvider time,
    ILogger<RestoreOrchestrator> logger)
{
    /// <summary>Named HTTP client for job webhooks.</summary>
    public const string HttpClientName = "fleetwatch-remediation";

    private const string SystemOperator = "fleetwatch";
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly ConcurrentDictionary<string, RestoreCycle> _inFlight = new(StringComparer.Ordinal);
    private int _loaded;

    private RemediationOptions O => options.Value;

    // ---------------- inputs ----------------

    public async Task OnIncidentAsync(IncidentSnapshot incident, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(incident);
        var fault = FaultClassifier.Classify(incident);
        if (fault == FaultClass.Observe)
        {
            return;
        }

        var evidence = Evidence(incident);
        var reason = $"{incident.Category} ({incident.Action}) on {incident.Node}" + (incident.GpuIndex is { } g ? $" GPU {g}" : "");
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            EnsureLoaded();
            if (fault == FaultClass.Hardware)
            {
                var outcome = await cordons.CordonAsync(incident.Node, reason, incident.Id, SystemOperator, evidence, ct).ConfigureAwait(false);
                if (outcome == CordonOutcome.Refused)
                {
                    // Section 5.4 step 4 could not isolate the node: restoring onto a fleet in that state would only move the fault around.
                    return;
                }
            }

            foreach (var job in registry.JobsOn(incident.Node, incident.GpuIndex))
            {
                await HandleJobAsync(job, fault, incident, reason, evidence, ct).ConfigureAwait(false);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    public JobRecord Register(JobRegistered message) => registry.Register(message);

    public void OnCheckpoint(CheckpointSaved message)
    {
        ArgumentNullException.ThrowIfNull(message);
        store.UpsertCheckpoint(new CheckpointRecord(message.JobId, message.Step, message.Uri, message.Shards, message.RanksCovered.Distinct().Order().ToArray(),
            message.ManifestChecksum, "reported", message.Time ?? time.GetUtcNow()));
    }

    /// <summary>A step the job completed (its own report or the agents' step timings).</summary>
    public async Task OnStepAsync(string jobId, long step, bool healthy, DateTimeOffset? at, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var job = registry.Get(jobId);
        if (job is null)
        {
            return;
        }

        if (job.FirstStepAt is null || job.LastStep is null || step > job.LastStep)
        {
            // Persist only the first step (the startup-failure rule needs it across restarts); LastStep is informative.
            var first = job.FirstStepAt is null;
            registry.Update(jobId, j => j with { FirstStepAt = j.FirstStepAt ?? now, LastStep = Math.Max(j.LastStep ?? step, step) }, persist: first);
        }

        EnsureLoaded();
        if (!_inFlight.TryGetValue(jobId, out var cycle) || (at ?? now) < cycle.StartedAt || step <= cycle.CheckpointStep)
        {
            return;
        }

        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (!_inFlight.TryGetValue(jobId, out cycle) || step <= cycle.CheckpointStep)
            {
                return;
            }

            if (!healthy)
            {
                await FallBackAsync(cycle, $"restored run reported an unhealthy step {step} (non-finite loss or loss spike)", ct).ConfigureAwait(false);
                return;
            }

            // A step of the restored run is an acknowledgement too (a launcher may never send one).
            var next = cycle with { FirstStepAt = cycle.FirstStepAt ?? now, AckedAt = cycle.AckedAt ?? now, State = CycleStates.Acknowledged };
            if (step >= cycle.CheckpointStep + O.VerifySteps)
            {
                next = next with { State = CycleStates.Healthy, HealthyAt = now, Detail = string.Create(CultureInfo.InvariantCulture, $"step {step} reached") };
                _inFlight.TryRemove(jobId, out _);
                store.UpdateCycle(next);
                store.UpdateAction(ActionKey(cycle), ActionStates.Done, next.Detail, now);
                LogHealthy(logger, jobId, cycle.Cycle, step);
            }
            else
            {
                if (cycle.FirstStepAt is null)
                {
                    store.UpdateCycle(next);
                }

                _inFlight[jobId] = next;
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    public async Task<bool> OnAcknowledgedAsync(string jobId, long cycle, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            EnsureLoaded();
            if (!_inFlight.TryGetValue(jobId, out var current) || current.Cycle != cycle || current.AckedAt is not null)
            {
                return store.Cycles(jobId).Any(c => c.Cycle == cycle);
            }

            var next = current with { State = CycleStates.Acknowledged, AckedAt = time.GetUtcNow() };
            _inFlight[jobId] = next;
            store.UpdateCycle(next);
            return true;
        }
        finally
        {
            _gate.Release();
        }
    }

    public void OnFinished(string jobId, DateTimeOffset? at)
    {
        if (registry.Update(jobId, j => j with { FinishedAt = at ?? time.GetUtcNow() }) is not null)
        {
            _inFlight.TryRemove(jobId, out _);
            store.ReleaseSpares(jobId);
        }
    }

    /// <summary>Checks in-flight restores against their deadline (section 5.4 step 7); called by <see cref="RestoreVerificationService"/>.</summary>
    public async Task SweepAsync(CancellationToken ct)
    {
        EnsureLoaded();
        var now = time.GetUtcNow();
        if (!_inFlight.Values.Any(c => c.Deadline <= now))
        {
            return;
        }

        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            foreach (var cycle in _inFlight.Values.Where(c => c.Deadline <= now).ToArray())
            {
                var why = cycle.AckedAt is null
                    ? $"restored run neither acknowledged nor reached {O.VerifySteps} steps within {O.VerifyTimeout}"
                    : $"restored run did not reach {O.VerifySteps} steps past {cycle.CheckpointStep} within {O.VerifyTimeout}";
                await FallBackAsync(cycle, why, ct).ConfigureAwait(false);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    // ---------------- queries ----------------

    /// <summary>The job's checkpoints: reported ones plus, when enabled, those a directory scan finds complete.</summary>
    public IReadOnlyList<CheckpointRecord> Inventory(JobRecord job)
    {
        ArgumentNullException.ThrowIfNull(job);
        var reported = store.Checkpoints(job.JobId);
        if (!O.ScanCheckpointDirs || ScanDirectory(job) is not { } dir)
        {
            return reported;
        }

        var scan = CheckpointDirectoryScanner.Scan(job.JobId, dir, time.GetUtcNow());
        var bad = reported.Where(r => r.BadReason is not null).ToDictionary(r => r.Step, r => r.BadReason);
        var incomplete = scan.Incomplete.ToHashSet();
        // A reported step whose directory exists without its marker was not really finished (the report raced the save).
        return reported.Where(r => !incomplete.Contains(r.Step))
            .Concat(scan.Complete.Select(c => bad.TryGetValue(c.Step, out var b) ? c with { BadReason = b } : c))
            .OrderBy(c => c.Step).ToArray();
    }

    public IReadOnlyList<RestoreCycle> Cycles(string jobId) => store.Cycles(jobId);

    /// <summary>The job's restore cycle awaiting verification, from memory (cheap enough to poll).</summary>
    public RestoreCycle? InFlight(string jobId)
    {
        EnsureLoaded();
        return _inFlight.GetValueOrDefault(jobId);
    }

    // ---------------- the flow ----------------

    private async Task HandleJobAsync(JobRecord job, FaultClass fault, IncidentSnapshot incident, string reason, string evidence, CancellationToken ct)
    {
        // One restore per (job, incident, class): an update of the same incident is a no-op, but an incident that
        // escalates from a software fault to a hardware one still gets the node replaced.
        var kind = fault == FaultClass.Hardware ? "hardware" : "software";
        var key = $"restore:{job.JobId}:{incident.Id}:{kind}";
        if (store.HasAction(key) || store.HasAction($"halt:{job.JobId}:{incident.Id}"))
        {
            return; // Handled before (a redelivery, an update of the same incident, or a previous controller process).
        }

        var now = time.GetUtcNow();
        if (_inFlight.TryGetValue(job.JobId, out var current) && (fault == FaultClass.Software || current.Excluded.Contains(incident.Node)))
        {
            // The running restore already leaves this node out (or restarts the job anyway): one restart covers both.
            LogCovered(logger, job.JobId, incident.Id, current.Cycle);
            return;
        }

        if (job.HaltedReason is not null)
        {
            await HaltAsync(job, null, incident, "halted", job.HaltedReason, halted: true, Severity.High, ct).ConfigureAwait(false);
            return;
        }

        if (job.FirstStepAt is null)
        {
            // pytorch/pytorch#60910: a job that never completed a step failed at startup; restarting it only loops.
            await HaltAsync(job, null, incident, "before_first_step", $"job {job.JobId} failed before its first successful step; not restarted", halted: true, Severity.High, ct)
                .ConfigureAwait(false);
            return;
        }

        var previous = store.Cycles(job.JobId);
        var cycleNo = previous.Count == 0 ? 1 : previous[^1].Cycle + 1;
        if (!O.Enabled)
        {
            store.TryRecord(Action(key, now, fault == FaultClass.Hardware ? "restore" : "restart", incident.Node, job.JobId, cycleNo, incident.Id, reason, evidence,
                ActionStates.Failed, "remediation disabled (FleetWatch:Remediation:Enabled=false): not restarted"));
            return;
        }

        var excluded = new SortedSet<string>(StringComparer.Ordinal);
        if (current is not null)
        {
            excluded.UnionWith(current.Excluded);
        }

        if (fault == FaultClass.Hardware)
        {
            excluded.Add(incident.Node);
        }

        await StartCycleAsync(job, cycleNo, kind, key, incident.Id, incident.Node, excluded, belowStep: null,
            reason, evidence, previous, ct).ConfigureAwait(false);
    }

    private async Task FallBackAsync(RestoreCycle failed, string why, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        _inFlight.TryRemove(failed.JobId, out _);
        store.UpdateCycle(failed with { State = CycleStates.Failed, Detail = why });
        store.UpdateAction(ActionKey(failed), ActionStates.Failed, why, now);
        var job = registry.Get(failed.JobId);
        if (job is null || !job.Running)
        {
            return;
        }

        // Megatron-LM#5281: a checkpoint that does not restore to a healthy run is marked bad and never selected again.
        var checkpoint = Inventory(job).FirstOrDefault(c => c.Step == failed.CheckpointStep)
            ?? new CheckpointRecord(job.JobId, failed.CheckpointStep, failed.CheckpointUri, 0, [], null, "reported", now);
        store.UpsertCheckpoint(checkpoint with { BadReason = why });
        store.TryRecord(Action($"mark_bad:{job.JobId}:{failed.CheckpointStep}", now, "mark_bad", null, job.JobId, failed.Cycle, failed.IncidentId,
            string.Create(CultureInfo.InvariantCulture, $"checkpoint step {failed.CheckpointStep} marked bad: {why}"), failed.CheckpointUri, ActionStates.Done, null));
        LogFallback(logger, job.JobId, failed.Cycle, failed.CheckpointStep, why);

        var previous = store.Cycles(job.JobId);
        var cycleNo = previous[^1].Cycle + 1;
        await StartCycleAsync(job, cycleNo, "fallback", $"fallback:{job.JobId}:{cycleNo}", failed.IncidentId, null, new SortedSet<string>(failed.Excluded, StringComparer.Ordinal),
            belowStep: failed.CheckpointStep, $"fallback from checkpoint step {failed.CheckpointStep}: {why}", failed.CheckpointUri, previous, ct).ConfigureAwait(false);
    }

    private async Task StartCycleAsync(JobRecord job, long cycleNo, string kind, string key, string? incidentId, string? triggerNode, SortedSet<string> excluded,
        long? belowStep, string reason, string? evidence, IReadOnlyList<RestoreCycle> previous, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var incident = new IncidentRef(incidentId, triggerNode);
        var ranks = job.Ranks.Select(r => r.Rank).ToArray();
        var checkpoint = CheckpointSelector.Select(Inventory(job), ranks, belowStep);
        if (checkpoint is null)
        {
            await HaltAsync(job, cycleNo, incident, "no_checkpoint",
                $"no checkpoint of job {job.JobId} covers all {ranks.Length} ranks" + (belowStep is { } b ? $" below step {b}" : "") + "; not restarted",
                halted: true, Severity.Critical, ct).ConfigureAwait(false);
            return;
        }

        var verdict = StormGuard.Evaluate(previous, checkpoint.Step, triggerNode, job.RegisteredAt, now, O);
        if (verdict.HaltKind is not null)
        {
            registry.Update(job.JobId, j => j with { HaltedReason = verdict.HaltMessage });
            await HaltAsync(job, cycleNo, incident, verdict.HaltKind, verdict.HaltMessage!, halted: true, Severity.Critical, ct).ConfigureAwait(false);
            return;
        }

        if (verdict.Storm)
        {
            await PageAsync(job, cycleNo, incidentId, "restart_storm", [],
                $"{verdict.CyclesInWindow} restart cycles of job {job.JobId} within {O.StormWindow} (nvrx-watch restart_storm)", Severity.Warning, ct).ConfigureAwait(false);
        }

        if (verdict.SuspectNode is { } suspect)
        {
            await PageAsync(job, cycleNo, incidentId, "suspect_node", [suspect],
                $"node {suspect} ended {O.SuspectNodeCycles} consecutive runs of job {job.JobId} shorter than {O.ShortCycle} (correlation only)", Severity.Warning, ct)
                .ConfigureAwait(false);
        }

        // Spares for the newly excluded nodes (a fallback keeps the nodes the failed cycle already chose).
        var spares = new List<string>();
        var newRanks = job.Ranks.ToList();
        if (kind == "hardware")
        {
            var taken = new HashSet<string>(store.SpareUse().Keys, StringComparer.Ordinal);
            taken.UnionWith(store.Cordons().Select(c => c.Node));
            // A listed spare that some running job already uses is not free, whoever put it there.
            foreach (var running in registry.All().Where(j => j.Running))
            {
                taken.UnionWith(running.Nodes);
            }

            NodeFactsView? view = null;
            var skipped = 0;
            foreach (var node in excluded.Where(n => job.Ranks.Any(r => r.Node == n)))
            {
                var label = job.Ranks.First(r => r.Node == node);
                var configured = O.Spares.FirstOrDefault(s => s.Node == node);
                SpareNode? spare;
                while ((spare = SparePicker.Pick(O.Spares, taken, label.Domain ?? configured?.Domain, label.Rack ?? configured?.Rack, job.SparePolicy)) is not null
                    && O.CheckSpares)
                {
                    // Section 5.4 step 4: the spare is checked before it is admitted; a bad one is skipped for the next in order.
                    view ??= nodeFacts.Snapshot();
                    if (NodeHealth.SpareProblem(view.Facts(spare.Node), view.Now, O.HealthMaxSampleAge) is not { } problem)
                    {
                        break;
                    }

                    taken.Add(spare.Node);
                    skipped++;
                    LogSpareSkipped(logger, spare.Node, job.JobId, node, problem);
                    store.TryRecord(Action(string.Create(CultureInfo.InvariantCulture, $"spare_check:{job.JobId}:{cycleNo}:{spare.Node}"), now, "spare_check", spare.Node,
                        job.JobId, cycleNo, incidentId, $"spare {spare.Node} not used to replace {node}: {problem}", null, ActionStates.Failed, problem));
                }

                if (spare is null)
                {
                    if (job.SparePolicy != SparePicker.None)
                    {
                        await PageAsync(job, cycleNo, incidentId, "spares_exhausted", [node],
                            $"no spare for {node} (domain {label.Domain ?? configured?.Domain ?? "unknown"}, policy {job.SparePolicy}"
                            + (skipped > 0 ? string.Create(CultureInfo.InvariantCulture, $", {skipped} failed the self-check, see /actions?job={job.JobId}") : "")
                            + $"); job {job.JobId} restarts without it",
                            Severity.High, ct).ConfigureAwait(false);
                    }

                    continue;
                }

                taken.Add(spare.Node);
                spares.Add(spare.Node);
                for (var i = 0; i < newRanks.Count; i++)
                {
                    if (newRanks[i].Node == node)
                    {
                        newRanks[i] = newRanks[i] with { Node = spare.Node, Domain = spare.Domain ?? newRanks[i].Domain, Rack = spare.Rack ?? newRanks[i].Rack };
                    }
                }
            }
        }

        var updated = job with { Ranks = newRanks };
        var nodes = updated.Nodes.Where(n => !excluded.Contains(n)).ToArray();
        var cycle = new RestoreCycle
        {
            JobId = job.JobId,
            Cycle = cycleNo,
            Kind = kind,
            IncidentId = incidentId,
            TriggerNode = triggerNode,
            CheckpointStep = checkpoint.Step,
            CheckpointUri = checkpoint.Uri,
            Excluded = [.. excluded],
            Spares = spares,
            Nodes = nodes,
            State = CycleStates.Sent,
            StartedAt = now,
            Deadline = now + O.VerifyTimeout,
        };
        var actionKind = kind switch { "hardware" => "restore", "software" => "restart", _ => "fallback" };
        var detail = string.Create(CultureInfo.InvariantCulture,
            $"cycle {cycleNo}: checkpoint step {checkpoint.Step} ({checkpoint.Uri}); excluded [{string.Join(", ", excluded)}]; spares [{string.Join(", ", spares)}]");
        if (!store.TryStartCycle(cycle, updated, Action(key, now, actionKind, triggerNode ?? excluded.FirstOrDefault(), job.JobId, cycleNo, incidentId, reason, evidence,
                ActionStates.InFlight, detail)))
        {
            return;
        }

        registry.Replace(updated);
        if (_inFlight.TryGetValue(job.JobId, out var superseded) && superseded.Cycle != cycleNo)
        {
            store.UpdateCycle(superseded with { State = CycleStates.Failed, Detail = $"superseded by cycle {cycleNo}" });
            store.UpdateAction(ActionKey(superseded), ActionStates.Failed, $"superseded by cycle {cycleNo}", now);
        }

        _inFlight[job.JobId] = cycle;
        var command = new RestoreFromCheckpoint
        {
            JobId = job.JobId,
            Cycle = cycleNo,
            Checkpoint = new CheckpointRef(checkpoint.Step, checkpoint.Uri),
            ExcludedNodes = cycle.Excluded,
            Spares = spares,
            Nodes = nodes,
            Reason = kind,
            IncidentId = incidentId,
            Time = now,
        };
        LogRestore(logger, job.JobId, cycleNo, kind, checkpoint.Step, string.Join(",", excluded), string.Join(",", spares));
        var sent = new List<string>();
        if (services.GetService<IBus>() is { } bus)
        {
            await bus.Publish(command, ct).ConfigureAwait(false);
            sent.Add("bus: published");
        }

        if (job.Scheduler != "none" && job.SchedulerJobId is { } schedulerJobId)
        {
            var result = await adapters.CallAsync(job.Scheduler, a => a.RequeueAsync(schedulerJobId, cycle.Excluded, ct), ct).ConfigureAwait(false);
            sent.Add($"{job.Scheduler} requeue: {(result.Ok ? "ok" : "failed")}: {result.Detail}");
        }

        if (job.WebhookUrl is { } url)
        {
            sent.Add("webhook: " + await PostWebhookAsync(url, command, ct).ConfigureAwait(false));
        }

        store.UpdateAction(key, ActionStates.InFlight, detail + "; " + string.Join("; ", sent), time.GetUtcNow());
    }

    private async Task<string> PostWebhookAsync(string url, RestoreFromCheckpoint command, CancellationToken ct)
    {
        if (services.GetService<IHttpClientFactory>() is not { } factory)
        {
            return "no HTTP client";
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(O.CallTimeout);
        try
        {
            using var response = await factory.CreateClient(HttpClientName).PostAsJsonAsync(url, command, timeout.Token).ConfigureAwait(false);
            return $"HTTP {(int)response.StatusCode}";
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            // The bus command already went out; a launcher that is down must not stop the restore.
            return $"failed: {ex.GetType().Name}";
        }
    }

    private async Task HaltAsync(JobRecord job, long? cycle, IncidentRef incident, string kind, string message, bool halted, Severity severity, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        if (!store.TryRecord(Action($"halt:{job.JobId}:{incident.Id ?? cycle?.ToString(CultureInfo.InvariantCulture)}", now, "halt", incident.Node, job.JobId, cycle,
                incident.Id, message, null, ActionStates.Done, kind)))
        {
            return;
        }

        LogHalt(logger, job.JobId, kind, message);
        await PublishAsync(new RemediationHalted
        {
            Kind = kind, JobId = job.JobId, Cycle = cycle, Nodes = incident.Node is null ? [] : [incident.Node], Halted = halted, Severity = severity,
            Message = message, IncidentId = incident.Id, Time = now,
        }, ct).ConfigureAwait(false);
    }

    private Task HaltAsync(JobRecord job, long? cycle, IncidentSnapshot incident, string kind, string message, bool halted, Severity severity, CancellationToken ct) =>
        HaltAsync(job, cycle, new IncidentRef(incident.Id, incident.Node), kind, message, halted, severity, ct);

    private async Task PageAsync(JobRecord job, long cycle, string? incidentId, string kind, IReadOnlyList<string> nodes, string message, Severity severity, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        if (!store.TryRecord(Action(string.Create(CultureInfo.InvariantCulture, $"page:{kind}:{job.JobId}:{cycle}:{string.Join(",", nodes)}"), now, "page",
                nodes.FirstOrDefault(), job.JobId, cycle, incidentId, message, null, ActionStates.Done, kind)))
        {
            return;
        }

        LogPage(logger, job.JobId, kind, message);
        await PublishAsync(new RemediationHalted
        {
            Kind = kind, JobId = job.JobId, Cycle = cycle, Nodes = nodes, Halted = false, Severity = severity, Message = message, IncidentId = incidentId, Time = now,
        }, ct).ConfigureAwait(false);
    }

    private Task PublishAsync(RemediationHalted message, CancellationToken ct) =>
        services.GetService<IBus>() is { } bus ? bus.Publish(message, ct) : Task.CompletedTask;

    private string? ScanDirectory(JobRecord job)
    {
        if (string.IsNullOrWhiteSpace(job.CheckpointDir))
        {
            return null;
        }

        var dir = Path.GetFullPath(job.CheckpointDir);
        if (O.CheckpointRoot is { Length: > 0 } root)
        {
            var full = Path.GetFullPath(root).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
            if (!(dir + Path.DirectorySeparatorChar).StartsWith(full, StringComparison.Ordinal))
            {
                return null;
            }
        }

        return dir;
    }

    private void EnsureLoaded()
    {
        if (Interlocked.Exchange(ref _loaded, 1) == 0)
        {
            foreach (var cycle in store.InFlightCycles())
            {
                _inFlight[cycle.JobId] = cycle;
            }
        }
    }

    private static string ActionKey(RestoreCycle cycle) =>
        cycle.Kind == "fallback"
            ? string.Create(CultureInfo.InvariantCulture, $"fallback:{cycle.JobId}:{cycle.Cycle}")
            : $"restore:{cycle.JobId}:{cycle.IncidentId}:{cycle.Kind}";

    private static RemediationAction Action(string key, DateTimeOffset at, string kind, string? node, string? job, long? cycle, string? incident, string reason,
        string? evidence, string state, string? detail) =>
        Audit.Of(key, at, kind, node, job, cycle, incident, reason, evidence, SystemOperator, state, detail);

    private static string Evidence(IncidentSnapshot incident) =>
        string.Join("; ", incident.Findings.Take(5).Select(f => $"{f.Rule}: {f.Message}"));

    private sealed record IncidentRef(string? Id, string? Node);

    [LoggerMessage(EventId = 6201, Level = LogLevel.Warning,
        Message = "RestoreFromCheckpoint job {JobId} cycle {Cycle} ({Kind}): checkpoint step {Step}, excluded [{Excluded}], spares [{Spares}]")]
    private static partial void LogRestore(ILogger logger, string jobId, long cycle, string kind, long step, string excluded, string spares);

    [LoggerMessage(EventId = 6202, Level = LogLevel.Information, Message = "Job {JobId} cycle {Cycle} healthy at step {Step}")]
    private static partial void LogHealthy(ILogger logger, string jobId, long cycle, long step);

    [LoggerMessage(EventId = 6203, Level = LogLevel.Warning, Message = "Job {JobId} cycle {Cycle} failed verification from step {Step}: {Why}; falling back")]
    private static partial void LogFallback(ILogger logger, string jobId, long cycle, long step, string why);

    [LoggerMessage(EventId = 6204, Level = LogLevel.Error, Message = "Remediation of job {JobId} halted ({Kind}): {Message}")]
    private static partial void LogHalt(ILogger logger, string jobId, string kind, string message);

    [LoggerMessage(EventId = 6205, Level = LogLevel.Warning, Message = "Remediation page for job {JobId} ({Kind}): {Message}")]
    private static partial void LogPage(ILogger logger, string jobId, string kind, string message);

    [LoggerMessage(EventId = 6207, Level = LogLevel.Warning, Message = "Spare {Spare} failed its self-check for job {JobId} (replacing {Node}): {Problem}")]
    private static partial void LogSpareSkipped(ILogger logger, string spare, string jobId, string node, string problem);

    [LoggerMessage(EventId = 6206, Level = LogLevel.Debug, Message = "Incident {IncidentId} on job {JobId} is covered by restore cycle {Cycle} in flight")]
    private static partial void LogCovered(ILogger logger, string jobId, string incidentId, long cycle);
}
