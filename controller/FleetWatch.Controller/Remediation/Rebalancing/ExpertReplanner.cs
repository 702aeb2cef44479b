using System.Collections.Concurrent;
using System.Globalization;
using FleetWatch.Contracts;
using MassTransit;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Remediation.Rebalancing;

/// <summary>
/// One placement the controller sent: who asked (<paramref name="Trigger"/>), why (<paramref name="Reason"/>), when,
/// and what it is expected to change. What the dashboard shows as a rebalancing action.
/// </summary>
/// <param name="At">When it was sent (controller clock).</param>
/// <param name="Job">The MoE job.</param>
/// <param name="PlanId">The command's plan id (idempotency key of the job).</param>
/// <param name="Trigger">What started the re-plan: an expert-load report, the schedule, an incident, a straggler.</param>
/// <param name="Reason">The decider's reason (capacity change, load drift).</param>
/// <param name="ImbalanceBefore">Mean imbalance of the running placement on the surviving GPUs; null when it lost an expert.</param>
/// <param name="ImbalanceAfter">Mean imbalance of the new placement.</param>
/// <param name="MaxImbalanceAfter">Worst layer of the new placement.</param>
/// <param name="WeightMoves">Expert weights copied.</param>
/// <param name="Gpus">GPUs of the new placement.</param>
public sealed record ExpertRebalanceAction(
    DateTimeOffset At,
    string Job,
    string PlanId,
    string Trigger,
    string Reason,
    double? ImbalanceBefore,
    double ImbalanceAfter,
    double MaxImbalanceAfter,
    int WeightMoves,
    int Gpus);

/// <summary>
/// Bounded in-memory log of sent placements, newest last (STYLE.md: bounded state for the live UI). Recording is
/// idempotent per (job, plan id) while the entry is still held.
/// </summary>
public sealed class ExpertRebalanceActionLog(IOptions<ExpertRebalancingOptions> options)
{
    private readonly Lock _gate = new();
    private readonly Queue<ExpertRebalanceAction> _actions = new();
    private readonly HashSet<(string Job, string PlanId)> _keys = [];
    private long _total;

    /// <summary>Placements recorded since start (the log itself keeps only the newest ones).</summary>
    public long Total
    {
        get
        {
            lock (_gate)
            {
                return _total;
            }
        }
    }

    /// <summary>Records <paramref name="action"/>; false when (job, plan id) is already in the log.</summary>
    public bool TryRecord(ExpertRebalanceAction action)
    {
        ArgumentNullException.ThrowIfNull(action);
        lock (_gate)
        {
            if (!_keys.Add((action.Job, action.PlanId)))
            {
                return false;
            }

            _actions.Enqueue(action);
            _total++;
            while (_actions.Count > options.Value.ActionLogCapacity)
            {
                var old = _actions.Dequeue();
                _keys.Remove((old.Job, old.PlanId));
            }

            return true;
        }
    }

    /// <summary>True when (job, plan id) is in the log.</summary>
    public bool Contains(string job, string planId)
    {
        lock (_gate)
        {
            return _keys.Contains((job, planId));
        }
    }

    /// <summary>A copy of the held actions, oldest first.</summary>
    public IReadOnlyList<ExpertRebalanceAction> Recent()
    {
        lock (_gate)
        {
            return [.. _actions];
        }
    }
}

/// <summary>
/// The one path every trigger (report, schedule, incident, straggler) takes: load the job's latest report and the
/// capacity of its GPUs, call <see cref="ExpertRebalanceDecider"/>, send the command, record and log the action.
/// A job is re-planned only when its inputs (report window, placement version, capacity of its GPUs) changed since
/// the last plan, so a re-fired schedule, a redelivered message or a restarted trigger never sends a plan twice.
/// </summary>
public sealed class ExpertReplanner(
    ExpertLoadReportStore store,
    IGpuCapacityView capacity,
    ExpertRebalanceActionLog actions,
    IOptions<ExpertRebalancingOptions> options,
    TimeProvider time,
    ILogger<ExpertReplanner> logger)
{
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _locks = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _planned = new(StringComparer.Ordinal);

    /// <summary>Re-plans <paramref name="job"/>; returns the command sent, or null (no report, unchanged, balanced enough).</summary>
    public async Task<ApplyExpertPlacement?> ReplanAsync(
        string job, string trigger, ISendEndpointProvider sender, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(sender);
        var gate = _locks.GetOrAdd(job, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (store.Latest(job) is not { } report)
            {
                return null;
            }

            var mine = report.Gpus.Select(g => (g.Node, g.Gpu)).ToHashSet();
            var changes = capacity.Current().Where(c => mine.Contains((c.Node, c.Gpu))).ToArray();
            var inputs = InputKey(report, changes);
            if (_planned.TryGetValue(job, out var last) && last == inputs)
            {
                RebalancingLog.Unchanged(logger, job, trigger);
                return null;
            }

            var decision = ExpertRebalanceDecider.Decide(report, changes, store.NextCycle(job), options.Value);
            if (decision.Command is not { } command)
            {
                // Same inputs give the same answer: remember them so the schedule does not plan again for nothing.
                _planned[job] = inputs;
                RebalancingLog.NoPlacement(logger, job, decision.Outcome);
                return null;
            }

            if (actions.Contains(job, command.PlanId))
            {
                _planned[job] = inputs;
                return null;
            }

            var endpoint = await sender.GetSendEndpoint(new Uri("queue:" + options.Value.CommandQueue)).ConfigureAwait(false);
            await endpoint.Send(command, cancellationToken).ConfigureAwait(false);

            // Marked only once sent: a failed send is tried again by the next trigger.
            _planned[job] = inputs;
            actions.TryRecord(new ExpertRebalanceAction(
                time.GetUtcNow(), job, command.PlanId, trigger, command.Reason, command.ExpectedImbalanceBefore,
                command.ExpectedImbalanceAfter, command.ExpectedMaxImbalanceAfter, command.WeightMoveCount, command.Gpus.Count));
            RebalancingLog.PlacementSent(
                logger, command.Job, command.PlanId, command.ExpectedImbalanceBefore ?? double.NaN, command.ExpectedImbalanceAfter,
                command.WeightMoveCount, command.Reason, trigger);
            return command;
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>Re-plans every job in <paramref name="jobs"/>; one job's failure is logged and never stops the others.</summary>
    public async Task<int> ReplanManyAsync(
        IEnumerable<string> jobs, string trigger, ISendEndpointProvider sender, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(jobs);
        var sent = 0;
        foreach (var job in jobs)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                sent += await ReplanAsync(job, trigger, sender, cancellationToken).ConfigureAwait(false) is null ? 0 : 1;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                RebalancingLog.ReplanFailed(logger, e, job, trigger);
            }
        }

        return sent;
    }

    private static string InputKey(ExpertLoadReport report, GpuCapacityChange[] changes) => string.Join(
        ';',
        changes.OrderBy(c => c.Node, StringComparer.Ordinal).ThenBy(c => c.Gpu)
            .Select(c => string.Create(CultureInfo.InvariantCulture, $"{c.Node}/{c.Gpu}:{c.State}:{c.Speed:R}"))
            .Prepend(string.Create(CultureInfo.InvariantCulture, $"{report.WindowEnd.UtcTicks}|{report.PlacementVersion}")));
}
