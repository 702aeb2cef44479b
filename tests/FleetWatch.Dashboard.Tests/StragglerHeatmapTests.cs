using FleetWatch.Controller.Api;

namespace FleetWatch.Dashboard.Tests;

/// <summary>The jobs view's rank × time matrix: relative scores per bucket, the window, and its bounds.</summary>
public sealed class StragglerHeatmapTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 29, 12, 0, 0, TimeSpan.Zero);

    /// <summary>Reports of <paramref name="ranks"/> ranks, one step a second for <paramref name="seconds"/>; <paramref name="duration"/> per rank.</summary>
    private static StragglerHeatmap Feed(int ranks, int seconds, Func<int, int, double> duration, string job = "job-a", StragglerHeatmap? into = null)
    {
        var heatmap = into ?? new StragglerHeatmap();
        for (var t = 0; t < seconds; t++)
        {
            for (var r = 0; r < ranks; r++)
            {
                heatmap.Observe(job, r, $"node-{r / 8}", r % 8, Start.AddSeconds(t), duration(r, t));
            }
        }

        return heatmap;
    }

    [Fact]
    public void A_slow_rank_scores_the_median_over_its_time_and_peers_score_one()
    {
        // 8 ranks; rank 3 takes 1.25x from second 10 on (score 0.8); rank 6 is faster than the median (capped at 1).
        var heatmap = Feed(8, 30, (r, t) => r == 3 && t >= 10 ? 1250 : r == 6 ? 900 : 1000);
        var view = heatmap.Read("job-a", Start.AddSeconds(29))!;
        Assert.Equal(8, view.Ranks.Count);
        Assert.Equal(180, view.Scores[0].Length);
        var rank3 = view.Scores[view.Ranks.ToList().FindIndex(p => p.Rank == 3)];
        Assert.Equal([1.0, 0.8, 0.8], rank3[^3..]);
        Assert.All(view.Scores.Where((_, i) => view.Ranks[i].Rank != 3), s => Assert.Equal([1.0, 1.0, 1.0], s[^3..]));
        Assert.All(view.Scores, s => Assert.All(s[..^3], Assert.Null));
        Assert.Equal(new RankPlace(3, "node-0", 3), view.Ranks[3]);
    }

    [Fact]
    public void Current_scores_give_each_rank_its_newest_bucket_and_forget_silent_jobs()
    {
        var heatmap = Feed(16, 20, (r, _) => r == 9 ? 2000 : 1000);
        var scores = heatmap.CurrentScores(Start.AddSeconds(20));
        Assert.Equal(16, scores.Count);
        Assert.Equal(0.5, scores.Single(s => s.Rank == 9).Score);
        Assert.Equal(("node-1", 1), (scores.Single(s => s.Rank == 9).Node, scores.Single(s => s.Rank == 9).Gpu));
        Assert.Empty(heatmap.CurrentScores(Start.AddMinutes(31)));
        Assert.Null(heatmap.Read("no-such-job", Start));
    }

    [Fact]
    public void Reports_older_than_the_window_are_dropped_and_bad_reports_ignored()
    {
        var heatmap = Feed(4, 5, (_, _) => 1000);
        heatmap.Observe("job-a", 0, "node-0", 0, Start.AddMinutes(40), 1000); // the job moved 40 minutes on
        heatmap.Observe("job-a", 1, "node-0", 1, Start.AddSeconds(1), 5000); // late report of the old window: dropped
        heatmap.Observe("job-a", -1, "node-0", 0, Start.AddMinutes(40), 1000);
        heatmap.Observe("job-a", 2, "node-0", 2, Start.AddMinutes(40), double.NaN);
        heatmap.Observe("job-a", StragglerHeatmap.MaxRanks, "node-0", 0, Start.AddMinutes(40), 1000);
        var view = heatmap.Read("job-a", Start.AddMinutes(40))!;
        var present = view.Scores.Select(s => s.Count(x => x is not null)).ToList();
        Assert.Equal([1, 0, 0, 0], present);
    }

    [Fact]
    public void Jobs_beyond_the_bound_evict_the_least_recently_reporting()
    {
        var heatmap = new StragglerHeatmap();
        for (var j = 0; j < StragglerHeatmap.MaxJobs + 1; j++)
        {
            heatmap.Observe($"job-{j:D3}", 0, "node-0", 0, Start.AddSeconds(j * 10), 1000);
        }

        var jobs = heatmap.Jobs();
        Assert.Equal(StragglerHeatmap.MaxJobs, jobs.Count);
        Assert.DoesNotContain("job-000", jobs);
        Assert.Contains($"job-{StragglerHeatmap.MaxJobs:D3}", jobs);
    }
}
