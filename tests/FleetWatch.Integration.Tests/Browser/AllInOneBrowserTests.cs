using System.Collections.ObjectModel;
using System.Net;
using System.Net.Http.Json;
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
/// Debian's headless Chromium against the real all-in-one host (controller + dashboard + simulated fleet on the
/// in-memory bus): the page shows the fleet, and a fault injected through the API shows up within seconds.
/// </summary>
public sealed class AllInOneBrowserTests
{
    private const string Key = "integration-test-key-0123456789";

    [Fact]
    public async Task Fault_injected_through_the_api_appears_on_the_all_in_one_dashboard()
    {
        await using var app = FleetWatchHost.Build(Role.AllInOne,
        [
            "--urls", "http://127.0.0.1:0",
            "--FleetWatch:Simulation:Nodes=64",
            "--FleetWatch:Simulation:DemoFaults=false",
            "--FleetWatch:Storage:Path=:memory:", // incidents persist: a file shared between runs would carry them over
            $"--FleetWatch:Dashboard:Auth:ApiKey={Key}",
        ], b => b.Logging.SetMinimumLevel(Microsoft.Extensions.Logging.LogLevel.Warning));
        await app.StartAsync();
        var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());

        using (var anonymous = new HttpClient { BaseAddress = address })
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/fleet")).StatusCode);
        }

        var profile = Directory.CreateTempSubdirectory("fw-aio-chromium-").FullName;
        using var driver = StartChromium(profile);
        try
        {
            driver.Navigate().GoToUrl(new Uri(address, $"/?key={Key}"));
            var summary = By.Id("summary");
            await Wait.UntilAsync(() => Attr(driver, summary, "data-gpus") == "512" && Attr(driver, summary, "data-healthy") == "512"
                                        && driver.FindElement(By.Id("heatmap")).GetDomAttribute("data-drawn-cells") == "512",
                TimeSpan.FromSeconds(30), "512 healthy GPUs drawn", () => $"summary {driver.FindElement(summary).GetAttribute("outerHTML")}");

            using (var client = new HttpClient { BaseAddress = address })
            {
                client.DefaultRequestHeaders.Add("X-Api-Key", Key);
                using var response = await client.PostAsJsonAsync("/api/faults", new { node = "gpu0042", kind = "xid", gpu = 6, xid = 79 });
                Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            }

            var item = By.CssSelector("#incidents li[data-node='gpu0042'][data-gpu='6']");
            await Wait.UntilAsync(() => Attr(driver, summary, "data-critical") == "1" && driver.FindElements(item).Count == 1
                                        && Same(Colour(driver, "critical"), Pixel(driver, "gpu0042", 6)),
                TimeSpan.FromSeconds(15), "critical count, incident item and critical cell colour");
            Assert.Equal("gpu_fell_off_bus", driver.FindElement(item).GetDomAttribute("data-category"));
            Assert.Equal("1", Attr(driver, summary, "data-open-incidents"));
            Assert.Equal("511", Attr(driver, summary, "data-healthy"));

            var shot = Path.Combine(AppContext.BaseDirectory, "screenshots", "all-in-one.png");
            Directory.CreateDirectory(Path.GetDirectoryName(shot)!);
            driver.GetScreenshot().SaveAsFile(shot);
            if (Environment.GetEnvironmentVariable("FLEETWATCH_UPDATE_DOCS") == "1")
            {
                File.Copy(shot, Path.Combine(Repo.Root, "docs", "dashboard.png"), overwrite: true);
            }
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
                // Chromium may hold a lock file for a moment; the folder is under the temp directory.
            }

            await app.StopAsync();
        }
    }

    private static ChromeDriver StartChromium(string profile)
    {
        Assert.True(File.Exists("/usr/bin/chromium") && File.Exists("/usr/bin/chromedriver"), "apt-get install chromium chromium-driver (scripts/test.sh does)");
        var options = new ChromeOptions { BinaryLocation = "/usr/bin/chromium" };
        options.AddArguments("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic", "--window-size=1440,960", $"--user-data-dir={profile}");
        var service = ChromeDriverService.CreateDefaultService("/usr/bin", "chromedriver");
        service.SuppressInitialDiagnosticInformation = true;
        return new ChromeDriver(service, options, TimeSpan.FromSeconds(60));
    }

    private static string? Attr(IWebDriver driver, By by, string name) => driver.FindElement(by).GetDomAttribute(name);

    private static int[] Pixel(IWebDriver driver, string node, int gpu) =>
        ToInts(((IJavaScriptExecutor)driver).ExecuteScript("return window.fleetwatch.pixel(arguments[0], arguments[1]);", node, gpu));

    private static int[] Colour(IWebDriver driver, string health) =>
        ToInts(((IJavaScriptExecutor)driver).ExecuteScript("return window.fleetwatch.healthColour(arguments[0]);", health));

    private static int[] ToInts(object? value) => value is ReadOnlyCollection<object> items ? [.. items.Select(Convert.ToInt32)] : [];

    private static bool Same(int[] expected, int[] actual) =>
        expected.Length == 3 && actual.Length == 3 && expected.Zip(actual).All(p => Math.Abs(p.First - p.Second) <= 3);
}
