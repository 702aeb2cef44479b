using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using FleetWatch.Integration.Tests.Support;

namespace FleetWatch.Integration.Tests.Slurm;

/// <summary>
/// A real Slurm cluster on loopback for one test class (SERVICES.md, "Slurm with several nodes on one machine"): its
/// own munged (own key and socket), one slurmctld and three <c>slurmd -N gpuNNN</c>, all in the foreground as child
/// processes, in a fresh temporary directory with free ports and <c>%n</c> in each node's spool, pid and log file.
/// Scheduling weights order the nodes gpu001, gpu002, gpu003, so a one-node job lands on gpu001 and a requeued one on gpu002.
/// Fails (never skips) when the Debian packages <c>slurm-wlm</c> and <c>munge</c> are missing: scripts/test.sh installs them.
/// </summary>
public sealed class SlurmCluster : IAsyncLifetime
{
    public static readonly string[] NodeNames = ["gpu001", "gpu002", "gpu003"];

    private static readonly string[] Binaries = ["/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/scontrol", "/usr/bin/sbatch", "/usr/bin/sinfo", "/usr/bin/scancel", "/usr/bin/squeue"];

    private readonly List<Process> _daemons = [];
    private readonly StringBuilder _daemonOutput = new();

    /// <summary>The cluster's directory: configuration, state, logs, and room for the tests' job files.</summary>
    public string Directory { get; private set; } = "";

    /// <summary>The slurm.conf every command must be given as <c>SLURM_CONF</c>.</summary>
    public string ConfigPath => Path.Combine(Directory, "slurm.conf");

    /// <summary>The environment for Slurm commands.</summary>
    public IReadOnlyDictionary<string, string> Environment => new Dictionary<string, string> { ["SLURM_CONF"] = ConfigPath };

