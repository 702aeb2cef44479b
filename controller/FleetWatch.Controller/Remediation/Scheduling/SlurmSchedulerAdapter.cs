using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Remediation.Scheduling;

/// <summary>
/// Drains, resumes and requeues through Slurm's <c>scontrol</c> (Slurm 22.05, scontrol(1)). Every call runs the
/// configured binary with an argument list and the configured environment (<c>SLURM_CONF</c>), under a time limit.
/// Idempotent: draining a drained node, resuming a node in service and requeueing a pending job succeed without a
/// second change. FleetWatch's drain reasons carry <see cref="SlurmOptions.ReasonPrefix"/>; a node drained by someone
/// else keeps its reason and is never resumed by FleetWatch.
/// </summary>
public sealed class SlurmSchedulerAdapter : ISchedulerAdapter, ISchedulerNodeInspector
{
    private readonly SlurmOptions _options;
    private readonly Dictionary<string, string> _environment;
    private readonly TimeProvider _time;
    private readonly SchedulerOutcomes _outcomes;

    /// <summary>How often a requeue looks whether the job has finished completing.</summary>
    private static readonly TimeSpan SettlePoll = TimeSpan.FromMilliseconds(200);

    public SlurmSchedulerAdapter(IOptions<SlurmOptions> options, TimeProvider time, ILogger<SlurmSchedulerAdapter> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _time = time;
        _outcomes = new SchedulerOutcomes(logger, "Slurm");
        _environment = new Dictionary<string, string>(_options.Environment, StringComparer.Ordinal);
        if (_options.SlurmConf is { Length: > 0 } conf)
        {
            _environment["SLURM_CONF"] = conf;
        }
    }

    /// <inheritdoc />
    public string Name => "slurm";

    /// <inheritdoc />
    public Task<SchedulerResult> DrainAsync(string node, string reason, CancellationToken ct) =>
        GuardAsync("drain", node, () => DrainCoreAsync(node, reason, ct));

    private async Task<SchedulerResult> DrainCoreAsync(string node, string reason, CancellationToken ct)
    {
        if (!SchedulerArguments.IsValidNodeName(node))
        {
            return _outcomes.Refused("drain", node, "not a single valid node name");
        }

        var before = await GetNodeStateAsync(node, ct).ConfigureAwait(false);
        if (!before.Found)
        {
            return _outcomes.Failed("drain", node, $"Slurm does not know node {node}");
        }

        // DOWN alone is not enough: with ReturnToService a DOWN node rejoins by itself when its slurmd answers again.
        if (SlurmNodeParser.HasDrainFlag(before.State))
        {
            var who = IsOurs(before.Reason) ? "" : " by someone else";
            return _outcomes.Done("drain", node, $"already drained{who} ({before.State}, reason '{before.Reason}'); left as is");
        }

        var cleaned = SchedulerArguments.CleanReason(reason);
        // A reason that already names FleetWatch (remediation writes "fleetwatch <incident>: ...") is not prefixed twice.
        var text = IsOurs(cleaned) ? cleaned : _options.ReasonPrefix + cleaned;
        var outcome = await ScontrolAsync(ct, "update", $"nodename={node}", "state=drain", $"reason={text}").ConfigureAwait(false);
        if (!outcome.Succeeded)
        {
            return _outcomes.Failed("drain", node, outcome.Message);
        }

        var after = await GetNodeStateAsync(node, ct).ConfigureAwait(false);
        return _outcomes.Done("drain", node, $"drained ({after.State}), reason '{after.Reason ?? text}'");
    }

    /// <inheritdoc />
    public Task<SchedulerResult> ResumeAsync(string node, CancellationToken ct) =>
        GuardAsync("resume", node, () => ResumeCoreAsync(node, ct));

    private async Task<SchedulerResult> ResumeCoreAsync(string node, CancellationToken ct)
    {
        if (!SchedulerArguments.IsValidNodeName(node))
        {
            return _outcomes.Refused("resume", node, "not a single valid node name");
        }

        var before = await GetNodeStateAsync(node, ct).ConfigureAwait(false);
        if (!before.Found)
        {
            return _outcomes.Failed("resume", node, $"Slurm does not know node {node}");
        }

        if (!before.Drained)
        {
            return _outcomes.Done("resume", node, $"already in service ({before.State})");
        }

        if (!IsOurs(before.Reason))
        {
            return _outcomes.Refused("resume", node, $"drained by someone else ({before.State}, reason '{before.Reason}'): FleetWatch resumes only its own drains");
        }

        var outcome = await ScontrolAsync(ct, "update", $"nodename={node}", "state=resume").ConfigureAwait(false);
        if (!outcome.Succeeded)
        {
            return _outcomes.Failed("resume", node, outcome.Message);
        }

        var after = await GetNodeStateAsync(node, ct).ConfigureAwait(false);
        return _outcomes.Done("resume", node, $"resumed ({after.State})");
    }

