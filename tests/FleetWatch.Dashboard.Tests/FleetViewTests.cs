using System.Text.Json;
using FleetWatch.Contracts;
using FleetWatch.Dashboard.Fleet;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace FleetWatch.Dashboard.Tests;

public sealed class FleetViewTests
{
    private readonly FakeTimeProvider time = new(new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero));

    private FleetView NewView(int maxCells = 200_000) =>
        new(Options.Create(new DashboardOptions { MaxCells = maxCells }), time);

    private static GpuCell Cell(string node, int gpu, GpuHealth health = GpuHealth.Healthy, string? rack = "r1", short temp = 50) =>
        new() { Node = node, Gpu = gpu, Health = health, Rack = rack, Uuid = $"GPU-{node}-{gpu}", TemperatureC = temp, PowerW = 300, UtilizationPct = 90 };

    private FleetFrame Frame(long version, bool snapshot, IReadOnlyList<GpuCell> cells, string run = "run-a", IReadOnlyList<IncidentSnapshot>? incidents = null) => new()
    {
        Version = version,
        ControllerRun = run,
        IsSnapshot = snapshot,
        Time = time.GetUtcNow(),
        Cells = cells,
        OpenIncidents = incidents ?? [],
        Counts = new FleetCounts(0, 0, 0, 0, 0, 0, incidents?.Count ?? 0),
    };

    private static IReadOnlyList<GpuCell> Node(string node, int gpus = 8, string? rack = "r1") =>
        [.. Enumerable.Range(0, gpus).Select(g => Cell(node, g, rack: rack))];

    [Fact]
    public void Waits_for_controller_until_the_first_snapshot()
    {
        var view = NewView();

        Assert.Equal(FleetViewStatus.WaitingForController, view.Status);
        Assert.Equal(FleetMembership.Unknown, view.Contains("n1", 0));
        Assert.Equal(FrameApplyResult.NeedsSnapshot, view.Apply(Frame(3, snapshot: false, Node("n1"))));
        Assert.Equal(0, view.CellCount);
    }

    [Fact]
    public void Snapshot_then_next_delta_merges_changed_cells()
    {
        var view = NewView();
        Assert.Equal(FrameApplyResult.Applied, view.Apply(Frame(10, snapshot: true, [.. Node("n1"), .. Node("n2")])));
        Assert.Equal(FleetViewStatus.Live, view.Status);
        Assert.Equal(16, view.Counts.Healthy);

        var result = view.Apply(Frame(11, snapshot: false, [Cell("n2", 3, GpuHealth.Critical), Cell("n1", 0, GpuHealth.Warning)]));

        Assert.Equal(FrameApplyResult.Applied, result);
        Assert.Equal(11, view.Version);
        Assert.Equal(GpuHealth.Critical, view.HealthOf("n2", 3));
        Assert.Equal(GpuHealth.Warning, view.HealthOf("n1", 0));
        Assert.Equal(GpuHealth.Healthy, view.HealthOf("n2", 4));
        Assert.Equal(new FleetCounts(14, 1, 0, 1, 0, 2, 0), view.Counts);
    }

    [Theory]
    [InlineData(12)] // one frame missed
    [InlineData(100)] // many missed
    public void A_gap_asks_for_a_snapshot_and_is_not_applied(long version)
    {
        var view = NewView();
        view.Apply(Frame(10, snapshot: true, Node("n1")));

        Assert.Equal(FrameApplyResult.NeedsSnapshot, view.Apply(Frame(version, snapshot: false, [Cell("n1", 0, GpuHealth.Critical)])));

        Assert.Equal(GpuHealth.Healthy, view.HealthOf("n1", 0));
        Assert.Equal(10, view.Version);
        Assert.Equal(FleetViewStatus.Resyncing, view.Status);

        // The snapshot that answers the request brings it back in step.
        Assert.Equal(FrameApplyResult.Applied, view.Apply(Frame(version, snapshot: true, [Cell("n1", 0, GpuHealth.Critical), .. Node("n1").Skip(1)])));
        Assert.Equal(FleetViewStatus.Live, view.Status);
        Assert.Equal(GpuHealth.Critical, view.HealthOf("n1", 0));
        Assert.Equal(FrameApplyResult.Applied, view.Apply(Frame(version + 1, snapshot: false, [Cell("n1", 1, GpuHealth.High)])));
    }

    [Fact]
    public void Old_and_duplicate_deltas_are_ignored()
    {
        var view = NewView();
        view.Apply(Frame(10, snapshot: true, Node("n1")));
        view.Apply(Frame(11, snapshot: false, [Cell("n1", 0, GpuHealth.Critical)]));

        Assert.Equal(FrameApplyResult.Ignored, view.Apply(Frame(11, snapshot: false, [Cell("n1", 0, GpuHealth.Healthy)])));
        Assert.Equal(FrameApplyResult.Ignored, view.Apply(Frame(9, snapshot: false, [Cell("n1", 0, GpuHealth.Healthy)])));
        Assert.Equal(FrameApplyResult.Ignored, view.Apply(Frame(10, snapshot: true, Node("n1"))));
        Assert.Equal(GpuHealth.Critical, view.HealthOf("n1", 0));
    }

    [Fact]
    public void Frames_of_an_older_controller_run_are_ignored()
    {
        var view = NewView();
        var oldRunTime = time.GetUtcNow();
        time.Advance(TimeSpan.FromMinutes(5));
        view.Apply(Frame(3, snapshot: true, Node("n1"), run: "run-new"));

        var staleDelta = Frame(4, snapshot: false, [Cell("n1", 0, GpuHealth.Critical)], run: "run-old") with { Time = oldRunTime };
        var staleSnapshot = Frame(900, snapshot: true, [Cell("n1", 0, GpuHealth.Critical)], run: "run-old") with { Time = oldRunTime };

        Assert.Equal(FrameApplyResult.Ignored, view.Apply(staleDelta));
        Assert.Equal(FrameApplyResult.Ignored, view.Apply(staleSnapshot));
        Assert.Equal("run-new", view.ControllerRun);
        Assert.Equal(GpuHealth.Healthy, view.HealthOf("n1", 0));
        Assert.Equal(FleetViewStatus.Live, view.Status);
    }

    [Fact]
    public void A_delta_of_a_newer_run_asks_for_its_snapshot()
    {
        var view = NewView();
        view.Apply(Frame(50, snapshot: true, Node("n1"), run: "run-a"));
        time.Advance(TimeSpan.FromSeconds(1));

        Assert.Equal(FrameApplyResult.NeedsSnapshot, view.Apply(Frame(1, snapshot: false, [Cell("n1", 0, GpuHealth.Critical)], run: "run-b")));
        Assert.Equal(FrameApplyResult.Applied, view.Apply(Frame(1, snapshot: true, Node("n1"), run: "run-b")));
        Assert.Equal("run-b", view.ControllerRun);
    }

    [Fact]
    public void No_frame_for_StaleAfter_marks_the_view_stale()
    {
        var view = NewView();
        view.Apply(Frame(1, snapshot: true, Node("n1")));
        time.Advance(new DashboardOptions().StaleAfter + TimeSpan.FromSeconds(1));

        Assert.Equal(FleetViewStatus.Stale, view.Status);
        view.Apply(Frame(2, snapshot: false, [Cell("n1", 0, GpuHealth.Warning)]));
        Assert.Equal(FleetViewStatus.Live, view.Status);
    }

    [Fact]
    public void Cells_are_bounded_and_drops_counted()
    {
        var view = NewView(maxCells: 10);
        view.Apply(Frame(1, snapshot: true, [.. Node("n1"), .. Node("n2")]));

        Assert.Equal(10, view.CellCount);
        Assert.Equal(6, view.DroppedCells);
        Assert.Equal(10, view.Counts.Healthy);
    }

    [Fact]
    public void Unknown_health_values_count_as_unknown_never_healthy()
    {
        var view = NewView();
        view.Apply(Frame(1, snapshot: true, [Cell("n1", 0, (GpuHealth)42), Cell("n1", 1, GpuHealth.Unknown)]));

        Assert.Equal(2, view.Counts.Unknown);
        Assert.Equal(0, view.Counts.Healthy);
    }

    [Fact]
    public void Snapshot_orders_cells_by_rack_then_node_naturally_and_deltas_name_changed_cells_only()
    {
        var view = NewView();
        view.Apply(Frame(1, snapshot: true, [.. Node("n10", 2, "r2"), .. Node("n2", 2, "r2"), .. Node("x1", 2, rack: null), .. Node("n9", 2, "r10"), .. Node("n1", 2, "r1")]));

        var first = view.GetUpdate(null)!;
        Assert.Equal("snapshot", first.EventName);
        using var snapshot = JsonDocument.Parse(first.Json);
        var nodes = snapshot.RootElement.GetProperty("nodes").EnumerateArray().Select(n => n[0].GetString()!).ToArray();
        Assert.Equal(["n1", "n2", "n10", "n9", "x1"], nodes);
        Assert.Equal(["r1", "r2", "r10", ""], snapshot.RootElement.GetProperty("racks").EnumerateArray().Select(r => r.GetString()!).ToArray());
        Assert.Equal(10, snapshot.RootElement.GetProperty("cells").GetArrayLength());

        Assert.Null(view.GetUpdate(first.Cursor));

        view.Apply(Frame(2, snapshot: false, [Cell("n10", 1, GpuHealth.Critical, "r2"), Cell("n1", 0, rack: "r1")]));
        var delta = view.GetUpdate(first.Cursor)!;
        Assert.Equal("delta", delta.EventName);
        using var doc = JsonDocument.Parse(delta.Json);
        var changed = doc.RootElement.GetProperty("cells").EnumerateArray().ToArray();

        // n1/0 did not change value, so only n10/1 (index 5: n1 x2, n2 x2, n10/0, n10/1) is sent.
        var only = Assert.Single(changed);
        Assert.Equal(5, only[0].GetInt32());
        Assert.Equal((int)GpuHealth.Critical, only[1].GetInt32());
        Assert.Equal(1, doc.RootElement.GetProperty("counts").GetProperty("critical").GetInt32());
        Assert.False(doc.RootElement.TryGetProperty("incidents", out _));
    }

    [Fact]
    public void A_new_gpu_in_a_delta_changes_the_layout_so_clients_get_a_snapshot()
    {
        var view = NewView();
        view.Apply(Frame(1, snapshot: true, Node("n1", 2)));
        var cursor = view.GetUpdate(null)!.Cursor;

        view.Apply(Frame(2, snapshot: false, [Cell("n1", 2, GpuHealth.Warning)]));

        var update = view.GetUpdate(cursor)!;
        Assert.Equal("snapshot", update.EventName);
        Assert.Equal(3, view.CellCount);
        Assert.Equal(GpuHealth.Warning, view.HealthOf("n1", 2));
    }

    [Fact]
    public void Incidents_are_sorted_worst_first_and_sent_when_they_change()
    {
        var view = NewView();
        var opened = time.GetUtcNow();
        IncidentSnapshot Incident(string id, Severity severity) => new()
        {
            Id = id, Node = "n1", GpuIndex = 0, Severity = severity, Category = "c", Action = "a", OpenedAt = opened,
            Findings = [new FindingInfo { Rule = "r", Severity = severity, Message = "m-" + id, FirstSeen = opened, LastSeen = opened }],
        };
        view.Apply(Frame(1, snapshot: true, Node("n1"), incidents: [Incident("w", Severity.Warning), Incident("c", Severity.Critical)]));
        var cursor = view.GetUpdate(null)!.Cursor;

        Assert.Equal(["c", "w"], view.OpenIncidents.Select(i => i.Id));
        Assert.Equal("m-c", view.OpenIncidents[0].Summary);

        view.Apply(Frame(2, snapshot: false, [], incidents: [Incident("c", Severity.Critical)]));
        using var doc = JsonDocument.Parse(view.GetUpdate(cursor)!.Json);
        Assert.Equal("c", Assert.Single(doc.RootElement.GetProperty("incidents").EnumerateArray()).GetProperty("id").GetString());
        Assert.Equal(1, doc.RootElement.GetProperty("counts").GetProperty("openIncidents").GetInt32());
    }

    [Fact]
    public async Task WaitForChange_completes_on_the_next_applied_frame()
    {
        var view = NewView();
        view.Apply(Frame(1, snapshot: true, Node("n1")));
        var revision = view.GetUpdate(null)!.Cursor.Revision;
        var wait = view.WaitForChangeAsync(revision, CancellationToken.None);
        Assert.False(wait.IsCompleted);

        view.Apply(Frame(2, snapshot: false, [Cell("n1", 0, GpuHealth.High)]));

        await wait.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Concurrent_frames_and_readers_keep_the_counts_consistent()
    {
        var view = NewView();
        view.Apply(Frame(0, snapshot: true, [.. Enumerable.Range(0, 64).SelectMany(n => Node($"n{n}"))]));
        var writer = Task.Run(() =>
        {
            for (var v = 1; v <= 500; v++)
            {
                var health = (GpuHealth)(v % 5);
                Assert.Equal(FrameApplyResult.Applied, view.Apply(Frame(v, snapshot: false, [Cell($"n{v % 64}", v % 8, health)])));
            }
        });
        var readers = Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            StreamCursor? cursor = null;
            for (var i = 0; i < 300; i++)
            {
                var c = view.Counts;
                Assert.Equal(512, c.Healthy + c.Warning + c.High + c.Critical + c.Unknown);
                cursor = view.GetUpdate(cursor)?.Cursor ?? cursor;
            }
        }));

        await Task.WhenAll([writer, .. readers]);
        Assert.Equal(500, view.Version);
    }

    [Theory]
    [InlineData("n2", "n10", -1)]
    [InlineData("rack-9", "rack-10", -1)]
    [InlineData("a", "b", -1)]
    [InlineData("n02", "n2", -1)] // equal numbers: ordinal tie-break keeps the order total
    [InlineData("x", "x", 0)]
    public void Natural_order(string a, string b, int sign)
    {
        Assert.Equal(sign, Math.Sign(NaturalComparer.Instance.Compare(a, b)));
        Assert.Equal(-sign, Math.Sign(NaturalComparer.Instance.Compare(b, a)));
    }
}
