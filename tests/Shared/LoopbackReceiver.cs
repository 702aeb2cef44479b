using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Tests.Shared;

/// <summary>One POST as the receiver saw it: exact body bytes, headers, parsed JSON, arrival time.</summary>
public sealed record CapturedPost(string Path, byte[] Body, IReadOnlyDictionary<string, string> Headers, JsonElement Json, TimeSpan At);

/// <summary>
/// A real HTTP server on loopback (Kestrel, random port) standing in for Slack, Teams, PagerDuty or any webhook: it
/// records every POST and answers with scripted statuses first (optionally with Retry-After), then its success status.
/// </summary>
public sealed class LoopbackReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    private LoopbackReceiver(WebApplication app) => _app = app;

    public ConcurrentQueue<CapturedPost> Posts { get; } = new();

    /// <summary>Every request, answered or not, with the status it got.</summary>
    public ConcurrentQueue<(TimeSpan At, int Status)> Requests { get; } = new();

    /// <summary>(status, Retry-After seconds or null) answered before success, in order.</summary>
    public ConcurrentQueue<(int Status, int? RetryAfterSeconds)> Script { get; } = new();

    /// <summary>Answered once the script is used up; 0 = keep answering the last scripted failure forever.</summary>
    public int SuccessStatus { get; set; } = 200;

    /// <summary>When set, every request is answered with this status (a receiver that is down for good).</summary>
    public int? AlwaysStatus { get; set; }

    public string BaseUrl { get; private set; } = "";

    public TimeSpan Now => _clock.Elapsed;

    public string Url(string path) => BaseUrl + path;

    public static async Task<LoopbackReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var receiver = new LoopbackReceiver(app);
        app.MapPost("/{**path}", async (HttpContext ctx) =>
        {
            if (receiver.AlwaysStatus is { } always)
            {
                receiver.Requests.Enqueue((receiver.Now, always));
                return Results.StatusCode(always);
            }

            if (receiver.Script.TryDequeue(out var scripted))
            {
                receiver.Requests.Enqueue((receiver.Now, scripted.Status));
                if (scripted.RetryAfterSeconds is { } seconds)
                {
                    ctx.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
                }

                return Results.StatusCode(scripted.Status);
            }

            using var buffer = new MemoryStream();
            await ctx.Request.Body.CopyToAsync(buffer);
            var body = buffer.ToArray();
            using var doc = JsonDocument.Parse(body);
            var headers = ctx.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);
            receiver.Posts.Enqueue(new CapturedPost(ctx.Request.Path, body, headers, doc.RootElement.Clone(), receiver.Now));
            receiver.Requests.Enqueue((receiver.Now, receiver.SuccessStatus));
            return Results.StatusCode(receiver.SuccessStatus);
        });
        await app.StartAsync();
        receiver.BaseUrl = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return receiver;
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
