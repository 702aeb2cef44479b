using System.Globalization;
using System.Text.Json;
using FleetWatch.Contracts;
using FleetWatch.Controller.Storage;
using Microsoft.Data.Sqlite;

namespace FleetWatch.Controller.Remediation;

/// <summary>
/// Remediation's tables in the shared <see cref="ControllerStore"/>: the job registry, the checkpoint inventory, cordons,
/// spare use, restore cycles and the action audit. Every write that must not be repeated after a restart carries a
/// unique key (action key, (job, cycle)), so a redelivered incident finds its action already recorded.
/// </summary>
public sealed class RemediationStore(ControllerStore store)
{
    public const string SchemaName = "remediation";

    public const string Schema = """
        CREATE TABLE IF NOT EXISTS job_registry (
            job_id TEXT PRIMARY KEY, scheduler TEXT NOT NULL, scheduler_job_id TEXT, checkpoint_dir TEXT,
            spare_policy TEXT NOT NULL, webhook_url TEXT, ranks_json TEXT NOT NULL, registered_at TEXT NOT NULL,
            finished_at TEXT, first_step_at TEXT, last_step INTEGER, halted_reason TEXT);
        CREATE TABLE IF NOT EXISTS checkpoint_inventory (
            job_id TEXT NOT NULL, step INTEGER NOT NULL, uri TEXT NOT NULL, shards INTEGER NOT NULL, ranks_json TEXT NOT NULL,
            manifest_checksum TEXT, source TEXT NOT NULL, saved_at TEXT NOT NULL, bad_reason TEXT, PRIMARY KEY (job_id, step));
        CREATE TABLE IF NOT EXISTS cordon_nodes (
            node TEXT PRIMARY KEY, reason TEXT NOT NULL, incident_id TEXT, operator TEXT NOT NULL, at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS job_spare_use (
            node TEXT PRIMARY KEY, job_id TEXT NOT NULL, cycle INTEGER NOT NULL, at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS job_restore_cycles (
            job_id TEXT NOT NULL, cycle INTEGER NOT NULL, kind TEXT NOT NULL, incident_id TEXT, trigger_node TEXT,
            checkpoint_step INTEGER NOT NULL, checkpoint_uri TEXT NOT NULL, excluded_json TEXT NOT NULL, spares_json TEXT NOT NULL,
            nodes_json TEXT NOT NULL, state TEXT NOT NULL, started_at TEXT NOT NULL, acked_at TEXT, first_step_at TEXT,
            healthy_at TEXT, deadline TEXT NOT NULL, detail TEXT, PRIMARY KEY (job_id, cycle));
        CREATE TABLE IF NOT EXISTS action_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT, action_key TEXT UNIQUE, at TEXT NOT NULL, kind TEXT NOT NULL, node TEXT,
            job_id TEXT, cycle INTEGER, incident_id TEXT, reason TEXT NOT NULL, evidence TEXT, operator TEXT NOT NULL,
            state TEXT NOT NULL, detail TEXT, updated_at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS node_repairs (
            node TEXT PRIMARY KEY, cordoned_at TEXT NOT NULL, run_at_cordon TEXT, repair_kind TEXT, repaired_by TEXT, repaired_at TEXT,
            repair_detail TEXT, soak_start TEXT, last_healthy_at TEXT, boot_at_cordon TEXT);
        CREATE INDEX IF NOT EXISTS action_log_node ON action_log (node, id);
        CREATE INDEX IF NOT EXISTS action_log_job ON action_log (job_id, id);
        """;

    /// <summary>Columns added after a release (a database written before gains them on open).</summary>
    public static readonly StoreColumn[] AddedColumns = [new("node_repairs", "boot_at_cordon", "TEXT")];

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    // ---- jobs ----

