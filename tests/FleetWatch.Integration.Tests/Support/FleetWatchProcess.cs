using System.Diagnostics;
using System.Text;

namespace FleetWatch.Integration.Tests.Support;

/// <summary>A FleetWatch role in its own OS process (the built fleetwatch.dll), killed on dispose.</summary>
public sealed class FleetWatchProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private FleetWatchProcess(Process process) => _process = process;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public bool HasExited => _process.HasExited;

    /// <summary>The exit code once exited.</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>Waits (bounded) for the process to exit by itself.</summary>
    public async Task WaitForExitAsync(TimeSpan limit)
    {
        using var cts = new CancellationTokenSource(limit);
        await _process.WaitForExitAsync(cts.Token);
    }

    public static FleetWatchProcess Start(params string[] args) => StartProgram("dotnet", [Path.Combine(AppContext.BaseDirectory, "fleetwatch.dll"), .. args]);

    /// <summary>
    /// The Native AOT node agent, <c>fleetwatch-agent</c>, as shipped (scripts/test.sh publishes it to
    /// artifacts/agent-aot before the tests; <c>FLEETWATCH_TEST_AGENT_AOT</c> names another build).
    /// </summary>
    public static FleetWatchProcess StartNativeAgent(params string[] args) => StartProgram(NativeAgentPath, args);

    /// <summary>
    /// The Native AOT agent under Memory-Deny-Write-Execute (native/mdwe_exec, built with gcc by this project), as the
    /// systemd unit's MemoryDenyWriteExecute=yes runs it: a JIT could not run there.
    /// </summary>
    public static FleetWatchProcess StartNativeAgentWithoutWriteExecute(params string[] args) =>
        StartProgram(Path.Combine(AppContext.BaseDirectory, "native", "mdwe_exec"), [NativeAgentPath, .. args]);

    /// <summary>Path of the published Native AOT agent; fails with how to build it when missing.</summary>
    public static string NativeAgentPath
    {
        get
        {
            var path = Environment.GetEnvironmentVariable("FLEETWATCH_TEST_AGENT_AOT") is { Length: > 0 } p ? p
                : Path.Combine(Repo.Root, "artifacts", "agent-aot", "fleetwatch-agent");
            return File.Exists(path) ? path
                : throw new FileNotFoundException($"{path} not found: scripts/test.sh publishes it (dotnet publish agent/FleetWatch.Agent -c Release -r linux-x64 -o artifacts/agent-aot)", path);
        }
    }

    /// <summary>Any program with the same output capture and environment (a wrapper, a control).</summary>
    public static FleetWatchProcess StartProgram(string program, string[] args)
    {
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["Logging__LogLevel__Default"] = "Warning";
        info.Environment["Logging__LogLevel__FleetWatch"] = "Information";
        // A fresh controller store per process: incidents and notifications persist, and must not leak between tests.
        info.Environment["FleetWatch__Storage__Path"] = Path.Combine(Path.GetTempPath(), $"fleetwatch-test-{Guid.NewGuid():N}.db");
        var process = new Process { StartInfo = info };
        var result = new FleetWatchProcess(process);
        process.OutputDataReceived += (_, e) => result.Append(e.Data);
        process.ErrorDataReceived += (_, e) => result.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return result;
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    public int Id => _process.Id;

    /// <summary>SIGTERM, as systemd and Kubernetes stop a service, then wait (bounded) for a clean exit.</summary>
    public async Task TerminateAsync(TimeSpan limit)
    {
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
        }

        using var cts = new CancellationTokenSource(limit);
        await _process.WaitForExitAsync(cts.Token);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}
