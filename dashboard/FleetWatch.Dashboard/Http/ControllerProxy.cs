using FleetWatch.Dashboard.Security;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace FleetWatch.Dashboard.Http;

/// <summary>
/// Distributed mode: the page's <c>/api/v1/*</c> calls go to this process (the only origin the page's CSP allows) and are
/// forwarded to the controller at <see cref="DashboardOptions.ControllerUrl"/>. This process signs the operator in (its
/// own auth filter ran before), then calls the controller with its <see cref="DashboardOptions.ControllerApiKey"/> and
/// names the operator in <see cref="DashboardAuthOptions.OperatorHeader"/>, so the controller's audit records the person.
/// The browser never sees the controller key: the browser's own credentials (cookie, key, proxy header) are not forwarded.
/// </summary>
internal static class ControllerProxy
{
    public const string HttpClientName = "fleetwatch-controller";

    /// <summary>Request headers copied to the controller; everything else (cookies, authorization, hop-by-hop) stays here.</summary>
    private static readonly string[] ForwardedRequestHeaders = ["Accept", "Content-Type", "If-None-Match"];

    /// <summary>Bodies larger than this are refused: operator actions are small JSON documents.</summary>
    public const long MaxBodyBytes = 1 << 20;

    public static async Task ForwardAsync(HttpContext http, IHttpClientFactory clients, IOptions<DashboardOptions> options, string? path)
    {
        var o = options.Value;
        var user = (DashboardUser)http.Items[typeof(DashboardUser)]!;
        var target = new Uri(o.ControllerUrl!, "/api/v1/" + (path ?? string.Empty) + http.Request.QueryString.Value);
        using var request = new HttpRequestMessage(new HttpMethod(http.Request.Method), target);
        if (http.Request.ContentLength is > MaxBodyBytes)
        {
            http.Response.StatusCode = StatusCodes.Status413PayloadTooLarge;
            return;
        }

        if (http.Request.ContentLength > 0 || http.Request.Headers.TransferEncoding.Count > 0)
        {
            var body = new MemoryStream();
            await http.Request.Body.CopyToAsync(body, http.RequestAborted).ConfigureAwait(false);
            if (body.Length > MaxBodyBytes)
            {
                http.Response.StatusCode = StatusCodes.Status413PayloadTooLarge;
                return;
            }

            body.Position = 0;
            request.Content = new StreamContent(body);
        }

        foreach (var name in ForwardedRequestHeaders)
        {
            if (http.Request.Headers.TryGetValue(name, out var value) && !request.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)value))
            {
                request.Content?.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)value);
            }
        }

        request.Headers.Authorization = new("Bearer", o.ControllerApiKey!.Trim());
        request.Headers.TryAddWithoutValidation(DashboardAuthOptions.OperatorHeader, user.Via == "unsecured" ? "anonymous-unsecured" : user.Name);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
        timeout.CancelAfter(o.ControllerTimeout);
        HttpResponseMessage response;
        try
        {
            response = await clients.CreateClient(HttpClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException && !http.RequestAborted.IsCancellationRequested)
        {
            http.Response.StatusCode = StatusCodes.Status502BadGateway;
            await http.Response.WriteAsJsonAsync(new { error = $"controller at {o.ControllerUrl} did not answer: {ex.GetType().Name}" }).ConfigureAwait(false);
            return;
        }

        using (response)
        {
            http.Response.StatusCode = (int)response.StatusCode;
            if (response.Content.Headers.ContentType is { } type)
            {
                http.Response.ContentType = type.ToString();
            }

            http.Response.Headers.CacheControl = "no-store";
            await response.Content.CopyToAsync(http.Response.Body, http.RequestAborted).ConfigureAwait(false);
        }
    }
}
