using System.Text.Json;
using System.Text.Json.Serialization;
using FleetWatch.Controller.Storage;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Controller.Incidents;

/// <summary>JSON of the incident API and of the stored rows: camelCase, enums by name (<c>"critical"</c>).</summary>
public static class IncidentJson
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };
}

/// <summary>What the incident manager reloads on start.</summary>
internal sealed record StoredIncidents(IReadOnlyList<IncidentRecord> Open, long Counter, IReadOnlyList<Mute> Mutes);

/// <summary>
/// The incident tables of the controller store: incidents with their findings as evidence (<c>incident_incidents</c>),
/// the id counter (<c>incident_counter</c>), the notification log (<c>notification_log</c>: every notification key
/// emitted, written in the same transaction as the incident change that caused it, and when it was handed to
/// delivery), silences (<c>silence_silences</c>) and maintenance windows (<c>maintenance_windows</c>).
/// The outbox (<c>outbox_*</c>) and its delivery state belong to alert delivery.
/// </summary>
public sealed partial class IncidentStore(ControllerStore store, ILogger<IncidentStore> logger)
{
    public const string SchemaName = "incidents";

    public const string Schema = """
        CREATE TABLE IF NOT EXISTS incident_counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS incident_incidents (
            id TEXT PRIMARY KEY, node TEXT NOT NULL, open INTEGER NOT NULL, opened_at INTEGER NOT NULL, resolved_at INTEGER, body TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS incident_incidents_open ON incident_incidents (open, opened_at);
        CREATE INDEX IF NOT EXISTS incident_incidents_resolved ON incident_incidents (resolved_at) WHERE resolved_at IS NOT NULL;
        CREATE TABLE IF NOT EXISTS notification_log (
            key TEXT PRIMARY KEY, incident_id TEXT NOT NULL, emitted_at INTEGER NOT NULL, handed_at INTEGER, change TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS notification_log_pending ON notification_log (emitted_at) WHERE handed_at IS NULL;
        CREATE TABLE IF NOT EXISTS silence_silences (id TEXT PRIMARY KEY, ends_at INTEGER NOT NULL, body TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS maintenance_windows (id TEXT PRIMARY KEY, ends_at INTEGER NOT NULL, body TEXT NOT NULL);
        """;

    private const string CounterName = "incident";

    // The last log row written before this process emitted anything: only rows up to it are a previous run's
    // leftovers. A row after it is this run's and is being handed over by the path that emitted it.
    private readonly Lock _gate = new();
    private long? _previousRunUpTo;

