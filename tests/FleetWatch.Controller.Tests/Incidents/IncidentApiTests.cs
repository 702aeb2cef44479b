using System.Net;
using System.Net.Http.Json;
using System.Security.Claims;
using System.Text;
using System.Text.Json;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Incidents;
using FleetWatch.Controller.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using static FleetWatch.Controller.Tests.Detection.SampleBuilder;
using static FleetWatch.Controller.Tests.Incidents.IncidentGroupingTests;

namespace FleetWatch.Controller.Tests.Incidents;

/// <summary>The incident API on a real Kestrel on loopback, mounted at /api/v1 as the host does, over an in-memory store.</summary>
public sealed class IncidentApiTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _time = new(T0);
    private WebApplication? _app;
    private HttpClient _http = new();

    private IncidentManager Manager => _app!.Services.GetRequiredService<IncidentManager>();

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["FleetWatch:Storage:Path"] = ":memory:" });
        builder.Services.AddSingleton<TimeProvider>(_time);
        builder.Services.AddDetection(builder.Configuration);
        builder.Services.AddControllerStore(builder.Configuration);
        builder.Services.AddStoreSchema(IncidentStore.SchemaName, IncidentStore.Schema);
        builder.Services.AddSingleton<IncidentStore>();
        _app = builder.Build();
        // Stands in for the host's authentication: the operator named in a header.
        _app.Use((ctx, next) =>
        {
            if (ctx.Request.Headers.TryGetValue("X-Test-User", out var user))
            {
                ctx.User = new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, user.ToString())], "test"));
            }

            return next(ctx);
        });
        _app.MapGroup("/api/v1").MapIncidentApi();
        await _app.StartAsync();
        var address = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        _http = new HttpClient { BaseAddress = new Uri(address) };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        if (_app is not null)
        {
            await _app.DisposeAsync();
        }
    }

    private async Task<(HttpStatusCode Status, JsonElement Body)> SendAsync(HttpMethod method, string path, string? json = null, string? user = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (json is not null)
        {
            request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        }

        if (user is not null)
        {
            request.Headers.Add("X-Test-User", user);
        }

        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    [Fact]
    public async Task Incidents_are_listed_shown_acknowledged_and_annotated_with_the_operator()
    {
        Manager.Apply([Lost("n1", 0), Lost("n1", 1)], T0);
        var id = Manager.Open()[0].Id;

        var (status, list) = await SendAsync(HttpMethod.Get, "/api/v1/incidents");
        Assert.Equal(HttpStatusCode.OK, status);
        var item = Assert.Single(list.EnumerateArray());
        Assert.Equal((id, "critical", "n1", 2), (item.GetProperty("id").GetString(), item.GetProperty("severity").GetString(), item.GetProperty("groupKey").GetString(), item.GetProperty("findings").GetArrayLength()));

        _time.Advance(TimeSpan.FromMinutes(1));
        var (ackStatus, acked) = await SendAsync(HttpMethod.Post, $"/api/v1/incidents/{id}/ack", """{"note": "draining it"}""", user: "alice");
        Assert.Equal(HttpStatusCode.OK, ackStatus);
        Assert.Equal("alice", acked.GetProperty("acknowledgedBy").GetString());
        Assert.Equal(T0.AddMinutes(1), acked.GetProperty("acknowledgedAt").GetDateTimeOffset());

        // No body at all is a valid acknowledgement; the first operator keeps it.
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Post, $"/api/v1/incidents/{id}/ack")).Status);
        var (_, noted) = await SendAsync(HttpMethod.Post, $"/api/v1/incidents/{id}/notes", """{"text": "riser reseated"}""");
        Assert.Equal("alice", noted.GetProperty("acknowledgedBy").GetString());
        Assert.Equal([("alice", "draining it"), ("anonymous", "riser reseated")],
            noted.GetProperty("notes").EnumerateArray().Select(n => (n.GetProperty("by").GetString(), n.GetProperty("text").GetString())));

        var (detailStatus, detail) = await SendAsync(HttpMethod.Get, $"/api/v1/incidents/{id}");
        Assert.Equal((HttpStatusCode.OK, 2), (detailStatus, detail.GetProperty("notes").GetArrayLength()));
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(HttpMethod.Get, "/api/v1/incidents/inc-999")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(HttpMethod.Post, "/api/v1/incidents/inc-999/ack")).Status);

        // Resolved incidents come from the store.
        for (var s = 1; s <= 40; s++)
        {
            Manager.Apply([Lost("n1", 0, active: false), Lost("n1", 1, active: false)], T0.AddSeconds(s));
            Manager.Tick(T0.AddSeconds(s));
        }

        Assert.Empty((await SendAsync(HttpMethod.Get, "/api/v1/incidents?state=open")).Body.EnumerateArray());
        var resolved = Assert.Single((await SendAsync(HttpMethod.Get, "/api/v1/incidents?state=resolved&limit=5")).Body.EnumerateArray());
        Assert.Equal(id, resolved.GetProperty("id").GetString());
        Assert.Single((await SendAsync(HttpMethod.Get, "/api/v1/incidents?state=all")).Body.EnumerateArray());
    }

    [Theory]
    [InlineData("GET", "/api/v1/incidents?state=closed", null, "'closed'")]
    [InlineData("GET", "/api/v1/incidents?limit=0", null, "limit: '0'")]
    [InlineData("GET", "/api/v1/incidents?limit=many", null, "limit: 'many'")]
    [InlineData("POST", "/api/v1/incidents/{id}/notes", """{"text": ""}""", "text: ''")]
    [InlineData("POST", "/api/v1/incidents/{id}/notes", """{"text": 7}""", "text: '7'")]
    [InlineData("POST", "/api/v1/incidents/{id}/ack", """{"note": 7}""", "note: '7'")]
    [InlineData("POST", "/api/v1/incidents/{id}/notes", "{not json", "not valid JSON")]
    [InlineData("POST", "/api/v1/silences", """{"endsAt": "2030-01-01T00:00:00Z"}""", "matchers")]
    [InlineData("POST", "/api/v1/silences", """{"matchers": [], "endsAt": "2030-01-01T00:00:00Z"}""", "matchers: '[]'")]
    [InlineData("POST", "/api/v1/silences", """{"matchers": [{"name": "rack", "value": "r1"}], "endsAt": "2030-01-01T00:00:00Z"}""", "matchers[0].name: 'rack'")]
    [InlineData("POST", "/api/v1/silences", """{"matchers": [{"name": "node", "value": ""}], "endsAt": "2030-01-01T00:00:00Z"}""", "matchers[0].value: ''")]
    [InlineData("POST", "/api/v1/silences", """{"matchers": [{"name": "node", "value": "n(", "isRegex": true}], "endsAt": "2030-01-01T00:00:00Z"}""", "matchers[0].value: 'n('")]
    [InlineData("POST", "/api/v1/silences", """{"matchers": [{"name": "node", "value": "n1", "isEqual": "no"}], "endsAt": "2030-01-01T00:00:00Z"}""", "matchers[0].isEqual: 'no'")]
    [InlineData("POST", "/api/v1/silences", """{"matchers": [{"name": "node", "value": "n1"}], "endsAt": "tomorrow"}""", "endsAt: 'tomorrow'")]
    [InlineData("POST", "/api/v1/maintenance", """{"matchers": [{"name": "node", "value": "n1"}], "startsAt": "2030-01-02T00:00:00Z", "endsAt": "2030-01-01T00:00:00Z"}""", "endsAt: '2030-01-01T00:00:00Z'")]
    [InlineData("POST", "/api/v1/maintenance", """[1, 2]""", "body: '[1, 2]'")]
    public async Task Bad_requests_answer_400_naming_the_field_and_the_value(string method, string path, string? body, string named)
    {
        Manager.Apply([Lost("n1", 0)], T0);
        var (status, error) = await SendAsync(new HttpMethod(method), path.Replace("{id}", Manager.Open()[0].Id, StringComparison.Ordinal), body);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(named, error.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Empty(Manager.Mutes(MuteKind.Silence, T0));
    }

    [Fact]
    public async Task A_silence_flags_matching_incidents_until_it_is_deleted_and_maintenance_windows_are_separate()
    {
        var (created, silence) = await SendAsync(HttpMethod.Post, "/api/v1/silences",
            """{"matchers": [{"name": "node", "value": "n[12]", "isRegex": true}, {"name": "severity", "value": "critical"}], "endsAt": "2030-01-01T00:00:00Z", "comment": "recabling"}""",
            user: "carol");
        Assert.Equal(HttpStatusCode.Created, created);
        var silenceId = silence.GetProperty("id").GetString()!;
        Assert.StartsWith("sil-", silenceId, StringComparison.Ordinal);
        Assert.Equal(("carol", T0), (silence.GetProperty("createdBy").GetString(), silence.GetProperty("startsAt").GetDateTimeOffset()));

        var changes = Manager.Apply([Lost("n1", 0), Lost("n3", 0)], T0.AddSeconds(1));
        Assert.Equal(["n3"], changes.Where(c => c.IsNotification).Select(c => c.Incident.Node));
        var incidents = (await SendAsync(HttpMethod.Get, "/api/v1/incidents")).Body.EnumerateArray().ToDictionary(i => i.GetProperty("node").GetString()!);
        Assert.Equal(silenceId, incidents["n1"].GetProperty("silencedBy").GetString());
        Assert.Equal(JsonValueKind.Null, incidents["n3"].GetProperty("silencedBy").ValueKind);
        Assert.Equal([silenceId], (await SendAsync(HttpMethod.Get, "/api/v1/silences")).Body.EnumerateArray().Select(s => s.GetProperty("id").GetString()));
        Assert.Empty((await SendAsync(HttpMethod.Get, "/api/v1/maintenance")).Body.EnumerateArray());

        _time.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(HttpMethod.Delete, $"/api/v1/maintenance/{silenceId}")).Status);
        Assert.Equal(HttpStatusCode.NoContent, (await SendAsync(HttpMethod.Delete, $"/api/v1/silences/{silenceId}")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(HttpMethod.Delete, $"/api/v1/silences/{silenceId}")).Status);
        Assert.Empty((await SendAsync(HttpMethod.Get, "/api/v1/silences")).Body.EnumerateArray());
        Assert.Single((await SendAsync(HttpMethod.Get, "/api/v1/silences?all=true")).Body.EnumerateArray());

        // The held notification flows at the next tick.
        var released = Manager.Tick(T0.AddSeconds(6));
        Assert.Equal([("n1", IncidentChangeKind.Opened)], released.Select(c => (c.Incident.Node, c.Kind)));

        var (mntStatus, window) = await SendAsync(HttpMethod.Post, "/api/v1/maintenance",
            """{"matchers": [{"name": "node", "value": "n9"}], "startsAt": "2030-01-01T00:00:00Z", "endsAt": "2030-01-01T04:00:00Z"}""");
        Assert.Equal(HttpStatusCode.Created, mntStatus);
        Assert.StartsWith("mnt-", window.GetProperty("id").GetString(), StringComparison.Ordinal);
        Assert.Equal("maintenance", window.GetProperty("kind").GetString());
        Assert.Single((await SendAsync(HttpMethod.Get, "/api/v1/maintenance")).Body.EnumerateArray());
    }

    [Fact]
    public async Task Findings_in_the_dto_carry_gpu_rule_count_and_inhibition()
    {
        Manager.Apply([new Finding("n5", null, "node_silent", FindingKind.Condition, true, FleetWatch.Contracts.Severity.Critical, "node_silent", "check_node", "silent", T0)], T0);
        Manager.Apply([Hot("n5", 2)], T0.AddSeconds(1));

        var incident = Assert.Single((await SendAsync(HttpMethod.Get, "/api/v1/incidents")).Body.EnumerateArray());
        var hot = incident.GetProperty("findings").EnumerateArray().Single(f => f.GetProperty("rule").GetString() == "over_temperature");
        Assert.Equal((2, true, 1), (hot.GetProperty("gpuIndex").GetInt32(), hot.GetProperty("inhibited").GetBoolean(), hot.GetProperty("count").GetInt32()));
        Assert.Equal(JsonValueKind.Null, incident.GetProperty("gpuIndex").ValueKind);
        _ = await _http.GetFromJsonAsync<JsonElement>("/api/v1/incidents/" + incident.GetProperty("id").GetString());
    }
}
