using FleetWatch.Contracts;

namespace FleetWatch.Controller.Remediation;

/// <summary>
/// The registered jobs and which GPU each rank runs on, loaded from the store on first use and written through. The
/// GPU map answers "which running job uses this GPU" for detection (<see cref="JobOf"/>) and for the orchestrator.
/// </summary>
public sealed class JobRegistry(RemediationStore store, TimeProvider time) : FleetWatch.Controller.Detection.IGpuJobResolver
{
    private readonly Lock _gate = new();
    private Dictionary<string, JobRecord>? _jobs;
    private Dictionary<(string Node, int Gpu), string> _gpuToJob = [];

    /// <summary>The running job using the GPU, or null (the method detection's <c>IGpuJobResolver</c> asks for).</summary>
    public string? JobOf(string node, int gpuIndex)
    {
        lock (_gate)
        {
            Load();
            return _gpuToJob.TryGetValue((node, gpuIndex), out var job) ? job : null;
        }
    }

    /// <summary>Running jobs with a rank on the node (and on the GPU, when given).</summary>
    public IReadOnlyList<JobRecord> JobsOn(string node, int? gpuIndex)
    {
        lock (_gate)
        {
            return Load().Values
                .Where(j => j.Running && j.Ranks.Any(r => r.Node == node && (gpuIndex is null || r.GpuIndex == gpuIndex)))
                .OrderBy(j => j.JobId, StringComparer.Ordinal)
                .ToArray();
        }
    }

    public JobRecord? Get(string jobId)
    {
        lock (_gate)
        {
            return Load().GetValueOrDefault(jobId);
        }
    }

    public IReadOnlyList<JobRecord> All()
    {
        lock (_gate)
        {
            return Load().Values.OrderBy(j => j.JobId, StringComparer.Ordinal).ToArray();
        }
    }

    /// <summary>Registers (or re-registers) a job. Progress and checkpoints survive a re-registration; a halt is cleared by it.</summary>
    public JobRecord Register(JobRegistered message)
    {
        ArgumentNullException.ThrowIfNull(message);
        lock (_gate)
        {
            var jobs = Load();
            var previous = jobs.GetValueOrDefault(message.JobId);
            var record = new JobRecord
            {
                JobId = message.JobId,
                Ranks = message.Ranks.OrderBy(r => r.Rank).ToArray(),
                Scheduler = message.Scheduler,
                SchedulerJobId = message.SchedulerJobId,
                CheckpointDir = message.CheckpointDir,
                SparePolicy = message.SparePolicy,
                WebhookUrl = message.WebhookUrl,
                RegisteredAt = previous?.RegisteredAt ?? message.Time ?? time.GetUtcNow(),
                FirstStepAt = previous?.FirstStepAt,
                LastStep = previous?.LastStep,
            };
            store.UpsertJob(record);
            jobs[record.JobId] = record;
            Rebuild(jobs);
            return record;
        }
    }

    /// <summary>Applies a change to a job and writes it through; null when the job is unknown.</summary>
    public JobRecord? Update(string jobId, Func<JobRecord, JobRecord> change, bool persist = true)
    {
        ArgumentNullException.ThrowIfNull(change);
        lock (_gate)
        {
            var jobs = Load();
            if (!jobs.TryGetValue(jobId, out var current))
            {
                return null;
            }

            var next = change(current);
            if (persist && !ReferenceEquals(next, current))
            {
                store.UpsertJob(next);
            }

            jobs[jobId] = next;
            if (!ReferenceEquals(next.Ranks, current.Ranks) || next.Running != current.Running)
            {
                Rebuild(jobs);
            }

            return next;
        }
    }

    /// <summary>Replaces the in-memory record after the store already holds it (a cycle's transaction wrote the ranks).</summary>
    public void Replace(JobRecord job)
    {
        ArgumentNullException.ThrowIfNull(job);
        lock (_gate)
        {
            var jobs = Load();
            jobs[job.JobId] = job;
            Rebuild(jobs);
        }
    }

    private Dictionary<string, JobRecord> Load()
    {
        if (_jobs is null)
        {
            _jobs = store.Jobs().ToDictionary(j => j.JobId, StringComparer.Ordinal);
            Rebuild(_jobs);
        }

        return _jobs;
    }

    private void Rebuild(Dictionary<string, JobRecord> jobs)
    {
        var map = new Dictionary<(string, int), string>();
        foreach (var job in jobs.Values.Where(j => j.Running).OrderBy(j => j.RegisteredAt))
        {
            foreach (var rank in job.Ranks)
            {
                // Two running jobs on one GPU: the later registration wins the map; JobsOn still returns both.
                map[(rank.Node, rank.GpuIndex)] = job.JobId;
            }
        }

        _gpuToJob = map;
    }
}
