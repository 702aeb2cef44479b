using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using static FleetWatch.Controller.Tests.Detection.SampleBuilder;

namespace FleetWatch.Controller.Tests.Detection;

/// <summary>
/// Table tests of catalogue rules 14 (unrepairable memory), 21 (fabric unhealthy) and 35 (InfoROM corrupt), read from the
/// NVML fields the agent sends in place of DCGM 1507, 174 and 84: severity and action as the catalogue says, the condition
/// True/False/Unknown (no data is Unknown, never healthy), and nothing sticky once the signal clears.
/// </summary>
public sealed class HealthRuleTests
{
    private static readonly DetectionOptions Options = new();

    /// <summary>nvml.h healthMask: 2-bit fields (0 not supported, 1 true, 2 false) at 0, 2, 4, 6; incorrect configuration at 8 (1 none).</summary>
    private static long Mask(int degradedBw = 2, int routeRecovery = 2, int routeUnhealthy = 2, int accessTimeout = 2, int configuration = 1) =>
        degradedBw | routeRecovery << 2 | routeUnhealthy << 4 | accessTimeout << 6 | configuration << 8;

    private static readonly long Healthy = Mask();

    /// <summary>Runs samples 0..seconds-1 of 8 GPUs; GPU 2 gets <paramref name="change"/>. Returns the rule's findings and the conditions after the last sample.</summary>
    private static (List<(int Second, Finding Finding)> Findings, IReadOnlyList<DetectionCondition> Conditions) Drive(
        int seconds, Func<int, GpuSample, GpuSample> change, string rule, DetectionOptions? options = null)
    {
        var state = new NodeDetectionState();
        NodeSample? previous = null;
        var all = new List<(int, Finding)>();
        for (var s = 0; s < seconds; s++)
        {
            var second = s;
            var sample = CatalogueRuleTests.Node8((i, g) => i == 2 ? change(second, g) : g) with { Sequence = s + 1, Time = T0.AddSeconds(s) };
            var output = new List<Finding>();
            SampleDetectors.Evaluate(previous, sample, state, options ?? Options, output);
            all.AddRange(output.Where(f => f.Rule == rule).Select(f => (s, f)));
            previous = sample;
        }

        return (all, state.Conditions("n1"));
    }

    private static ConditionStatus Status(IReadOnlyList<DetectionCondition> conditions, string rule, int gpu = 2) =>
        conditions.SingleOrDefault(c => c.Gpu == gpu && c.Rule == rule)?.Status ?? ConditionStatus.Unknown;

    [Theory]
    [InlineData(null, ConditionStatus.Unknown)] // driver before NVML 13, or not supported: no verdict
    [InlineData(false, ConditionStatus.False)]
    [InlineData(true, ConditionStatus.True)]
    public void Rule_14_unrepairable_memory_is_critical_isolate(bool? flag, ConditionStatus expected)
    {
        var (findings, conditions) = Drive(5, (_, g) => g with { UnrepairableMemory = flag }, "memory_unrepairable");

        Assert.Equal(expected, Status(conditions, "memory_unrepairable"));
        var active = findings.Where(f => f.Finding.Active).ToList();
        Assert.Equal(flag == true ? 5 : 0, active.Count); // refreshed on every sample while it holds
        Assert.All(active, f => Assert.Equal((Severity.Critical, "memory_unrepairable", "isolate_gpu", (int?)2),
            (f.Finding.Severity, f.Finding.Category, f.Finding.Action, f.Finding.Gpu)));
    }

    [Theory]
    [InlineData(null, ConditionStatus.Unknown)] // not supported, or not validated yet
    [InlineData(true, ConditionStatus.False)]
    [InlineData(false, ConditionStatus.True)]
    public void Rule_35_corrupt_inforom_is_a_warning_reset_at_next_drain(bool? valid, ConditionStatus expected)
    {
        var (findings, conditions) = Drive(5, (_, g) => g with { InforomValid = valid }, "inforom_corrupt");

        Assert.Equal(expected, Status(conditions, "inforom_corrupt"));
        var active = findings.Where(f => f.Finding.Active).ToList();
        Assert.Equal(valid == false ? 5 : 0, active.Count);
        Assert.All(active, f => Assert.Equal((Severity.Warning, "inforom_corrupt", "reset_gpu_at_next_drain"),
            (f.Finding.Severity, f.Finding.Category, f.Finding.Action)));
    }

