using System.Collections.ObjectModel;
using System.Net;
using System.Net.Http.Json;
using FleetWatch.Contracts;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;

namespace FleetWatch.Dashboard.Tests;

/// <summary>
/// Debian's Chromium, headless through chromedriver, against the dashboard on a loopback port with a fake controller
/// on the in-memory bus: the page draws every GPU, shows the counts, and turns a faulted GPU critical (summary,
/// incident list and a canvas pixel) within a few seconds.
/// </summary>
public sealed class BrowserTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Fault_injected_through_the_api_turns_the_gpu_critical_on_the_page()
    {
        const string node = "gpu-r05n07";
        const int gpu = 3;
        var controller = new FakeController(racks: 16, nodesPerRack: 16);

        // A fleet with some history, so the page shows every state.
        controller.Set("gpu-r02n03", 1, GpuHealth.Warning, 84);
        controller.Set("gpu-r09n12", 6, GpuHealth.Warning, 86);
        controller.Set("gpu-r11n02", 0, GpuHealth.High);
        controller.OpenIncident("gpu-r11n02", 0, Severity.High, "row_remap_pending", "drain_and_reset", "Row remapping pending on GPU 0");
        for (var g = 0; g < 8; g++)
        {
            controller.Set("gpu-r14n09", g, GpuHealth.Unknown);
        }

        controller.OpenIncident("gpu-r14n09", null, Severity.Warning, "node_silent", "investigate", "No sample for 45 s");

        // The controller is not up yet when the page opens.
        controller.Answering = false;
        await using var host = await DashboardHost.StartAsync(DashboardHost.ApiKeyConfig(), controller);
        using var driver = StartChromium(out var profile);
        try
        {
            driver.Navigate().GoToUrl(new Uri(host.Address, $"/?key={DashboardHost.ApiKey}"));
            Assert.DoesNotContain("key=", driver.Url, StringComparison.Ordinal);

            await PollAsync(() => driver.FindElement(By.Id("connection")).GetDomAttribute("data-state") == "waiting"
                                  && driver.FindElement(By.Id("waiting")).Displayed,
                "the page saying it waits for the controller");
            Assert.Contains("Waiting for controller", driver.FindElement(By.Id("waiting")).Text, StringComparison.Ordinal);
            controller.Answering = true;

            var summary = By.Id("summary");
            await PollAsync(() => Attr(driver, summary, "data-gpus") == "2048"
                                  && driver.FindElement(By.Id("heatmap")).GetDomAttribute("data-drawn-cells") == "2048"
                                  && Attr(driver, summary, "data-unknown") == "8",
                "the heatmap drawn with all 2048 GPUs and the seeded states");
            Assert.Equal("live", driver.FindElement(By.Id("connection")).GetDomAttribute("data-state"));
            Assert.Equal("2037", Attr(driver, summary, "data-healthy"));
            Assert.Equal("2", Attr(driver, summary, "data-warning"));
            Assert.Equal("1", Attr(driver, summary, "data-high"));
            Assert.Equal("0", Attr(driver, summary, "data-critical"));
            Assert.Equal("2", Attr(driver, summary, "data-open-incidents"));
            Assert.Contains("2,037 healthy", driver.FindElement(By.Id("summary-text")).GetAttribute("textContent"), StringComparison.Ordinal);
            AssertColour(Colour(driver, "healthy"), Pixel(driver, node, gpu), "healthy GPU before the fault");
            AssertColour(Colour(driver, "high"), Pixel(driver, "gpu-r11n02", 0), "the seeded high GPU");

            using (var client = host.Client())
            {
                using var response = await client.PostAsJsonAsync("/api/faults", new { node, kind = "xid", gpu, xid = 79 });
                Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            }

            var item = By.CssSelector($"#incidents li[data-node='{node}'][data-gpu='{gpu}']");
            await PollAsync(() => Attr(driver, summary, "data-critical") == "1" && driver.FindElements(item).Count == 1
                                  && Same(Colour(driver, "critical"), Pixel(driver, node, gpu)),
                "the critical count, the incident item and the critical cell colour");
            var li = driver.FindElement(item);
            Assert.Equal("critical", li.GetDomAttribute("data-severity"));
            Assert.Equal("gpu_fell_off_bus", li.GetDomAttribute("data-category"));
            Assert.Equal("3", Attr(driver, summary, "data-open-incidents"));
            Assert.Equal("2036", Attr(driver, summary, "data-healthy"));
            AssertColour(Colour(driver, "healthy"), Pixel(driver, node, gpu + 1), "the faulted GPU's neighbour");

            // Keyboard: the heatmap takes focus and arrow keys walk the GPUs, described for screen readers.
            var canvas = driver.FindElement(By.Id("heatmap"));
            canvas.SendKeys(Keys.End);
            canvas.SendKeys(Keys.ArrowLeft);
            Assert.StartsWith("gpu-r16n16 GPU 6", driver.FindElement(By.Id("cell-detail")).GetAttribute("textContent"), StringComparison.Ordinal);
            canvas.SendKeys(Keys.Escape);

            // Selecting the incident focuses its GPU and fills the fault form.
            driver.FindElement(item).Click();
            Assert.Equal(node, driver.FindElement(By.Id("fault-node")).GetDomProperty("value"));

            SaveScreenshot(driver, "dashboard-light.png");

            // Dark theme: the canvas palette follows prefers-color-scheme.
            driver.ExecuteCdpCommand("Emulation.setEmulatedMedia", new Dictionary<string, object?>
            {
                ["features"] = new List<object> { new Dictionary<string, object> { ["name"] = "prefers-color-scheme", ["value"] = "dark" } },
            });
            driver.Navigate().Refresh();
            await PollAsync(() => driver.FindElement(By.Id("heatmap")).GetDomAttribute("data-drawn-cells") == "2048"
                                  && Same(Colour(driver, "critical"), Pixel(driver, node, gpu)),
                "the dark page drawn with the critical GPU");
            Assert.Equal([255, 77, 79], Colour(driver, "critical")); // --health-critical in the dark palette
            driver.FindElement(item).Click();
            var dark = SaveScreenshot(driver, "dashboard.png");
            if (Environment.GetEnvironmentVariable("FLEETWATCH_UPDATE_DOCS") == "1")
            {
                // Opt-in, so an ordinary test run leaves the working tree clean.
                File.Copy(dark, Path.Combine(RepositoryRoot(), "docs", "dashboard.png"), overwrite: true);
            }

            // The silent node comes back: its incident moves to the resolved list and its GPUs are healthy again.
            controller.Resolve("inc-2");
            await PollAsync(() => Attr(driver, summary, "data-unknown") == "0"
                                  && driver.FindElements(By.CssSelector("#resolved li[data-node='gpu-r14n09'][data-category='node_silent']")).Count == 1
                                  && driver.FindElements(By.CssSelector("#incidents li[data-node='gpu-r14n09']")).Count == 0,
                "the resolved incident and the node's GPUs back to healthy");
            Assert.Equal("2", Attr(driver, summary, "data-open-incidents"));
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
                // Chromium may still hold a lock file for a moment; the folder is under the temp directory.
            }
        }
    }

    private static ChromeDriver StartChromium(out string profile)
    {
        var browser = Environment.GetEnvironmentVariable("FLEETWATCH_CHROMIUM") ?? "/usr/bin/chromium";
        var driverPath = Environment.GetEnvironmentVariable("FLEETWATCH_CHROMEDRIVER") ?? "/usr/bin/chromedriver";
        Assert.True(File.Exists(browser) && File.Exists(driverPath),
            $"Chromium ({browser}) and chromedriver ({driverPath}) are needed: apt-get install chromium chromium-driver "
            + "(or set FLEETWATCH_CHROMIUM / FLEETWATCH_CHROMEDRIVER)");
        profile = Directory.CreateTempSubdirectory("fleetwatch-chromium-").FullName;
        var options = new ChromeOptions { BinaryLocation = browser };
        options.AddArguments(
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic", "--window-size=1440,960", $"--user-data-dir={profile}");
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(driverPath)!, Path.GetFileName(driverPath));
        service.HideCommandPromptWindow = true;
        service.SuppressInitialDiagnosticInformation = true;
        return new ChromeDriver(service, options, TimeSpan.FromSeconds(60));
    }

    private static string? Attr(IWebDriver driver, By by, string name) => driver.FindElement(by).GetDomAttribute(name);

    private static int[] Pixel(IWebDriver driver, string node, int gpu) =>
        ToInts(((IJavaScriptExecutor)driver).ExecuteScript("return window.fleetwatch.pixel(arguments[0], arguments[1]);", node, gpu));

    private static int[] Colour(IWebDriver driver, string health) =>
        ToInts(((IJavaScriptExecutor)driver).ExecuteScript("return window.fleetwatch.healthColour(arguments[0]);", health));

    private static int[] ToInts(object? value) =>
        value is ReadOnlyCollection<object> items ? [.. items.Select(Convert.ToInt32)] : [];

    // Canvas colours round-trip exactly for opaque fills; allow a little for colour management.
    private static bool Same(int[] expected, int[] actual) =>
        expected.Length == 3 && actual.Length == 3 && expected.Zip(actual).All(p => Math.Abs(p.First - p.Second) <= 3);

    private static void AssertColour(int[] expected, int[] actual, string what) =>
        Assert.True(Same(expected, actual), $"{what}: expected rgb({string.Join(",", expected)}), canvas has rgb({string.Join(",", actual)})");

    private static async Task PollAsync(Func<bool> condition, string what)
    {
        await DashboardHost.WaitUntilAsync(() =>
        {
            try
            {
                return condition();
            }
            catch (WebDriverException)
            {
                return false; // the page is between renders (stale element, script before load)
            }
        }, Patience, what);
    }

    private static string SaveScreenshot(ChromeDriver driver, string name)
    {
        var folder = Path.Combine(AppContext.BaseDirectory, "screenshots");
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, name);
        driver.GetScreenshot().SaveAsFile(path);
        return path;
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "FleetWatch.sln")))
            {
                Directory.CreateDirectory(Path.Combine(dir.FullName, "docs"));
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"FleetWatch.sln not found above {AppContext.BaseDirectory}");
    }
}
