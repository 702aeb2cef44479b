using System.Text.Json;
using FleetWatch.Contracts;
using FleetWatch.Controller.Incidents;
using FleetWatch.Controller.Storage;
using Microsoft.Data.Sqlite;

namespace FleetWatch.Controller.Alerting;

/// <summary>States of one outbox row.</summary>
public static class DeliveryState
{
    public const string Pending = "pending";
    public const string Delivered = "delivered";
    public const string GivenUp = "given_up";

    public static bool IsKnown(string? state) => state is Pending or Delivered or GivenUp;
}

/// <summary>One notification for one receiver, as stored.</summary>
public sealed record OutboxRow(
    long Id,
    string Receiver,
    AlertNotice Notice,
    int Attempts,
    DateTimeOffset CreatedAt,
    DateTimeOffset NextAttemptAt);

/// <summary>One row as the API shows it (no payload, no URL, no key).</summary>
public sealed record DeliveryView(
    string Key,
    string IncidentId,
    string Receiver,
    string Kind,
    string State,
    int Attempts,
    int? LastStatus,
    string? LastError,
    DateTimeOffset CreatedAt,
    DateTimeOffset? DeliveredAt);

/// <summary>Row counts of one receiver.</summary>
public sealed record ReceiverCounts(long Pending, long Delivered, long GivenUp, string? LastError);

/// <summary>
/// The persistent outbox (tables <c>outbox_*</c> in the shared <see cref="ControllerStore"/>). A notification is one row
/// per routed receiver, unique on (notification key, receiver, incident start second): re-enqueueing the same change
/// after a restart inserts nothing, so a delivered notification is never sent again and a pending one is resumed.
/// The incident's start time is part of the key so that a reused incident id (a wiped incident store) cannot swallow
/// a new incident's page. Rows move pending → delivered or pending → given_up, never back.
/// </summary>
public sealed class AlertOutbox(ControllerStore store)
{
    public const string SchemaName = "outbox";

    public const string Schema = """
        CREATE TABLE IF NOT EXISTS outbox_message (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            notification_key TEXT NOT NULL,
            receiver TEXT NOT NULL,
            incident_epoch INTEGER NOT NULL,
            incident_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            snapshot TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'given_up')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_status INTEGER,
            last_error TEXT,
            created_at INTEGER NOT NULL,
            next_attempt_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            delivered_at INTEGER,
            UNIQUE (notification_key, receiver, incident_epoch)
        );
        CREATE INDEX IF NOT EXISTS outbox_message_queue ON outbox_message (receiver, state, id);
        CREATE INDEX IF NOT EXISTS outbox_message_incident ON outbox_message (incident_id, id);
        CREATE TABLE IF NOT EXISTS outbox_firing (
            receiver TEXT NOT NULL,
            incident_id TEXT NOT NULL,
            notification_key TEXT NOT NULL,
            snapshot TEXT NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (receiver, incident_id)
        );
        """;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Inserts one pending row per receiver in one transaction; returns the receivers that got a new row.</summary>
    public IReadOnlyList<string> Enqueue(AlertNotice notice, IReadOnlyList<string> receivers, DateTimeOffset now)
    {
        if (receivers.Count == 0)
        {
            return [];
        }

        var inserted = new List<string>(receivers.Count);
        var snapshot = JsonSerializer.Serialize(notice.Incident, Json);
        using var connection = store.Open();
        using var tx = connection.BeginTransaction();
        foreach (var receiver in receivers)
        {
            using var command = connection.CreateCommand();
            command.Transaction = tx;
            command.CommandText = """
                INSERT OR IGNORE INTO outbox_message
                    (notification_key, receiver, incident_epoch, incident_id, kind, snapshot, state, created_at, next_attempt_at, updated_at)
                VALUES ($key, $receiver, $epoch, $incident, $kind, $snapshot, 'pending', $now, $now, $now)
                """;
            command.Parameters.AddWithValue("$key", notice.NotificationKey);
            command.Parameters.AddWithValue("$receiver", receiver);
            command.Parameters.AddWithValue("$epoch", notice.Incident.OpenedAt.ToUnixTimeSeconds());
            command.Parameters.AddWithValue("$incident", notice.Incident.Id);
            command.Parameters.AddWithValue("$kind", notice.StoredKind);
            command.Parameters.AddWithValue("$snapshot", snapshot);
            command.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
            if (command.ExecuteNonQuery() == 1)
            {
                inserted.Add(receiver);
            }
        }

        tx.Commit();
        return inserted;
    }