    [Theory]
    [InlineData("memory_unrepairable")]
    [InlineData("inforom_corrupt")]
    public void Rules_14_and_35_clear_when_the_flag_clears(string rule)
    {
        // Bad from 3 s to 8 s (a GPU reset or a replacement board at the same index clears the flag).
        GpuSample Change(int s, GpuSample g) => rule == "memory_unrepairable"
            ? g with { UnrepairableMemory = s is >= 3 and < 8 }
            : g with { InforomValid = s is < 3 or >= 8 };
        var (findings, conditions) = Drive(12, Change, rule);

        Assert.Equal(3, findings.First(f => f.Finding.Active).Second);
        Assert.Equal(8, findings.Last(f => !f.Finding.Active).Second);
        Assert.DoesNotContain(findings, f => f.Finding.Active && f.Second >= 8);
        Assert.Equal(ConditionStatus.False, Status(conditions, rule));
    }

    public static TheoryData<string, int?, int?, long?, int?, ConditionStatus, string?> FabricCases => new()
    {
        // name, state, status, health mask, summary (null: v2 struct), condition, message part
        { "completed and healthy (v3)", 3, 0, Healthy, 1, ConditionStatus.False, null },
        { "completed and healthy (v2, no summary)", 3, 0, Healthy, null, ConditionStatus.False, null },
        { "completed, mask fields not supported", 3, 0, 0, null, ConditionStatus.False, null },
        { "degraded bandwidth", 3, 0, Mask(degradedBw: 1), 3, ConditionStatus.True, "bandwidth degraded" },
        { "route unhealthy", 3, 0, Mask(routeUnhealthy: 1), 2, ConditionStatus.True, "route unhealthy" },
        { "route recovery in progress", 3, 0, Mask(routeRecovery: 1), null, ConditionStatus.True, "route recovery" },
        { "access-timeout recovery", 3, 0, Mask(accessTimeout: 1), null, ConditionStatus.True, "access-timeout recovery" },
        { "insufficient NVLinks (configuration 5)", 3, 0, Mask(configuration: 5), null, ConditionStatus.True, "incorrect configuration 5" },
        { "registration failed", 3, 999, Healthy, 1, ConditionStatus.True, "registration status 999" },
        { "summary limited capacity alone", 3, 0, Healthy, 3, ConditionStatus.True, "limited capacity" },
        { "summary unhealthy alone", 3, 0, Healthy, 2, ConditionStatus.True, "summary unhealthy" },
        { "registration in progress: no verdict yet", 2, 0, 0, null, ConditionStatus.Unknown, null },
        { "registration not started: no verdict yet", 1, 0, 0, null, ConditionStatus.Unknown, null },
        { "not on a fabric (null)", null, null, null, null, ConditionStatus.Unknown, null },
    };

    [Theory]
    [MemberData(nameof(FabricCases))]
    public void Rule_21_fabric_health_from_nvml_fabric_info(string name, int? state, int? status, long? mask, int? summary, ConditionStatus expected, string? message)
    {
        var (findings, conditions) = Drive(4, (_, g) => g with
        {
            FabricState = state, FabricStatus = status, FabricHealthMask = mask, FabricHealthSummary = summary,
        }, "fabric_health");

        Assert.True(expected == Status(conditions, "fabric_health"), name);
        var active = findings.Where(f => f.Finding.Active).ToList();
        Assert.True((expected == ConditionStatus.True ? 4 : 0) == active.Count, name);
        Assert.All(active, f =>
        {
            Assert.Equal((Severity.High, "fabric_unhealthy", "drain_at_checkpoint"), (f.Finding.Severity, f.Finding.Category, f.Finding.Action));
            Assert.Contains(message!, f.Finding.Message, StringComparison.Ordinal);
        });
    }

