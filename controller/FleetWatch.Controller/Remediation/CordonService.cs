using System.Globalization;
using FleetWatch.Contracts;
using FleetWatch.Controller.Fleet;
using FleetWatch.Controller.Remediation.Scheduling;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Remediation;

/// <summary>What a cordon request came to.</summary>
public enum CordonOutcome
{
    Cordoned,
    AlreadyCordoned,

    /// <summary>The circuit breaker refused it: too much of the fleet is cordoned already.</summary>
    Refused,
}

/// <summary>
/// Cordons nodes in FleetWatch's own state (persisted, cleared by an operator or, opt-in, by <see cref="NodeReturnService"/>) and through the scheduler adapter
/// that runs the node (DESIGN.md "Remediation" step 1), and sends <see cref="CordonNode"/> on the bus either way. A
/// circuit breaker refuses to cordon more than <see cref="RemediationOptions.MaxCordonedShare"/> of the fleet
/// (NVSentinel: 50 %) and pages instead: a fault that takes out half the fleet is more likely a detector or
/// infrastructure problem than half the GPUs breaking at once.
/// </summary>
public sealed partial class CordonService(
    RemediationStore store,
    JobRegistry registry,
    SchedulerAdapters adapters,
    IOptions<RemediationOptions> options,
    IServiceProvider services,
    TimeProvider time,
    ILogger<CordonService> logger)
{
    /// <summary>The operator name of FleetWatch's own actions; only cordons under this name return to service automatically.</summary>
    public const string SystemOperator = "fleetwatch";

    private readonly SemaphoreSlim _gate = new(1, 1);

    public IReadOnlyList<CordonRecord> Cordons() => store.Cordons();

    public async Task<CordonOutcome> CordonAsync(string node, string reason, string? incidentId, string operatorName, string? evidence, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var cordons = store.Cordons();
            if (cordons.Any(c => c.Node == node))
            {
                return CordonOutcome.AlreadyCordoned;
            }

            var now = time.GetUtcNow();
            var fleet = FleetSize(cordons);
            var allowed = (int)Math.Floor(options.Value.MaxCordonedShare * fleet);
            if (cordons.Count + 1 > allowed)
            {
                var message = string.Create(CultureInfo.InvariantCulture,
                    $"circuit breaker: cordoning {node} would hold {cordons.Count + 1} of {fleet} nodes, above the {options.Value.MaxCordonedShare:P0} limit; not cordoned, paging instead");
                if (store.TryRecord(Audit.Of($"breaker:{node}:{incidentId}", now, "cordon", node, null, null, incidentId, reason, evidence, operatorName,
                        ActionStates.Failed, message)))
                {
                    LogBreaker(logger, node, cordons.Count, fleet);
                    await Publish(new RemediationHalted
                    {
                        Kind = "circuit_breaker",
                        Nodes = [node],
                        Halted = false,
                        Severity = Severity.Critical,
                        Message = message,
                        IncidentId = incidentId,
                        Time = now,
                    }, ct).ConfigureAwait(false);
                }

                return CordonOutcome.Refused;
            }

            store.TryCordon(new CordonRecord(node, reason, incidentId, operatorName, now));
            // The boot id and agent run at the cordon: a later sample with another one is evidence the node was restarted (return to service).
            var latest = services.GetService<FleetState>()?.Latest(node);
            store.UpsertRepair(new RepairRecord { Node = node, CordonedAt = now, RunAtCordon = latest?.AgentRun, BootAtCordon = latest?.BootId });
            var key = $"cordon:{node}:{incidentId ?? now.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture)}";
            store.TryRecord(Audit.Of(key, now, "cordon", node, null, null, incidentId, reason, evidence, operatorName, ActionStates.InFlight));
            await Publish(new CordonNode { Node = node, Reason = reason, IncidentId = incidentId, Time = now }, ct).ConfigureAwait(false);
            var result = await adapters.CallAsync(SchedulerOf(node), a => a.DrainAsync(node, DrainReason(reason, incidentId), ct), ct).ConfigureAwait(false);
            store.UpdateAction(key, result.Ok ? ActionStates.Done : ActionStates.Failed, result.Detail, time.GetUtcNow());
            LogCordoned(logger, node, incidentId, result.Detail);
            return CordonOutcome.Cordoned;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Operator action: return the node to service. False when it was not cordoned.</summary>
    public async Task<bool> UncordonAsync(string node, string operatorName, string? reason, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return await UncordonCoreAsync(node, operatorName, reason ?? "cleared by operator", ct).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Automatic return to service: uncordons exactly like an operator (same adapters, same audit, operator
    /// <see cref="SystemOperator"/>), but only while the node is still under the FleetWatch cordon of <paramref name="cordonedAt"/>
    /// (an operator who uncordoned and re-cordoned it meanwhile owns it now).
    /// </summary>
    public async Task<bool> ReturnToServiceAsync(string node, DateTimeOffset cordonedAt, string reason, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return store.Cordons().FirstOrDefault(c => c.Node == node) is { Operator: SystemOperator } cordon && cordon.At == cordonedAt
                && await UncordonCoreAsync(node, SystemOperator, reason, ct).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<bool> UncordonCoreAsync(string node, string operatorName, string reason, CancellationToken ct)
    {
        if (!store.Uncordon(node))
        {
            return false;
        }

        store.DeleteRepair(node);
        var now = time.GetUtcNow();
        var key = $"uncordon:{node}:{now.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture)}";
        store.TryRecord(Audit.Of(key, now, "uncordon", node, null, null, null, reason, null, operatorName, ActionStates.InFlight));
        var result = await adapters.CallAsync(SchedulerOf(node), a => a.ResumeAsync(node, ct), ct).ConfigureAwait(false);
        store.UpdateAction(key, result.Ok ? ActionStates.Done : ActionStates.Failed, result.Detail, time.GetUtcNow());
        LogUncordoned(logger, node, operatorName);
        return true;
    }

    /// <summary>Slurm's reason field is free text; it names the incident so `sinfo -R` says why.</summary>
    public static string DrainReason(string reason, string? incidentId) => incidentId is null ? $"fleetwatch: {reason}" : $"fleetwatch {incidentId}: {reason}";

    private string? SchedulerOf(string node)
    {
        var jobs = registry.JobsOn(node, null);
        return jobs.Select(j => j.Scheduler).FirstOrDefault(s => s != "none") ?? options.Value.NodeScheduler;
    }

    private int FleetSize(IReadOnlyList<CordonRecord> cordons)
    {
        var o = options.Value;
        if (o.FleetSize > 0)
        {
            return o.FleetSize;
        }

        var known = new HashSet<string>(StringComparer.Ordinal);
        foreach (var job in registry.All())
        {
            known.UnionWith(job.Nodes);
        }

        known.UnionWith(o.Spares.Select(s => s.Node));
        known.UnionWith(cordons.Select(c => c.Node));
        var sampled = services.GetService<FleetState>()?.NodeCount ?? 0;
        return Math.Max(known.Count, sampled);
    }

    private Task Publish<T>(T message, CancellationToken ct)
        where T : class =>
        services.GetService<IBus>() is { } bus ? bus.Publish(message, ct) : Task.CompletedTask;

    [LoggerMessage(EventId = 6101, Level = LogLevel.Warning, Message = "Node {Node} cordoned for incident {IncidentId}: {Detail}")]
    private static partial void LogCordoned(ILogger logger, string node, string? incidentId, string detail);

    [LoggerMessage(EventId = 6102, Level = LogLevel.Information, Message = "Node {Node} uncordoned by {Operator}")]
    private static partial void LogUncordoned(ILogger logger, string node, string @operator);

    [LoggerMessage(EventId = 6103, Level = LogLevel.Error, Message = "Circuit breaker: not cordoning {Node}; {Cordoned} of {Fleet} nodes are cordoned already")]
    private static partial void LogBreaker(ILogger logger, string node, int cordoned, int fleet);
}

/// <summary>
/// The scheduler adapters registered in DI, by <see cref="ISchedulerAdapter.Name"/>. A call for a scheduler without an
/// adapter succeeds with the detail "no scheduler adapter" (the bus command still goes out); an adapter that throws or
/// times out yields a failed result for the audit, never an exception into the restore flow.
/// </summary>
public sealed class SchedulerAdapters(IEnumerable<ISchedulerAdapter> adapters, IOptions<RemediationOptions> options)
{
    private readonly Dictionary<string, ISchedulerAdapter> _byName = adapters.GroupBy(a => a.Name, StringComparer.OrdinalIgnoreCase)
        .ToDictionary(g => g.Key, g => g.Last(), StringComparer.OrdinalIgnoreCase);

    public ISchedulerAdapter? Find(string? name) => name is not null && _byName.TryGetValue(name, out var a) ? a : null;

    public async Task<SchedulerResult> CallAsync(string? scheduler, Func<ISchedulerAdapter, Task<SchedulerResult>> call, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(call);
        if (Find(scheduler) is not { } adapter)
        {
            return new SchedulerResult(true, scheduler is null or "none" ? "no scheduler adapter (none configured)" : $"no scheduler adapter '{scheduler}'");
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(options.Value.CallTimeout);
        try
        {
            return await call(adapter).WaitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return new SchedulerResult(false, $"{adapter.Name}: no answer within {options.Value.CallTimeout}");
        }
#pragma warning disable CA1031 // An adapter failure is recorded in the audit; it must not stop the restore.
        catch (Exception ex) when (ex is not OperationCanceledException)
#pragma warning restore CA1031
        {
            return new SchedulerResult(false, $"{adapter.Name}: {ex.GetType().Name}: {ex.Message}");
        }
    }
}
