using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Stragglers;
using FleetWatch.Controller.Stragglers.Live;

namespace FleetWatch.Controller.Tests.Stragglers.Live;

public sealed class StragglerIncidentFindingsTests
{
    private static readonly DateTimeOffset T = new(2026, 11, 29, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_straggler_is_a_warning_on_its_node_and_gpu_and_escalates_to_high()
    {
        var flagged = new StragglerFlagged("j1", 1000, 17, "n5", 3, "pp1", 230, 0.8, 0.85);
        var attribution = new StragglerAttribution(StragglerCause.Network, ["IB mlx5_0/1 symbol_error +40"]);

        var first = StragglerIncidentFindings.Straggler(flagged, attribution, escalated: false, TimeSpan.Zero, T);
        var later = StragglerIncidentFindings.Straggler(flagged, attribution, escalated: true, TimeSpan.FromMinutes(12), T);

        Assert.Equal(("n5", (int?)3, FindingKind.Condition, true, Severity.Warning, "straggler_rank", "evict_rank_at_checkpoint"),
            (first.Node, first.Gpu, first.Kind, first.Active, first.Severity, first.Category, first.Action));
        Assert.Equal("job j1 rank 17 (peer group pp1) is 25 % slower than its peers (score 0.80) since step 230; cause: network (IB mlx5_0/1 symbol_error +40)", first.Message);
        Assert.Equal(Severity.High, later.Severity);
        Assert.Equal(first.Rule, later.Rule); // same condition, raised: the incident escalates instead of a second one opening
        Assert.EndsWith("persisting for 12 min", later.Message, StringComparison.Ordinal);

        var clear = StragglerIncidentFindings.StragglerClear("j1", 17, "n5", 3, "recovered", T);
        Assert.Equal((first.Rule, false, "n5", (int?)3), (clear.Rule, clear.Active, clear.Node, clear.Gpu));
    }

    [Fact]
    public void Two_jobs_sharing_a_gpu_keep_separate_conditions()
    {
        Assert.NotEqual(StragglerIncidentFindings.StragglerRule("a", 1), StragglerIncidentFindings.StragglerRule("b", 1));
        Assert.NotEqual(StragglerIncidentFindings.StragglerRule("a", 1), StragglerIncidentFindings.StragglerRule("a", 2));
    }

    [Fact]
    public void A_hang_is_critical_on_every_target_and_names_the_suspects()
    {
        var hang = new HangDetected("j2", 20_000, 1180, 12_500, 1_500, [3, 9]);
        var findings = StragglerIncidentFindings.Hang(hang, [("n1", 3), ("n2", 1)], "n1 GPU 3 at 100 % utilisation but 90 W of 700 W (spinning in a collective)", T);

        Assert.Equal(2, findings.Count);
        Assert.All(findings, f => Assert.Equal((Severity.Critical, "job_hang", "restore_from_checkpoint", "job_hang:j2", true),
            (f.Severity, f.Category, f.Action, f.Rule, f.Active)));
        Assert.Equal("job j2 hung: no step completed for 7.5 s (5.0 × its median step of 1.50 s) after step 1180; suspect ranks 3, 9 (stopped before the others); n1 GPU 3 at 100 % utilisation but 90 W of 700 W (spinning in a collective)",
            findings[0].Message);
        var cleared = StragglerIncidentFindings.HangClear("j2", "progress at step 1181", [("n1", 3), ("n2", 1)], T);
        Assert.All(cleared, f => Assert.False(f.Active));
    }

    [Theory]
    [InlineData(100, 90.0, 700.0, true)]
    [InlineData(95, 150.0, 700.0, true)]
    [InlineData(100, 400.0, 700.0, false)] // busy and drawing power: working, not spinning
    [InlineData(40, 90.0, 700.0, false)]   // idle: waiting, not the spin signature
    public void The_spin_signature_is_busy_at_low_power(int util, double power, double limit, bool expected)
    {
        var sample = new NodeSample
        {
            Node = "n1", Sequence = 1, Time = T,
            Gpus = [new GpuSample { Index = 3, Uuid = "GPU-3", UtilizationPct = util, PowerW = power, PowerLimitW = limit }],
        };
        Assert.Equal(expected, StragglerIncidentFindings.SpinSignature(sample, 3) is not null);
        Assert.Null(StragglerIncidentFindings.SpinSignature(sample, 4));
        Assert.Null(StragglerIncidentFindings.SpinSignature(null, 3));
    }
}
