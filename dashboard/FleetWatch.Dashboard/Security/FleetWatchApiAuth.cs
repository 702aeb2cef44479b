using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Dashboard.Security;

/// <summary>
/// Authentication of the controller's operator API (<c>/api/v1</c>) with the dashboard's own rules
/// (<see cref="DashboardAuthMode"/>): an ASP.NET Core authentication scheme, so a request is refused with 401 before its
/// body is read, and <c>HttpContext.User.Identity.Name</c> is the operator every audited action records: the trusted
/// header's user, <c>api-key</c> for the shared key, <c>anonymous-unsecured</c> in the unsecured mode, or the operator a
/// dashboard forwarded with its proxy key.
/// </summary>
public static class FleetWatchApiAuth
{
    /// <summary>The scheme and policy name.</summary>
    public const string Scheme = "FleetWatch";

    /// <summary>Claim type of how the caller was established (bearer, cookie, a header name, dashboard-proxy, unsecured).</summary>
    public const string ViaClaim = "fleetwatch:via";

    /// <summary>
    /// The options (section <c>FleetWatch:Dashboard</c>, validated at start: no API without an explicit auth mode), the
    /// authenticator, and the scheme. <see cref="DashboardExtensions.AddFleetDashboard"/> calls it; a controller-only host calls it itself.
    /// </summary>
    public static IServiceCollection AddFleetWatchApiAuth(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<DashboardOptions>().Bind(configuration.GetSection(DashboardOptions.Section)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<DashboardOptions>, DashboardOptionsValidator>());
        services.TryAddSingleton<DashboardAuthenticator>();
        if (services.Any(d => d.ServiceType == typeof(ApiAuthMarker)))
        {
            return services;
        }

        services.AddSingleton<ApiAuthMarker>();
        services.AddAuthentication().AddScheme<AuthenticationSchemeOptions, FleetWatchAuthenticationHandler>(Scheme, null);
        services.AddAuthorizationBuilder().AddPolicy(Scheme, p => p.AddAuthenticationSchemes(Scheme).RequireAuthenticatedUser());
        return services;
    }

    /// <summary>Every endpoint of <paramref name="group"/> answers 401 without credentials.</summary>
    public static RouteGroupBuilder RequireFleetWatchAuth(this RouteGroupBuilder group)
    {
        ArgumentNullException.ThrowIfNull(group);
        group.RequireAuthorization(Scheme);
        return group;
    }

    /// <summary>The principal of a <see cref="DashboardUser"/>.</summary>
    internal static ClaimsPrincipal Principal(DashboardUser user)
    {
        var name = user.Via == "unsecured" ? "anonymous-unsecured" : user.Name;
        return new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, name), new Claim(ViaClaim, user.Via)], Scheme));
    }

    private sealed class ApiAuthMarker;
}

/// <summary>The scheme behind <see cref="FleetWatchApiAuth"/>: <see cref="DashboardAuthenticator"/>'s verdict as a principal.</summary>
internal sealed class FleetWatchAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    DashboardAuthenticator auth) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var user = auth.Authenticate(Request);
        return Task.FromResult(user is null
            ? AuthenticateResult.NoResult()
            : AuthenticateResult.Success(new AuthenticationTicket(FleetWatchApiAuth.Principal(user), Scheme.Name)));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        if (auth.Mode == DashboardAuthMode.ApiKey)
        {
            Response.Headers.WWWAuthenticate = "Bearer realm=\"fleetwatch-api\"";
        }

        await Response.WriteAsJsonAsync(new
        {
            error = auth.Mode == DashboardAuthMode.TrustedHeader
                ? "not signed in: call through the reverse proxy in front of FleetWatch"
                : "not signed in: send 'Authorization: Bearer KEY' or 'X-Api-Key: KEY'",
        }).ConfigureAwait(false);
    }
}
