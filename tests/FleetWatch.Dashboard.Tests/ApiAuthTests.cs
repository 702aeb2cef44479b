using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using FleetWatch.Controller.Api;
using FleetWatch.Controller.Fleet;
using FleetWatch.Dashboard.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Dashboard.Tests;

/// <summary>
/// The controller's <c>/api/v1</c> group behind <see cref="FleetWatchApiAuth"/> (issue 8: no API without credentials,
/// the operator recorded by name), and a distributed dashboard forwarding it with its own key.
/// </summary>
public sealed class ApiAuthTests
{
    private const string ProxyKey = "proxy-key-0123456789abcdef";

    /// <summary>A controller-like app: the auth, the node and straggler API, and an endpoint that echoes who called and what arrived.</summary>
    private static async Task<(WebApplication App, Uri Address)> StartControllerAsync(Dictionary<string, string?> config)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing" });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Configuration.AddInMemoryCollection(config);
        builder.Logging.ClearProviders();
        builder.Services.AddFleetWatchApiAuth(builder.Configuration);
        builder.Services.AddControllerApiState();
        var app = builder.Build();
        var api = app.MapGroup("/api/v1").RequireFleetWatchAuth();
        api.MapNodeApi();
        api.MapStragglerApi();
        api.MapPost("/echo", (HttpContext http, EchoBody body) => Results.Ok(new
        {
            user = http.User.Identity?.Name,
            via = http.User.FindFirst(FleetWatchApiAuth.ViaClaim)?.Value,
            text = body.Text,
            cookie = http.Request.Headers.Cookie.ToString(),
            apiKey = http.Request.Headers["X-Api-Key"].ToString(),
            query = http.Request.QueryString.Value,
        }));
        await app.StartAsync();
        return (app, new Uri(app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First()));
    }

    private static Dictionary<string, string?> Config(string mode, params (string Key, string? Value)[] extra)
    {
        var config = new Dictionary<string, string?> { ["FleetWatch:Dashboard:Auth:Mode"] = mode };
        foreach (var (k, v) in extra)
        {
            config[k] = v;
        }

        return config;
    }

    private static async Task<JsonElement> EchoAsync(HttpClient client, string? operatorHeader = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/echo") { Content = JsonContent.Create(new { text = "hi" }) };
        if (operatorHeader is not null)
        {
            request.Headers.Add(DashboardAuthOptions.OperatorHeader, operatorHeader);
        }

        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    [Fact]
    public async Task Without_credentials_every_route_answers_401_before_reading_the_body()
    {
        var (app, address) = await StartControllerAsync(Config("ApiKey", ("FleetWatch:Dashboard:Auth:ApiKey", DashboardHost.ApiKey)));
        await using var _ = app;
        using var client = new HttpClient { BaseAddress = address };
        foreach (var path in new[] { "/api/v1/nodes/n1", "/api/v1/search?q=n", "/api/v1/stragglers/scores", "/api/v1/jobs/j/stragglers" })
        {
            using var response = await client.GetAsync(path);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Contains("Bearer", response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        }

        // A malformed body would be a 400 for a signed-in caller; an anonymous one learns nothing but 401.
        using var bad = await client.PostAsync("/api/v1/echo", new StringContent("{not json", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Unauthorized, bad.StatusCode);
        client.DefaultRequestHeaders.Add("X-Api-Key", "wrong-key-0123456789abcdef");
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/api/v1/nodes/n1")).StatusCode);
    }

    [Fact]
    public async Task The_operator_is_the_key_the_trusted_header_user_or_anonymous_unsecured()
    {
        var (keyed, keyedAt) = await StartControllerAsync(Config("ApiKey", ("FleetWatch:Dashboard:Auth:ApiKey", DashboardHost.ApiKey)));
        await using (keyed)
        {
            using var client = new HttpClient { BaseAddress = keyedAt };
            client.DefaultRequestHeaders.Authorization = new("Bearer", DashboardHost.ApiKey);
            var echo = await EchoAsync(client, operatorHeader: "mallory");
            Assert.Equal("api-key", echo.GetProperty("user").GetString()); // the operator header is not believed from a key holder
            Assert.Equal("bearer", echo.GetProperty("via").GetString());
            Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/api/v1/nodes/never-seen")).StatusCode);
        }

        var (proxied, proxiedAt) = await StartControllerAsync(Config("TrustedHeader"));
        await using (proxied)
        {
            using var client = new HttpClient { BaseAddress = proxiedAt };
            Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/api/v1/stragglers/scores")).StatusCode);
            client.DefaultRequestHeaders.Add("X-Forwarded-User", "alice@example.org");
            Assert.Equal("alice@example.org", (await EchoAsync(client)).GetProperty("user").GetString());
        }

        var (open, openAt) = await StartControllerAsync(Config("Unsecured"));
        await using (open)
        {
            using var client = new HttpClient { BaseAddress = openAt };
            Assert.Equal("anonymous-unsecured", (await EchoAsync(client)).GetProperty("user").GetString());
        }
    }

    [Fact]
    public async Task A_dashboard_forwards_the_operator_with_its_key_and_never_the_browsers_credentials()
    {
        var (controller, controllerAt) = await StartControllerAsync(Config("ApiKey",
            ("FleetWatch:Dashboard:Auth:ApiKey", "operators-key-0123456789"), ("FleetWatch:Dashboard:Auth:ProxyKey", ProxyKey)));
        await using var _ = controller;
        controller.Services.GetRequiredService<NodeHistory>().RecordXid(new Contracts.GpuXidObserved { Node = "n7", Time = DateTimeOffset.UnixEpoch, Xid = 79 });

        await using var dashboard = await DashboardHost.StartAsync(DashboardHost.ApiKeyConfig(
            ("FleetWatch:Dashboard:ControllerUrl", controllerAt.ToString()), ("FleetWatch:Dashboard:ControllerApiKey", ProxyKey)));
        using var browser = dashboard.Client(authenticated: false);
        Assert.Equal(HttpStatusCode.Unauthorized, (await browser.GetAsync("/api/v1/nodes/n7")).StatusCode);

        using var signedIn = dashboard.Client();
        signedIn.DefaultRequestHeaders.Add("Cookie", "fleetwatch_session=abc");
        signedIn.DefaultRequestHeaders.Add("X-Api-Key", DashboardHost.ApiKey);
        var echo = await EchoAsync(signedIn, operatorHeader: "mallory");
        Assert.Equal("api-key", echo.GetProperty("user").GetString()); // the dashboard's operator, not the browser's claim
        Assert.Equal("dashboard-proxy", echo.GetProperty("via").GetString());
        Assert.Equal("hi", echo.GetProperty("text").GetString());
        Assert.Equal(string.Empty, echo.GetProperty("cookie").GetString());
        Assert.Equal(string.Empty, echo.GetProperty("apiKey").GetString());

        using var node = await signedIn.GetAsync("/api/v1/nodes/n7?x=1");
        Assert.Equal(HttpStatusCode.OK, node.StatusCode);
        Assert.Equal(79, (await node.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("xids")[0].GetProperty("xid").GetInt32());
        Assert.Equal(HttpStatusCode.NotFound, (await signedIn.GetAsync("/api/v1/nodes/unknown")).StatusCode);

        // The page never sees the controller's key.
        var page = await (await signedIn.GetAsync("/")).Content.ReadAsStringAsync();
        var script = await (await signedIn.GetAsync("/assets/views.js")).Content.ReadAsStringAsync();
        Assert.DoesNotContain(ProxyKey, page + script, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_dashboard_whose_controller_is_away_answers_502()
    {
        await using var dashboard = await DashboardHost.StartAsync(DashboardHost.ApiKeyConfig(
            ("FleetWatch:Dashboard:ControllerUrl", "http://127.0.0.1:9"), ("FleetWatch:Dashboard:ControllerApiKey", ProxyKey)));
        using var client = dashboard.Client();
        using var response = await client.GetAsync("/api/v1/incidents");
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
    }

    [Theory]
    [InlineData("http://controller:5081", null, "FleetWatch:Dashboard:ControllerApiKey must be at least 16 characters when ControllerUrl is set (it has 0)")]
    [InlineData("ftp://controller", ProxyKey, "FleetWatch:Dashboard:ControllerUrl = 'ftp://controller/' must be an absolute http or https address")]
    public async Task A_bad_controller_address_or_key_fails_start(string url, string? key, string message)
    {
        var error = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(async () =>
        {
            await using var host = await DashboardHost.StartAsync(DashboardHost.ApiKeyConfig(
                ("FleetWatch:Dashboard:ControllerUrl", url), ("FleetWatch:Dashboard:ControllerApiKey", key!)));
        });
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    private sealed record EchoBody(string Text);
}