    public async Task InitializeAsync()
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("the Slurm tests need Linux (Debian packages slurm-wlm and munge)");
        }

        var missing = Binaries.Where(b => !File.Exists(b)).ToList();
        if (missing.Count > 0)
        {
            throw new InvalidOperationException(
                $"Slurm is not installed ({string.Join(", ", missing)} missing): install the Debian packages slurm-wlm and munge " +
                "(scripts/test.sh does: apt-get install -y slurm-wlm munge)");
        }

        // Short path: munged's socket path must fit in sun_path (108 bytes).
        Directory = System.IO.Directory.CreateTempSubdirectory("fw-slurm-").FullName;
        var munge = System.IO.Directory.CreateDirectory(Path.Combine(Directory, "munge")).FullName;
        System.IO.Directory.CreateDirectory(Path.Combine(Directory, "state"));
        File.SetUnixFileMode(Directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        File.SetUnixFileMode(munge, File.GetUnixFileMode(Directory));
        var key = Path.Combine(munge, "munge.key");
        await File.WriteAllBytesAsync(key, System.Security.Cryptography.RandomNumberGenerator.GetBytes(128));
        File.SetUnixFileMode(key, UnixFileMode.UserRead);
        var socket = Path.Combine(munge, "socket");

        Start("/usr/sbin/munged", "--foreground", "--force", $"--socket={socket}", $"--key-file={key}", $"--log-file={munge}/munged.log",
            $"--pid-file={munge}/munged.pid", $"--seed-file={munge}/munged.seed");
        await Wait.UntilAsync(() => File.Exists(socket), TimeSpan.FromSeconds(10), "munged's socket", () => Diagnostics());

        var ports = FreePorts(1 + NodeNames.Length);
        var host = System.Environment.MachineName.Split('.')[0];
        var nodes = new StringBuilder();
        for (var i = 0; i < NodeNames.Length; i++)
        {
            // Weight: Slurm allocates the lowest-weight node first (slurm.conf(5), "Weight"): gpu001, then gpu002, then gpu003.
            nodes.AppendLine(CultureInfo.InvariantCulture,
                $"NodeName={NodeNames[i]} NodeHostname={host} NodeAddr=127.0.0.1 Port={ports[1 + i]} CPUs=2 RealMemory=1000 Weight={1 + (10 * i)} State=UNKNOWN");
        }

        await File.WriteAllTextAsync(ConfigPath, $"""
            ClusterName=fwtest
            SlurmctldHost={host}(127.0.0.1)
            SlurmctldPort={ports[0]}
            AuthType=auth/munge
            CredType=cred/munge
            AuthInfo=socket={socket}
            StateSaveLocation={Directory}/state
            SlurmdSpoolDir={Directory}/spool-%n
            SlurmctldPidFile={Directory}/slurmctld.pid
            SlurmdPidFile={Directory}/slurmd-%n.pid
            SlurmctldLogFile={Directory}/slurmctld.log
            SlurmdLogFile={Directory}/slurmd-%n.log
            SlurmUser=root
            ProctrackType=proctrack/linuxproc
            TaskPlugin=task/none
            MpiDefault=none
            ReturnToService=2
            SelectType=select/cons_tres
            SelectTypeParameters=CR_CPU
            KillWait=5
            {nodes}
            PartitionName=main Nodes={string.Join(',', NodeNames)} Default=YES MaxTime=INFINITE State=UP
            """);

        Start("/usr/sbin/slurmctld", "-D", "-c");
        foreach (var node in NodeNames)
        {
            Start("/usr/sbin/slurmd", "-D", "-N", node);
        }

        await WaitAsync(async () => (await NodeStatesAsync()).Count(s => s.Value == "idle") == NodeNames.Length, TimeSpan.FromSeconds(30), "all nodes idle");
    }

    public async Task DisposeAsync()
    {
        try
        {
            if (_daemons.Count > 1)
            {
                // Jobs first, and wait until they are gone: a job step (slurmstepd) still ending when its slurmd stops is
                // orphaned and lingers. Then the daemons.
                await RunAsync("/usr/bin/scancel", ["--full", "--quiet", "--partition=main"], check: false);
                await WaitQuietlyAsync(async () => (await RunAsync("/usr/bin/squeue", ["-h", "-o", "%i"], check: false)).Trim().Length == 0, TimeSpan.FromSeconds(15));
                await RunAsync("/usr/bin/scontrol", ["shutdown"], check: false);
            }

            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            foreach (var daemon in _daemons.AsEnumerable().Reverse())
            {
                try
                {
                    await daemon.WaitForExitAsync(limit.Token);
                }
                catch (OperationCanceledException)
                {
                    // Not gone after scontrol shutdown (munged never is): end it by its PID.
                }
            }
        }
        finally
        {
            foreach (var daemon in _daemons)
            {
                if (!daemon.HasExited)
                {
                    daemon.Kill(entireProcessTree: true);
                    await daemon.WaitForExitAsync();
                }

                daemon.Dispose();
            }

            KillOrphanedSteps();
            if (Directory.Length > 0)
            {
                System.IO.Directory.Delete(Directory, recursive: true);
            }
        }
    }

    /// <summary>Cancels every job and returns every node to service, so each test starts from an idle cluster.</summary>
    public async Task ResetAsync()
    {
        await RunAsync("/usr/bin/scancel", ["--full", "--quiet", "--partition=main"], check: false);
        foreach (var node in NodeNames)
        {
            // Fails for a node already in service: that is fine.
            await RunAsync("/usr/bin/scontrol", ["update", $"nodename={node}", "state=resume"], check: false);
        }

        await WaitAsync(async () => (await NodeStatesAsync()).Count(s => s.Value == "idle") == NodeNames.Length, TimeSpan.FromSeconds(30), "all nodes idle again");
    }

    /// <summary>Submits a batch script; returns the job id.</summary>
    public async Task<string> SubmitAsync(string scriptPath)
    {
        var output = await RunAsync("/usr/bin/sbatch", ["--parsable", scriptPath]);
        return output.Trim().Split(';')[0];
    }

    /// <summary>Each node's state as <c>sinfo</c> prints it (<c>idle</c>, <c>alloc</c>, <c>drain</c>...).</summary>
    public async Task<Dictionary<string, string>> NodeStatesAsync() =>
        (await RunAsync("/usr/bin/sinfo", ["-h", "-N", "-o", "%N %t"], check: false))
        .Split('\n', StringSplitOptions.RemoveEmptyEntries)
        .Select(l => l.Split(' ', 2))
        .Where(p => p.Length == 2)
        .ToDictionary(p => p[0], p => p[1].Trim());

    /// <summary>The drain reasons <c>sinfo -R</c> lists, by node.</summary>
    public async Task<Dictionary<string, string>> DrainReasonsAsync() =>
        (await RunAsync("/usr/bin/sinfo", ["-h", "-R", "-N", "-o", "%N|%E"]))
        .Split('\n', StringSplitOptions.RemoveEmptyEntries)
        .Select(l => l.Split('|', 2))
        .ToDictionary(p => p[0], p => p[1]);

    /// <summary>One field of <c>scontrol show job -o</c> (for example <c>JobState</c>, <c>BatchHost</c>).</summary>
    public async Task<string> JobFieldAsync(string jobId, string field)
    {
        var line = await RunAsync("/usr/bin/scontrol", ["show", "job", "-o", jobId]);
        return FleetWatch.Controller.Remediation.Scheduling.SlurmNodeParser.Fields(line).GetValueOrDefault(field, "");
    }

    /// <summary>A batch-script line that appends "node restart-count" to <paramref name="marks"/> each time the job starts.</summary>
    public static string MarkStart(string marks) => $"echo \"$SLURMD_NODENAME ${{SLURM_RESTART_COUNT:-0}}\" >> {marks}";

    /// <summary>The non-empty lines of a file a batch job appends to, none while it does not exist.</summary>
    public static string[] Lines(string path) =>
        File.Exists(path) ? File.ReadAllLines(path).Where(l => l.Length > 0).ToArray() : [];

    /// <summary>Runs a Slurm command with this cluster's configuration; throws with its output when it fails and <paramref name="check"/> is set.</summary>
    public async Task<string> RunAsync(string file, string[] args, bool check = true)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["SLURM_CONF"] = ConfigPath;
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(limit.Token);
        if (check && process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({process.ExitCode}): {await stderr}{await stdout}");
        }

        return await stdout;
    }

    /// <summary>Polls an asynchronous condition, bounded; the failure message carries the daemons' logs.</summary>
    public async Task WaitAsync(Func<Task<bool>> condition, TimeSpan limit, string what)
    {
        var watch = Stopwatch.StartNew();
        while (!await condition())
        {
            if (watch.Elapsed > limit)
            {
                throw new TimeoutException($"timed out after {limit.TotalSeconds:F0} s waiting for {what}; {Diagnostics()}");
            }

            await Task.Delay(100);
        }
    }

    /// <summary>The daemons' output and the end of each Slurm log, for failure messages.</summary>
    public string Diagnostics()
    {
        var text = new StringBuilder();
        lock (_daemonOutput)
        {
            text.Append(_daemonOutput);
        }

        if (Directory.Length > 0 && System.IO.Directory.Exists(Directory))
        {
            foreach (var log in System.IO.Directory.GetFiles(Directory, "*.log"))
            {
                var lines = File.ReadAllLines(log);
                text.AppendLine(CultureInfo.InvariantCulture, $"--- {Path.GetFileName(log)}");
                foreach (var line in lines.Skip(Math.Max(0, lines.Length - 15)))
                {
                    text.AppendLine(line);
                }
            }
        }

        return text.ToString();
    }

    /// <summary>
    /// Job steps are daemons of their own (not children of slurmd), so the process tree does not reach them. Any still
    /// running with this cluster's SLURM_CONF in its environment was started for this cluster: end it by its PID.
    /// </summary>
    private void KillOrphanedSteps()
    {
        if (ConfigPath.Length == 0 || !System.IO.Directory.Exists("/proc"))
        {
            return;
        }

        var marker = $"SLURM_CONF={ConfigPath}";
        foreach (var dir in System.IO.Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            try
            {
                if (File.ReadAllText(Path.Combine(dir, "comm")).Trim() != "slurmstepd"
                    || !File.ReadAllText(Path.Combine(dir, "environ")).Split('\0').Contains(marker, StringComparer.Ordinal))
                {
                    continue;
                }

                using var step = Process.GetProcessById(pid);
                step.Kill();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
            {
                // Gone meanwhile, or not ours to read.
            }
        }
    }

    private static async Task WaitQuietlyAsync(Func<Task<bool>> condition, TimeSpan limit)
    {
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < limit && !await condition())
        {
            await Task.Delay(100);
        }
    }

    private void Start(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["SLURM_CONF"] = ConfigPath;
        var process = new Process { StartInfo = info };
        var name = Path.GetFileName(file) + (args.Length > 2 && args[^2] == "-N" ? " " + args[^1] : "");
        DataReceivedEventHandler append = (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_daemonOutput)
                {
                    _daemonOutput.AppendLine(CultureInfo.InvariantCulture, $"[{name}] {e.Data}");
                }
            }
        };
        process.OutputDataReceived += append;
        process.ErrorDataReceived += append;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _daemons.Add(process);
    }

    private static int[] FreePorts(int count)
    {
        // Hold every listener until all are chosen, so the ports differ; Slurm binds them a moment later.
        var listeners = Enumerable.Range(0, count).Select(_ =>
        {
            var l = new TcpListener(IPAddress.Loopback, 0);
            l.Start();
            return l;
        }).ToList();
        var ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        listeners.ForEach(l => l.Stop());
        return ports;
    }
}
