using FleetWatch.Controller.Remediation;
using FleetWatch.Controller.Storage;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Tests.Storage;

/// <summary>A database written by an earlier release opens under this one: added columns are added, rows are kept.</summary>
public sealed class StoreUpgradeTests : IDisposable
{
    private readonly string _file = Path.Combine(Path.GetTempPath(), "fw-upgrade-" + Guid.NewGuid().ToString("N") + ".db");

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        foreach (var suffix in new[] { "", "-wal", "-shm" })
        {
            File.Delete(_file + suffix);
        }
    }

    private RemediationStore Open() =>
        new(new ControllerStore(Options.Create(new StorageOptions { Path = _file }),
            [new StoreSchema(RemediationStore.SchemaName, RemediationStore.Schema, RemediationStore.AddedColumns)]));

    private List<string> Columns(string table)
    {
        using var c = new SqliteConnection($"Data Source={_file}");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT name FROM pragma_table_info($t)";
        cmd.Parameters.AddWithValue("$t", table);
        using var r = cmd.ExecuteReader();
        var names = new List<string>();
        while (r.Read())
        {
            names.Add(r.GetString(0));
        }

        return names;
    }

    [Fact]
    public void Node_repairs_of_the_release_before_boot_ids_gains_the_column_and_keeps_its_row()
    {
        // The node_repairs table as the previous release created it, with one node soaking.
        using (var old = new SqliteConnection($"Data Source={_file}"))
        {
            old.Open();
            using var cmd = old.CreateCommand();
            cmd.CommandText = """
                CREATE TABLE node_repairs (
                    node TEXT PRIMARY KEY, cordoned_at TEXT NOT NULL, run_at_cordon TEXT, repair_kind TEXT, repaired_by TEXT, repaired_at TEXT,
                    repair_detail TEXT, soak_start TEXT, last_healthy_at TEXT);
                INSERT INTO node_repairs (node, cordoned_at, run_at_cordon, repair_kind, repaired_by, repaired_at, repair_detail, soak_start, last_healthy_at)
                VALUES ('gpu-r1', '2026-11-30T01:00:00.0000000+00:00', 'run-1', 'agent_restart', 'fleetwatch', '2026-11-30T01:10:00.0000000+00:00',
                        'agent run run-1 -> run-2', '2026-11-30T01:10:00.0000000+00:00', NULL);
                """;
            cmd.ExecuteNonQuery();
        }

        SqliteConnection.ClearAllPools();
        Assert.DoesNotContain("boot_at_cordon", Columns("node_repairs"));

        var store = Open();
        var kept = Assert.Single(store.Repairs());
        Assert.Equal(("gpu-r1", "run-1", "agent_restart", (string?)null), (kept.Node, kept.RunAtCordon, kept.RepairKind, kept.BootAtCordon));
        Assert.Equal(new DateTimeOffset(2026, 11, 30, 1, 10, 0, TimeSpan.Zero), kept.SoakStart);
        Assert.Contains("boot_at_cordon", Columns("node_repairs"));

        store.UpsertRepair(new RepairRecord { Node = "gpu-r2", CordonedAt = kept.CordonedAt, RunAtCordon = "run-7", BootAtCordon = "0b8f5c1e-8d0a-4a49-9e57-3c2f6f7b9a10" });
        SqliteConnection.ClearAllPools();
        var reopened = Open(); // a second open of the upgraded file adds nothing twice
        Assert.Equal("0b8f5c1e-8d0a-4a49-9e57-3c2f6f7b9a10", reopened.Repairs().Single(r => r.Node == "gpu-r2").BootAtCordon);
        Assert.Single(Columns("node_repairs"), c => c == "boot_at_cordon");
    }
}
