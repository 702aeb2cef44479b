using FleetWatch.Controller.Stragglers;

namespace FleetWatch.Controller.Tests.Stragglers;

/// <summary>Table-driven tests of the pure detector: what must and must not be a straggler, restarts, damage, hangs.</summary>
public sealed class StragglerDetectorTests
{
    private const int Ranks = 64;
    private const int Groups = 2;

    /// <summary>A clean synthetic job: 64 ranks in 2 peer groups of 32, 1 s steps, 3 % per-step noise, seeded.</summary>
    private sealed record Scenario(string Name, int Steps, Func<int, int, double> Factor, int[] Expected, int OnsetStep = 0)
    {
        public override string ToString() => Name;
    }

    private static readonly Dictionary<string, Scenario> Scenarios = new[]
    {
        new Scenario("nothing wrong", 300, (_, _) => 1.0, []),
        new Scenario("single-step spike", 300, (r, s) => r == 5 && s == 80 ? 3.5 : 1.0, []),
        new Scenario("three-step spikes on many ranks", 300, (r, s) => s % 7 == 0 && r == s % Ranks ? 3.0 : 1.0, []),
        new Scenario("checkpoint pauses (all ranks slow)", 300, (_, s) => s % 60 == 30 ? 6.0 : 1.0, []),
        new Scenario("uneven checkpoint (each rank 3–10×)", 300, (r, s) => s % 60 == 30 ? 3 + (7.0 * ((r * 37) % 64) / 64) : 1.0, []),
        new Scenario("peer group slower by design", 300, (r, _) => GroupOf(r) == 1 ? 1.4 : 1.0, []),
        new Scenario("job-wide drift and slow warm-up", 300, (_, s) => (s < 4 ? 1.8 : 1.0) * (1 + (0.3 * s / 300)), []),
        new Scenario("10 % slow rank", 300, (r, s) => r == 9 && s >= 60 ? 1.10 : 1.0, [9], 60),
        new Scenario("2× slow rank from the start", 300, (r, _) => r == 40 ? 2.0 : 1.0, [40], 0),
        new Scenario("slow node (8 ranks, 25 %)", 300, (r, s) => r is >= 16 and < 24 && s >= 100 ? 1.25 : 1.0,
            [16, 17, 18, 19, 20, 21, 22, 23], 100),
        new Scenario("10 % rank inside a slower-by-design group", 300,
            (r, s) => (GroupOf(r) == 1 ? 1.4 : 1.0) * (r == 50 && s >= 80 ? 1.10 : 1.0), [50], 80),
    }.ToDictionary(s => s.Name);

    public static TheoryData<string> ScenarioNames => new(Scenarios.Keys);

    [Theory]
    [MemberData(nameof(ScenarioNames))]
    public void FlagsExactlyThePersistentlySlowRanks(string name)
    {
        var scenario = Scenarios[name];
        var findings = Run(Generate(scenario.Steps, scenario.Factor, seed: 7));

        var flagged = findings.OfType<StragglerFlagged>().ToList();
        Assert.Equal(scenario.Expected, flagged.Select(f => f.Rank).Distinct().Order().ToArray());
        foreach (var f in flagged)
        {
            // Flagged after the onset (online: never before the slowdown shows) and within the 100-step bar.
            Assert.InRange(f.FirstFlaggedStep, scenario.OnsetStep, scenario.OnsetStep + 100);
            Assert.InRange(f.Score, 0.3, 0.95);
        }

        // A job that keeps running is never left hung: any hang raised during a pause was cleared when it resumed.
        Assert.Equal(findings.OfType<HangDetected>().Count(), findings.OfType<HangCleared>().Count());
    }

    [Fact]
    public void TenPercentRank_ScoreReflectsTheSlowdown()
    {
        var flagged = Assert.Single(Run(Generate(300, (r, s) => r == 9 && s >= 60 ? 1.10 : 1.0, seed: 3)).OfType<StragglerFlagged>());
        Assert.Equal(9, flagged.Rank);
        Assert.Equal("n0001", flagged.Node);
        Assert.Equal(1, flagged.Gpu);
        Assert.InRange(flagged.Score, 1 / 1.16, 1 / 1.05);
    }

