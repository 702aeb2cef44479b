using System.Collections.Concurrent;
using System.Net.Http.Headers;
using FleetWatch.Dashboard.Fleet;
using MassTransit;
using MassTransit.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Dashboard.Tests;

/// <summary>
/// The dashboard as the lead's host composes it (AddFleetDashboard, AddFleetDashboardConsumers, MapFleetDashboard),
/// on Kestrel at a free loopback port, with MassTransit's in-memory transport under the test harness and an optional
/// <see cref="FakeController"/> on the same bus.
/// </summary>
public sealed class DashboardHost : IAsyncDisposable
{
    public const string ApiKey = "test-key-0123456789abcdef";

    private readonly WebApplication app;

    private DashboardHost(WebApplication app, Uri address, ListLoggerProvider logs)
    {
        this.app = app;
        Address = address;
        Logs = logs;
    }

    public Uri Address { get; }

    public ListLoggerProvider Logs { get; }

    public IServiceProvider Services => app.Services;

    public ITestHarness Harness => app.Services.GetRequiredService<ITestHarness>();

    public FleetView View => app.Services.GetRequiredService<FleetView>();

    public static Dictionary<string, string?> ApiKeyConfig(params (string Key, string Value)[] extra)
    {
        var config = new Dictionary<string, string?>
        {
            ["FleetWatch:Dashboard:Auth:Mode"] = "ApiKey",
            ["FleetWatch:Dashboard:Auth:ApiKey"] = ApiKey,
            ["FleetWatch:Dashboard:SnapshotRetryInitial"] = "00:00:00.2",
            ["FleetWatch:Dashboard:SnapshotRetryMax"] = "00:00:01",
            ["FleetWatch:Dashboard:SnapshotTimeout"] = "00:00:01",
        };
        foreach (var (key, value) in extra)
        {
            config[key] = value;
        }

        return config;
    }

    public static WebApplication Build(IDictionary<string, string?> config, FakeController? controller, ListLoggerProvider logs)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing" });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Configuration.AddInMemoryCollection(config);
        builder.Logging.ClearProviders().AddProvider(logs).SetMinimumLevel(LogLevel.Information);
        builder.Services.AddFleetDashboard(builder.Configuration);
        if (controller is not null)
        {
            builder.Services.AddSingleton(controller);
            builder.Services.AddHostedService<FakeFramePublisher>();
        }

        builder.Services.AddMassTransitTestHarness(bus =>
        {
            bus.AddFleetDashboardConsumers();
            if (controller is not null)
            {
                bus.AddConsumer<FakeSnapshotResponder>();
                bus.AddConsumer<FakeFaultConsumer>();
            }

            bus.UsingInMemory((context, cfg) => cfg.ConfigureEndpoints(context));
        });
        var app = builder.Build();
        app.MapFleetDashboard();
        return app;
    }

    public static async Task<DashboardHost> StartAsync(IDictionary<string, string?> config, FakeController? controller = null)
    {
        var logs = new ListLoggerProvider();
        var app = Build(config, controller, logs);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        return new DashboardHost(app, new Uri(address), logs);
    }

    public HttpClient Client(bool authenticated = true)
    {
        var client = new HttpClient { BaseAddress = Address, Timeout = TimeSpan.FromSeconds(20) };
        if (authenticated)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey);
        }

        return client;
    }

    /// <summary>Polls <paramref name="condition"/> until it holds or <paramref name="timeout"/> passes (then fails).</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = TimeProvider.System.GetTimestamp() + (long)(timeout.TotalSeconds * TimeProvider.System.TimestampFrequency);
        while (!condition())
        {
            if (TimeProvider.System.GetTimestamp() > deadline)
            {
                Assert.Fail($"timed out after {timeout.TotalSeconds:0.#} s waiting for: {what}");
            }

            await Task.Delay(50);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
}

/// <summary>Keeps every log line, so tests can check what was logged (audit, warnings).</summary>
public sealed class ListLoggerProvider : ILoggerProvider
{
    public ConcurrentQueue<(string Category, LogLevel Level, EventId Id, string Message)> Entries { get; } = new();

    public ILogger CreateLogger(string categoryName) => new ListLogger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class ListLogger(ListLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Entries.Enqueue((category, logLevel, eventId, formatter(state, exception)));
    }
}
