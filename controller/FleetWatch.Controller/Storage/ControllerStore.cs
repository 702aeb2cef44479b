using FleetWatch.Common;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Storage;

/// <summary>
/// One table group's schema. Each concern (incidents, outbox, silences, jobs, actions...) registers its own; the
/// store applies every schema once, in registration order, when it is first opened. Statements must be idempotent
/// (<c>CREATE TABLE IF NOT EXISTS</c>): there is no migration history, only additive schemas. A column added to a table
/// after a release is also listed in <see cref="AddedColumns"/>, so a database written by the older release gains it.
/// </summary>
public sealed record StoreSchema(string Name, string Sql, IReadOnlyList<StoreColumn>? AddedColumns = null);

/// <summary>A nullable column added to an existing table (<c>ALTER TABLE ... ADD COLUMN</c> when a database lacks it).</summary>
public sealed record StoreColumn(string Table, string Column, string Type);

/// <summary>
/// The controller's SQLite database (STYLE: one store, a file path in configuration). WAL mode lets readers (the
/// HTTP API) run while a writer commits; <c>synchronous=NORMAL</c> in WAL mode loses no committed transaction on a
/// process crash, only possibly the last ones on a power loss. Connections are cheap (Microsoft.Data.Sqlite pools
/// them): open one per unit of work and dispose it.
/// </summary>
public sealed class ControllerStore
{
    private readonly string _connectionString;
    private readonly IReadOnlyList<StoreSchema> _schemas;
    private readonly Lock _gate = new();
    private readonly SqliteConnection? _memoryKeeper;
    private bool _initialised;

    public ControllerStore(IOptions<StorageOptions> options, IEnumerable<StoreSchema> schemas)
    {
        var o = options.Value;
        var memory = o.Path == ":memory:";
        if (!memory)
        {
            var full = System.IO.Path.GetFullPath(o.Path);
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
            FilePath = full;
        }

        var builder = new SqliteConnectionStringBuilder
        {
            // A shared in-memory database lives as long as one connection to it is open (kept below).
            DataSource = memory ? $"fleetwatch-{Guid.NewGuid():N}" : FilePath,
            Mode = memory ? SqliteOpenMode.Memory : SqliteOpenMode.ReadWriteCreate,
            Cache = memory ? SqliteCacheMode.Shared : SqliteCacheMode.Default,
            DefaultTimeout = (int)Math.Ceiling(o.BusyTimeout.TotalSeconds),
            Pooling = true,
        };
        _connectionString = builder.ToString();
        _schemas = schemas.ToList();
        if (memory)
        {
            _memoryKeeper = new SqliteConnection(_connectionString);
            _memoryKeeper.Open();
        }
    }

    /// <summary>The database file, or null for an in-memory store.</summary>
    public string? FilePath { get; }

    /// <summary>Opens a connection with the schemas applied. The caller disposes it.</summary>
    public SqliteConnection Open()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        using (var pragma = connection.CreateCommand())
        {
            pragma.CommandText = "PRAGMA foreign_keys=ON;";
            pragma.ExecuteNonQuery();
        }

        EnsureSchemas(connection);
        return connection;
    }

    private static void AddColumnIfMissing(SqliteConnection connection, SqliteTransaction tx, StoreColumn added)
    {
        using var probe = connection.CreateCommand();
        probe.Transaction = tx;
        probe.CommandText = "SELECT COUNT(*) FROM pragma_table_info($t) WHERE name = $c";
        probe.Parameters.AddWithValue("$t", added.Table);
        probe.Parameters.AddWithValue("$c", added.Column);
        if (Convert.ToInt64(probe.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) > 0)
        {
            return;
        }

        // Identifiers come from the code's own schema declarations, never from input.
        using var alter = connection.CreateCommand();
        alter.Transaction = tx;
        alter.CommandText = $"ALTER TABLE \"{added.Table}\" ADD COLUMN \"{added.Column}\" {added.Type}";
        alter.ExecuteNonQuery();
    }

    private void EnsureSchemas(SqliteConnection connection)
    {
        lock (_gate)
        {
            if (_initialised)
            {
                return;
            }

            using (var wal = connection.CreateCommand())
            {
                wal.CommandText = FilePath is null ? "PRAGMA synchronous=NORMAL;" : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;";
                wal.ExecuteNonQuery();
            }

            using var tx = connection.BeginTransaction();
            foreach (var schema in _schemas)
            {
                using var command = connection.CreateCommand();
                command.Transaction = tx;
                command.CommandText = schema.Sql;
                try
                {
                    command.ExecuteNonQuery();
                    foreach (var added in schema.AddedColumns ?? [])
                    {
                        AddColumnIfMissing(connection, tx, added);
                    }
                }
                catch (SqliteException ex)
                {
                    throw new InvalidOperationException($"{StorageOptions.Section}: applying schema '{schema.Name}' to '{FilePath ?? ":memory:"}' failed: {ex.Message}", ex);
                }
            }

            tx.Commit();
            _initialised = true;
        }
    }
}

public static class ControllerStoreServiceCollectionExtensions
{
    /// <summary>The store itself (idempotent: every concern that needs it calls this, then adds its <see cref="StoreSchema"/>).</summary>
    public static IServiceCollection AddControllerStore(this IServiceCollection services, IConfiguration configuration)
    {
        if (services.Any(d => d.ServiceType == typeof(ControllerStore)))
        {
            return services;
        }

        services.AddValidatedOptions<StorageOptions>(configuration, StorageOptions.Section);
        services.TryAddSingleton<ControllerStore>();
        return services;
    }

    /// <summary>Registers one table group's schema.</summary>
    public static IServiceCollection AddStoreSchema(this IServiceCollection services, string name, string sql, params StoreColumn[] addedColumns) =>
        services.AddSingleton(new StoreSchema(name, sql, addedColumns));
}