    public void UpsertJob(JobRecord job)
    {
        ArgumentNullException.ThrowIfNull(job);
        using var c = store.Open();
        Exec(c, null, """
            INSERT INTO job_registry (job_id, scheduler, scheduler_job_id, checkpoint_dir, spare_policy, webhook_url, ranks_json, registered_at, finished_at, first_step_at, last_step, halted_reason)
            VALUES ($id, $s, $sid, $dir, $sp, $wh, $ranks, $at, $fin, $first, $last, $halt)
            ON CONFLICT (job_id) DO UPDATE SET scheduler = $s, scheduler_job_id = $sid, checkpoint_dir = $dir, spare_policy = $sp, webhook_url = $wh,
                ranks_json = $ranks, registered_at = $at, finished_at = $fin, first_step_at = $first, last_step = $last, halted_reason = $halt
            """,
            ("$id", job.JobId), ("$s", job.Scheduler), ("$sid", job.SchedulerJobId), ("$dir", job.CheckpointDir), ("$sp", job.SparePolicy),
            ("$wh", job.WebhookUrl), ("$ranks", JsonSerializer.Serialize(job.Ranks, Json)), ("$at", T(job.RegisteredAt)), ("$fin", T(job.FinishedAt)),
            ("$first", T(job.FirstStepAt)), ("$last", job.LastStep), ("$halt", job.HaltedReason));
    }

    public List<JobRecord> Jobs()
    {
        using var c = store.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT job_id, scheduler, scheduler_job_id, checkpoint_dir, spare_policy, webhook_url, ranks_json, registered_at, finished_at, first_step_at, last_step, halted_reason FROM job_registry";
        using var r = cmd.ExecuteReader();
        var list = new List<JobRecord>();
        while (r.Read())
        {
            list.Add(new JobRecord
            {
                JobId = r.GetString(0),
                Scheduler = r.GetString(1),
                SchedulerJobId = S(r, 2),
                CheckpointDir = S(r, 3),
                SparePolicy = r.GetString(4),
                WebhookUrl = S(r, 5),
                Ranks = JsonSerializer.Deserialize<List<JobRank>>(r.GetString(6), Json) ?? [],
                RegisteredAt = D(r, 7)!.Value,
                FinishedAt = D(r, 8),
                FirstStepAt = D(r, 9),
                LastStep = r.IsDBNull(10) ? null : r.GetInt64(10),
                HaltedReason = S(r, 11),
            });
        }

        return list;
    }

    // ---- checkpoints ----

    /// <summary>Adds a checkpoint; a report of a step already known replaces it but keeps its bad mark.</summary>
    public void UpsertCheckpoint(CheckpointRecord cp)
    {
        ArgumentNullException.ThrowIfNull(cp);
        using var c = store.Open();
        Exec(c, null, """
            INSERT INTO checkpoint_inventory (job_id, step, uri, shards, ranks_json, manifest_checksum, source, saved_at, bad_reason)
            VALUES ($j, $s, $u, $n, $r, $m, $src, $at, $bad)
            ON CONFLICT (job_id, step) DO UPDATE SET uri = $u, shards = $n, ranks_json = $r, manifest_checksum = $m, source = $src, saved_at = $at,
                bad_reason = COALESCE(checkpoint_inventory.bad_reason, $bad)
            """,
            ("$j", cp.JobId), ("$s", cp.Step), ("$u", cp.Uri), ("$n", cp.Shards), ("$r", JsonSerializer.Serialize(cp.RanksCovered, Json)),
            ("$m", cp.ManifestChecksum), ("$src", cp.Source), ("$at", T(cp.SavedAt)), ("$bad", cp.BadReason));
    }

    public List<CheckpointRecord> Checkpoints(string jobId)
    {
        using var c = store.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT job_id, step, uri, shards, ranks_json, manifest_checksum, source, saved_at, bad_reason FROM checkpoint_inventory WHERE job_id = $j ORDER BY step";
        cmd.Parameters.AddWithValue("$j", jobId);
        using var r = cmd.ExecuteReader();
        var list = new List<CheckpointRecord>();
        while (r.Read())
        {
            list.Add(new CheckpointRecord(r.GetString(0), r.GetInt64(1), r.GetString(2), r.GetInt32(3),
                JsonSerializer.Deserialize<List<int>>(r.GetString(4), Json) ?? [], S(r, 5), r.GetString(6), D(r, 7)!.Value, S(r, 8)));
        }

        return list;
    }

    // ---- cordons ----

    /// <summary>Records the cordon; false when the node was already cordoned (nothing changed).</summary>
    public bool TryCordon(CordonRecord cordon)
    {
        ArgumentNullException.ThrowIfNull(cordon);
        using var c = store.Open();
        return Exec(c, null, "INSERT OR IGNORE INTO cordon_nodes (node, reason, incident_id, operator, at) VALUES ($n, $r, $i, $o, $at)",
            ("$n", cordon.Node), ("$r", cordon.Reason), ("$i", cordon.IncidentId), ("$o", cordon.Operator), ("$at", T(cordon.At))) == 1;
    }

