using System.Collections.ObjectModel;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using FleetWatch.Contracts;
using FleetWatch.Dashboard;
using FleetWatch.Dashboard.Fleet;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenQA.Selenium.Chrome;

namespace FleetWatch.Bench.DashboardFeed;

/// <summary>
/// Measures the dashboard's live feed at fleet scale: snapshot size and encode time, delta bytes per second with a
/// share of the GPUs changing every second, and, in headless Chromium, time to first draw of the whole fleet and
/// the cost of applying and drawing each delta. Prints figures; asserts nothing.
/// usage: DashboardFeed [--gpus 10000,100000] [--seconds 10] [--churn 0.02] [--no-browser]
/// </summary>
public static class Program
{
    private const string Key = "bench-key-0123456789abcdef";

    public static async Task<int> Main(string[] args)
    {
        var sizes = new[] { 10_000, 100_000 };
        var seconds = 10;
        var churn = 0.02; // research/dashboard-alerting-anchors.md section 1.9: "about 2% of cells change bucket per second"
        var browser = true;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--gpus": sizes = [.. args[++i].Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))]; break;
                case "--seconds": seconds = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--churn": churn = double.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--no-browser": browser = false; break;
                default:
                    await Console.Error.WriteLineAsync($"DashboardFeed: unknown argument '{args[i]}'");
                    return 2;
            }
        }

        Console.WriteLine($"dashboard feed benchmark: churn {churn:P0} of GPUs per second, {seconds} s per measurement, {Environment.ProcessorCount} cores");
        foreach (var gpus in sizes)
        {
            await RunAsync(gpus, seconds, churn, browser);
        }

        return 0;
    }

    private static async Task RunAsync(int gpus, int seconds, double churn, bool browser)
    {
        var controller = new ChurningController(gpus, churn);
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["FleetWatch:Dashboard:Auth:Mode"] = "ApiKey",
            ["FleetWatch:Dashboard:Auth:ApiKey"] = Key,
            ["FleetWatch:Dashboard:SnapshotTimeout"] = "00:01:00",
        });
        builder.Services.AddFleetDashboard(builder.Configuration);
        builder.Services.AddSingleton(controller);
        builder.Services.AddHostedService<ChurnPublisher>();
        builder.Services.AddMassTransit(bus =>
        {
            bus.AddFleetDashboardConsumers();
            bus.AddConsumer<SnapshotResponder>();
            bus.UsingInMemory((context, cfg) => cfg.ConfigureEndpoints(context));
        });
        await using var app = builder.Build();
        app.MapFleetDashboard();
        await app.StartAsync();
        var address = new Uri(app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First());
        var view = app.Services.GetRequiredService<FleetView>();
        var wait = Stopwatch.StartNew();
        while (view.CellCount < gpus && wait.Elapsed < TimeSpan.FromMinutes(2))
        {
            await Task.Delay(100);
        }

        Console.WriteLine();
        Console.WriteLine($"== {gpus:N0} GPUs ({gpus / 8:N0} nodes): dashboard had the controller snapshot after {wait.Elapsed.TotalSeconds:0.0} s");

        using var http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(2) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Key);
        var snapshotBytes = 0;
        var encode = new List<double>();
        for (var i = 0; i < 5; i++)
        {
            var watch = Stopwatch.StartNew();
            snapshotBytes = (await http.GetByteArrayAsync("/api/fleet")).Length;
            encode.Add(watch.Elapsed.TotalMilliseconds);
        }

        Console.WriteLine($"snapshot (GET /api/fleet): {snapshotBytes / 1024.0:N0} KiB, {snapshotBytes / (double)gpus:0.0} B/GPU, "
                          + $"served in {encode.Skip(1).Min():0.0} ms (best of 4 after the first)");

        var (deltaBytes, deltas, streamSnapshot) = await MeasureStreamAsync(http, seconds);
        Console.WriteLine($"stream: snapshot event {streamSnapshot / 1024.0:N0} KiB; {deltas} deltas in {seconds} s, "
                          + $"{deltaBytes / (double)seconds / 1024.0:N1} KiB/s ({deltaBytes / Math.Max(1, deltas) / 1024.0:N1} KiB per delta, "
                          + $"~{gpus * churn:N0} changed GPUs per second)");

        if (browser)
        {
            MeasureBrowser(address, gpus, seconds);
        }

        await app.StopAsync();
    }

    private static async Task<(long Bytes, int Deltas, long Snapshot)> MeasureStreamAsync(HttpClient http, int seconds)
    {
        using var response = await http.GetAsync("/api/fleet/stream", HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(), Encoding.UTF8);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(seconds + 0.5));
        long bytes = 0, snapshot = 0;
        var deltas = 0;
        var inSnapshot = false;
        try
        {
            while (await reader.ReadLineAsync(stop.Token) is { } line)
            {
                if (line.StartsWith("event: ", StringComparison.Ordinal))
                {
                    inSnapshot = line == "event: snapshot";
                    deltas += inSnapshot ? 0 : 1;
                }

                // Bytes on the wire: the line and its newline.
                if (inSnapshot)
                {
                    snapshot += Encoding.UTF8.GetByteCount(line) + 1;
                }
                else
                {
                    bytes += Encoding.UTF8.GetByteCount(line) + 1;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Measurement window over.
        }

        return (bytes, deltas, snapshot);
    }

    private static void MeasureBrowser(Uri address, int gpus, int seconds)
    {
        var browser = Environment.GetEnvironmentVariable("FLEETWATCH_CHROMIUM") ?? "/usr/bin/chromium";
        var driverPath = Environment.GetEnvironmentVariable("FLEETWATCH_CHROMEDRIVER") ?? "/usr/bin/chromedriver";
        if (!File.Exists(browser) || !File.Exists(driverPath))
        {
            Console.WriteLine($"browser: skipped, {browser} or {driverPath} missing");
            return;
        }

        var profile = Directory.CreateTempSubdirectory("fleetwatch-bench-").FullName;
        var options = new ChromeOptions { BinaryLocation = browser };
        options.AddArguments("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic", "--window-size=1440,960", $"--user-data-dir={profile}");
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(driverPath)!, Path.GetFileName(driverPath));
        service.SuppressInitialDiagnosticInformation = true;
        using var driver = new ChromeDriver(service, options, TimeSpan.FromMinutes(2));
        try
        {
            driver.Navigate().GoToUrl(new Uri(address, $"/?key={Key}"));
            var wait = Stopwatch.StartNew();
            while (driver.ExecuteScript("return document.getElementById('heatmap').dataset.drawnCells") as string != gpus.ToString(CultureInfo.InvariantCulture)
                   && wait.Elapsed < TimeSpan.FromMinutes(1))
            {
                Thread.Sleep(50);
            }

            var first = Convert.ToDouble(driver.ExecuteScript("return window.fleetwatch.stats.firstDrawAt"), CultureInfo.InvariantCulture);
            var full = driver.ExecuteScript("return document.getElementById('heatmap').dataset.fullDrawMs");
            var loaded = Convert.ToDouble(driver.ExecuteScript("return performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"), CultureInfo.InvariantCulture);
            var snapshotAt = Convert.ToDouble(driver.ExecuteScript("return window.fleetwatch.stats.snapshotAt"), CultureInfo.InvariantCulture);
            var snapshotMs = Convert.ToDouble(driver.ExecuteScript("return window.fleetwatch.stats.snapshotMs"), CultureInfo.InvariantCulture);
            driver.ExecuteScript("window.fleetwatch.stats.applyMs.length = 0; window.fleetwatch.stats.drawMs.length = 0; window.fleetwatch.stats.bytes = 0;");
            Thread.Sleep(TimeSpan.FromSeconds(seconds));
            var apply = Numbers(driver.ExecuteScript("return window.fleetwatch.stats.applyMs"));
            var draw = Numbers(driver.ExecuteScript("return window.fleetwatch.stats.drawMs"));
            var bytes = Convert.ToDouble(driver.ExecuteScript("return window.fleetwatch.stats.bytes"), CultureInfo.InvariantCulture);
            Console.WriteLine($"browser: whole fleet first drawn {first:N0} ms after navigation start (page loaded at {loaded:N0} ms, "
                              + $"snapshot event at {snapshotAt:N0} ms, parsed and applied in {snapshotMs:N0} ms, full redraw {full} ms)");
            Console.WriteLine($"browser: per delta parse+apply p50 {Percentile(apply, 0.5):0.00} ms, p99 {Percentile(apply, 0.99):0.00} ms; "
                              + $"per frame draw p50 {Percentile(draw, 0.5):0.00} ms, p99 {Percentile(draw, 0.99):0.00} ms ({apply.Count} deltas); "
                              + $"feed {bytes / seconds / 1024:N1} KiB/s of event data");
            var shot = Path.Combine(AppContext.BaseDirectory, $"dashboard-{gpus}.png");
            driver.GetScreenshot().SaveAsFile(shot);
            Console.WriteLine($"browser: screenshot {shot}");
        }
        finally
        {
            driver.Quit();
            try
            {
                Directory.Delete(profile, recursive: true);
            }
            catch (IOException)
            {
                // A lock file may linger a moment; it is under the temp directory.
            }
        }
    }

    private static List<double> Numbers(object? value) =>
        value is ReadOnlyCollection<object> items ? [.. items.Select(x => Convert.ToDouble(x, CultureInfo.InvariantCulture)).Order()] : [];

    private static double Percentile(List<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];
}

