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

    public static FleetWatchProcess Start(params string[] args)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "fleetwatch.dll"));
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
