using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Integration.Tests.Support;

/// <summary>A real HTTP server on loopback that records what on-call tooling would receive.</summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;

    private WebhookReceiver(WebApplication app) => _app = app;

    public ConcurrentQueue<(DateTimeOffset At, JsonElement Body)> Posts { get; } = new();

    /// <summary>Status codes to answer before answering 200 (to exercise retries).</summary>
    public ConcurrentQueue<int> ScriptedStatuses { get; } = new();

    public string Url { get; private set; } = "";

    public static async Task<WebhookReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var receiver = new WebhookReceiver(app);
        app.MapPost("/hook", async (HttpContext ctx) =>
        {
            if (receiver.ScriptedStatuses.TryDequeue(out var status))
            {
                if (status == 429)
                {
                    ctx.Response.Headers.RetryAfter = "1"; // seconds
                }

                return Results.StatusCode(status);
            }

            using var doc = await JsonDocument.ParseAsync(ctx.Request.Body);
            receiver.Posts.Enqueue((DateTimeOffset.UtcNow, doc.RootElement.Clone()));
            return Results.Ok();
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        receiver.Url = $"{address}/hook";
        return receiver;
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
