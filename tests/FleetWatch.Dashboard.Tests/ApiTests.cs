using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using FleetWatch.Contracts;
using MassTransit.Testing;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Dashboard.Tests;

/// <summary>One dashboard host with a fake controller, shared by the API tests (each test uses its own nodes).</summary>
public sealed class ApiHostFixture : IAsyncLifetime
{
    public FakeController Controller { get; } = new(racks: 2, nodesPerRack: 4);

    public DashboardHost Host { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Host = await DashboardHost.StartAsync(DashboardHost.ApiKeyConfig(), Controller);
        await DashboardHost.WaitUntilAsync(() => Host.View.CellCount == Controller.GpuCount, TimeSpan.FromSeconds(10), "the first snapshot");
    }

    public async Task DisposeAsync() => await Host.DisposeAsync();
}

/// <summary>The HTTP side against the real host on loopback, with a fake controller on the in-memory bus.</summary>
public sealed class ApiTests(ApiHostFixture fixture) : IClassFixture<ApiHostFixture>
{
    private readonly FakeController controller = fixture.Controller;
    private readonly DashboardHost host = fixture.Host;

    private int PublishedFaults => host.Harness.Published.Select<InjectSimulatedFault>().Count();

    [Theory]
    [InlineData("GET", "/")]
    [InlineData("GET", "/api/fleet")]
    [InlineData("HEAD", "/api/fleet")]
    [InlineData("GET", "/api/fleet/stream")]
    [InlineData("GET", "/assets/app.js")]
    [InlineData("POST", "/api/faults")]
    public async Task Every_endpoint_but_healthz_answers_401_without_credentials(string method, string path)
    {
        using var client = host.Client(authenticated: false);
        var published = PublishedFaults;
        using var request = new HttpRequestMessage(new HttpMethod(method), path)
        {
            Content = method == "POST" ? JsonContent.Create(new { node = "gpu-r01n01", kind = "xid", gpu = 0, xid = 79 }) : null,
        };

        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(published, PublishedFaults);
    }

    [Theory]
    [InlineData("Authorization", "Bearer wrong-key-0123456789")]
    [InlineData("X-Api-Key", "wrong-key-0123456789")]
    [InlineData("Cookie", "fleetwatch_session=forged")]
    public async Task Wrong_credentials_are_401(string header, string value)
    {
        using var client = host.Client(authenticated: false);
        client.DefaultRequestHeaders.TryAddWithoutValidation(header, value);

        using var response = await client.GetAsync("/api/fleet");

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Fact]
    public async Task Healthz_is_open_and_says_the_view_is_live()
    {
        using var client = host.Client(authenticated: false);
        using var doc = JsonDocument.Parse(await client.GetStringAsync("/healthz"));
        Assert.Equal("live", doc.RootElement.GetProperty("fleet").GetString());
    }

    [Fact]
    public async Task X_Api_Key_header_is_accepted_and_fleet_json_has_every_cell()
    {
        using var client = host.Client(authenticated: false);
        client.DefaultRequestHeaders.Add("X-Api-Key", DashboardHost.ApiKey);

        using var doc = JsonDocument.Parse(await client.GetStringAsync("/api/fleet"));

        Assert.Equal(controller.GpuCount, doc.RootElement.GetProperty("cells").GetArrayLength());
        var counts = doc.RootElement.GetProperty("counts");
        Assert.Equal(controller.GpuCount, new[] { "healthy", "warning", "high", "critical", "unknown" }.Sum(k => counts.GetProperty(k).GetInt32()));
        Assert.Equal(8, doc.RootElement.GetProperty("nodes").GetArrayLength());
        Assert.Equal("run-1", doc.RootElement.GetProperty("run").GetString());
    }

    [Fact]
    public async Task Key_in_the_page_url_becomes_an_HttpOnly_strict_cookie_and_a_redirect_without_the_key()
    {
        using var handler = new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false };
        using var client = new HttpClient(handler) { BaseAddress = host.Address };

