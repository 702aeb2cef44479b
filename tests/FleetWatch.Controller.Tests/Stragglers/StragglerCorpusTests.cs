using FleetWatch.Controller.Stragglers;
using Xunit.Abstractions;

namespace FleetWatch.Controller.Tests.Stragglers;

/// <summary>
/// The <c>stragglers</c> verb end to end on the public corpus and on traces generated here with other seeds and
/// settings, graded by the corpus scorer against the pass bar of issue 5.
/// </summary>
public sealed class StragglerCorpusTests(ITestOutputHelper log)
{
    [Fact]
    public async Task PublicTraces_MeetThePassBar()
    {
        var publicFolder = Path.Combine(StragglerTestSupport.CorpusFolder, "public");
        var traces = Directory.GetFiles(publicFolder, "*.csv");
        Assert.NotEmpty(traces);
        var output = StragglerTestSupport.NewTempFolder("fw-stragglers-public");
        try
        {
            foreach (var trace in traces)
            {
                var name = Path.GetFileNameWithoutExtension(trace);
                var extra = File.ReadAllText(Path.Combine(publicFolder, name + ".args"))
                    .Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                string[] args = ["--trace", trace, .. extra, "--output", Path.Combine(output, name + ".json")];
                var stderr = new StringWriter();
                Assert.Equal(0, await StragglerTool.RunAsync(args, TextWriter.Null, stderr));
            }

            var result = StragglerTestSupport.Score(publicFolder, output);
            log.WriteLine(result.Output);
            StragglerTestSupport.AssertPassBar(result);
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
    }

    /// <summary>Settings unlike the public corpus: other rank counts, layouts, noise, damage, step numbering.</summary>
    internal static IReadOnlyList<GeneratedTrace> GeneratedCorpus() =>
    [
        StepTraceGenerator.Generate("G01_256_ranks_low_noise", seed: 11,
        [
            new GeneratedJob { Name = "big", Ranks = 256, PeerGroups = 8, Steps = 320, Sigma = 0.02, RankStragglers = 4, NodeStragglers = 1 },
        ]),
        StepTraceGenerator.Generate("G02_round_robin_hang_shuffled", seed: 23,
        [
            new GeneratedJob
            {
                Name = "rr", Ranks = 96, PeerGroups = 3, RoundRobinLayout = true, Steps = 300, Sigma = 0.045, SlowGroupByDesign = true,
                RankStragglers = 3, StageCostMs = 1800,
            },
            new GeneratedJob { Name = "tenpct", Ranks = 64, PeerGroups = 2, Steps = 420, Sigma = 0.03, RankStragglers = 5, Slowdowns = [1.10], Hangs = true },
        ], shuffle: true),
        StepTraceGenerator.Generate("G03_512_ranks_frequent_checkpoints", seed: 37,
        [
            new GeneratedJob
            {
                Name = "wide", Ranks = 512, PeerGroups = 16, FirstStep = 50_000, Steps = 260, Sigma = 0.035, NodeStragglers = 2,
                RankStragglers = 5, CheckpointEveryMin = 50, CheckpointEveryMax = 80, StageCostMs = 700,
            },
            new GeneratedJob
            {
                Name = "small-groups", Ranks = 32, PeerGroups = 4, Steps = 200, Sigma = 0.03, RankStragglers = 2, Hangs = true,
                CheckpointEveryMin = 50, CheckpointEveryMax = 80, StageCostMs = 900,
            },
        ]),
        StepTraceGenerator.Generate("G04_noisy_heavy_damage", seed: 41,
        [
            new GeneratedJob { Name = "noisy", Ranks = 96, PeerGroups = 6, Steps = 300, Sigma = 0.05, RankStragglers = 5, Slowdowns = [1.10, 1.15], SlowGroupByDesign = true },
        ], missingRate: 0.03, duplicateRate: 0.02),
        StepTraceGenerator.Generate("G05_harsh_small_groups_many_spikes", seed: 53,
        [
            new GeneratedJob
            {
                Name = "harsh", Ranks = 128, PeerGroups = 16, Steps = 300, Sigma = 0.05, RankStragglers = 4, Slowdowns = [1.10],
                SpikesPerStep = 0.6, SlowGroupByDesign = true, CheckpointEveryMin = 40, CheckpointEveryMax = 60, Hangs = true,
            },
            new GeneratedJob { Name = "steady", Ranks = 64, PeerGroups = 8, Steps = 400, Sigma = 0.04, RankStragglers = 2, Slowdowns = [1.10, 1.15] },
        ], missingRate: 0.05, duplicateRate: 0.03, shuffle: true),
    ];

    [Fact]
    public async Task GeneratedTraces_MeetThePassBar()
    {
        var truth = StragglerTestSupport.NewTempFolder("fw-stragglers-truth");
        var output = StragglerTestSupport.NewTempFolder("fw-stragglers-out");
        try
        {
            foreach (var trace in GeneratedCorpus())
            {
                var csv = Path.Combine(truth, trace.Name + ".csv");
                await File.WriteAllTextAsync(csv, trace.ToCsv());
                await File.WriteAllTextAsync(Path.Combine(truth, trace.Name + ".truth.json"), trace.ToTruthJson());
                string[] args = ["--trace", csv, .. trace.Args.Split(' '), "--output", Path.Combine(output, trace.Name + ".json")];
                Assert.Equal(0, await StragglerTool.RunAsync(args, TextWriter.Null, TextWriter.Null));
            }

            var result = StragglerTestSupport.Score(truth, output);
            log.WriteLine(result.Output);
            StragglerTestSupport.AssertPassBar(result);
        }
        finally
        {
            Directory.Delete(truth, recursive: true);
            Directory.Delete(output, recursive: true);
        }
    }
}