    /// <inheritdoc />
    /// <remarks>
    /// <c>scontrol requeue</c> puts the job back in the queue, and Slurm then holds it with a begin time about two
    /// minutes ahead (its requeue back-off); <c>StartTime=now</c> releases it at once. A job requeued while suspended is
    /// also held (priority 0, JobHeldAdmin) and is released with <c>scontrol release</c>. Excluded nodes are added to the
    /// job's <c>ExcNodeList</c> while it is pending, before the release, keeping exclusions it already had. A job
    /// already pending (a repeated call) is not requeued again: only the exclusion and release are (re)applied.
    /// </remarks>
    public Task<SchedulerResult> RequeueAsync(string schedulerJobId, IReadOnlyList<string> excludedNodes, CancellationToken ct) =>
        GuardAsync("requeue", schedulerJobId, () => RequeueCoreAsync(schedulerJobId, excludedNodes, ct));

    private async Task<SchedulerResult> RequeueCoreAsync(string schedulerJobId, IReadOnlyList<string> excludedNodes, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(excludedNodes);
        if (!SchedulerArguments.IsValidSlurmJobId(schedulerJobId))
        {
            return _outcomes.Refused("requeue", schedulerJobId, "not a Slurm job id");
        }

        if (excludedNodes.FirstOrDefault(n => !SchedulerArguments.IsValidNodeName(n)) is { } bad)
        {
            return _outcomes.Refused("requeue", schedulerJobId, $"excluded node '{bad}' is not a single valid node name");
        }

        var job = await ShowJobAsync(schedulerJobId, ct).ConfigureAwait(false);
        if (job is null)
        {
            return _outcomes.Failed("requeue", schedulerJobId, $"Slurm does not know job {schedulerJobId}");
        }

        var steps = new List<string>();
        if (JobState(job) is "PENDING")
        {
            steps.Add("already pending");
        }
        else
        {
            // A job still COMPLETING from an earlier requeue is not requeued again, only waited for.
            var requeue = JobState(job) is "COMPLETING" ? null : await ScontrolAsync(ct, "requeue", schedulerJobId).ConfigureAwait(false);
            if (requeue is { Succeeded: true })
            {
                steps.Add("requeued");
            }
            else if (requeue is not null)
            {
                // Refused: unless someone else requeued it meanwhile, say why now rather than wait for a pending state.
                var current = await ShowJobAsync(schedulerJobId, ct).ConfigureAwait(false);
                if (current is null || JobState(current) is not ("PENDING" or "COMPLETING"))
                {
                    return _outcomes.Failed("requeue", schedulerJobId, requeue.Message);
                }
            }

            // Exclusions and the release only hold once the job is pending: sent while it completes, Slurm's requeue
            // hold overwrites them.
            var settled = await WaitPendingAsync(schedulerJobId, ct).ConfigureAwait(false);
            if (settled is null)
            {
                return _outcomes.Failed("requeue", schedulerJobId,
                    string.Join("; ", steps.Append($"not pending within {_options.RequeueSettleTimeout.TotalSeconds:F0} s")));
            }

            job = settled;
            if (requeue is { Succeeded: true } && job.GetValueOrDefault("Reason") is "JobHeldAdmin" or "JobHeldUser")
            {
                // Slurm holds a job requeued while suspended (a hung job an administrator stopped). This call made the hold,
                // so it lifts it; a hold found on an already pending job is someone's decision and stays.
                var unhold = await ScontrolAsync(ct, "release", schedulerJobId).ConfigureAwait(false);
                if (!unhold.Succeeded)
                {
                    return _outcomes.Failed("requeue", schedulerJobId, $"{string.Join("; ", steps)}; lifting the requeue hold failed: {unhold.Message}");
                }

                steps.Add("hold lifted");
            }
        }

        var exclusionFailure = "";
        if (excludedNodes.Count > 0)
        {
            var exclusion = await ExcludeAsync(schedulerJobId, job, excludedNodes, ct).ConfigureAwait(false);
            if (exclusion.Succeeded)
            {
                steps.Add($"excluded {string.Join(',', excludedNodes)}");
            }
            else
            {
                // Still release: the drain keeps the job off a failed node; a job held for two minutes costs every rank.
                exclusionFailure = exclusion.Message;
                steps.Add($"exclusion failed: {exclusion.Message}");
            }
        }

        var release = await ScontrolAsync(ct, "update", $"jobid={schedulerJobId}", "StartTime=now").ConfigureAwait(false);
        if (!release.Succeeded)
        {
            return _outcomes.Failed("requeue", schedulerJobId, $"{string.Join("; ", steps)}; release failed: {release.Message}");
        }

        steps.Add("released");
        var detail = string.Join("; ", steps);
        return exclusionFailure.Length == 0 ? _outcomes.Done("requeue", schedulerJobId, detail) : _outcomes.Failed("requeue", schedulerJobId, detail);
    }

