using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Incidents;
using FleetWatch.Controller.Storage;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using static FleetWatch.Controller.Tests.Detection.SampleBuilder;
using static FleetWatch.Controller.Tests.Incidents.IncidentGroupingTests;

namespace FleetWatch.Controller.Tests.Incidents;

/// <summary>
/// Write-through persistence: each test runs "controllers" one after another on one SQLite file, each a fresh
/// store and manager, as a restarted process would be. Nothing is flushed at "stop": what a crash leaves is what counts.
/// </summary>
public sealed class IncidentStoreTests : IDisposable
{
    private readonly string _file = Path.Combine(Path.GetTempPath(), $"fleetwatch-incidents-{Guid.NewGuid():N}.db");

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        foreach (var suffix in new[] { "", "-wal", "-shm" })
        {
            File.Delete(_file + suffix);
        }
    }

    private IncidentStore NewStore() =>
        new(new ControllerStore(Options.Create(new StorageOptions { Path = _file }), [new StoreSchema(IncidentStore.SchemaName, IncidentStore.Schema)]),
            NullLogger<IncidentStore>.Instance);

    private static List<IncidentChange> Run(IncidentManager manager, double seconds, params Finding[] findings)
    {
        var now = T0.AddSeconds(seconds);
        return [.. manager.Apply(findings.Select(f => f with { Time = now }).ToList(), now), .. manager.Tick(now)];
    }

    [Fact]
    public void A_restarted_manager_carries_on_open_incidents_without_a_second_page_and_never_reuses_an_id()
    {
        var store1 = NewStore();
        var first = NewManager(store: store1);
        var changes = Run(first, 0, Lost("n1", 0), Lost("n1", 1), Lost("n3", 2));
        for (var s = 1; s <= 40; s++)
        {
            changes.AddRange(Run(first, s, Lost("n1", 0), Lost("n1", 1), Lost("n3", 2, active: false)));
        }

        var resolvedId = Assert.Single(changes, c => c.Kind == IncidentChangeKind.Resolved).Incident.Id;
        var openId = Assert.Single(first.Open()).Id;
        // "Crash": no stop, no flush; a new store and manager on the same file.
        var second = NewManager(store: NewStore());
        var reloaded = Assert.Single(second.Open());
        Assert.Equal((openId, "0,1", 2), (reloaded.Id, string.Join(",", reloaded.Gpus), reloaded.Findings.Count));
        Assert.Equal(T0.AddSeconds(31), second.Find(resolvedId)!.ResolvedAt);
        Assert.Equal([resolvedId], second.Resolved(10).Select(i => i.Id));

        for (var s = 41; s <= 60; s++)
        {
            changes.AddRange(Run(second, s, Lost("n1", 0), Lost("n1", 1)));
        }

        changes.AddRange(Run(second, 61, Lost("n7", 4)));
        for (var s = 62; s <= 100; s++)
        {
            changes.AddRange(Run(second, s, Lost("n1", 0, active: false), Lost("n1", 1, active: false), Lost("n7", 4)));
        }

        var forOpen = changes.Where(c => c.Incident.Id == openId && c.IsNotification).Select(c => c.Kind).ToList();
        Assert.Equal([IncidentChangeKind.Opened, IncidentChangeKind.Resolved], forOpen);
        var ids = changes.Where(c => c.Kind == IncidentChangeKind.Opened).Select(c => c.Incident.Id).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());
        Assert.Equal(3, ids.Count);
        var keys = changes.Where(c => c.IsNotification).Select(c => c.NotificationKey).ToList();
        Assert.Equal(keys.Count, keys.Distinct().Count());
        Assert.All(keys, k => Assert.True(store1.WasEmitted(k), k));
    }

    [Fact]
    public void A_notification_emitted_but_not_handed_over_is_pending_after_a_crash_until_marked_handed()
    {
        var manager = NewManager(store: NewStore());
        var opened = Assert.Single(Run(manager, 0, Lost("n1", 0)));

        var afterCrash = NewStore();
        var pending = Assert.Single(afterCrash.PendingHandOffs());
        Assert.Equal(opened.NotificationKey, pending.NotificationKey);
        Assert.Equal(opened.Incident.Findings.Single().Rule, pending.Incident.Findings.Single().Rule);

        // The restarted run's own notifications are handed over by its notifier, never by the recovery.
        var restarted = NewManager(store: afterCrash);
        Assert.Single(Run(restarted, 1, Lost("n2", 0)), c => c.IsNotification);
        Assert.Equal([opened.NotificationKey], afterCrash.PendingHandOffs().Select(c => c.NotificationKey));

        afterCrash.MarkHanded([pending.NotificationKey], T0.AddSeconds(1));
        Assert.Empty(afterCrash.PendingHandOffs());
        Assert.True(NewStore().WasEmitted(opened.NotificationKey));
    }

    [Fact]
    public void A_notification_held_by_the_group_wait_at_the_crash_goes_out_once_after_the_restart()
    {
        var first = NewManager(store: NewStore());
        Assert.Empty(Run(first, 0, Hot("n1", 3)));

        var second = NewManager(store: NewStore());
        Assert.Empty(Run(second, 2, Hot("n1", 3)));
        var opened = Assert.Single(Run(second, 3, Hot("n1", 3)));
        Assert.Equal(IncidentChangeKind.Opened, opened.Kind);
        Assert.DoesNotContain(Run(NewManager(store: NewStore()), 4, Hot("n1", 3)), c => c.IsNotification);
    }

    [Fact]
    public void Acknowledgements_notes_silences_and_maintenance_windows_survive_a_restart()
    {
        var first = NewManager(o => o.RepeatInterval = TimeSpan.FromHours(1), NewStore());
        Run(first, 0, Lost("n1", 0));
        var id = first.Open()[0].Id;
        first.Acknowledge(id, "alice", null, T0.AddSeconds(10));
        first.AddNote(id, "bob", "reseated the riser", T0.AddSeconds(20));
        first.AddMute(Mute("sil-a", MuteKind.Silence, 0, 7200, new MuteMatcher("node", "n2")), T0);
        first.AddMute(Mute("mnt-a", MuteKind.Maintenance, 3600, 10_800, new MuteMatcher("node", "n3")), T0);

        var second = NewManager(o => o.RepeatInterval = TimeSpan.FromHours(1), NewStore());
        var incident = second.Find(id)!;
        Assert.Equal(("alice", T0.AddSeconds(10)), (incident.AcknowledgedBy, incident.AcknowledgedAt));
        Assert.Equal(new IncidentNote(T0.AddSeconds(20), "bob", "reseated the riser"), Assert.Single(incident.Notes));
        Assert.Equal(["sil-a"], second.Mutes(MuteKind.Silence, T0).Select(m => m.Id));
        Assert.Equal(["mnt-a"], second.Mutes(MuteKind.Maintenance, T0).Select(m => m.Id));

        var pages = new List<(int At, string Node, int Repeat)>();
        for (var s = 60; s <= 4 * 3600; s += 60)
        {
            var changes = Run(second, s, Lost("n1", 0), Lost("n2", 0), Lost("n3", 0));
            Assert.DoesNotContain(changes, c => c.Incident.Id == id); // acknowledged: never repeated
            pages.AddRange(changes.Where(c => c.IsNotification).Select(c => (s, c.Incident.Node, c.Repeat)));
        }

        // n2 is silenced until 2 h, then pages and repeats hourly. n3 paged before its window, its repeats are muted
        // from 1 h to 3 h, and resume one interval after the last muted one.
        Assert.Equal([(60, "n3", 0), (7200, "n2", 0), (10_800, "n2", 1), (10_860, "n3", 1), (14_400, "n2", 2)], pages);
    }

    [Fact]
    public void Ending_a_silence_is_stored_so_a_restart_does_not_bring_it_back()
    {
        var first = NewManager(store: NewStore());
        first.AddMute(Mute("sil-b", MuteKind.Silence, 0, 7200, new MuteMatcher("rule", "gpu_lost")), T0);
        Assert.True(first.ExpireMute(MuteKind.Silence, "sil-b", T0.AddSeconds(5)));

        var second = NewManager(store: NewStore());
        Assert.Empty(second.Mutes(MuteKind.Silence, T0.AddSeconds(6)));
        Assert.Contains(Run(second, 6, Lost("n1", 1)), c => c.Kind == IncidentChangeKind.Opened);
    }
}
