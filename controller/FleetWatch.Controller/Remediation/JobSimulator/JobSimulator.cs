using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using FleetWatch.Contracts;

namespace FleetWatch.Controller.Remediation.JobSimulator;

/// <summary>Settings of one simulated training job (parsed by <see cref="JobSimTool"/>).</summary>
public sealed record JobSimOptions
{
    public required Uri Controller { get; init; }
    public string? ApiKey { get; init; }
    public required string JobId { get; init; }
    public required IReadOnlyList<string> Nodes { get; init; }
    public int GpusPerNode { get; init; } = 8;

    /// <summary>The job ends after this step.</summary>
    public long Steps { get; init; } = 100;

    public TimeSpan StepTime { get; init; } = TimeSpan.FromMilliseconds(100);
    public int CheckpointEvery { get; init; } = 10;

    /// <summary>Root under which <c>&lt;job&gt;/step_&lt;n&gt;/</c> checkpoint directories are written; null: report only.</summary>
    public string? CheckpointDir { get; init; }

    public string Scheduler { get; init; } = "none";
    public string? SchedulerJobId { get; init; }
    public string? Domain { get; init; }
    public string? Rack { get; init; }

    /// <summary>Started again by the scheduler (Slurm <c>SLURM_RESTART_COUNT</c> &gt; 0): ask the controller where to resume.</summary>
    public bool Restarted { get; init; }

    /// <summary>Ask the controller for a newer restore cycle every this many steps (0: never), and restart in place when there is one.</summary>
    public int PollEvery { get; init; } = 1;

    /// <summary>Time a simulated restart takes (process start, checkpoint load).</summary>
    public TimeSpan RestartTime { get; init; } = TimeSpan.Zero;
}

/// <summary>What the simulated job did.</summary>
public sealed record JobSimResult(long FinalStep, long Cycle, IReadOnlyList<long> ResumedFrom, IReadOnlyList<string> Nodes);

