using System.Diagnostics;
using FleetWatch.Controller.Replay;

namespace FleetWatch.Controller.Tests.Replay;

/// <summary>Every public replay scenario through the replay verb, graded by the corpus's own scorer.</summary>
public sealed class ReplayScorerTests
{
    [Fact]
    public async Task Public_scenarios_pass_the_scorer()
    {
        var scenarios = RepoPaths.PublicReplayScenarios;
        var output = Directory.CreateTempSubdirectory("fleetwatch-replay-").FullName;
        try
        {
            var files = Directory.GetFiles(scenarios, "*.json").Where(f => !f.EndsWith(".expect.json", StringComparison.Ordinal) && Path.GetFileName(f) != "index.json").Order().ToList();
            Assert.NotEmpty(files);
            foreach (var file in files)
            {
                var stderr = new StringWriter();
                var code = await ReplayTool.RunAsync(["--scenario", file, "--output", Path.Combine(output, Path.GetFileName(file))], TextWriter.Null, stderr);
                Assert.True(code == 0, $"{Path.GetFileName(file)}: exit {code}: {stderr}");
            }

            var (exit, text) = await RunScorerAsync("--batch", scenarios, output);
            var last = text.TrimEnd().Split('\n')[^1];
            Assert.True(exit == 0, $"scorer exit {exit}:\n{text}");
            Assert.StartsWith("replay: PASS", last, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
    }

    internal static async Task<(int Exit, string Output)> RunScorerAsync(params string[] args)
    {
        const string Python = "/usr/bin/python3";
        Assert.True(File.Exists(Python), $"{Python} is required to run the replay scorer");
        var start = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(RepoPaths.ReplayScorer);
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }
}
