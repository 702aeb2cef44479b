using System.Collections;
using System.Globalization;

namespace FleetWatch.Controller.Remediation.JobSimulator;

/// <summary>
/// <c>fleetwatch job-sim</c>: runs a simulated training job against a controller (see <see cref="JobSimulator"/>). Inside a
/// Slurm batch job it takes its job id, nodes and restart count from the Slurm environment, so a requeued job resumes
/// from the checkpoint the controller chose. Prints one JSON line per event on stdout; exit 0 when the job reached its
/// last step, 2 on bad arguments or an unreachable controller (one line on stderr).
/// </summary>
public static class JobSimTool
{
    public const string Usage =
        "usage: job-sim --controller URL [--api-key KEY] [--job ID] [--nodes a,b] [--gpus-per-node 8] [--steps 100] [--step-ms 100] " +
        "[--checkpoint-every 10] [--checkpoint-dir DIR] [--scheduler slurm|kubernetes|none] [--scheduler-job-id ID] [--domain D] [--rack R] " +
        "[--restart] [--poll-every 1] [--restart-ms 0]";

    public static Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr) =>
        RunAsync(args, stdout, stderr, Environment.GetEnvironmentVariables(), null, CancellationToken.None);

    /// <summary>Testable entry: the environment and the HTTP handler come from the caller.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, IDictionary environment, HttpMessageHandler? handler,
        CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        ArgumentNullException.ThrowIfNull(environment);
        JobSimOptions options;
        try
        {
            options = Parse(args, environment);
        }
        catch (ArgumentException ex)
        {
            await stderr.WriteLineAsync($"job-sim: {ex.Message} ({Usage})").ConfigureAwait(false);
            return 2;
        }

        using var http = handler is null ? new HttpClient() : new HttpClient(handler, disposeHandler: false);
        http.Timeout = TimeSpan.FromSeconds(30);
        if (options.ApiKey is { } key)
        {
            http.DefaultRequestHeaders.Add("X-Api-Key", key);
        }

        try
        {
            var result = await new JobSimulator(http, options, TimeProvider.System, stdout).RunAsync(ct).ConfigureAwait(false);
            await stderr.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"job-sim: job {options.JobId} reached step {result.FinalStep} (cycle {result.Cycle}, resumed {result.ResumedFrom.Count} time(s))")).ConfigureAwait(false);
            return 0;
        }
        catch (HttpRequestException ex)
        {
            await stderr.WriteLineAsync($"job-sim: controller {options.Controller}: {ex.Message}").ConfigureAwait(false);
            return 2;
        }
    }

    internal static JobSimOptions Parse(string[] args, IDictionary env)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var restart = false;
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--restart")
            {
                restart = true;
                continue;
            }

            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
            {
                throw new ArgumentException($"unexpected argument '{args[i]}'");
            }

            values[args[i][2..]] = args[++i];
        }

        string? Env(string name) => env[name] as string is { Length: > 0 } v ? v : null;
        string? Get(string name) => values.Remove(name, out var v) ? v : null;

        var controllerText = Get("controller") ?? throw new ArgumentException("--controller is required");
        if (!Uri.TryCreate(controllerText, UriKind.Absolute, out var controller) || controller.Scheme is not ("http" or "https"))
        {
            throw new ArgumentException($"--controller must be an absolute http(s) URL, got '{controllerText}'");
        }

        // The API lives under /api/v1 on the controller; a bare host means that.
        var basePath = controller.AbsolutePath == "/" ? "/api/v1/" : controller.AbsolutePath.TrimEnd('/') + "/";
        controller = new UriBuilder(controller) { Path = basePath }.Uri;

        var slurmJob = Env("SLURM_JOB_ID");
        var job = Get("job") ?? (slurmJob is null ? null : "slurm-" + slurmJob) ?? throw new ArgumentException("--job is required outside Slurm");
        var nodesText = Get("nodes") ?? Env("SLURMD_NODENAME") ?? Environment.MachineName;
        var nodes = nodesText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var scheduler = Get("scheduler") ?? (slurmJob is null ? "none" : "slurm");
        if (scheduler is not ("slurm" or "kubernetes" or "none"))
        {
            throw new ArgumentException($"--scheduler must be slurm, kubernetes or none, got '{scheduler}'");
        }

        var restartCount = Env("SLURM_RESTART_COUNT");
        var options = new JobSimOptions
        {
            Controller = controller,
            ApiKey = Get("api-key") ?? Env("FLEETWATCH_API_KEY"),
            JobId = job,
            Nodes = nodes,
            GpusPerNode = Int(Get("gpus-per-node"), 8, "gpus-per-node", 1, 64),
            Steps = Int(Get("steps"), 100, "steps", 1, int.MaxValue),
            StepTime = TimeSpan.FromMilliseconds(Int(Get("step-ms"), 100, "step-ms", 0, 3_600_000)),
            CheckpointEvery = Int(Get("checkpoint-every"), 10, "checkpoint-every", 0, int.MaxValue),
            CheckpointDir = Get("checkpoint-dir"),
            Scheduler = scheduler,
            SchedulerJobId = Get("scheduler-job-id") ?? slurmJob,
            Domain = Get("domain"),
            Rack = Get("rack"),
            Restarted = restart || (int.TryParse(restartCount, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0),
            PollEvery = Int(Get("poll-every"), 1, "poll-every", 0, int.MaxValue),
            RestartTime = TimeSpan.FromMilliseconds(Int(Get("restart-ms"), 0, "restart-ms", 0, 3_600_000)),
        };
        if (nodes.Length == 0)
        {
            throw new ArgumentException("--nodes must name at least one node");
        }

        if (values.Count > 0)
        {
            throw new ArgumentException($"unknown option --{values.Keys.First()}");
        }

        return options;
    }

    private static int Int(string? text, int fallback, string name, int min, int max)
    {
        if (text is null)
        {
            return fallback;
        }

        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v >= min && v <= max
            ? v
            : throw new ArgumentException($"--{name} must be an integer in [{min}, {max}], got '{text}'");
    }
}
