using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;

namespace FleetWatch.Dashboard.Security;

/// <summary>Marks the page endpoint, the only one that accepts the key once as <c>?key=</c>.</summary>
internal sealed class AcceptsKeyInQuery;

/// <summary>
/// Every dashboard endpoint except <c>/healthz</c> runs behind this filter: 401 without credentials. On the page,
/// <c>?key=KEY</c> is traded for an HttpOnly, SameSite=Strict cookie and a redirect that drops the key from the
/// address bar, the history and any Referer.
/// </summary>
internal sealed class DashboardAuthFilter(DashboardAuthenticator auth) : IEndpointFilter
{
    private const string SignInPage = """
        <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="color-scheme" content="dark light">
        <title>FleetWatch: sign in</title></head>
        <body style="font: 15px/1.5 system-ui, sans-serif; max-width: 40em; margin: 15vh auto; padding: 0 1em">
        <h1 style="font-size: 20px">FleetWatch dashboard: not signed in</h1><p>{hint}</p></body></html>
        """;

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var request = http.Request;
        if (auth.Mode == DashboardAuthMode.ApiKey && request.Query.ContainsKey(DashboardAuthenticator.QueryKey)
            && http.GetEndpoint()?.Metadata.GetMetadata<AcceptsKeyInQuery>() is not null)
        {
            if (!auth.IsKey(request.Query[DashboardAuthenticator.QueryKey]))
            {
                return Unauthorized(http);
            }

            http.Response.Cookies.Append(DashboardAuthenticator.CookieName, auth.CookieValue, new CookieOptions
            {
                HttpOnly = true,
                SameSite = SameSiteMode.Strict,
                Secure = request.IsHttps,
                Path = request.PathBase.HasValue ? request.PathBase.Value : "/",
                IsEssential = true,
            });
            http.Response.Headers.CacheControl = "no-store";
            http.Response.Headers["Referrer-Policy"] = "no-referrer";
            var rest = QueryHelpers.ParseQuery(request.QueryString.Value)
                .Where(p => !string.Equals(p.Key, DashboardAuthenticator.QueryKey, StringComparison.Ordinal))
                .SelectMany(p => p.Value.Select(v => new KeyValuePair<string, string?>(p.Key, v)));
            return Results.Redirect(request.PathBase + request.Path + QueryString.Create(rest));
        }

        var user = auth.Authenticate(request);
        if (user is null)
        {
            return Unauthorized(http);
        }

        http.Items[typeof(DashboardUser)] = user;
        return await next(context);
    }

    private IResult Unauthorized(HttpContext http)
    {
        var hint = auth.Mode switch
        {
            DashboardAuthMode.TrustedHeader => "Sign in through the reverse proxy in front of this dashboard.",
            _ => "Send 'Authorization: Bearer KEY' or 'X-Api-Key: KEY', or open the page once as /?key=KEY.",
        };
        if (auth.Mode == DashboardAuthMode.ApiKey)
        {
            http.Response.Headers.WWWAuthenticate = "Bearer realm=\"fleetwatch-dashboard\"";
        }

        // A person opening the page gets a page that says what to do; programs get problem+json.
        if (http.GetEndpoint()?.Metadata.GetMetadata<AcceptsKeyInQuery>() is not null)
        {
            http.Response.Headers.CacheControl = "no-store";
            return Results.Content(SignInPage.Replace("{hint}", System.Net.WebUtility.HtmlEncode(hint), StringComparison.Ordinal),
                "text/html; charset=utf-8", statusCode: StatusCodes.Status401Unauthorized);
        }

        return Results.Problem(statusCode: StatusCodes.Status401Unauthorized, title: "Unauthorized", detail: hint);
    }
}
