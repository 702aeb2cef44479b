using System.Security.Cryptography;
using System.Text;

namespace FleetWatch.Controller.Alerting;

/// <summary>
/// HMAC-SHA256 over the exact request body bytes, sent as <c>X-FleetWatch-Signature: sha256=&lt;lower-case hex&gt;</c>
/// (the GitHub webhook convention). A receiver recomputes it with the shared secret and compares in constant time.
/// </summary>
public static class WebhookSignature
{
    public const string DefaultHeader = "X-FleetWatch-Signature";

    public static string Sign(string secret, ReadOnlySpan<byte> body) =>
        "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), body));

    public static bool Verify(string secret, ReadOnlySpan<byte> body, string? header) =>
        header is not null && CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(Sign(secret, body)), Encoding.ASCII.GetBytes(header));
}
