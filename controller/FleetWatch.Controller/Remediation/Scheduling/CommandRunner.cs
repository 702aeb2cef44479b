using System.ComponentModel;
using System.Diagnostics;

namespace FleetWatch.Controller.Remediation.Scheduling;

/// <summary>What one command did: its exit code (-1 when it could not start or was killed), its output, and whether it ran out of time.</summary>
internal sealed record CommandOutcome(int ExitCode, string Stdout, string Stderr, bool TimedOut)
{
    public bool Succeeded => ExitCode == 0 && !TimedOut;

    /// <summary>The first non-empty line of stderr, else of stdout: what the tool said about a failure.</summary>
    public string Message
    {
        get
        {
            var text = Stderr.Trim().Length > 0 ? Stderr : Stdout;
            var line = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "";
            return TimedOut ? $"timed out{(line.Length > 0 ? ": " + line : "")}" : line;
        }
    }
}

/// <summary>
/// Runs a command-line tool with an argument list (never a shell string: values are passed as separate arguments,
/// nothing is quoted or interpreted), a fixed environment and a time limit after which the process tree is killed.
/// </summary>
internal static class CommandRunner
{
    public static async Task<CommandOutcome> RunAsync(string fileName, IEnumerable<string> arguments, IReadOnlyDictionary<string, string> environment,
        TimeSpan timeout, CancellationToken ct)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in environment)
        {
            info.Environment[key] = value;
        }

        using var process = new Process { StartInfo = info };
        try
        {
            process.Start();
        }
        catch (Win32Exception ex)
        {
            return new CommandOutcome(-1, "", $"cannot start '{fileName}': {ex.Message}", TimedOut: false);
        }

        // The tools never read input; closing it makes any unexpected prompt fail instead of waiting for the timeout.
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(timeout);
        var timedOut = false;
        try
        {
            await process.WaitForExitAsync(limit.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            timedOut = !ct.IsCancellationRequested;
            Kill(process);
            await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            ct.ThrowIfCancellationRequested();
        }

        return new CommandOutcome(timedOut ? -1 : process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false), timedOut);
    }

    private static void Kill(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // It exited between the timeout and the kill: nothing left to end.
        }
    }
}