    /// <summary>Receivers that were sent (or are sending) anything about an incident: its resolve and acknowledgement go to them.</summary>
    public IReadOnlyList<string> ReceiversOf(string incidentId)
    {
        using var connection = store.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT receiver FROM outbox_message WHERE incident_id = $incident AND state <> 'given_up' GROUP BY receiver ORDER BY MIN(id)";
        command.Parameters.AddWithValue("$incident", incidentId);
        var result = new List<string>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            result.Add(reader.GetString(0));
        }

        return result;
    }

    /// <summary>The oldest pending row of a receiver (each receiver drains in order: firing before its resolve).</summary>
    public OutboxRow? NextPending(string receiver) => Pending(receiver, DateTimeOffset.MaxValue, 1).FirstOrDefault();

    /// <summary>A receiver's pending rows queued no later than <paramref name="queuedUntil"/>, oldest first (a storm batch).</summary>
    public IReadOnlyList<OutboxRow> Pending(string receiver, DateTimeOffset queuedUntil, int limit)
    {
        using var connection = store.Open();
        using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT id, receiver, notification_key, kind, snapshot, attempts, created_at, next_attempt_at
            FROM outbox_message WHERE receiver = $receiver AND state = 'pending' AND created_at <= $until ORDER BY id LIMIT $limit
            """;
        command.Parameters.AddWithValue("$receiver", receiver);
        command.Parameters.AddWithValue("$until", queuedUntil == DateTimeOffset.MaxValue ? long.MaxValue : queuedUntil.ToUnixTimeMilliseconds());
        command.Parameters.AddWithValue("$limit", limit);
        var rows = new List<OutboxRow>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            var notice = AlertNotice.FromStored(reader.GetString(3), JsonSerializer.Deserialize<IncidentSnapshot>(reader.GetString(4), Json)!, reader.GetString(2));
            rows.Add(new OutboxRow(reader.GetInt64(0), reader.GetString(1), notice, reader.GetInt32(5), Ms(reader.GetInt64(6)), Ms(reader.GetInt64(7))));
        }

        return rows;
    }

    public void MarkDelivered(long id, int attempts, int? status, DateTimeOffset now) => MarkDelivered([id], attempts, status, now);

    /// <summary>Rows settled by one POST (a storm summary) move together, in one transaction.</summary>
    public void MarkDelivered(IReadOnlyList<long> ids, int attempts, int? status, DateTimeOffset now) =>
        Update(ids, "state = 'delivered', attempts = $attempts, last_status = $status, delivered_at = $now, updated_at = $now", attempts, status, null, now, now);

    public void MarkRetry(long id, int attempts, int? status, string error, DateTimeOffset next, DateTimeOffset now) => MarkRetry([id], attempts, status, error, next, now);

    public void MarkRetry(IReadOnlyList<long> ids, int attempts, int? status, string error, DateTimeOffset next, DateTimeOffset now) =>
        Update(ids, "attempts = $attempts, last_status = $status, last_error = $error, next_attempt_at = $next, updated_at = $now", attempts, status, error, next, now);

    public void MarkGivenUp(long id, int attempts, int? status, string error, DateTimeOffset now) => MarkGivenUp([id], attempts, status, error, now);

    public void MarkGivenUp(IReadOnlyList<long> ids, int attempts, int? status, string error, DateTimeOffset now) =>
        Update(ids, "state = 'given_up', attempts = $attempts, last_status = $status, last_error = $error, updated_at = $now", attempts, status, error, now, now);

    private void Update(IReadOnlyList<long> ids, string set, int attempts, int? status, string? error, DateTimeOffset next, DateTimeOffset now)
    {
        using var connection = store.Open();
        using var tx = connection.BeginTransaction();
        using var command = connection.CreateCommand();
        command.Transaction = tx;
        // Only a pending row changes: a row is final once delivered or given up.
        command.CommandText = $"UPDATE outbox_message SET {set} WHERE id = $id AND state = 'pending'";
        var id = command.Parameters.Add("$id", SqliteType.Integer);
        command.Parameters.AddWithValue("$attempts", attempts);
        command.Parameters.AddWithValue("$status", (object?)status ?? DBNull.Value);
        command.Parameters.AddWithValue("$error", (object?)error ?? DBNull.Value);
        command.Parameters.AddWithValue("$next", next.ToUnixTimeMilliseconds());
        command.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
        foreach (var value in ids)
        {
            id.Value = value;
            command.ExecuteNonQuery();
        }

        tx.Commit();
    }

    /// <summary>Pending rows of receivers no longer configured can never be sent: give them up, with the reason.</summary>
    public int GiveUpOrphans(IReadOnlyCollection<string> configured, DateTimeOffset now)
    {
        using var connection = store.Open();
        using var command = connection.CreateCommand();
        var names = configured.Select((name, i) => (name, p: $"$r{i}")).ToList();
        command.CommandText = $"""
            UPDATE outbox_message SET state = 'given_up', last_error = 'receiver no longer configured', updated_at = $now
            WHERE state = 'pending'{(names.Count == 0 ? "" : $" AND receiver NOT IN ({string.Join(", ", names.Select(n => n.p))})")}
            """;
        foreach (var (name, p) in names)
        {
            command.Parameters.AddWithValue(p, name);
        }

        command.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
        return command.ExecuteNonQuery();
    }

    /// <summary>Deletes final rows last touched before <paramref name="before"/>.</summary>
    public int Prune(DateTimeOffset before)
    {
        using var connection = store.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "DELETE FROM outbox_message WHERE state <> 'pending' AND updated_at < $before";
        command.Parameters.AddWithValue("$before", before.ToUnixTimeMilliseconds());
        return command.ExecuteNonQuery();
    }

    /// <summary>Rows for the API, newest first.</summary>
    public IReadOnlyList<DeliveryView> Query(string? incidentId, string? state, int limit)
    {
        using var connection = store.Open();
        using var command = connection.CreateCommand();
        var where = new List<string>();
        if (incidentId is not null)
        {
            where.Add("incident_id = $incident");
            command.Parameters.AddWithValue("$incident", incidentId);
        }

        if (state is not null)
        {
            where.Add("state = $state");
            command.Parameters.AddWithValue("$state", state);
        }

        command.CommandText = $"""
            SELECT notification_key, incident_id, receiver, kind, state, attempts, last_status, last_error, created_at, delivered_at
            FROM outbox_message {(where.Count == 0 ? "" : "WHERE " + string.Join(" AND ", where))} ORDER BY id DESC LIMIT $limit
            """;
        command.Parameters.AddWithValue("$limit", limit);
        var rows = new List<DeliveryView>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            rows.Add(new DeliveryView(
                reader.GetString(0),
                reader.GetString(1),
                reader.GetString(2),
                reader.GetString(3),
                reader.GetString(4),
                reader.GetInt32(5),
                reader.IsDBNull(6) ? null : reader.GetInt32(6),
                reader.IsDBNull(7) ? null : reader.GetString(7),
                Ms(reader.GetInt64(8)),
                reader.IsDBNull(9) ? null : Ms(reader.GetInt64(9))));
        }

        return rows;
    }

    /// <summary>Per receiver: rows by state and the most recent error.</summary>
    public IReadOnlyDictionary<string, ReceiverCounts> Counts()
    {
        using var connection = store.Open();
        var counts = new Dictionary<string, (long P, long D, long G)>(StringComparer.Ordinal);
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT receiver, state, COUNT(*) FROM outbox_message GROUP BY receiver, state";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                var c = counts.GetValueOrDefault(reader.GetString(0));
                var n = reader.GetInt64(2);
                counts[reader.GetString(0)] = reader.GetString(1) switch
                {
                    DeliveryState.Pending => c with { P = n },
                    DeliveryState.Delivered => c with { D = n },
                    _ => c with { G = n },
                };
            }
        }

        var errors = new Dictionary<string, string>(StringComparer.Ordinal);
        using (var command = connection.CreateCommand())
        {
            command.CommandText = """
                SELECT o.receiver, o.last_error FROM outbox_message o
                WHERE o.id = (SELECT i.id FROM outbox_message i WHERE i.receiver = o.receiver AND i.last_error IS NOT NULL ORDER BY i.updated_at DESC, i.id DESC LIMIT 1)
                """;
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                errors[reader.GetString(0)] = reader.GetString(1);
            }
        }

        return counts.Keys.Union(errors.Keys).ToDictionary(
            r => r,
            r => counts.TryGetValue(r, out var c) ? new ReceiverCounts(c.P, c.D, c.G, errors.GetValueOrDefault(r)) : new ReceiverCounts(0, 0, 0, errors.GetValueOrDefault(r)),
            StringComparer.Ordinal);
    }

    /// <summary>Alertmanager receivers: remember a delivered firing alert (latest snapshot) so it can be re-posted.</summary>
    public void SetFiring(string receiver, AlertNotice notice, DateTimeOffset now)
    {
        using var connection = store.Open();
        using var command = connection.CreateCommand();
        command.CommandText = """
            INSERT INTO outbox_firing (receiver, incident_id, notification_key, snapshot, updated_at) VALUES ($receiver, $incident, $key, $snapshot, $now)
            ON CONFLICT (receiver, incident_id) DO UPDATE SET notification_key = excluded.notification_key, snapshot = excluded.snapshot, updated_at = excluded.updated_at
            """;
        command.Parameters.AddWithValue("$receiver", receiver);
        command.Parameters.AddWithValue("$incident", notice.Incident.Id);
        command.Parameters.AddWithValue("$key", notice.NotificationKey);
        command.Parameters.AddWithValue("$snapshot", JsonSerializer.Serialize(notice.Incident, Json));
        command.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
        command.ExecuteNonQuery();
    }

    public void ClearFiring(string receiver, string incidentId)
    {
        using var connection = store.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "DELETE FROM outbox_firing WHERE receiver = $receiver AND incident_id = $incident";
        command.Parameters.AddWithValue("$receiver", receiver);
        command.Parameters.AddWithValue("$incident", incidentId);
        command.ExecuteNonQuery();
    }

    public IReadOnlyList<AlertNotice> Firing(string receiver)
    {
        using var connection = store.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT notification_key, snapshot FROM outbox_firing WHERE receiver = $receiver ORDER BY incident_id";
        command.Parameters.AddWithValue("$receiver", receiver);
        var result = new List<AlertNotice>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            result.Add(new AlertNotice(IncidentChangeKind.Opened, JsonSerializer.Deserialize<IncidentSnapshot>(reader.GetString(1), Json)!, reader.GetString(0)));
        }

        return result;
    }

    private static DateTimeOffset Ms(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);

    /// <summary>For callers that must not fail the detection path on a storage error.</summary>
    public static bool IsStorageError(Exception ex) => ex is SqliteException or InvalidOperationException;
}