    [Fact]
    public void RecoveredRank_IsCleared()
    {
        var findings = Run(Generate(400, (r, s) => r == 12 && s is >= 60 and < 200 ? 1.5 : 1.0, seed: 5));
        var flagged = Assert.Single(findings.OfType<StragglerFlagged>());
        var cleared = Assert.Single(findings.OfType<StragglerCleared>());
        Assert.Equal(12, cleared.Rank);
        Assert.Equal(StragglerClearReason.Recovered, cleared.Reason);
        Assert.InRange(cleared.Step, 200, 260);
        Assert.True(cleared.AtMs > flagged.AtMs);
    }

    [Fact]
    public void IndividualScore_CatchesARankThatSlowedBelowItsOwnPast()
    {
        // Rank 5 ran 6 % faster than its peers, then 3 % slower: 9.6 % worse than itself, yet only 3 % behind the peer
        // median, which the relative score alone would let pass.
        var rows = Generate(300, (r, s) => r == 5 ? (s < 150 ? 0.94 : 1.03) : 1.0, seed: 9);
        var flagged = Assert.Single(Run(rows).OfType<StragglerFlagged>());
        Assert.Equal(5, flagged.Rank);
        Assert.InRange(flagged.FirstFlaggedStep, 150, 250);
        Assert.True(flagged.IndividualScore < 0.935);
    }

    [Fact]
    public void Restart_ResetsIndividualHistory()
    {
        // Same change as above, but the job restarts (from checkpoint step 100) between the fast and the slow phase:
        // the new run may sit on other hardware, so the old baseline no longer applies and nothing is flagged.
        var firstRun = Generate(150, (r, _) => r == 5 ? 0.94 : 1.0, seed: 9);
        var restartAt = firstRun[^1].EndMs + 60_000;
        var secondRun = Generate(150, (r, _) => r == 5 ? 1.03 : 1.0, seed: 10, firstStep: 100, startMs: restartAt);
        var detector = new StragglerDetector(new StragglerDetectorOptions());
        var findings = Run([.. firstRun, .. secondRun], detector);

        Assert.Empty(findings.OfType<StragglerFlagged>());
        Assert.Equal(1, detector.Counters.Restarts);
    }

    [Fact]
    public void Restart_ClearsFlagsAndHang()
    {
        var firstRun = Generate(200, (r, _) => r == 7 ? 1.5 : 1.0, seed: 2);
        var secondRun = Generate(100, (_, _) => 1.0, seed: 4, firstStep: 150, startMs: firstRun[^1].EndMs + 300_000);
        var detector = new StragglerDetector(new StragglerDetectorOptions());
        var findings = Run([.. firstRun, .. secondRun], detector);

        Assert.Equal(7, Assert.Single(findings.OfType<StragglerFlagged>()).Rank);
        var cleared = Assert.Single(findings.OfType<StragglerCleared>());
        Assert.Equal(StragglerClearReason.JobRestarted, cleared.Reason);
        Assert.Single(findings.OfType<HangDetected>());
        Assert.Single(findings.OfType<HangCleared>());
    }

    [Fact]
    public void RestartAtTheHungStep_IsARestart()
    {
        // The job hangs in step 120 (never analysed: no later step arrived) and restarts from a checkpoint at step 120.
        var firstRun = Generate(121, (r, _) => r == 7 ? 1.5 : 1.0, seed: 2);
        var secondRun = Generate(100, (_, _) => 1.0, seed: 4, firstStep: 120, startMs: firstRun[^1].EndMs + 300_000);
        var detector = new StragglerDetector(new StragglerDetectorOptions());
        var findings = Run([.. firstRun, .. secondRun], detector);

        Assert.Equal(1, detector.Counters.Restarts);
        Assert.Equal(0, detector.Counters.Duplicates);
        Assert.Equal(StragglerClearReason.JobRestarted, Assert.Single(findings.OfType<StragglerCleared>()).Reason);
        Assert.Single(findings.OfType<HangCleared>());
    }