    public bool Uncordon(string node)
    {
        using var c = store.Open();
        return Exec(c, null, "DELETE FROM cordon_nodes WHERE node = $n", ("$n", node)) == 1;
    }

    public List<CordonRecord> Cordons()
    {
        using var c = store.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT node, reason, incident_id, operator, at FROM cordon_nodes ORDER BY at, node";
        using var r = cmd.ExecuteReader();
        var list = new List<CordonRecord>();
        while (r.Read())
        {
            list.Add(new CordonRecord(r.GetString(0), r.GetString(1), S(r, 2), r.GetString(3), D(r, 4)!.Value));
        }

        return list;
    }

    // ---- return to service ----

    public void UpsertRepair(RepairRecord r)
    {
        ArgumentNullException.ThrowIfNull(r);
        using var c = store.Open();
        Exec(c, null, """
            INSERT OR REPLACE INTO node_repairs (node, cordoned_at, run_at_cordon, repair_kind, repaired_by, repaired_at, repair_detail, soak_start, last_healthy_at, boot_at_cordon)
            VALUES ($n, $c, $run, $k, $by, $at, $d, $soak, $last, $boot)
            """,
            ("$n", r.Node), ("$c", T(r.CordonedAt)), ("$run", r.RunAtCordon), ("$k", r.RepairKind), ("$by", r.RepairedBy), ("$at", T(r.RepairedAt)),
            ("$d", r.RepairDetail), ("$soak", T(r.SoakStart)), ("$last", T(r.LastHealthyAt)), ("$boot", r.BootAtCordon));
    }

    public void DeleteRepair(string node)
    {
        using var c = store.Open();
        Exec(c, null, "DELETE FROM node_repairs WHERE node = $n", ("$n", node));
    }

    public List<RepairRecord> Repairs()
    {
        using var c = store.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT node, cordoned_at, run_at_cordon, repair_kind, repaired_by, repaired_at, repair_detail, soak_start, last_healthy_at, boot_at_cordon FROM node_repairs ORDER BY node";
        using var r = cmd.ExecuteReader();
        var list = new List<RepairRecord>();
        while (r.Read())
        {
            list.Add(new RepairRecord
            {
                Node = r.GetString(0), CordonedAt = D(r, 1)!.Value, RunAtCordon = S(r, 2), RepairKind = S(r, 3), RepairedBy = S(r, 4), RepairedAt = D(r, 5),
                RepairDetail = S(r, 6), SoakStart = D(r, 7), LastHealthyAt = D(r, 8), BootAtCordon = S(r, 9),
            });
        }

        return list;
    }

    /// <summary>Time of the newest action whose key starts with <paramref name="keyPrefix"/> (for example <c>breaker:</c>), or null.</summary>
    public DateTimeOffset? LastActionAt(string keyPrefix)
    {
        using var c = store.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT at FROM action_log WHERE substr(action_key, 1, length($p)) = $p ORDER BY id DESC LIMIT 1";
        cmd.Parameters.AddWithValue("$p", keyPrefix);
        return cmd.ExecuteScalar() is string at ? DateTimeOffset.Parse(at, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind) : null;
    }

    // ---- spares ----

    public Dictionary<string, (string JobId, long Cycle)> SpareUse()
    {
        using var c = store.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT node, job_id, cycle FROM job_spare_use";
        using var r = cmd.ExecuteReader();
        var map = new Dictionary<string, (string, long)>(StringComparer.Ordinal);
        while (r.Read())
        {
            map[r.GetString(0)] = (r.GetString(1), r.GetInt64(2));
        }

        return map;
    }

    /// <summary>Returns the spares a finished job held to the pool.</summary>
    public void ReleaseSpares(string jobId)
    {
        using var c = store.Open();
        Exec(c, null, "DELETE FROM job_spare_use WHERE job_id = $j", ("$j", jobId));
    }

    // ---- cycles ----

    public List<RestoreCycle> Cycles(string jobId)
    {
        using var c = store.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = CycleSelect + " WHERE job_id = $j ORDER BY cycle";
        cmd.Parameters.AddWithValue("$j", jobId);
        return ReadCycles(cmd);
    }

