using System.Globalization;
using System.Text;
using FleetWatch.Dashboard.Fleet;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace FleetWatch.Dashboard.Http;

/// <summary>
/// <c>GET /api/fleet/stream</c>: Server-Sent Events. A compact <c>snapshot</c> event on connect (or when the cell
/// layout changed), then <c>delta</c> events with only the changed cells, at most one per
/// <see cref="DashboardOptions.StreamInterval"/>. Event ids are <c>LAYOUT.REVISION</c>, so a browser that reconnects
/// with <c>Last-Event-ID</c> gets a delta instead of the whole fleet when its layout is still current.
/// </summary>
internal static class LiveStream
{
    private static readonly byte[] KeepAlive = ": keepalive\n\n"u8.ToArray();

    public static async Task RunAsync(HttpContext http, FleetView view, DashboardOptions options, TimeProvider time, CancellationToken stopping)
    {
        // End with the host too: Kestrel would otherwise wait for open streams until its shutdown timeout.
        using var lifetime = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, stopping);
        var cancellationToken = lifetime.Token;
        var response = http.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache, no-store";
        response.Headers["X-Accel-Buffering"] = "no"; // nginx would otherwise hold events back
        http.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();

        var cursor = ParseLastEventId(http.Request.Headers["Last-Event-ID"].ToString());

        // Reconnect after 3 s rather than EventSource's browser-specific default.
        await response.Body.WriteAsync("retry: 3000\n\n"u8.ToArray(), cancellationToken);
        await response.Body.FlushAsync(cancellationToken);

        // Wake at least this often to notice a status change that no frame announces (the controller went silent).
        var wake = options.StreamInterval * 2;
        long? lastSent = null;
        var lastWrite = time.GetTimestamp();
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var update = view.GetUpdate(cursor);
                if (update is not null && lastSent is { } sent && time.GetElapsedTime(sent) is var elapsed && elapsed < options.StreamInterval)
                {
                    // Coalesce: whatever else changes in the meantime goes out in the same event.
                    await Task.Delay(options.StreamInterval - elapsed, time, cancellationToken);
                    update = view.GetUpdate(cursor);
                }

                if (update is not null)
                {
                    await WriteEventAsync(response, update, cancellationToken);
                    cursor = update.Cursor;
                    lastSent = lastWrite = time.GetTimestamp();
                }
                else if (time.GetElapsedTime(lastWrite) >= options.StreamKeepAlive)
                {
                    await response.Body.WriteAsync(KeepAlive, cancellationToken);
                    await response.Body.FlushAsync(cancellationToken);
                    lastWrite = time.GetTimestamp();
                }

                try
                {
                    await view.WaitForChangeAsync(cursor?.Revision ?? -1, cancellationToken).WaitAsync(wake, time, cancellationToken);
                }
                catch (TimeoutException)
                {
                    // Nothing changed: loop to check status and keep-alive.
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The browser went away, or the host is stopping (the browser reconnects to the next one).
        }
    }

    internal static StreamCursor? ParseLastEventId(string lastEventId)
    {
        var dot = lastEventId.LastIndexOf('.');
        return dot > 0 && long.TryParse(lastEventId.AsSpan(dot + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var revision)
            // The client's status is not in the id: an impossible value makes the next delta carry the status.
            ? new StreamCursor(lastEventId[..dot], revision, (FleetViewStatus)(-1))
            : null;
    }

    private static async Task WriteEventAsync(HttpResponse response, FleetUpdate update, CancellationToken cancellationToken)
    {
        // The JSON is written unindented, so it is one data line.
        var head = Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture,
            $"id: {update.Cursor.Layout}.{update.Cursor.Revision}\nevent: {update.EventName}\ndata: "));
        await response.Body.WriteAsync(head, cancellationToken);
        await response.Body.WriteAsync(update.Json, cancellationToken);
        await response.Body.WriteAsync("\n\n"u8.ToArray(), cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }
}