    [Fact]
    public void DuplicatedMissingAndReorderedRows_GiveTheSameVerdicts()
    {
        var clean = Generate(300, (r, s) => r == 9 && s >= 60 ? 1.15 : 1.0, seed: 13);
        var rng = new Random(99);
        var damaged = new List<StepReport>();
        foreach (var row in clean)
        {
            if (rng.NextDouble() < 0.02)
            {
                continue; // lost report
            }

            damaged.Add(row);
            if (rng.NextDouble() < 0.03)
            {
                damaged.Add(row); // sent twice
            }
        }

        // Reports of the same step arrive in any order, and some arrive after the step was analysed.
        var reordered = damaged.GroupBy(r => r.Step).SelectMany(g => g.OrderBy(_ => rng.Next())).ToList();
        for (var i = 0; i < 40; i++)
        {
            var at = rng.Next(reordered.Count - 200);
            var late = reordered[at];
            reordered.RemoveAt(at);
            reordered.Insert(at + 150, late);
        }

        var detector = new StragglerDetector(new StragglerDetectorOptions());
        var fromDamaged = Run(reordered, detector).OfType<StragglerFlagged>().ToList();
        var fromClean = Run(clean).OfType<StragglerFlagged>().ToList();

        Assert.Equal([9], fromClean.Select(f => f.Rank));
        Assert.Equal([9], fromDamaged.Select(f => f.Rank));
        Assert.InRange(fromDamaged[0].FirstFlaggedStep, 60, 160);
        Assert.True(detector.Counters.Duplicates > 0);
        Assert.True(detector.Counters.Stale > 0);
        Assert.Equal(0, detector.Counters.Restarts);
    }

    [Fact]
    public void Hang_IsDetectedWithinAFewStepTimes_WithTheRanksThatStoppedFirst()
    {
        // Job "a" stops after step 120; ranks 3 and 41 never finished step 120. Job "b" keeps going.
        var a = Generate(121, (_, _) => 1.0, seed: 1, job: "a").Where(r => !(r.Step == 120 && r.Rank is 3 or 41)).ToList();
        var b = Generate(260, (_, _) => 1.0, seed: 2, job: "b");
        var rows = a.Concat(b).OrderBy(r => r.EndMs).ToList();
        var detector = new StragglerDetector(new StragglerDetectorOptions());
        var findings = Run(rows, detector);
        detector.AdvanceTo(rows[^1].EndMs + 1, findings);

        var hang = Assert.Single(findings.OfType<HangDetected>());
        Assert.Equal("a", hang.Job);
        Assert.Equal(120, hang.LastStep);
        Assert.Equal([3, 41], hang.SuspectRanks);
        var lastA = a.Max(r => r.EndMs);
        Assert.Equal(lastA, hang.LastProgressMs);
        Assert.InRange(hang.AtMs, lastA + (4 * hang.MedianStepMs), lastA + (7 * hang.MedianStepMs) + 1);
        Assert.Empty(findings.OfType<HangCleared>());
        Assert.False(detector.Jobs.Single(j => j.Job == "b").Hung);
    }

    [Fact]
    public void LongCheckpointPause_RaisesAHangThatClearsWhenTheJobResumes()
    {
        var rows = Generate(200, (_, s) => s == 100 ? 12.0 : 1.0, seed: 8);
        var findings = Run(rows);

        var hang = Assert.Single(findings.OfType<HangDetected>());
        var cleared = Assert.Single(findings.OfType<HangCleared>());
        Assert.Equal(100, cleared.Step);
        Assert.True(cleared.AtMs > hang.AtMs);
        Assert.Empty(findings.OfType<StragglerFlagged>());
    }

