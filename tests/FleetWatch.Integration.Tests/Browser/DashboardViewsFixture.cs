using System.Collections.ObjectModel;
using FleetWatch.Cli.Hosting;
using FleetWatch.Integration.Tests.Support;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;

namespace FleetWatch.Integration.Tests.Browser;

/// <summary>
/// One all-in-one host (controller, dashboard, 64 simulated nodes, no demo faults) and one headless Debian Chromium signed
/// in with the run's key, shared by the view tests so the set stays well under a minute and a half.
/// </summary>
public sealed class DashboardViewsFixture : IAsyncLifetime
{
    public const string Key = "views-test-key-0123456789abcdef";

    private string? _profile;

    public WebApplication App { get; private set; } = null!;

    public Uri Address { get; private set; } = null!;

    public ChromeDriver Driver { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _profile = Directory.CreateTempSubdirectory("fw-views-").FullName;
        App = FleetWatchHost.Build(Role.AllInOne,
        [
            $"--FleetWatch:Storage:Path={Path.Combine(_profile, "controller.db")}", // the controller store of this run only
            "--urls", "http://127.0.0.1:0",
            "--FleetWatch:Simulation:Nodes=64",
            "--FleetWatch:Simulation:DemoFaults=false",
            $"--FleetWatch:Dashboard:Auth:ApiKey={Key}",
        ], b => b.Logging.SetMinimumLevel(Microsoft.Extensions.Logging.LogLevel.Warning));
        await App.StartAsync();
        Address = new Uri(App.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        Driver = StartChromium(Path.Combine(_profile, "chromium"));
        Driver.Navigate().GoToUrl(new Uri(Address, $"/?key={Key}"));
        await Wait.UntilAsync(() => Attr(By.Id("summary"), "data-gpus") == "512" && Attr(By.Id("heatmap"), "data-drawn-cells") == "512",
            TimeSpan.FromSeconds(30), "512 GPUs drawn");
    }

    public async Task DisposeAsync()
    {
        Driver?.Quit();
        Driver?.Dispose();
        if (_profile is not null)
        {
            try
            {
                Directory.Delete(_profile, recursive: true);
            }
            catch (IOException)
            {
                // Chromium may hold a lock file for a moment; the folder is under the temp directory.
            }
        }

        await App.StopAsync();
        await App.DisposeAsync();
    }

    public HttpClient Client(bool signedIn = true)
    {
        var client = new HttpClient { BaseAddress = Address };
        if (signedIn)
        {
            client.DefaultRequestHeaders.Add("X-Api-Key", Key);
        }

        return client;
    }

    public void Go(string hash) => Driver.Navigate().GoToUrl(new Uri(Address, "/" + hash));

    /// <summary>An attribute of the first match, or null when there is none or a refresh replaced it meanwhile (a poll then asks again).</summary>
    public string? Attr(By by, string name)
    {
        try
        {
            return Driver.FindElements(by) is { Count: > 0 } found ? found[0].GetDomAttribute(name) : null;
        }
        catch (StaleElementReferenceException)
        {
            return null;
        }
    }

    public object? Script(string script, params object[] args) => ((IJavaScriptExecutor)Driver).ExecuteScript(script, args);

    public int[] Pixel(string node, int gpu) => ToInts(Script("return window.fleetwatch.pixel(arguments[0], arguments[1]);", node, gpu));

    public int[] Colour(string name) => ToInts(Script("return window.fleetwatch.healthColour(arguments[0]);", name));

    /// <summary>Saves the current page under the test output, and into docs/ when FLEETWATCH_UPDATE_DOCS=1.</summary>
    public void Screenshot(string name)
    {
        var shot = Path.Combine(AppContext.BaseDirectory, "screenshots", $"dashboard-{name}.png");
        Directory.CreateDirectory(Path.GetDirectoryName(shot)!);
        Driver.GetScreenshot().SaveAsFile(shot);
        if (Environment.GetEnvironmentVariable("FLEETWATCH_UPDATE_DOCS") == "1")
        {
            // docs/dashboard.png (the README's) is the dashboard tests' dark fleet view; these are the per-view pictures.
            File.Copy(shot, Path.Combine(Repo.Root, "docs", $"dashboard-{name}.png"), overwrite: true);
        }
    }

    /// <summary>
    /// Acts on an element, finding it again when a view refresh replaced it between the find and the act (the views
    /// rebuild a section when its data changed). Bounded: a few tries, then the exception.
    /// </summary>
    public void Do(By by, Action<IWebElement> act)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                act(Driver.FindElement(by));
                return;
            }
            catch (StaleElementReferenceException) when (attempt < 5)
            {
                // Replaced under us: find it again.
            }
        }
    }

    /// <summary>Chooses an option of a select element as a person would (the change event fires).</summary>
    public void Select(string id, string value) =>
        Script("const s = document.getElementById(arguments[0]); s.value = arguments[1]; s.dispatchEvent(new Event('change', { bubbles: true }));", id, value);

    /// <summary>prefers-color-scheme for the page (DevTools emulation), to check and picture both themes.</summary>
    public void ColourScheme(string scheme) =>
        Driver.ExecuteCdpCommand("Emulation.setEmulatedMedia", new Dictionary<string, object?>
        {
            ["features"] = new[] { new Dictionary<string, object> { ["name"] = "prefers-color-scheme", ["value"] = scheme } },
        });

    public static bool Same(int[] expected, int[] actual) =>
        expected.Length == 3 && actual.Length == 3 && expected.Zip(actual).All(p => Math.Abs(p.First - p.Second) <= 3);

    private static int[] ToInts(object? value) => value is ReadOnlyCollection<object> items ? [.. items.Select(Convert.ToInt32)] : [];

    private static ChromeDriver StartChromium(string profile)
    {
        Assert.True(File.Exists("/usr/bin/chromium") && File.Exists("/usr/bin/chromedriver"), "apt-get install chromium chromium-driver (scripts/test.sh does)");
        var options = new ChromeOptions { BinaryLocation = "/usr/bin/chromium" };
        options.AddArguments("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic", "--window-size=1440,1000", $"--user-data-dir={profile}");
        var service = ChromeDriverService.CreateDefaultService("/usr/bin", "chromedriver");
        service.SuppressInitialDiagnosticInformation = true;
        return new ChromeDriver(service, options, TimeSpan.FromSeconds(60));
    }
}