    public List<RestoreCycle> InFlightCycles()
    {
        using var c = store.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = CycleSelect + $" WHERE state IN ('{CycleStates.Sent}', '{CycleStates.Acknowledged}') ORDER BY job_id, cycle";
        return ReadCycles(cmd);
    }

    /// <summary>
    /// Writes a new cycle, its spare reservations, the job's new ranks and the action row in one transaction. Returns
    /// false (and writes nothing) when the cycle or the action key already exists: another delivery got there first.
    /// </summary>
    public bool TryStartCycle(RestoreCycle cycle, JobRecord updatedJob, RemediationAction action)
    {
        ArgumentNullException.ThrowIfNull(cycle);
        ArgumentNullException.ThrowIfNull(updatedJob);
        ArgumentNullException.ThrowIfNull(action);
        using var c = store.Open();
        using var tx = c.BeginTransaction();
        if (action.Key is not null && Scalar(c, tx, "SELECT COUNT(*) FROM action_log WHERE action_key = $k", ("$k", action.Key)) > 0)
        {
            return false;
        }

        if (Exec(c, tx, """
            INSERT OR IGNORE INTO job_restore_cycles (job_id, cycle, kind, incident_id, trigger_node, checkpoint_step, checkpoint_uri, excluded_json, spares_json, nodes_json, state, started_at, deadline, detail)
            VALUES ($j, $c, $k, $i, $t, $s, $u, $e, $sp, $n, $st, $at, $dl, $d)
            """,
            ("$j", cycle.JobId), ("$c", cycle.Cycle), ("$k", cycle.Kind), ("$i", cycle.IncidentId), ("$t", cycle.TriggerNode), ("$s", cycle.CheckpointStep),
            ("$u", cycle.CheckpointUri), ("$e", JsonSerializer.Serialize(cycle.Excluded, Json)), ("$sp", JsonSerializer.Serialize(cycle.Spares, Json)),
            ("$n", JsonSerializer.Serialize(cycle.Nodes, Json)), ("$st", cycle.State), ("$at", T(cycle.StartedAt)), ("$dl", T(cycle.Deadline)), ("$d", cycle.Detail)) == 0)
        {
            return false;
        }

        foreach (var spare in cycle.Spares)
        {
            Exec(c, tx, "INSERT OR REPLACE INTO job_spare_use (node, job_id, cycle, at) VALUES ($n, $j, $c, $at)",
                ("$n", spare), ("$j", cycle.JobId), ("$c", cycle.Cycle), ("$at", T(cycle.StartedAt)));
        }

        Exec(c, tx, "UPDATE job_registry SET ranks_json = $r WHERE job_id = $j", ("$r", JsonSerializer.Serialize(updatedJob.Ranks, Json)), ("$j", updatedJob.JobId));
        InsertAction(c, tx, action);
        tx.Commit();
        return true;
    }

    public void UpdateCycle(RestoreCycle cycle)
    {
        ArgumentNullException.ThrowIfNull(cycle);
        using var c = store.Open();
        Exec(c, null, "UPDATE job_restore_cycles SET state = $st, acked_at = $a, first_step_at = $f, healthy_at = $h, detail = $d WHERE job_id = $j AND cycle = $c",
            ("$st", cycle.State), ("$a", T(cycle.AckedAt)), ("$f", T(cycle.FirstStepAt)), ("$h", T(cycle.HealthyAt)), ("$d", cycle.Detail),
            ("$j", cycle.JobId), ("$c", cycle.Cycle));
    }

    // ---- actions ----

    /// <summary>Appends an action; false when its key is already recorded (the action was taken before, maybe by a previous process).</summary>
    public bool TryRecord(RemediationAction action)
    {
        ArgumentNullException.ThrowIfNull(action);
        using var c = store.Open();
        return InsertAction(c, null, action);
    }

    public bool HasAction(string key)
    {
        using var c = store.Open();
        return Scalar(c, null, "SELECT COUNT(*) FROM action_log WHERE action_key = $k", ("$k", key)) > 0;
    }

    public void UpdateAction(string key, string state, string? detail, DateTimeOffset at)
    {
        using var c = store.Open();
        Exec(c, null, "UPDATE action_log SET state = $s, detail = COALESCE($d, detail), updated_at = $at WHERE action_key = $k",
            ("$s", state), ("$d", detail), ("$at", T(at)), ("$k", key));
    }

