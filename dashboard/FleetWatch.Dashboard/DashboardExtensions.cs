using System.Text.Json;
using FleetWatch.Dashboard.Assets;
using FleetWatch.Dashboard.Fleet;
using FleetWatch.Dashboard.Http;
using FleetWatch.Dashboard.Security;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Dashboard;

/// <summary>
/// Composition of the dashboard (STYLE.md rule 2): <see cref="AddFleetDashboard"/> for options and state,
/// <see cref="AddFleetDashboardConsumers"/> inside <c>AddMassTransit</c>, <see cref="MapFleetDashboard"/> on the app.
/// </summary>
public static class DashboardExtensions
{
    /// <summary>
    /// Options (section <c>FleetWatch:Dashboard</c> of <paramref name="configuration"/>, the root configuration),
    /// their validation at start, and the <see cref="FleetView"/> singleton.
    /// </summary>
    public static IServiceCollection AddFleetDashboard(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddFleetWatchApiAuth(configuration);
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<FleetView>();
        services.TryAddSingleton<DashboardAssets>();
        // Distributed mode's forwarding of /api/v1 to the controller; no request logging (the request carries the controller key).
        services.AddHttpClient(ControllerProxy.HttpClientName).RemoveAllLoggers();
        return services;
    }

    /// <summary>
    /// The frame consumer on a temporary (auto-delete) endpoint of this instance's own, so every dashboard gets every
    /// frame, one at a time so deltas apply in order; and the background snapshot loader.
    /// </summary>
    public static IBusRegistrationConfigurator AddFleetDashboardConsumers(this IBusRegistrationConfigurator bus)
    {
        var instance = new DashboardInstance(NewId.NextGuid().ToString("N")[..12]);
        bus.TryAddSingleton(instance);
        bus.AddConsumer<FleetFrameConsumer>().Endpoint(e =>
        {
            e.Temporary = true;
            e.InstanceId = instance.Id;
            e.ConcurrentMessageLimit = 1;
        });
        bus.TryAddSingleton<FleetSnapshotLoader>();
        bus.AddHostedService(sp => sp.GetRequiredService<FleetSnapshotLoader>());
        return bus;
    }

    /// <summary>
    /// The page, its assets, <c>/api/fleet</c>, <c>/api/fleet/stream</c>, <c>/api/faults</c> (all behind the configured
    /// auth) and <c>/healthz</c> (open). Resolving the options here fails fast on a bad configuration.
    /// </summary>
    public static WebApplication MapFleetDashboard(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<IOptions<DashboardOptions>>().Value;
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("FleetWatch.Dashboard");
        var mode = options.Auth.ParsedMode;
        DashboardLog.AuthMode(logger, mode);
        if (mode == DashboardAuthMode.Unsecured)
        {
            DashboardLog.Unsecured(logger);
        }

        app.MapGet("/healthz", (FleetView view) => Results.Json(new { status = "ok", fleet = FleetView.StatusName(view.Status) }));

        var group = app.MapGroup(string.Empty).AddEndpointFilter<DashboardAuthFilter>();
        group.MapGet("/", Page).WithMetadata(new AcceptsKeyInQuery());
        group.MapGet("/assets/{*path}", Asset);
        // HEAD too: the page asks it to tell "not signed in" from "server away" when its stream fails.
        group.MapMethods("/api/fleet", [HttpMethods.Get, HttpMethods.Head], (FleetView view) => Results.Bytes(view.SnapshotJson(), "application/json"));
        group.MapGet("/api/fleet/stream", (HttpContext http, FleetView view, IOptions<DashboardOptions> o, TimeProvider time, IHostApplicationLifetime host) =>
            LiveStream.RunAsync(http, view, o.Value, time, host.ApplicationStopping));
        group.MapPost("/api/faults", InjectFaultAsync);
        if (options.ControllerUrl is not null)
        {
            // Distributed mode: the operator API lives in the controller process; all-in-one maps it in this app instead.
            group.Map("/api/v1/{**path}", (HttpContext http, IHttpClientFactory clients, IOptions<DashboardOptions> o, string? path) =>
                ControllerProxy.ForwardAsync(http, clients, o, path));
        }

        return app;
    }

    private static IResult Page(HttpContext http, DashboardAssets assets)
    {
        var headers = http.Response.Headers;

        // Everything is served by this app: nothing else may load, and no page may frame this one.
        headers.ContentSecurityPolicy =
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            + "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
        headers["Referrer-Policy"] = "no-referrer";
        headers.XFrameOptions = "DENY";
        return assets.Page.ToResult(http, "no-cache");
    }

    private static IResult Asset(HttpContext http, DashboardAssets assets, string path)
    {
        if (assets.Find(path) is not { } asset)
        {
            return Results.NotFound();
        }

        // A request naming the current hash may cache for a year: a new build changes the name.
        var versioned = string.Equals(http.Request.Query["v"], asset.Hash, StringComparison.Ordinal);
        return asset.ToResult(http, versioned ? "private, max-age=31536000, immutable" : "private, no-cache");
    }

    private static async Task<IResult> InjectFaultAsync(HttpContext http, FleetView view, IPublishEndpoint publish, ILoggerFactory loggers)
    {
        var logger = loggers.CreateLogger("FleetWatch.Dashboard.Audit");
        var user = (DashboardUser)http.Items[typeof(DashboardUser)]!;
        var remote = http.Connection.RemoteIpAddress?.ToString();

        // JSON only: a cross-site HTML form cannot send it without a CORS preflight, which this app never grants.
        if (!http.Request.HasJsonContentType())
        {
            return Results.Problem(statusCode: StatusCodes.Status415UnsupportedMediaType, title: "Unsupported media type",
                detail: $"Content-Type = '{http.Request.ContentType}': send the fault as application/json");
        }

        FaultRequest? request;
        try
        {
            request = await JsonSerializer.DeserializeAsync<FaultRequest>(http.Request.Body, FaultRequestValidator.Json, http.RequestAborted);
        }
        catch (JsonException ex)
        {
            return Rejected(FaultRequestValidator.FromJsonException(ex));
        }

        if (request is null)
        {
            return Rejected(new FaultError("body", "null", "body must be a JSON object"));
        }

        var error = FaultRequestValidator.Validate(request, view, out var fault);
        if (error is not null)
        {
            return Rejected(error);
        }

        await publish.Publish(fault!, http.RequestAborted);
        DashboardLog.FaultInjected(logger, user.Name, user.Via, remote, fault!.Kind.ToString(), fault.Node, fault.Gpu, fault.Xid, fault.For);
        return Results.Accepted(value: new
        {
            published = new
            {
                node = fault.Node,
                kind = fault.Kind.ToString(),
                gpu = fault.Gpu,
                xid = fault.Xid,
                temperatureC = fault.TemperatureC,
                link = fault.Link,
                port = fault.Port,
                forSeconds = fault.For?.TotalSeconds,
            },
            by = user.Name,
        });

        IResult Rejected(FaultError e)
        {
            DashboardLog.FaultRejected(logger, user.Name, user.Via, remote, e.Field, e.Message);
            return Results.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid fault request", detail: e.Message,
                extensions: new Dictionary<string, object?> { ["field"] = e.Field, ["value"] = e.Value });
        }
    }
}
