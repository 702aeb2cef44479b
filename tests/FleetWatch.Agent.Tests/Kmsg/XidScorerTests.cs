using System.Diagnostics;
using FleetWatch.Agent.Sources.Kmsg;

namespace FleetWatch.Agent.Tests.Kmsg;

/// <summary>
/// Runs the <c>xid</c> verb on every public capture and grades it with the corpus's own scorer. The bar is the
/// corpus's pass bar (every capture passes: no missing, extra or mismatched event) and, stricter than that bar,
/// <c>--strict</c> (process, seq and uptime_us exact too): the captures are synthetic with fully known answers,
/// so anything short of perfect is a parser bug, not noise.
/// </summary>
public sealed class XidScorerTests
{
    [Fact]
    public async Task Public_captures_score_perfectly_with_the_corpus_scorer_in_strict_mode()
    {
        var corpus = XidTestPaths.XidCorpus;
        var publicDir = Path.Combine(corpus, "public");
        var captures = Directory.GetFiles(publicDir, "*.log").Order(StringComparer.Ordinal).ToArray();
        Assert.NotEmpty(captures);
        var outDir = Directory.CreateTempSubdirectory("xid-score-").FullName;
        try
        {
            foreach (var capture in captures)
            {
                var stdout = new StringWriter();
                var stderr = new StringWriter();
                var rc = await XidTool.RunAsync(["--input", capture], stdout, stderr);
                Assert.True(rc == 0, $"{capture}: exit {rc}: {stderr}");
                await File.WriteAllTextAsync(Path.Combine(outDir, Path.GetFileNameWithoutExtension(capture) + ".jsonl"), stdout.ToString());
            }

            var (code, output) = RunScorer(corpus, "--strict", "--batch", publicDir, outDir);
            Assert.True(code == 0, "scorer failed:\n" + output);
            var last = output.TrimEnd().Split('\n')[^1];
            Assert.StartsWith("xid: PASS captures", last);
            Assert.Contains("missing 0, extra 0, mismatched 0, meta (process/seq/uptime_us) mismatched 0", last);
        }
        finally
        {
            Directory.Delete(outDir, recursive: true);
        }
    }

    internal static (int Code, string Output) RunScorer(string corpus, params string[] args)
    {
        var psi = new ProcessStartInfo("/usr/bin/python3")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = corpus,
        };
        psi.ArgumentList.Add(Path.Combine(corpus, "score_xid.py"));
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(60_000), "scorer did not finish in 60 s");
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
