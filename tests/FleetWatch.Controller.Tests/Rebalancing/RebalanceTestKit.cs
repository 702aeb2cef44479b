using System.Diagnostics;
using System.Text.Json;
using FleetWatch.Contracts;

namespace FleetWatch.Controller.Tests.Rebalancing;

/// <summary>Helpers for the rebalancing tests: the shared folder, the Python scorer, an independent metric.</summary>
internal static class RebalanceTestKit
{
    public const string Python = "/usr/bin/python3";

    /// <summary>bench-data/eplb of the shared folder next to the repository root; fails (never skips) when missing.</summary>
    public static string EplbDir()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "FleetWatch.sln")))
            {
                var dir = Path.GetFullPath(Path.Combine(d.FullName, "..", "shared", "bench-data", "eplb"));
                Assert.True(Directory.Exists(dir), $"shared benchmark folder missing: {dir} (expected <repoRoot>/../shared)");
                return dir;
            }
        }

        Assert.Fail("FleetWatch.sln not found above " + AppContext.BaseDirectory);
        return string.Empty;
    }

    /// <summary>Runs a Python script; returns stdout, fails the test with stderr on a non-zero exit.</summary>
    public static string RunPython(string workingDir, params string[] args)
    {
        Assert.True(File.Exists(Python), $"{Python} missing (Debian python3 with python3-numpy)");
        var psi = new ProcessStartInfo(Python) { WorkingDirectory = workingDir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(TimeSpan.FromMinutes(2)), "python timed out: " + string.Join(' ', args));
        Assert.True(p.ExitCode == 0, $"python {string.Join(' ', args)} exited {p.ExitCode}: {stderr.Result}\n{stdout.Result}");
        return stdout.Result;
    }

    /// <summary>score.py --batch --json rows by case name.</summary>
    public static Dictionary<string, JsonElement> ScoreBatch(string caseDir, string candidateDir)
    {
        var json = RunPython(EplbDir(), "score.py", "--batch", caseDir, candidateDir, "--json");
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.EnumerateArray().ToDictionary(r => r.GetProperty("name").GetString()!, r => r.Clone());
    }

    /// <summary>Max GPU load / mean per layer, computed here independently of the planner (score.py's metric).</summary>
    public static double Imbalance(double[] w, int[] phy2log, IReadOnlyList<int> slotsPerGpu, IReadOnlyList<double>? speed = null)
    {
        var count = new int[w.Length];
        foreach (var e in phy2log)
        {
            count[e]++;
        }

        var max = 0.0;
        var sumSpeed = 0.0;
        var j = 0;
        for (var g = 0; g < slotsPerGpu.Count; g++)
        {
            var load = 0.0;
            for (var k = 0; k < slotsPerGpu[g]; k++, j++)
            {
                load += w[phy2log[j]] / count[phy2log[j]];
            }

            var s = speed?[g] ?? 1.0;
            sumSpeed += slotsPerGpu[g] > 0 ? s : 0;
            max = Math.Max(max, load / s);
        }

        var mean = w.Sum() / sumSpeed;
        return mean > 0 ? max / mean : 1.0;
    }

    /// <summary>A five-minute window report of a job running <paramref name="placement"/>.</summary>
    public static ExpertLoadReport Report(string job, double[][] loads, IReadOnlyList<ExpertSlotGpu> gpus, int[][] placement) => new()
    {
        Job = job,
        WindowStart = new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero),
        WindowEnd = new DateTimeOffset(2026, 11, 29, 12, 5, 0, TimeSpan.Zero),
        TokensPerExpert = loads.Select(r => (IReadOnlyList<long>)r.Select(x => (long)x).ToArray()).ToArray(),
        Gpus = gpus,
        Placement = placement,
    };

    public static string TempDir(string prefix)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }
}
