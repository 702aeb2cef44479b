// Linked into the benchmark programs that measure FleetWatch processes (Ingest, Agent).
using System.Diagnostics;
using System.Globalization;

namespace FleetWatch.Bench;

/// <summary>Process measurements from /proc, the repository root, and running helper commands.</summary>
internal static class BenchProcess
{
    /// <summary>CPU seconds (user + system) and resident memory of a process, from /proc (Linux).</summary>
    public static (double CpuSeconds, long RssKb) Measure(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        var rss = File.ReadAllLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return (ticks / 100.0, long.Parse(rss.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture));
    }

    /// <summary>Runs a command to completion; a non-zero exit fails the benchmark when <paramref name="check"/> is set.</summary>
    public static void Run(string file, bool check, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        p.WaitForExit();
        if (check && p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed with {p.ExitCode}: {p.StandardError.ReadToEnd()}");
        }
    }

    public static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "FleetWatch.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("FleetWatch.sln not found");
    }
}