/// <summary>A controller stand-in whose GPUs drift: each second a share of them changes temperature, some health.</summary>
internal sealed class ChurningController
{
    private readonly Lock gate = new();
    private readonly GpuCell[] cells;
    private readonly HashSet<int> changed = [];
    private readonly Random random = new(42);
    private readonly double churn;
    private long version;

    public ChurningController(int gpus, double churn)
    {
        this.churn = churn;
        cells = new GpuCell[gpus];
        for (var i = 0; i < gpus; i++)
        {
            var node = i / 8;
            cells[i] = new GpuCell
            {
                Node = $"n{node:00000}",
                Gpu = i % 8,
                Rack = $"rack-{node / 16:0000}",
                Health = GpuHealth.Healthy,
                Uuid = $"GPU-{i:x8}-0000-4000-8000-{random.NextInt64(0, 0xFFFFFFFFFFFF):x12}",
                TemperatureC = (short)random.Next(40, 75),
                PowerW = (short)random.Next(250, 700),
                UtilizationPct = (byte)random.Next(60, 100),
            };
        }
    }

    public string Run { get; } = "bench";

    public FleetFrame Snapshot()
    {
        lock (gate)
        {
            return Frame(true, cells);
        }
    }

    public FleetFrame Tick()
    {
        lock (gate)
        {
            for (var k = 0; k < cells.Length * churn; k++)
            {
                var i = random.Next(cells.Length);
                var health = random.NextDouble() < 0.1 ? (GpuHealth)random.Next(1, 5) : cells[i].Health;
                cells[i] = cells[i] with { Health = health, TemperatureC = (short)random.Next(40, 90) };
                changed.Add(i);
            }

            version++;
            var frame = Frame(false, [.. changed.Select(i => cells[i])]);
            changed.Clear();
            return frame;
        }
    }

    private FleetFrame Frame(bool snapshot, IReadOnlyList<GpuCell> frameCells) => new()
    {
        Version = version,
        ControllerRun = Run,
        IsSnapshot = snapshot,
        Time = TimeProvider.System.GetUtcNow(),
        Cells = frameCells,
        OpenIncidents = [],
        Counts = new FleetCounts(0, 0, 0, 0, 0, cells.Length / 8, 0),
    };
}

internal sealed class SnapshotResponder(ChurningController controller) : IConsumer<GetFleetSnapshot>
{
    public Task Consume(ConsumeContext<GetFleetSnapshot> context) => context.RespondAsync(controller.Snapshot());
}

/// <summary>One delta a second, the controller's rate.</summary>
internal sealed class ChurnPublisher(ChurningController controller, IBus bus) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            await bus.Publish(controller.Tick(), stoppingToken);
        }
    }
}