    /// <inheritdoc />
    public async Task<SchedulerNodeState> GetNodeStateAsync(string node, CancellationToken ct)
    {
        if (!SchedulerArguments.IsValidNodeName(node))
        {
            return new SchedulerNodeState(node, Found: false, Drained: false, State: "invalid node name", Reason: null);
        }

        var outcome = await ScontrolAsync(ct, "show", "node", "-o", node).ConfigureAwait(false);
        if (!outcome.Succeeded)
        {
            if (outcome.Message.Contains("not found", StringComparison.OrdinalIgnoreCase))
            {
                return new SchedulerNodeState(node, Found: false, Drained: false, State: "not found", Reason: null);
            }

            // Not knowing is not "healthy" (STYLE rule 11): a controller that cannot reach slurmctld says so.
            throw new SchedulerUnavailableException($"scontrol show node {node}: {outcome.Message}");
        }

        var line = outcome.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? "";
        return SlurmNodeParser.Parse(node, line);
    }

    /// <summary>The job's record once it is pending, or null when it is not within <see cref="SlurmOptions.RequeueSettleTimeout"/>.</summary>
    private async Task<IReadOnlyDictionary<string, string>?> WaitPendingAsync(string jobId, CancellationToken ct)
    {
        var deadline = _time.GetUtcNow() + _options.RequeueSettleTimeout;
        while (true)
        {
            var job = await ShowJobAsync(jobId, ct).ConfigureAwait(false);
            if (job is null)
            {
                return null;
            }

            if (JobState(job) is "PENDING")
            {
                return job;
            }

            if (_time.GetUtcNow() >= deadline)
            {
                return null;
            }

            await Task.Delay(SettlePoll, _time, ct).ConfigureAwait(false);
        }
    }

    private async Task<SchedulerResult> GuardAsync(string action, string target, Func<Task<SchedulerResult>> call)
    {
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (SchedulerUnavailableException ex)
        {
            return _outcomes.Failed(action, target, ex.Message);
        }
    }

    private async Task<CommandOutcome> ExcludeAsync(string jobId, IReadOnlyDictionary<string, string> job, IReadOnlyList<string> excludedNodes, CancellationToken ct)
    {
        var nodes = new SortedSet<string>(excludedNodes, StringComparer.Ordinal);
        if (job.GetValueOrDefault("ExcNodeList") is { Length: > 0 } existing && existing != "(null)")
        {
            // Slurm prints host lists compressed (gpu[001-003]); expand them so the union is exact.
            var expanded = await ScontrolAsync(ct, "show", "hostnames", existing).ConfigureAwait(false);
            if (!expanded.Succeeded)
            {
                return expanded;
            }

            nodes.UnionWith(expanded.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        }

        return await ScontrolAsync(ct, "update", $"jobid={jobId}", $"ExcNodeList={string.Join(',', nodes)}").ConfigureAwait(false);
    }

    private async Task<IReadOnlyDictionary<string, string>?> ShowJobAsync(string jobId, CancellationToken ct)
    {
        var outcome = await ScontrolAsync(ct, "show", "job", "-o", jobId).ConfigureAwait(false);
        if (!outcome.Succeeded)
        {
            if (outcome.Message.Contains("Invalid job id", StringComparison.OrdinalIgnoreCase))
            {
                return null;
            }

            throw new SchedulerUnavailableException($"scontrol show job {jobId}: {outcome.Message}");
        }

        return SlurmNodeParser.Fields(outcome.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? "");
    }

    private static string JobState(IReadOnlyDictionary<string, string> job) => job.GetValueOrDefault("JobState", "");

    /// <summary>A reason FleetWatch set: it begins with the prefix's word ("fleetwatch") followed by ':' or a space.</summary>
    private bool IsOurs(string? reason)
    {
        var marker = _options.ReasonPrefix.TrimEnd(' ', ':');
        return reason is not null && reason.Length > marker.Length && reason.StartsWith(marker, StringComparison.Ordinal) && reason[marker.Length] is ':' or ' ';
    }

    private Task<CommandOutcome> ScontrolAsync(CancellationToken ct, params string[] arguments) =>
        CommandRunner.RunAsync(_options.ScontrolPath, arguments, _environment, _options.CommandTimeout, ct);
}
