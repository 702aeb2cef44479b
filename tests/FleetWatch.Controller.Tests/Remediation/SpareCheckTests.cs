using FleetWatch.Contracts;
using FleetWatch.Controller.Remediation;
using Microsoft.Extensions.Time.Testing;

namespace FleetWatch.Controller.Tests.Remediation;

/// <summary>
/// Component tier: the spare self-check through the real controller (samples through its detection path, its fleet
/// state and incident manager) and the real restore orchestrator, with a fake clock.
/// Spares: spare-b1 (nvl-b, listed first) and spare-a1 (nvl-a); the job runs in nvl-a, so spare-a1 is preferred.
/// </summary>
public sealed class SpareCheckTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 30, 1, 0, 0, TimeSpan.Zero);

    private static async Task<(RemediationTestHost Host, FakeTimeProvider Time)> StartAsync()
    {
        var time = new FakeTimeProvider(T0);
        var host = await RemediationTestHost.StartAsync(time: time, fullController: true);
        await host.RegisterAsync("sc-1", ["gpu-a1", "gpu-a2"], scheduler: "none");
        await host.CheckpointAsync("sc-1", 100, 16);
        await host.StepAsync("sc-1", 101);
        return (host, time);
    }

    [Fact]
    public async Task StaleSameDomainSpare_IsSkippedWithItsReason_AndTheNextSpareIsUsed()
    {
        var (host, time) = await StartAsync();
        await using var _ = host;
        await host.SampleAsync(RemediationTestHost.Healthy("spare-a1", 1, time.GetUtcNow()));
        await host.SampleAsync(RemediationTestHost.Healthy("spare-b1", 1, time.GetUtcNow()));
        time.Advance(TimeSpan.FromSeconds(8));
        // spare-b1 keeps reporting; spare-a1 went quiet 8 s ago (limit 5 s).
        await host.SampleAsync(RemediationTestHost.Healthy("spare-b1", 2, time.GetUtcNow()));

        await host.Orchestrator.OnIncidentAsync(RemediationTestHost.Incident("inc-1", "gpu-a1", 3, "gpu_fell_off_bus", "restart_node", Severity.Critical, time.GetUtcNow()), default);

        var cycle = Assert.Single(host.Orchestrator.Cycles("sc-1"));
        Assert.Equal(["spare-b1"], cycle.Spares);
        var skipped = Assert.Single(host.Store.Actions("spare-a1", null, 10), a => a.Kind == "spare_check");
        Assert.Equal((ActionStates.Failed, "sc-1", 1L, "inc-1"), (skipped.State, skipped.JobId, skipped.Cycle, skipped.IncidentId));
        Assert.Contains("8 s old", skipped.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(host.Store.Actions("spare-b1", null, 10), a => a.Kind == "spare_check");
        Assert.DoesNotContain(host.Store.Actions(null, "sc-1", 20), a => a.Kind == "page");
    }

    [Fact]
    public async Task NoUsableSpare_PagesSparesExhausted_NamingTheSelfCheck()
    {
        var (host, time) = await StartAsync();
        await using var _ = host;
        // spare-a1 reports GPU 2 off the bus; spare-b1 has never reported (no data).
        await host.SampleAsync(RemediationTestHost.Healthy("spare-a1", 1, time.GetUtcNow(), gpu: g => g.Index == 2 ? g with { Lost = true } : g));

        await host.Orchestrator.OnIncidentAsync(RemediationTestHost.Incident("inc-2", "gpu-a2", 0, "gpu_fell_off_bus", "restart_node", Severity.Critical, time.GetUtcNow()), default);

        var cycle = Assert.Single(host.Orchestrator.Cycles("sc-1"));
        Assert.Empty(cycle.Spares);
        Assert.Equal(["gpu-a2"], cycle.Excluded);
        var checks = host.Store.Actions(null, "sc-1", 20).Where(a => a.Kind == "spare_check").ToDictionary(a => a.Node!);
        Assert.Equal(["spare-a1", "spare-b1"], checks.Keys.Order());
        // The lost GPU, or what detection made of it already (its True condition, its incident), keeps spare-a1 out.
        Assert.Matches("GPU 2 lost|gpu_lost True|condition .* True|open incident", checks["spare-a1"].Detail);
        Assert.Contains("no sample", checks["spare-b1"].Detail, StringComparison.Ordinal);
        await RemediationTestHost.WaitUntil(() => host.Recorded.Halts.Any(h => h.Kind == "spares_exhausted"), "the spares_exhausted page");
        var page = Assert.Single(host.Recorded.Halts, h => h.Kind == "spares_exhausted");
        Assert.Equal(["gpu-a2"], page.Nodes);
        Assert.Contains("2 failed the self-check", page.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HealthySameDomainSpare_IsUsedWithoutASkip()
    {
        var (host, time) = await StartAsync();
        await using var _ = host;
        await host.SampleAsync(RemediationTestHost.Healthy("spare-a1", 1, time.GetUtcNow()));

        await host.Orchestrator.OnIncidentAsync(RemediationTestHost.Incident("inc-3", "gpu-a1", 1, "gpu_fell_off_bus", "restart_node", Severity.Critical, time.GetUtcNow()), default);

        Assert.Equal(["spare-a1"], Assert.Single(host.Orchestrator.Cycles("sc-1")).Spares);
        Assert.DoesNotContain(host.Store.Actions(null, "sc-1", 20), a => a.Kind == "spare_check");
    }
}