    [Fact]
    public void EndedJob_IsNotAHang()
    {
        var rows = Generate(100, (_, _) => 1.0, seed: 8);
        var detector = new StragglerDetector(new StragglerDetectorOptions());
        var findings = Run(rows, detector);
        Assert.True(detector.EndJob("j"));
        detector.AdvanceTo(rows[^1].EndMs + 1_000_000, findings);
        Assert.Empty(findings.OfType<HangDetected>());
        Assert.Null(detector.NextHangDeadlineMs);
    }

    [Fact]
    public void MalformedReports_AreCountedNotFatal()
    {
        var detector = new StragglerDetector(new StragglerDetectorOptions());
        var findings = new List<StragglerFinding>();
        detector.Observe(new StepReport("j", -1, "n", 0, "g", 1, 10, 5), findings);
        detector.Observe(new StepReport("j", 1, "n", 0, "g", 1, 10, double.NaN), findings);
        detector.Observe(new StepReport("", 1, "n", 0, "g", 1, 10, 5), findings);
        detector.Observe(new StepReport("j", 1, "n", 0, "g", 1, 10, 5), findings);
        Assert.Equal(3, detector.Counters.Malformed);
        Assert.Equal(4, detector.Counters.Reports);
        Assert.Empty(findings);
    }

    [Theory]
    [InlineData(nameof(StragglerDetectorOptions.WindowSteps), "WindowSteps = 2")]
    [InlineData(nameof(StragglerDetectorOptions.RelativeThreshold), "RelativeThreshold = 1.5")]
    [InlineData(nameof(StragglerDetectorOptions.HangMaxMedianSteps), "HangMaxMedianSteps = 1")]
    public void InvalidOptions_FailWithKeyAndValue(string key, string expected)
    {
        var options = new StragglerDetectorOptions();
        switch (key)
        {
            case nameof(StragglerDetectorOptions.WindowSteps):
                options.WindowSteps = 2;
                break;
            case nameof(StragglerDetectorOptions.RelativeThreshold):
                options.RelativeThreshold = 1.5;
                break;
            default:
                options.HangMaxMedianSteps = 1;
                break;
        }

        var result = new StragglerDetectorOptionsValidator().Validate(null, options);
        Assert.True(result.Failed);
        Assert.Contains("FleetWatch:Stragglers:" + expected, result.FailureMessage, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new StragglerDetector(options));
        Assert.False(new StragglerDetectorOptionsValidator().Validate(null, new StragglerDetectorOptions()).Failed);
    }

    private static int GroupOf(int rank) => rank / (Ranks / Groups);

    /// <summary>Synchronous steps: every rank ends together (0–2 ms jitter); the interval is the slowest rank + 5 %.</summary>
    private static List<StepReport> Generate(
        int steps, Func<int, int, double> factor, int seed, long firstStep = 0, long startMs = 1_000, string job = "j")
    {
        var rng = new Random(seed);
        var rows = new List<StepReport>(steps * Ranks);
        var t = startMs;
        var d = new double[Ranks];
        for (var s = 0; s < steps; s++)
        {
            var max = 0.0;
            for (var r = 0; r < Ranks; r++)
            {
                var noise = Math.Exp(0.03 * Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
                d[r] = 1000 * factor(r, s) * noise;
                max = Math.Max(max, d[r]);
            }

            t += (long)(max * 1.05);
            for (var r = 0; r < Ranks; r++)
            {
                rows.Add(new StepReport(job, r, $"n{r / 8:0000}", r % 8, $"pp{GroupOf(r)}", firstStep + s, t + (r % 3), Math.Round(d[r], 1)));
            }
        }

        return rows;
    }

    private static List<StragglerFinding> Run(IEnumerable<StepReport> rows, StragglerDetector? detector = null)
    {
        detector ??= new StragglerDetector(new StragglerDetectorOptions());
        var findings = new List<StragglerFinding>();
        foreach (var row in rows)
        {
            detector.Observe(row, findings);
        }

        return findings;
    }
}