    [Fact]
    public void Rule_21_a_re_registration_keeps_the_verdict_until_it_completes_healthy()
    {
        // Route unhealthy 2-5 s, the fabric manager re-registers the GPU 6-9 s (in progress: Unknown, no clear), healthy from 10 s.
        var (findings, conditions) = Drive(14, (s, g) => g with
        {
            FabricState = s is >= 6 and < 10 ? 2 : 3,
            FabricStatus = 0,
            FabricHealthMask = s is >= 2 and < 6 ? Mask(routeUnhealthy: 1) : Healthy,
            FabricHealthSummary = 1,
        }, "fabric_health");

        Assert.Equal(2, findings.First(f => f.Finding.Active).Second);
        Assert.DoesNotContain(findings, f => f.Second is >= 6 and < 10);
        Assert.Equal(10, findings.Last(f => !f.Finding.Active).Second);
        Assert.Equal(ConditionStatus.False, Status(conditions, "fabric_health"));
    }

    [Theory]
    [InlineData(2, "in progress")]
    [InlineData(1, "not started")]
    public void Rule_21_a_registration_pending_past_the_timeout_is_unhealthy_until_it_completes(int pendingState, string named)
    {
        // Pending 0-11 s with a 5 s timeout, completed and healthy from 12 s.
        var options = new DetectionOptions { FabricRegistrationTimeout = TimeSpan.FromSeconds(5) };
        var (findings, conditions) = Drive(15, (s, g) => g with
        {
            FabricState = s < 12 ? pendingState : 3, FabricStatus = 0, FabricHealthMask = s < 12 ? 0 : Healthy, FabricHealthSummary = 1,
        }, "fabric_health", options);

        var active = findings.Where(f => f.Finding.Active).ToList();
        Assert.Equal([4, 5, 6, 7, 8, 9, 10, 11], active.Select(f => f.Second)); // pending 5 s counting the sample interval
        Assert.All(active, f =>
        {
            Assert.Equal((Severity.High, "fabric_unhealthy", "drain_at_checkpoint"), (f.Finding.Severity, f.Finding.Category, f.Finding.Action));
            Assert.Contains($"registration with the fabric manager not completed after {f.Second + 1} s (state {named})", f.Finding.Message, StringComparison.Ordinal);
            Assert.Contains("nvidia-fabricmanager", f.Finding.Message, StringComparison.Ordinal);
        });
        Assert.Equal(12, Assert.Single(findings, f => !f.Finding.Active).Second);
        Assert.Equal(ConditionStatus.False, Status(conditions, "fabric_health"));
    }

    [Fact]
    public void Rule_21_pending_time_restarts_when_the_gpu_leaves_the_fabric_and_the_default_waits_ten_minutes()
    {
        var options = new DetectionOptions { FabricRegistrationTimeout = TimeSpan.FromSeconds(5) };
        // In progress 0-3 s, no fabric info 4 s (the pending time starts again), in progress 5-12 s: unhealthy from 9 s.
        var (findings, _) = Drive(13, (s, g) => g with { FabricState = s == 4 ? null : 2, FabricStatus = 0, FabricHealthMask = 0 }, "fabric_health", options);
        Assert.Equal(9, findings.First(f => f.Finding.Active).Second);

        // The shipped default: 10 minutes of "in progress" is still no verdict; zero turns the timeout off.
        Assert.Equal(TimeSpan.FromMinutes(10), new DetectionOptions().FabricRegistrationTimeout);
        var (none, conditions) = Drive(30, (_, g) => g with { FabricState = 2, FabricStatus = 0, FabricHealthMask = 0 }, "fabric_health",
            new DetectionOptions { FabricRegistrationTimeout = TimeSpan.Zero });
        Assert.Empty(none);
        Assert.Equal(ConditionStatus.Unknown, Status(conditions, "fabric_health"));
    }

    [Fact]
    public void Other_gpus_are_not_touched_by_one_gpus_fault()
    {
        var (_, conditions) = Drive(3, (_, g) => g with { UnrepairableMemory = true, InforomValid = false, FabricState = 3, FabricStatus = 0, FabricHealthMask = Mask(degradedBw: 1) }, "memory_unrepairable");

        Assert.Equal(ConditionStatus.True, Status(conditions, "fabric_health"));
        foreach (var rule in new[] { "memory_unrepairable", "inforom_corrupt", "fabric_health" })
        {
            Assert.Equal(ConditionStatus.True, Status(conditions, rule));
            Assert.Equal(ConditionStatus.Unknown, Status(conditions, rule, gpu: 3)); // the peers sent no such fields: Unknown, not healthy
        }
    }
}
