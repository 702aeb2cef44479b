using FleetWatch.Contracts;
using FleetWatch.Dashboard.Fleet;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Dashboard.Tests;

/// <summary>Start-up: options validation, the unsecured label, and waiting for (and resyncing with) the controller.</summary>
public sealed class StartupTests
{
    public static TheoryData<string?, string?, string> BadAuth => new()
    {
        { null, null, "FleetWatch:Dashboard:Auth:Mode is not set" },
        { "Open", null, "FleetWatch:Dashboard:Auth:Mode = 'Open' is not one of ApiKey, TrustedHeader, Unsecured" },
        { "2", null, "FleetWatch:Dashboard:Auth:Mode = '2' is not one of" },
        { "ApiKey, Unsecured", null, "FleetWatch:Dashboard:Auth:Mode = 'ApiKey, Unsecured' is not one of" },
        { "ApiKey", null, "FleetWatch:Dashboard:Auth:ApiKey must be at least 16 characters" },
        { "ApiKey", "short", "(it has 5)" },
    };

    [Theory]
    [MemberData(nameof(BadAuth))]
    public async Task Refuses_to_start_without_a_valid_auth_mode(string? mode, string? key, string message)
    {
        var config = new Dictionary<string, string?> { ["FleetWatch:Dashboard:Auth:Mode"] = mode, ["FleetWatch:Dashboard:Auth:ApiKey"] = key };

        var error = await Assert.ThrowsAsync<OptionsValidationException>(async () =>
        {
            await using var host = await DashboardHost.StartAsync(config);
        });

        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        if (key is not null)
        {
            Assert.DoesNotContain(key, error.Message.Replace("ApiKey", string.Empty, StringComparison.Ordinal), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Bad_durations_and_bounds_fail_with_key_and_value()
    {
        var config = DashboardHost.ApiKeyConfig(("FleetWatch:Dashboard:StreamInterval", "-00:00:01"), ("FleetWatch:Dashboard:MaxCells", "0"));

        var error = await Assert.ThrowsAsync<OptionsValidationException>(async () =>
        {
            await using var host = await DashboardHost.StartAsync(config);
        });

        Assert.Contains("FleetWatch:Dashboard:StreamInterval = '-00:00:01' must be positive", error.Message, StringComparison.Ordinal);
        Assert.Contains("FleetWatch:Dashboard:MaxCells = '0'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unsecured_mode_is_logged_as_a_warning_and_labelled_on_the_page()
    {
        await using var host = await DashboardHost.StartAsync(new Dictionary<string, string?> { ["FleetWatch:Dashboard:Auth:Mode"] = "unsecured" });
        using var client = host.Client(authenticated: false);

        var page = await client.GetStringAsync("/");

        Assert.Contains(host.Logs.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains("Unsecured", StringComparison.Ordinal));
        Assert.Matches("<div id=\"unsecured-banner\"[^>]*role=\"alert\"\\s*>", page);
        Assert.Contains("data-auth-mode=\"Unsecured\"", page, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TrustedHeader_mode_takes_the_user_from_the_header_and_audits_it()
    {
        await using var host = await DashboardHost.StartAsync(new Dictionary<string, string?>
        {
            ["FleetWatch:Dashboard:Auth:Mode"] = "TrustedHeader",
            ["FleetWatch:Dashboard:Auth:Header"] = "X-Remote-User",
        });
        using var client = host.Client(authenticated: false);

        using var anonymous = await client.GetAsync("/api/fleet");
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, anonymous.StatusCode);

        client.DefaultRequestHeaders.Add("X-Remote-User", "alice");
        var page = await client.GetStringAsync("/");
        Assert.Matches("<div id=\"unsecured-banner\"[^>]*hidden\\s*>", page);

        // No controller: the node cannot be checked against the fleet, so the request is accepted as it stands.
        using var post = await client.PostAsync("/api/faults", new StringContent("""{"node":"n1","kind":"node_silent"}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(System.Net.HttpStatusCode.Accepted, post.StatusCode);
        Assert.Contains(host.Logs.Entries, e => e.Id.Id == 2110 && e.Message.Contains("Operator alice (via X-Remote-User", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Waits_for_the_controller_with_backoff_then_loads_its_snapshot()
    {
        var controller = new FakeController(racks: 1, nodesPerRack: 2) { Answering = false };
        await using var host = await DashboardHost.StartAsync(DashboardHost.ApiKeyConfig(), controller);
        var loader = host.Services.GetRequiredService<FleetSnapshotLoader>();

        await DashboardHost.WaitUntilAsync(() => loader.RequestsSent >= 2, TimeSpan.FromSeconds(10), "a retried snapshot request");
        Assert.Equal(FleetViewStatus.WaitingForController, host.View.Status);
        using (var client = host.Client())
        {
            Assert.Contains("\"status\":\"waiting\"", await client.GetStringAsync("/api/fleet"), StringComparison.Ordinal);
        }

        controller.Answering = true;

        await DashboardHost.WaitUntilAsync(() => host.View.Status == FleetViewStatus.Live, TimeSpan.FromSeconds(10), "the snapshot after the controller came up");
        Assert.Equal(16, host.View.CellCount);
    }

    [Fact]
    public async Task A_gap_in_the_deltas_triggers_a_snapshot_request_on_the_bus()
    {
        var controller = new FakeController(racks: 1, nodesPerRack: 2);
        await using var host = await DashboardHost.StartAsync(DashboardHost.ApiKeyConfig(), controller);
        await DashboardHost.WaitUntilAsync(() => host.View.Status == FleetViewStatus.Live, TimeSpan.FromSeconds(10), "the first snapshot");
        var requestsBefore = controller.SnapshotRequests;
        var bus = host.Services.GetRequiredService<IBus>();

        // A delta three versions ahead of what the dashboard holds: frames were lost.
        controller.Set("gpu-r01n02", 7, GpuHealth.High);
        await bus.Publish(new FleetFrame
        {
            Version = host.View.Version + 3,
            ControllerRun = controller.Run,
            IsSnapshot = false,
            Time = TimeProvider.System.GetUtcNow(),
            Cells = [],
            OpenIncidents = [],
            Counts = new FleetCounts(0, 0, 0, 0, 0, 0, 0),
        });

        await DashboardHost.WaitUntilAsync(() => controller.SnapshotRequests > requestsBefore, TimeSpan.FromSeconds(10), "a snapshot request after the gap");
        await DashboardHost.WaitUntilAsync(() => host.View.HealthOf("gpu-r01n02", 7) == GpuHealth.High && host.View.Status == FleetViewStatus.Live,
            TimeSpan.FromSeconds(10), "the snapshot's state");
    }

    [Fact]
    public async Task Stopping_the_host_ends_open_streams_instead_of_waiting_for_the_browser()
    {
        var controller = new FakeController(racks: 1, nodesPerRack: 1);
        var host = await DashboardHost.StartAsync(DashboardHost.ApiKeyConfig(), controller);
        using var client = host.Client();
        using var response = await client.GetAsync("/api/fleet/stream", HttpCompletionOption.ResponseHeadersRead);
        using var events = new SseReader(await response.Content.ReadAsStreamAsync());
        await events.NextAsync();

        var stopping = host.DisposeAsync().AsTask();

        // Kestrel's shutdown timeout is 30 s; an open stream must not hold the host that long.
        await stopping.WaitAsync(TimeSpan.FromSeconds(10));
        await Assert.ThrowsAnyAsync<Exception>(async () => await events.NextAsync());
    }
}
