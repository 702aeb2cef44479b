using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Sources.Steps;

/// <summary>
/// The node-local endpoint where training ranks report completed steps: <c>POST /v1/steps</c> over HTTP on a loopback
/// address and a port of its own (<see cref="StepEndpointOptions.Port"/>, default 9478), served by a small Kestrel server
/// inside the agent process. <c>GET /v1/steps/status</c> returns the counters.
/// <para>
/// Why loopback HTTP and not a Unix socket: every training stack can send it (Python's standard library <c>http.client</c>,
/// <c>curl</c>, C++ with any HTTP client) with no path to agree on or socket permissions to manage, and training pods on GPU
/// nodes run with the host network for InfiniBand anyway, so 127.0.0.1 reaches the agent from inside them. Why a port of its
/// own and not the agent's main port: the main port serves <c>/metrics</c> to the Prometheus scraper and so listens on the
/// node's network address, while this endpoint is unauthenticated (a forged report can make a rank look slow or a job hung)
/// and must be reachable from the node only; the options validator refuses a non-loopback address.
/// </para>
/// <para>
/// Bodies are validated (<see cref="StepReportParser"/>): a bad one gets 400 naming the field, a too-large one 413, and each
/// is counted; nothing a client sends can stop the endpoint. If the port is taken the endpoint logs an error and stays
/// off, and the rest of the agent goes on sampling hardware.
/// </para>
/// </summary>
public sealed partial class StepEndpointServer(
    StepBuffer buffer,
    StepEndpointCounters counters,
    IOptions<StepEndpointOptions> options,
    StepNodeName node,
    TimeProvider time,
    ILogger<StepEndpointServer> logger) : IHostedService, IAsyncDisposable
{
    /// <summary>The path ranks post to.</summary>
    public const string Path = "/v1/steps";

    /// <summary>The path of the counters.</summary>
    public const string StatusPath = "/v1/steps/status";

    private WebApplication? _app;

    /// <summary>The address the endpoint listens on once started (with the real port when configured with 0); null when not listening.</summary>
    public Uri? BoundAddress { get; private set; }

    /// <inheritdoc />
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = "fleetwatch-steps" });
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            // The handler enforces MaxBodyBytes itself and answers 413; Kestrel's own limit sits above it so that a slightly
            // larger body gets that answer instead of a reset connection, and a huge one is still cut off.
            k.Limits.MaxRequestBodySize = 4L * o.MaxBodyBytes;
            k.Listen(IPAddress.Parse(o.ListenAddress), o.Port);
        });
        var app = builder.Build();
        app.Run(HandleAsync);
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException ex)
        {
            // Address in use (Kestrel wraps the socket error in an IOException): stay off, keep the agent running.
            LogListenFailed(logger, o.ListenAddress, o.Port, ex.Message);
            await app.DisposeAsync().ConfigureAwait(false);
            return;
        }

        _app = app;
        BoundAddress = new Uri(app.Urls.First());
        LogListening(logger, BoundAddress);
    }

    /// <inheritdoc />
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_app is { } app)
        {
            await app.StopAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_app is { } app)
        {
            _app = null;
            await app.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        if (string.Equals(request.Path, StatusPath, StringComparison.Ordinal) && HttpMethods.IsGet(request.Method))
        {
            await WriteAsync(context, StatusCodes.Status200OK, new Dictionary<string, long>
            {
                ["accepted"] = counters.Accepted,
                ["rejected_requests"] = counters.RejectedRequests,
                ["dropped"] = counters.Dropped,
                ["published"] = counters.Published,
                ["publish_failures"] = counters.PublishFailures,
                ["buffered"] = buffer.Count,
            }, StepEndpointJson.Default.DictionaryStringInt64).ConfigureAwait(false);
            return;
        }

        if (!string.Equals(request.Path, Path, StringComparison.Ordinal))
        {
            await RejectAsync(context, StatusCodes.Status404NotFound, $"path: only POST {Path}").ConfigureAwait(false);
            return;
        }

        if (!HttpMethods.IsPost(request.Method))
        {
            context.Response.Headers.Allow = "POST";
            await RejectAsync(context, StatusCodes.Status405MethodNotAllowed, "method: only POST").ConfigureAwait(false);
            return;
        }

        var o = options.Value;
        var body = await ReadBodyAsync(request, o.MaxBodyBytes, context.RequestAborted).ConfigureAwait(false);
        if (body is null)
        {
            context.Response.Headers.Connection = "close"; // the rest of the body is not read
            await RejectAsync(context, StatusCodes.Status413PayloadTooLarge, $"body: larger than {o.MaxBodyBytes} bytes").ConfigureAwait(false);
            return;
        }

        var error = StepReportParser.TryParse(body.Value, node.Value, time.GetUtcNow(), o.MaxReportsPerRequest, out var reports);
        if (error is not null)
        {
            await RejectAsync(context, StatusCodes.Status400BadRequest, error).ConfigureAwait(false);
            return;
        }

        buffer.Add(reports);
        await WriteAsync(context, StatusCodes.Status202Accepted, new Dictionary<string, long> { ["accepted"] = reports.Count }, StepEndpointJson.Default.DictionaryStringInt64).ConfigureAwait(false);
    }

    /// <summary>Reads the whole body, or returns null when it is larger than <paramref name="limit"/>.</summary>
    private static async Task<ReadOnlyMemory<byte>?> ReadBodyAsync(HttpRequest request, int limit, CancellationToken ct)
    {
        if (request.ContentLength > limit)
        {
            return null;
        }

        using var copy = new MemoryStream((int)Math.Min(request.ContentLength ?? 4096, limit));
        var chunk = new byte[8192];
        try
        {
            int read;
            while ((read = await request.Body.ReadAsync(chunk, ct).ConfigureAwait(false)) > 0)
            {
                if (copy.Length + read > limit)
                {
                    return null;
                }

                copy.Write(chunk, 0, read);
            }
        }
        catch (BadHttpRequestException)
        {
            // Kestrel's own body-size limit (chunked bodies without a length) or a malformed request.
            return null;
        }

        return copy.ToArray();
    }

    private async Task RejectAsync(HttpContext context, int status, string error)
    {
        counters.OnRejected();
        LogRejected(logger, status, error);
        await WriteAsync(context, status, new Dictionary<string, string> { ["error"] = error }, StepEndpointJson.Default.DictionaryStringString).ConfigureAwait(false);
    }

    private static Task WriteAsync<T>(HttpContext context, int status, T body, JsonTypeInfo<T> typeInfo)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(JsonSerializer.Serialize(body, typeInfo), context.RequestAborted);
    }

    [LoggerMessage(EventId = 141, Level = LogLevel.Information, Message = "Step endpoint listening on {Address}")]
    private static partial void LogListening(ILogger logger, Uri address);

    [LoggerMessage(EventId = 142, Level = LogLevel.Error, Message = "Step endpoint could not listen on {Address}:{Port}: {Error}; step reports are off, hardware sampling goes on")]
    private static partial void LogListenFailed(ILogger logger, string address, int port, string error);

    [LoggerMessage(EventId = 143, Level = LogLevel.Debug, Message = "Step report refused with {Status}: {Error}")]
    private static partial void LogRejected(ILogger logger, int status, string error);
}

/// <summary>The endpoint's JSON answers, source-generated (Native AOT).</summary>
[JsonSerializable(typeof(Dictionary<string, long>))]
[JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class StepEndpointJson : JsonSerializerContext;