    public List<RemediationAction> Actions(string? node, string? jobId, int limit)
    {
        using var c = store.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            SELECT id, action_key, at, kind, node, job_id, cycle, incident_id, reason, evidence, operator, state, detail, updated_at FROM action_log
            WHERE ($n IS NULL OR node = $n) AND ($j IS NULL OR job_id = $j) ORDER BY id DESC LIMIT $l
            """;
        cmd.Parameters.AddWithValue("$n", (object?)node ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$j", (object?)jobId ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$l", limit);
        using var r = cmd.ExecuteReader();
        var list = new List<RemediationAction>();
        while (r.Read())
        {
            list.Add(new RemediationAction
            {
                Id = r.GetInt64(0),
                Key = S(r, 1),
                At = D(r, 2)!.Value,
                Kind = r.GetString(3),
                Node = S(r, 4),
                JobId = S(r, 5),
                Cycle = r.IsDBNull(6) ? null : r.GetInt64(6),
                IncidentId = S(r, 7),
                Reason = r.GetString(8),
                Evidence = S(r, 9),
                Operator = r.GetString(10),
                State = r.GetString(11),
                Detail = S(r, 12),
                UpdatedAt = D(r, 13)!.Value,
            });
        }

        return list;
    }

    private const string CycleSelect = """
        SELECT job_id, cycle, kind, incident_id, trigger_node, checkpoint_step, checkpoint_uri, excluded_json, spares_json, nodes_json, state,
               started_at, acked_at, first_step_at, healthy_at, deadline, detail FROM job_restore_cycles
        """;

    private static List<RestoreCycle> ReadCycles(SqliteCommand cmd)
    {
        using var r = cmd.ExecuteReader();
        var list = new List<RestoreCycle>();
        while (r.Read())
        {
            list.Add(new RestoreCycle
            {
                JobId = r.GetString(0),
                Cycle = r.GetInt64(1),
                Kind = r.GetString(2),
                IncidentId = S(r, 3),
                TriggerNode = S(r, 4),
                CheckpointStep = r.GetInt64(5),
                CheckpointUri = r.GetString(6),
                Excluded = JsonSerializer.Deserialize<List<string>>(r.GetString(7), Json) ?? [],
                Spares = JsonSerializer.Deserialize<List<string>>(r.GetString(8), Json) ?? [],
                Nodes = JsonSerializer.Deserialize<List<string>>(r.GetString(9), Json) ?? [],
                State = r.GetString(10),
                StartedAt = D(r, 11)!.Value,
                AckedAt = D(r, 12),
                FirstStepAt = D(r, 13),
                HealthyAt = D(r, 14),
                Deadline = D(r, 15)!.Value,
                Detail = S(r, 16),
            });
        }

        return list;
    }

    private static bool InsertAction(SqliteConnection c, SqliteTransaction? tx, RemediationAction a) =>
        Exec(c, tx, """
            INSERT OR IGNORE INTO action_log (action_key, at, kind, node, job_id, cycle, incident_id, reason, evidence, operator, state, detail, updated_at)
            VALUES ($k, $at, $kind, $n, $j, $c, $i, $r, $e, $o, $s, $d, $at)
            """,
            ("$k", a.Key), ("$at", T(a.At)), ("$kind", a.Kind), ("$n", a.Node), ("$j", a.JobId), ("$c", a.Cycle), ("$i", a.IncidentId),
            ("$r", a.Reason), ("$e", a.Evidence), ("$o", a.Operator), ("$s", a.State), ("$d", a.Detail)) == 1;

    private static int Exec(SqliteConnection c, SqliteTransaction? tx, string sql, params (string Name, object? Value)[] args)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        foreach (var (name, value) in args)
        {
            cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return cmd.ExecuteNonQuery();
    }

    private static long Scalar(SqliteConnection c, SqliteTransaction? tx, string sql, params (string Name, object? Value)[] args)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        foreach (var (name, value) in args)
        {
            cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    private static string? T(DateTimeOffset? t) => t?.ToString("O", CultureInfo.InvariantCulture);

    private static string? S(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);

    private static DateTimeOffset? D(SqliteDataReader r, int i) =>
        r.IsDBNull(i) ? null : DateTimeOffset.Parse(r.GetString(i), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);
}