    /// <summary>Open incidents, the id counter and the silences and maintenance windows not yet ended.</summary>
    internal StoredIncidents Load(DateTimeOffset now)
    {
        using var connection = store.Open();
        CapturePreviousRun(connection);
        var open = new List<IncidentRecord>();
        using (var command = Command(connection, "SELECT body FROM incident_incidents WHERE open = 1 ORDER BY opened_at"))
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                open.Add(Deserialize<IncidentRecord>(reader.GetString(0)));
            }
        }

        long counter;
        using (var command = Command(connection, "SELECT value FROM incident_counter WHERE name = $name"))
        {
            command.Parameters.AddWithValue("$name", CounterName);
            counter = command.ExecuteScalar() is long v ? v : 0;
        }

        var mutes = new List<Mute>();
        foreach (var table in new[] { Table(MuteKind.Silence), Table(MuteKind.Maintenance) })
        {
            using var command = Command(connection, $"SELECT body FROM {table} WHERE ends_at > $now");
            command.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                mutes.Add(Deserialize<Mute>(reader.GetString(0)));
            }
        }

        return new StoredIncidents(open, counter, mutes);
    }

    /// <summary>
    /// Writes changed incidents, the notification keys they emitted and the id counter in one transaction. A key
    /// already in the log stays as it was (its hand-off state is kept). Returns false (logged) when the write failed;
    /// the caller keeps the work and retries with the next batch.
    /// </summary>
    internal bool TrySave(IReadOnlyCollection<IncidentRecord> incidents, IReadOnlyList<IncidentChange> notifications, long counter, DateTimeOffset now)
    {
        try
        {
            using var connection = store.Open();
            using var tx = connection.BeginTransaction();
            if (incidents.Count > 0)
            {
                using var upsert = Command(connection, """
                    INSERT INTO incident_incidents (id, node, open, opened_at, resolved_at, body) VALUES ($id, $node, $open, $opened, $resolved, $body)
                    ON CONFLICT (id) DO UPDATE SET open = excluded.open, resolved_at = excluded.resolved_at, body = excluded.body
                    """, tx);
                var id = upsert.Parameters.Add("$id", SqliteType.Text);
                var node = upsert.Parameters.Add("$node", SqliteType.Text);
                var isOpen = upsert.Parameters.Add("$open", SqliteType.Integer);
                var opened = upsert.Parameters.Add("$opened", SqliteType.Integer);
                var resolved = upsert.Parameters.Add("$resolved", SqliteType.Integer);
                var body = upsert.Parameters.Add("$body", SqliteType.Text);
                foreach (var r in incidents)
                {
                    id.Value = r.Id;
                    node.Value = r.Node;
                    isOpen.Value = r.ResolvedAt is null ? 1 : 0;
                    opened.Value = r.OpenedAt.ToUnixTimeMilliseconds();
                    resolved.Value = r.ResolvedAt is { } at ? at.ToUnixTimeMilliseconds() : DBNull.Value;
                    body.Value = JsonSerializer.Serialize(r, IncidentJson.Options);
                    upsert.ExecuteNonQuery();
                }
            }

            if (notifications.Count > 0)
            {
                using var log = Command(connection, """
                    INSERT INTO notification_log (key, incident_id, emitted_at, change) VALUES ($key, $incident, $at, $change) ON CONFLICT (key) DO NOTHING
                    """, tx);
                var key = log.Parameters.Add("$key", SqliteType.Text);
                var incident = log.Parameters.Add("$incident", SqliteType.Text);
                log.Parameters.AddWithValue("$at", now.ToUnixTimeMilliseconds());
                var change = log.Parameters.Add("$change", SqliteType.Text);
                foreach (var n in notifications)
                {
                    key.Value = n.NotificationKey;
                    incident.Value = n.Incident.Id;
                    change.Value = JsonSerializer.Serialize(n, IncidentJson.Options);
                    log.ExecuteNonQuery();
                }
            }

            using (var count = Command(connection, """
                INSERT INTO incident_counter (name, value) VALUES ($name, $value) ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)
                """, tx))
            {
                count.Parameters.AddWithValue("$name", CounterName);
                count.Parameters.AddWithValue("$value", counter);
                count.ExecuteNonQuery();
            }

            tx.Commit();
            return true;
        }
        catch (SqliteException ex)
        {
            LogSaveFailed(logger, incidents.Count, notifications.Count, ex.SqliteErrorCode, ex.Message);
            return false;
        }
    }

    /// <summary>One incident, open or resolved.</summary>
    internal IncidentRecord? Get(string id)
    {
        using var connection = store.Open();
        using var command = Command(connection, "SELECT body FROM incident_incidents WHERE id = $id");
        command.Parameters.AddWithValue("$id", id);
        return command.ExecuteScalar() is string body ? Deserialize<IncidentRecord>(body) : null;
    }

    /// <summary>Resolved incidents, most recently resolved first.</summary>
    internal IReadOnlyList<IncidentRecord> Resolved(int limit)
    {
        using var connection = store.Open();
        using var command = Command(connection, "SELECT body FROM incident_incidents WHERE open = 0 ORDER BY resolved_at DESC LIMIT $limit");
        command.Parameters.AddWithValue("$limit", limit);
        using var reader = command.ExecuteReader();
        var result = new List<IncidentRecord>();
        while (reader.Read())
        {
            result.Add(Deserialize<IncidentRecord>(reader.GetString(0)));
        }

        return result;
    }

    /// <summary>
    /// Notifications a previous run emitted (logged) but did not hand to delivery: a crash fell between the two.
    /// Oldest first. This run's own notifications are never listed (their emitter hands them over).
    /// </summary>
    public IReadOnlyList<IncidentChange> PendingHandOffs()
    {
        using var connection = store.Open();
        CapturePreviousRun(connection);
        using var command = Command(connection, "SELECT change FROM notification_log WHERE handed_at IS NULL AND rowid <= $upTo ORDER BY rowid");
        command.Parameters.AddWithValue("$upTo", _previousRunUpTo);
        using var reader = command.ExecuteReader();
        var result = new List<IncidentChange>();
        while (reader.Read())
        {
            result.Add(Deserialize<IncidentChange>(reader.GetString(0)));
        }

        return result;
    }

    /// <summary>Records that these notification keys reached delivery.</summary>
    public void MarkHanded(IReadOnlyCollection<string> keys, DateTimeOffset at)
    {
        if (keys.Count == 0)
        {
            return;
        }

        using var connection = store.Open();
        using var tx = connection.BeginTransaction();
        using var command = Command(connection, "UPDATE notification_log SET handed_at = $at WHERE key = $key AND handed_at IS NULL", tx);
        command.Parameters.AddWithValue("$at", at.ToUnixTimeMilliseconds());
        var key = command.Parameters.Add("$key", SqliteType.Text);
        foreach (var k in keys)
        {
            key.Value = k;
            command.ExecuteNonQuery();
        }

        tx.Commit();
    }

    /// <summary>Whether a notification key was ever emitted.</summary>
    public bool WasEmitted(string key)
    {
        using var connection = store.Open();
        using var command = Command(connection, "SELECT 1 FROM notification_log WHERE key = $key");
        command.Parameters.AddWithValue("$key", key);
        return command.ExecuteScalar() is not null;
    }

    internal void SaveMute(Mute mute)
    {
        using var connection = store.Open();
        using var command = Command(connection, $"""
            INSERT INTO {Table(mute.Kind)} (id, ends_at, body) VALUES ($id, $ends, $body)
            ON CONFLICT (id) DO UPDATE SET ends_at = excluded.ends_at, body = excluded.body
            """);
        command.Parameters.AddWithValue("$id", mute.Id);
        command.Parameters.AddWithValue("$ends", mute.EndsAt.ToUnixTimeMilliseconds());
        command.Parameters.AddWithValue("$body", JsonSerializer.Serialize(mute, IncidentJson.Options));
        command.ExecuteNonQuery();
    }

    private void CapturePreviousRun(SqliteConnection connection)
    {
        lock (_gate)
        {
            if (_previousRunUpTo is null)
            {
                using var command = Command(connection, "SELECT COALESCE(MAX(rowid), 0) FROM notification_log");
                _previousRunUpTo = (long)command.ExecuteScalar()!;
            }
        }
    }

    private static string Table(MuteKind kind) => kind == MuteKind.Silence ? "silence_silences" : "maintenance_windows";

    private static SqliteCommand Command(SqliteConnection connection, string sql, SqliteTransaction? tx = null)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = tx;
        return command;
    }

    private static T Deserialize<T>(string json) =>
        JsonSerializer.Deserialize<T>(json, IncidentJson.Options) ?? throw new InvalidDataException($"stored {typeof(T).Name} is null");

    [LoggerMessage(EventId = 210, Level = LogLevel.Error, Message = "Writing {Incidents} incident(s) and {Notifications} notification key(s) to the store failed (SQLite error {Code}: {Error}); retrying with the next change")]
    private static partial void LogSaveFailed(ILogger logger, int incidents, int notifications, int code, string error);
}
