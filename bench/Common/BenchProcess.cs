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

    /// <summary>
    /// Memory of a process from /proc/&lt;pid&gt;/smaps_rollup, in KiB: RSS, PSS (shared pages divided among the processes
    /// mapping them, so mapped framework assemblies shared with other .NET processes count in part) and anonymous
    /// (heap, stacks, JIT code: what the process itself allocated).
    /// </summary>
    public static (long RssKb, long PssKb, long AnonKb) MemoryDetail(int pid)
    {
        long rss = 0, pss = 0, anon = 0;
        foreach (var line in File.ReadLines($"/proc/{pid}/smaps_rollup"))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 2 || !long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var kb))
            {
                continue;
            }

            switch (parts[0])
            {
                case "Rss:": rss = kb; break;
                case "Pss:": pss = kb; break;
                case "Anonymous:": anon = kb; break;
            }
        }

        return (rss, pss, anon);
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