        using var login = await client.GetAsync($"/?key={DashboardHost.ApiKey}&view=fleet");

        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        Assert.Equal("/?view=fleet", login.Headers.Location!.OriginalString);
        var cookie = Assert.Single(login.Headers.GetValues("Set-Cookie"));
        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(DashboardHost.ApiKey, cookie, StringComparison.Ordinal);

        using var page = new HttpRequestMessage(HttpMethod.Get, "/");
        page.Headers.Add("Cookie", cookie.Split(';')[0]);
        using var response = await client.SendAsync(page);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType!.MediaType);
        Assert.Contains("default-src 'self'", response.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);

        using var wrong = await client.GetAsync("/?key=not-the-key-at-all");
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Equal("text/html", wrong.Content.Headers.ContentType!.MediaType);
        Assert.Contains("/?key=KEY", await wrong.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Page_assets_are_embedded_with_content_types_and_versioned_caching()
    {
        using var client = host.Client();
        var page = await client.GetStringAsync("/");
        var scripts = System.Text.RegularExpressions.Regex.Matches(page, "/assets/([a-z.]+)\\?v=([0-9a-f]{16})");
        Assert.Equal(["app.css", "app.js", "favicon.svg", "views.js"], scripts.Select(m => m.Groups[1].Value).Distinct().Order());
        Assert.DoesNotContain("{{", page, StringComparison.Ordinal);
        Assert.DoesNotContain("http://", page, StringComparison.Ordinal); // nothing from outside
        Assert.DoesNotContain("https://", page, StringComparison.Ordinal);

        var js = scripts.First(m => m.Groups[1].Value == "app.js");
        using var versioned = await client.GetAsync(js.Value);
        Assert.Equal("text/javascript", versioned.Content.Headers.ContentType!.MediaType);
        Assert.Contains("immutable", versioned.Headers.CacheControl!.ToString(), StringComparison.Ordinal);

        using var css = await client.GetAsync("/assets/app.css");
        Assert.Equal("text/css", css.Content.Headers.ContentType!.MediaType);
        Assert.True(css.Headers.CacheControl!.NoCache);

        using var again = new HttpRequestMessage(HttpMethod.Get, "/assets/app.css");
        again.Headers.IfNoneMatch.Add(css.Headers.ETag!);
        using var notModified = await client.SendAsync(again);
        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);

        using var missing = await client.GetAsync("/assets/nope.js");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        using var template = await client.GetAsync("/assets/index.html");
        Assert.Equal(HttpStatusCode.NotFound, template.StatusCode);
    }

    public static TheoryData<string, string, string> BadBodies => new()
    {
        { """{"kind":"xid","gpu":0,"xid":79}""", "node", "required" },
        { """{"node":"gpu-r01n01","kind":"meltdown","gpu":0}""", "kind", "'meltdown' is not one of" },
        { """{"node":"gpu-r01n01","gpu":0}""", "kind", "required" },
        { """{"node":"gpu-r01n01","kind":"xid","gpu":0}""", "xid", "required for kind 'xid'" },
        { """{"node":"gpu-r01n01","kind":"xid","xid":79}""", "gpu", "required for kind 'xid'" },
        { """{"node":"gpu-r01n01","kind":"xid","gpu":99,"xid":79}""", "gpu", "99 is out of range" },
        { """{"node":"gpu-r01n01","kind":"xid","gpu":0,"xid":0}""", "xid", "0 is out of range" },
        { """{"node":"gpu-r01n01","kind":"xid","gpu":"zero","xid":79}""", "gpu", "invalid value" },
        { """{"node":"gpu-r01n01","kind":"xid","gpu":0,"xid":79,"gpuu":1}""", "gpuu", "not known" },
        { """{"node":"gpu-r09n01","kind":"xid","gpu":0,"xid":79}""", "node", "'gpu-r09n01' is not a node of the fleet" },
        { """{"node":"gpu-r01n01","kind":"ecc_dbe","gpu":0,"xid":79}""", "xid", "does not apply to kind 'ecc_dbe'" },
        { """{"node":"gpu-r01n01","kind":"node_silent","forSeconds":-5}""", "forSeconds", "-5 must be more than 0" },
        { """{"node":"gpu-r01n01","kind":"over_temperature","gpu":1,"temperatureC":900}""", "temperatureC", "900 is out of range" },
        { """{"node":"gpu-r01n01","kind":"nvlink_errors","gpu":1,"link":18}""", "link", "18 is out of range" },
        { """[1,2]""", "body", "not a JSON object" },
        { """{"node":"gpu-r01n01",""", "body", "not a JSON object" },
    };

    [Theory]
    [MemberData(nameof(BadBodies))]
    public async Task Bad_fault_body_is_400_naming_the_field(string body, string field, string fragment)
    {
        using var client = host.Client();
        var published = PublishedFaults;

        using var response = await client.PostAsync("/api/faults", new StringContent(body, Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(field, problem.RootElement.GetProperty("field").GetString());
        var detail = problem.RootElement.GetProperty("detail").GetString()!;
        Assert.Contains(fragment, detail, StringComparison.Ordinal);
        Assert.Contains(field, detail, StringComparison.Ordinal);
        Assert.Equal(published, PublishedFaults);
    }

    [Fact]
    public async Task Fault_that_is_not_json_is_415()
    {
        using var client = host.Client();
        using var response = await client.PostAsync("/api/faults", new FormUrlEncodedContent([new("node", "gpu-r01n01"), new("kind", "xid")]));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
    }

    [Fact]
    public async Task Valid_fault_publishes_InjectSimulatedFault_and_is_audited()
    {
        using var client = host.Client();

        using var response = await client.PostAsJsonAsync("/api/faults", new { node = "gpu-r02n03", kind = "xid", gpu = 5, xid = 79, forSeconds = 90 });

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.True(await host.Harness.Published.Any<InjectSimulatedFault>(x => x.Context.Message.Node == "gpu-r02n03"));
        var fault = Assert.Single(host.Harness.Published.Select<InjectSimulatedFault>(x => x.Context.Message.Node == "gpu-r02n03")).Context.Message;
        Assert.Equal(new InjectSimulatedFault { Node = "gpu-r02n03", Kind = SimulatedFaultKind.Xid, Gpu = 5, Xid = 79, For = TimeSpan.FromSeconds(90) }, fault);
        Assert.Contains(host.Logs.Entries, e => e.Id.Id == 2110 && e.Level == LogLevel.Information
            && e.Message.Contains("api-key", StringComparison.Ordinal) && e.Message.Contains("gpu-r02n03", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("ecc_dbe", SimulatedFaultKind.EccDbe)]
    [InlineData("EccDbe", SimulatedFaultKind.EccDbe)]
    [InlineData("gpu-lost", SimulatedFaultKind.GpuLost)]
    [InlineData("OVER_TEMPERATURE", SimulatedFaultKind.OverTemperature)]
    public async Task Kind_accepts_formats_spelling_and_enum_names(string kind, SimulatedFaultKind expected)
    {
        using var client = host.Client();

        using var response = await client.PostAsJsonAsync("/api/faults", new { node = "gpu-r01n02", kind, gpu = 1 });

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.True(await host.Harness.Published.Any<InjectSimulatedFault>(x => x.Context.Message.Node == "gpu-r01n02" && x.Context.Message.Kind == expected));
    }

    [Fact]
    public async Task Stream_sends_a_snapshot_then_a_delta_with_the_faulted_cell()
    {
        using var client = host.Client();
        using var response = await client.GetAsync("/api/fleet/stream", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        using var events = new SseReader(await response.Content.ReadAsStreamAsync());

        var (name, id, data) = await events.NextAsync();
        Assert.Equal("snapshot", name);
        using var snapshot = JsonDocument.Parse(data);
        var cells = snapshot.RootElement.GetProperty("cells").EnumerateArray().ToArray();
        var nodes = snapshot.RootElement.GetProperty("nodes").EnumerateArray().Select(n => n[0].GetString()).ToArray();
        var target = Array.FindIndex(cells, c => nodes[c[0].GetInt32()] == "gpu-r01n04" && c[1].GetInt32() == 2);
        Assert.True(target >= 0);
        Assert.EndsWith("." + snapshot.RootElement.GetProperty("rev").GetInt64(), id, StringComparison.Ordinal);

        using var post = await client.PostAsJsonAsync("/api/faults", new { node = "gpu-r01n04", kind = "xid", gpu = 2, xid = 79 });
        Assert.Equal(HttpStatusCode.Accepted, post.StatusCode);

        // Deltas may first carry ordinary changes; the faulted cell must arrive within a few.
        for (var i = 0; ; i++)
        {
            Assert.True(i < 20, "no delta carried the faulted GPU");
            (name, _, data) = await events.NextAsync();
            Assert.Equal("delta", name);
            using var delta = JsonDocument.Parse(data);
            var changed = delta.RootElement.GetProperty("cells").EnumerateArray().FirstOrDefault(c => c[0].GetInt32() == target);
            if (changed.ValueKind == JsonValueKind.Undefined)
            {
                continue;
            }

            Assert.Equal((int)GpuHealth.Critical, changed[1].GetInt32());
            var incident = Assert.Single(delta.RootElement.GetProperty("incidents").EnumerateArray(), i => i.GetProperty("node").GetString() == "gpu-r01n04");
            Assert.Equal(2, incident.GetProperty("gpu").GetInt32());
            Assert.Equal("critical", incident.GetProperty("severity").GetString());
            Assert.Equal(host.View.Counts.Critical, delta.RootElement.GetProperty("counts").GetProperty("critical").GetInt32());
            Assert.True(host.View.Counts.Critical >= 1);
            break;
        }
    }

    [Fact]
    public async Task Stream_resumed_with_Last_Event_ID_gets_a_delta_not_the_whole_fleet()
    {
        using var client = host.Client();
        string id;
        using (var first = await client.GetAsync("/api/fleet/stream", HttpCompletionOption.ResponseHeadersRead))
        {
            using var events = new SseReader(await first.Content.ReadAsStreamAsync());
            (_, id, _) = await events.NextAsync();
        }

        controller.Set("gpu-r02n01", 0, GpuHealth.Warning);
        await DashboardHost.WaitUntilAsync(() => host.View.HealthOf("gpu-r02n01", 0) == GpuHealth.Warning, TimeSpan.FromSeconds(5), "the warning delta");

        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/fleet/stream");
        request.Headers.Add("Last-Event-ID", id);
        using var resumed = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var again = new SseReader(await resumed.Content.ReadAsStreamAsync());
        var (name, _, data) = await again.NextAsync();

        Assert.Equal("delta", name);
        using var delta = JsonDocument.Parse(data);
        Assert.InRange(delta.RootElement.GetProperty("cells").GetArrayLength(), 1, controller.GpuCount - 1);
    }
}

/// <summary>Reads <c>text/event-stream</c> events (event, id, data), skipping comments and the retry field.</summary>
internal sealed class SseReader(Stream stream) : IDisposable
{
    private readonly StreamReader reader = new(stream, Encoding.UTF8);

    public async Task<(string Event, string Id, string Data)> NextAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        string name = "message", id = string.Empty;
        var data = new StringBuilder();
        while (true)
        {
            var line = await reader.ReadLineAsync(timeout.Token) ?? throw new EndOfStreamException("stream ended");
            if (line.Length == 0)
            {
                if (data.Length > 0)
                {
                    return (name, id, data.ToString());
                }

                continue;
            }

            if (line.StartsWith(':'))
            {
                continue;
            }

            var colon = line.IndexOf(':', StringComparison.Ordinal);
            var field = colon < 0 ? line : line[..colon];
            var value = colon < 0 ? string.Empty : line[(colon + 1)..].TrimStart(' ');
            switch (field)
            {
                case "event": name = value; break;
                case "id": id = value; break;
                case "data": data.Append(value); break;
            }
        }
    }

    public void Dispose() => reader.Dispose();
}
