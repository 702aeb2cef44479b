using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace FleetWatch.Dashboard.Security;

/// <summary>Who made a request, and how that was established (for the audit log).</summary>
public sealed record DashboardUser(string Name, string Via);

/// <summary>
/// Checks a request against the configured <see cref="DashboardAuthMode"/>. Keys are compared in constant time on
/// their SHA-256, and the browser cookie holds an HMAC of a fixed label under the key, never the key itself.
/// </summary>
internal sealed class DashboardAuthenticator
{
    public const string CookieName = "fleetwatch_session";
    public const string QueryKey = "key";
    private const string CookieLabel = "fleetwatch-dashboard-cookie-v1";

    private readonly byte[] keyHash = [];
    private readonly byte[] proxyKeyHash = [];
    private readonly byte[] cookieToken = [];
    private readonly string header;

    public DashboardAuthenticator(IOptions<DashboardOptions> options)
    {
        var auth = options.Value.Auth;
        Mode = auth.ParsedMode;
        header = auth.Header ?? DashboardAuthOptions.DefaultHeader;
        if (!string.IsNullOrWhiteSpace(auth.ProxyKey))
        {
            proxyKeyHash = SHA256.HashData(Encoding.UTF8.GetBytes(auth.ProxyKey.Trim()));
        }

        if (Mode == DashboardAuthMode.ApiKey)
        {
            var key = Encoding.UTF8.GetBytes(auth.ApiKey!.Trim());
            keyHash = SHA256.HashData(key);
            cookieToken = Encoding.ASCII.GetBytes(Convert.ToBase64String(HMACSHA256.HashData(key, Encoding.ASCII.GetBytes(CookieLabel))));
        }
    }

    public DashboardAuthMode Mode { get; }

    /// <summary>The cookie value a browser gets after presenting the key once.</summary>
    public string CookieValue => Encoding.ASCII.GetString(cookieToken);

    public DashboardUser? Authenticate(HttpRequest request)
    {
        // A dashboard forwarding an operator's call: its key proves it, and only then is the operator header believed.
        if (proxyKeyHash.Length > 0 && request.Headers.Authorization.ToString() is { } bearer
            && bearer.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
            && CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(bearer["Bearer ".Length..].Trim())), proxyKeyHash))
        {
            var forwarded = request.Headers[DashboardAuthOptions.OperatorHeader].ToString().Trim();
            return IsName(forwarded) ? new DashboardUser(forwarded, "dashboard-proxy") : new DashboardUser("dashboard", "dashboard-proxy");
        }

        switch (Mode)
        {
            case DashboardAuthMode.Unsecured:
                return new DashboardUser("anonymous", "unsecured");
            case DashboardAuthMode.TrustedHeader:
                var name = request.Headers[header].ToString().Trim();
                return IsName(name) ? new DashboardUser(name, header) : null;
            default:
                var authorization = request.Headers.Authorization.ToString();
                if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
                {
                    return IsKey(authorization["Bearer ".Length..]) ? new DashboardUser("api-key", "bearer") : null;
                }

                if (request.Headers.TryGetValue("X-Api-Key", out var apiKey))
                {
                    return IsKey(apiKey.ToString()) ? new DashboardUser("api-key", "x-api-key") : null;
                }

                if (request.Cookies.TryGetValue(CookieName, out var cookie)
                    && CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(cookie), cookieToken))
                {
                    return new DashboardUser("api-key", "cookie");
                }

                return null;
        }
    }

    private static bool IsName(string name) => name.Length is > 0 and <= 256 && !name.Any(char.IsControl);

    public bool IsKey(string? candidate) =>
        Mode == DashboardAuthMode.ApiKey && !string.IsNullOrEmpty(candidate)
        && CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(candidate.Trim())), keyHash);
}
