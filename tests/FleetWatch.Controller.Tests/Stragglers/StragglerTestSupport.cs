using System.Diagnostics;
using System.Text.Json;

namespace FleetWatch.Controller.Tests.Stragglers;

/// <summary>Locates the shared folder and runs the corpus scorer.</summary>
internal static class StragglerTestSupport
{
    /// <summary><c>&lt;repoRoot&gt;/../shared</c>, where CI puts it; fails (never skips) when it is missing.</summary>
    public static string SharedFolder
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "FleetWatch.sln")))
            {
                dir = dir.Parent;
            }

            Assert.True(dir is not null, $"no FleetWatch.sln above {AppContext.BaseDirectory}");
            var shared = Path.GetFullPath(Path.Combine(dir!.FullName, "..", "shared"));
            Assert.True(Directory.Exists(shared), $"the shared folder is missing: expected it at {shared}");
            return shared;
        }
    }

    public static string CorpusFolder => Path.Combine(SharedFolder, "bench-data", "stragglers");

    public static string NewTempFolder(string prefix)
    {
        var path = Path.Combine(Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>Runs <c>score_stragglers.py --batch TRUTH OUT --json</c>; returns its exit code, output and pooled summary.</summary>
    public static (int ExitCode, string Output, JsonElement Pooled) Score(string truthFolder, string outputFolder)
    {
        var scorer = Path.Combine(CorpusFolder, "score_stragglers.py");
        Assert.True(File.Exists(scorer), $"scorer missing: {scorer}");
        var psi = new ProcessStartInfo("/usr/bin/python3")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { scorer, "--batch", truthFolder, outputFolder, "--json", "--show", "20" })
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi)!;
        var stdoutTask = process.StandardOutput.ReadToEndAsync();
        var stderrTask = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(60_000), "the scorer did not finish within 60 s");
        var output = stdoutTask.Result + stderrTask.Result;
        var jsonLine = output.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        Assert.True(jsonLine is not null, $"no JSON summary from the scorer:\n{output}");
        return (process.ExitCode, output, JsonDocument.Parse(jsonLine!).RootElement.Clone());
    }

    /// <summary>The pass bar of issue 5, asserted on the scorer's pooled summary.</summary>
    public static void AssertPassBar((int ExitCode, string Output, JsonElement Pooled) result)
    {
        var p = result.Pooled;
        Assert.True(p.GetProperty("errors").GetInt32() == 0, result.Output);
        Assert.True(p.GetProperty("recall").GetDouble() >= 0.95, result.Output);
        Assert.True(p.GetProperty("precision").GetDouble() >= 0.95, result.Output);
        Assert.True(p.GetProperty("hangs_detected").GetInt32() == p.GetProperty("hangs").GetInt32(), result.Output);
        Assert.True(p.GetProperty("false_hangs").GetInt32() == 0, result.Output);
        Assert.True(p.GetProperty("true").GetInt32() > 0, "a corpus without stragglers proves nothing");
        Assert.True(result.ExitCode == 0, result.Output);
    }
}
