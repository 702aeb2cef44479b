using FleetWatch.Contracts;
using FleetWatch.Controller.Alerting;
using FleetWatch.Controller.Incidents;
using FleetWatch.Controller.Storage;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Controller.Tests.Alerting;

/// <summary>
/// The real delivery engine (options binding and validation, SQLite outbox in a file, senders, HTTP client) built from
/// the same <c>AddAlertDelivery</c> the controller uses, on a database file the test chooses.
/// </summary>
public sealed class DeliveryHarness : IAsyncDisposable
{
    private readonly ServiceProvider _provider;

    private DeliveryHarness(ServiceProvider provider)
    {
        _provider = provider;
        Delivery = provider.GetRequiredService<WebhookDelivery>();
        Metrics = provider.GetRequiredService<AlertMetrics>();
        Outbox = provider.GetRequiredService<AlertOutbox>();
    }

    public WebhookDelivery Delivery { get; }

    public AlertMetrics Metrics { get; }

    public AlertOutbox Outbox { get; }

    public IServiceProvider Services => _provider;

    /// <summary>Starts the engine; with <paramref name="time"/> (a FakeTimeProvider) every clock of it is the test's.</summary>
    public static async Task<DeliveryHarness> StartAsync(string databasePath, IDictionary<string, string?> settings, TimeProvider? time = null)
    {
        var services = new ServiceCollection();
        if (time is not null)
        {
            services.AddSingleton(time);
        }

        services.AddLogging(l => l.SetMinimumLevel(LogLevel.Warning));
        var all = new Dictionary<string, string?>(settings)
        {
            [$"{StorageOptions.Section}:Path"] = databasePath,
        };
        all.TryAdd($"{AlertingOptions.Section}:InitialBackoff", "00:00:00.050");
        all.TryAdd($"{AlertingOptions.Section}:ExternalUrl", "https://fleetwatch.test");
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(all).Build();
        services.AddAlertDelivery(configuration);
        var provider = services.BuildServiceProvider();
        var harness = new DeliveryHarness(provider);
        await ((IHostedService)harness.Delivery).StartAsync(CancellationToken.None);
        return harness;
    }

    public async ValueTask DisposeAsync()
    {
        await ((IHostedService)Delivery).StopAsync(CancellationToken.None);
        await _provider.DisposeAsync();
    }

    public static IncidentSnapshot Incident(string id, Severity severity = Severity.Critical, string node = "gpu0003", int? gpu = 5, string category = "gpu_fell_off_bus", DateTimeOffset? resolved = null) => new()
    {
        Id = id,
        Node = node,
        GpuIndex = gpu,
        GpuUuid = gpu is null ? null : $"GPU-{id}",
        Severity = severity,
        Category = category,
        Action = "restart_node",
        OpenedAt = new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero),
        ResolvedAt = resolved,
        Findings = [new FindingInfo { Rule = "xid:79", Severity = severity, Message = "Xid 79: GPU has fallen off the bus", FirstSeen = new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero), LastSeen = new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero) }],
    };

    public static IncidentChange Opened(string id, Severity severity = Severity.Critical, string node = "gpu0003") => new(IncidentChangeKind.Opened, Incident(id, severity, node));

    public static IncidentChange Resolved(string id, Severity severity = Severity.Critical, string node = "gpu0003") =>
        new(IncidentChangeKind.Resolved, Incident(id, severity, node, resolved: new DateTimeOffset(2026, 11, 29, 12, 5, 0, TimeSpan.Zero)));
}

/// <summary>A temporary directory for one test's database, removed afterwards (SQLite pools closed first).</summary>
public sealed class TempDatabase : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fleetwatch-outbox-").FullName;

    public string Path => System.IO.Path.Combine(_dir, "controller.db");

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }
}

/// <summary>Bounded polling: every wait has a limit and says what it waited for.</summary>
public static class Poll
{
    /// <summary>Polls while moving a fake clock forward by <paramref name="step"/> between looks (timers due on it fire).</summary>
    public static async Task AdvancingUntilAsync(Microsoft.Extensions.Time.Testing.FakeTimeProvider time, TimeSpan step, Func<bool> condition, TimeSpan limit, string what)
    {
        using var cts = new CancellationTokenSource(limit);
        while (!condition())
        {
            if (cts.IsCancellationRequested)
            {
                throw new TimeoutException($"timed out after {limit.TotalSeconds:F0} s (fake clock at {time.GetUtcNow():O}) waiting for {what}");
            }

            time.Advance(step);
            await Task.Delay(20);
        }
    }

    public static async Task UntilAsync(Func<bool> condition, TimeSpan limit, string what)
    {
        using var cts = new CancellationTokenSource(limit);
        while (!condition())
        {
            if (cts.IsCancellationRequested)
            {
                throw new TimeoutException($"timed out after {limit.TotalSeconds:F0} s waiting for {what}");
            }

            await Task.Delay(20);
        }
    }
}