/// <summary>
/// A small training job for tests, benchmarks and Slurm batch jobs: registers its ranks with the controller over HTTP,
/// completes steps, writes checkpoints (shards, a manifest with a checksum, then the completion marker, then the
/// "latest" tracker), and obeys restores: when started again by the scheduler, or when it sees a newer restore cycle,
/// it asks <c>GET /jobs/{id}/restore</c>, acknowledges and continues from the checkpoint's step on the nodes given.
/// </summary>
public sealed class JobSimulator(HttpClient http, JobSimOptions options, TimeProvider time, TextWriter log)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly List<long> _resumedFrom = [];
    private IReadOnlyList<JobRank> _ranks = [];
    private long _cycle;
    private long _step;

    /// <summary>The last completed step (read by tests while the job runs).</summary>
    public long Step => Interlocked.Read(ref _step);

    public async Task<JobSimResult> RunAsync(CancellationToken ct)
    {
        _ranks = options.Nodes
            .SelectMany((node, n) => Enumerable.Range(0, options.GpusPerNode).Select(g => new JobRank(n * options.GpusPerNode + g, node, g, options.Domain, options.Rack)))
            .ToArray();
        RestorePlan? plan = null;
        if (options.Restarted)
        {
            plan = await GetPlanAsync(ct).ConfigureAwait(false);
        }

        if (plan is not null)
        {
            // Started again by the scheduler: the nodes it gave us are the truth, unless it put us back on an excluded one.
            Adopt(plan, keepOwnNodes: !_ranks.Any(r => plan.ExcludedNodes.Contains(r.Node)));
        }

        await PostAsync("jobs", new JobRegistered
        {
            JobId = options.JobId,
            Ranks = _ranks,
            Scheduler = options.Scheduler,
            SchedulerJobId = options.SchedulerJobId,
            CheckpointDir = JobDir,
            Time = time.GetUtcNow(),
        }, ct).ConfigureAwait(false);
        await Emit("registered", ct).ConfigureAwait(false);
        if (plan is not null)
        {
            await AcknowledgeAsync(plan, ct).ConfigureAwait(false);
        }

        while (Step < options.Steps)
        {
            await Task.Delay(options.StepTime, time, ct).ConfigureAwait(false);
            var step = Interlocked.Increment(ref _step);
            await PostAsync($"jobs/{Esc(options.JobId)}/steps", new StepBody(step), ct).ConfigureAwait(false);
            if (options.CheckpointEvery > 0 && step % options.CheckpointEvery == 0)
            {
                await CheckpointAsync(step, ct).ConfigureAwait(false);
            }

            if (options.PollEvery > 0 && step % options.PollEvery == 0 && await GetPlanAsync(ct).ConfigureAwait(false) is { } next && next.Cycle > _cycle)
            {
                // The launcher's in-place restart: stop, reload the checkpoint the controller chose, go on where it says.
                await Emit($"restore command cycle {next.Cycle}", ct).ConfigureAwait(false);
                if (options.RestartTime > TimeSpan.Zero)
                {
                    await Task.Delay(options.RestartTime, time, ct).ConfigureAwait(false);
                }

                Adopt(next, keepOwnNodes: false);
                await PostAsync("jobs", new JobRegistered
                {
                    JobId = options.JobId, Ranks = _ranks, Scheduler = options.Scheduler, SchedulerJobId = options.SchedulerJobId, CheckpointDir = JobDir,
                    Time = time.GetUtcNow(),
                }, ct).ConfigureAwait(false);
                await AcknowledgeAsync(next, ct).ConfigureAwait(false);
            }
        }

        using (var done = await http.PostAsync(Url($"jobs/{Esc(options.JobId)}/finished"), null, ct).ConfigureAwait(false))
        {
            done.EnsureSuccessStatusCode();
        }

        await Emit("finished", ct).ConfigureAwait(false);
        return new JobSimResult(Step, _cycle, _resumedFrom, _ranks.Select(r => r.Node).Distinct().ToArray());
    }

    private string? JobDir => options.CheckpointDir is null ? null : Path.GetFullPath(Path.Combine(options.CheckpointDir, options.JobId));

    private void Adopt(RestorePlan plan, bool keepOwnNodes)
    {
        _cycle = plan.Cycle;
        Interlocked.Exchange(ref _step, plan.Checkpoint.Step);
        _resumedFrom.Add(plan.Checkpoint.Step);
        if (!keepOwnNodes && plan.Ranks.Count > 0)
        {
            _ranks = plan.Ranks;
        }
    }

    private async Task AcknowledgeAsync(RestorePlan plan, CancellationToken ct)
    {
        await PostAsync($"jobs/{Esc(options.JobId)}/restore/ack", new AckBody(plan.Cycle), ct).ConfigureAwait(false);
        await Emit(string.Create(CultureInfo.InvariantCulture,
            $"resumed cycle {plan.Cycle} from step {plan.Checkpoint.Step} on {string.Join(",", _ranks.Select(r => r.Node).Distinct())}"), ct).ConfigureAwait(false);
    }

    private async Task CheckpointAsync(long step, CancellationToken ct)
    {
        var ranks = _ranks.Select(r => r.Rank).ToArray();
        string uri;
        string checksum;
        if (JobDir is { } root)
        {
            (uri, checksum) = await WriteCheckpointAsync(root, step, ranks, ct).ConfigureAwait(false);
        }
        else
        {
            uri = string.Create(CultureInfo.InvariantCulture, $"sim://{options.JobId}/step_{step}");
            checksum = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(uri)));
        }

        await PostAsync($"jobs/{Esc(options.JobId)}/checkpoints", new CheckpointBody(step, uri, ranks.Length, ranks, checksum), ct).ConfigureAwait(false);
    }

    /// <summary>Shards and manifest in a temporary directory, renamed into place, then the completion marker, then the tracker.</summary>
    public static async Task<(string Uri, string Checksum)> WriteCheckpointAsync(string root, long step, IReadOnlyList<int> ranks, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(ranks);
        var name = string.Create(CultureInfo.InvariantCulture, $"step_{step}");
        var final = Path.Combine(root, name);
        var temp = Path.Combine(root, "." + name + ".tmp");
        if (Directory.Exists(temp))
        {
            Directory.Delete(temp, recursive: true);
        }

        Directory.CreateDirectory(temp);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var shards = new List<object>();
        foreach (var rank in ranks)
        {
            var file = string.Create(CultureInfo.InvariantCulture, $"shard_{rank}.bin");
            var bytes = Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"rank={rank} step={step}\n"));
            await File.WriteAllBytesAsync(Path.Combine(temp, file), bytes, ct).ConfigureAwait(false);
            hash.AppendData(bytes);
            shards.Add(new { file, ranks = new[] { rank } });
        }

        var checksum = Convert.ToHexStringLower(hash.GetHashAndReset());
        await File.WriteAllTextAsync(Path.Combine(temp, CheckpointDirectoryScanner.ManifestFile),
            JsonSerializer.Serialize(new { step, shards, checksum }, Json), ct).ConfigureAwait(false);
        if (Directory.Exists(final))
        {
            Directory.Delete(final, recursive: true);
        }

        Directory.Move(temp, final);
        await File.WriteAllTextAsync(Path.Combine(final, CheckpointDirectoryScanner.CompletionMarker), checksum, ct).ConfigureAwait(false);
        await File.WriteAllTextAsync(Path.Combine(root, "latest"), step.ToString(CultureInfo.InvariantCulture), ct).ConfigureAwait(false);
        return (new Uri(Path.GetFullPath(final)).AbsoluteUri, checksum);
    }

    private async Task<RestorePlan?> GetPlanAsync(CancellationToken ct)
    {
        using var response = await http.GetAsync(Url($"jobs/{Esc(options.JobId)}/restore"), ct).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        response.EnsureSuccessStatusCode();
        return await response.Content.ReadFromJsonAsync<RestorePlan>(Json, ct).ConfigureAwait(false);
    }

    private async Task PostAsync<T>(string path, T body, CancellationToken ct)
    {
        using var response = await http.PostAsJsonAsync(Url(path), body, Json, ct).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            throw new HttpRequestException($"POST {path}: HTTP {(int)response.StatusCode} {text}", null, response.StatusCode);
        }
    }

    private Uri Url(string path) => new(options.Controller, path);

    private Task Emit(string what, CancellationToken ct) =>
        log.WriteLineAsync(JsonSerializer.Serialize(new { @event = what, job = options.JobId, step = Step, cycle = _cycle }, Json).AsMemory(), ct);

    private static string Esc(string s) => Uri.EscapeDataString(s);
}
