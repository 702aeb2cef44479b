using System.Text;

namespace FleetWatch.Agent.Sources.Kmsg;

/// <summary>
/// The <c>xid</c> verb (FORMATS.md section 1): reads a kernel log in any of the listed shapes and writes one
/// JSON object per Xid / SXid / fallen-off-the-bus / PCI→UUID event to stdout, in input order, and a summary
/// to stderr. Exit 0 on success, 2 on bad arguments or an unreadable input (one-line reason on stderr).
/// Malformed lines are skipped and counted, never fatal.
/// </summary>
public static class XidTool
{
    private const string Usage = "usage: fleetwatch xid --input FILE|-   (FILE: a kernel log; '-': stdin)";

    /// <summary>Runs the verb; <c>--input -</c> reads the process's stdin.</summary>
    public static Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr) =>
        RunAsync(args, Console.OpenStandardInput, stdout, stderr);

    /// <summary>Runs the verb with an explicit stdin (tests).</summary>
    public static async Task<int> RunAsync(string[] args, Func<Stream> openStdin, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(openStdin);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);

        if (args is ["--help"] or ["-h"])
        {
            await stdout.WriteLineAsync(Usage).ConfigureAwait(false);
            return 0;
        }

        if (!TryParseArgs(args, out var input, out var error))
        {
            await stderr.WriteLineAsync($"xid: {error} ({Usage})").ConfigureAwait(false);
            return 2;
        }

        Stream stream;
        try
        {
            stream = input == "-"
                ? openStdin()
                : new FileStream(input, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 1, FileOptions.SequentialScan);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            await stderr.WriteLineAsync($"xid: cannot read '{input}': {OneLine(ex.Message)}").ConfigureAwait(false);
            return 2;
        }

        KernelLogScanSummary summary;
        var pending = new StringBuilder();
        try
        {
            await using (stream.ConfigureAwait(false))
            {
                summary = KernelLogScanner.Scan(stream, (line, ev) =>
                {
                    XidJsonLines.Append(pending, line, ev);
                    pending.Append('\n');
                    if (pending.Length > 64 * 1024)
                    {
                        try
                        {
                            stdout.Write(pending);
                        }
                        catch (IOException ex)
                        {
                            throw new OutputFailedException(ex);
                        }

                        pending.Clear();
                    }
                });
            }
        }
        catch (OutputFailedException ex)
        {
            // stdout went away (e.g. "| head"): not an input problem, so not exit 2.
            await stderr.WriteLineAsync($"xid: cannot write output: {OneLine(ex.InnerException!.Message)}").ConfigureAwait(false);
            return 1;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The input went away part-way (a read error, not bad content): what was parsed is still printed.
            await stdout.WriteAsync(pending).ConfigureAwait(false);
            await stderr.WriteLineAsync($"xid: cannot read '{input}': {OneLine(ex.Message)}").ConfigureAwait(false);
            return 2;
        }

        try
        {
            await stdout.WriteAsync(pending).ConfigureAwait(false);
            await stdout.FlushAsync().ConfigureAwait(false);
        }
        catch (IOException ex)
        {
            await stderr.WriteLineAsync($"xid: cannot write output: {OneLine(ex.Message)}").ConfigureAwait(false);
            return 1;
        }

        await stderr.WriteLineAsync(
            $"xid: lines read {summary.Lines}, events {summary.Events}, lines skipped as malformed {summary.Malformed}")
            .ConfigureAwait(false);
        return 0;
    }

    private static bool TryParseArgs(string[] args, out string input, out string error)
    {
        input = "";
        error = "";
        string? found = null;
        for (var i = 0; i < args.Length; i++)
        {
            var a = args[i];
            string value;
            if (a == "--input")
            {
                if (i + 1 >= args.Length)
                {
                    error = "--input needs a value";
                    return false;
                }

                value = args[++i];
            }
            else if (a.StartsWith("--input=", StringComparison.Ordinal))
            {
                value = a["--input=".Length..];
            }
            else
            {
                error = $"unknown argument '{a}'";
                return false;
            }

            if (found is not null)
            {
                error = "--input given twice";
                return false;
            }

            if (value.Length == 0)
            {
                error = "--input needs a value";
                return false;
            }

            found = value;
        }

        if (found is null)
        {
            error = "missing --input";
            return false;
        }

        input = found;
        return true;
    }

    private static string OneLine(string s) => s.ReplaceLineEndings(" ");

    private sealed class OutputFailedException(IOException inner) : Exception(inner.Message, inner);
}
