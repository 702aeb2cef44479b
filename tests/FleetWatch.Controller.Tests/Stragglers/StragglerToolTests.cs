using System.Text.Json;
using FleetWatch.Controller.Stragglers;

namespace FleetWatch.Controller.Tests.Stragglers;

/// <summary>The verb's contract: arguments, exit codes, malformed rows, the output document.</summary>
public sealed class StragglerToolTests
{
    [Theory]
    [InlineData(new string[0], "--trace is required")]
    [InlineData(new[] { "--trace" }, "unexpected argument '--trace'")]
    [InlineData(new[] { "--trace", "x.csv", "--end-ms", "soon" }, "--end-ms must be a non-negative integer")]
    [InlineData(new[] { "--trace", "x.csv", "--frobnicate" }, "unexpected argument '--frobnicate'")]
    [InlineData(new[] { "--trace", "/nonexistent/trace.csv" }, "cannot read /nonexistent/trace.csv")]
    public async Task BadArgumentsOrInput_Exit2WithOneLine(string[] args, string expected)
    {
        var stderr = new StringWriter();
        Assert.Equal(2, await StragglerTool.RunAsync(args, TextWriter.Null, stderr));
        var text = stderr.ToString();
        Assert.Contains(expected, text, StringComparison.Ordinal);
        Assert.Single(text.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task MissingHeaderColumn_Exit2()
    {
        var path = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(path, "job,rank,node\nj,1,n\n");
            var stderr = new StringWriter();
            Assert.Equal(2, await StragglerTool.RunAsync(["--trace", path], TextWriter.Null, stderr));
            Assert.Contains("no 'gpu' column", stderr.ToString(), StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task MalformedRows_AreSkippedAndCounted_AndTheOutputHasTheDocumentedShape()
    {
        var trace = StepTraceGenerator.Generate("t", seed: 5,
            [new GeneratedJob { Name = "j", Ranks = 64, PeerGroups = 2, Steps = 200, RankStragglers = 1, Slowdowns = [2.0], DontCare = 0 }],
            missingRate: 0, duplicateRate: 0);
        var csv = trace.ToCsv() + "j,notanumber,n,0,pp00,1,2,3\nj,1,n,0,pp00\nj,1,n,0,pp00,5,100,-4\n";
        var path = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(path, csv);
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            Assert.Equal(0, await StragglerTool.RunAsync(["--trace", path], stdout, stderr));
            Assert.Contains("3 malformed skipped", stderr.ToString(), StringComparison.Ordinal);

            using var doc = JsonDocument.Parse(stdout.ToString());
            var root = doc.RootElement;
            var s = Assert.Single(root.GetProperty("stragglers").EnumerateArray());
            var truth = Assert.Single(trace.Stragglers);
            Assert.Equal("j", s.GetProperty("job").GetString());
            Assert.Equal(truth.Rank, s.GetProperty("rank").GetInt32());
            Assert.Equal(truth.Node, s.GetProperty("node").GetString());
            Assert.Equal(truth.Gpu, s.GetProperty("gpu").GetInt32());
            Assert.InRange(s.GetProperty("first_flagged_step").GetInt64(), truth.OnsetStep, truth.OnsetStep + 100);
            Assert.InRange(s.GetProperty("score").GetDouble(), 0.4, 0.6);
            Assert.Empty(root.GetProperty("hangs").EnumerateArray());
            var job = Assert.Single(root.GetProperty("jobs").EnumerateArray());
            Assert.Equal(64, job.GetProperty("ranks").GetInt32());
            Assert.InRange(job.GetProperty("steps").GetInt32(), 150, 200);
            var median = trace.MedianStepMs["j"];
            Assert.InRange(job.GetProperty("median_step_ms").GetDouble(), median * 0.9, median * 1.1);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Decisions_DoNotLookAhead()
    {
        // Online semantics: cutting the trace at any time T leaves every decision taken by T unchanged.
        var trace = StepTraceGenerator.Generate("online", seed: 19,
        [
            new GeneratedJob { Name = "j", Ranks = 64, PeerGroups = 4, Steps = 260, RankStragglers = 4, Hangs = true },
            new GeneratedJob { Name = "k", Ranks = 32, PeerGroups = 2, Steps = 300, RankStragglers = 2 },
        ], shuffle: true);
        var full = StragglerTool.Analyse(trace.Rows, trace.EndMs, new StragglerDetectorOptions());
        Assert.NotEmpty(full.Stragglers);
        Assert.Single(full.Hangs);
        foreach (var flag in full.Stragglers)
        {
            // Only rows up to the end of the flagged step; the observation runs on until the step counts as over
            // (CloseAfterMedianSteps = 0.5 median intervals), with nothing more arriving.
            var cut = flag.AtMs;
            var median = full.Jobs.Single(j => j.Job == flag.Job).MedianStepMs;
            var prefix = StragglerTool.Analyse(
                trace.Rows.Where(r => r.EndMs <= cut).ToList(), cut + (long)(0.9 * median), new StragglerDetectorOptions());
            Assert.Equal(
                full.Stragglers.Where(f => f.AtMs <= cut).Select(f => (f.Job, f.Rank, f.FirstFlaggedStep, f.Score)),
                prefix.Stragglers.Select(f => (f.Job, f.Rank, f.FirstFlaggedStep, f.Score)));
        }

        var hang = full.Hangs[0];
        var atHang = StragglerTool.Analyse(trace.Rows.Where(r => r.EndMs <= hang.AtMs).ToList(), hang.AtMs, new StragglerDetectorOptions());
        Assert.Equal(hang, Assert.Single(atHang.Hangs), (a, b) => a.Job == b.Job && a.AtMs == b.AtMs && a.SuspectRanks.SequenceEqual(b.SuspectRanks));
    }
}
