using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace FleetWatch.Dashboard.Assets;

/// <summary>
/// The page and its assets, read once from the assembly's manifest resources (no CDN, no files on disk). The page
/// names each asset with a content hash (<c>/assets/app.js?v=HASH</c>) so assets cache for a year while the page
/// itself is revalidated on every load (and so re-checks credentials).
/// </summary>
internal sealed partial class DashboardAssets
{
    private const string Prefix = "wwwroot/";

    private static readonly Dictionary<string, string> ContentTypes = new(StringComparer.OrdinalIgnoreCase)
    {
        [".html"] = "text/html; charset=utf-8",
        [".js"] = "text/javascript; charset=utf-8",
        [".css"] = "text/css; charset=utf-8",
        [".svg"] = "image/svg+xml",
        [".png"] = "image/png",
        [".ico"] = "image/x-icon",
        [".json"] = "application/json; charset=utf-8",
        [".woff2"] = "font/woff2",
    };

    private readonly Dictionary<string, Asset> assets = new(StringComparer.Ordinal);

    public DashboardAssets(IOptions<DashboardOptions> options)
    {
        var assembly = typeof(DashboardAssets).Assembly;
        foreach (var name in assembly.GetManifestResourceNames().Where(n => n.StartsWith(Prefix, StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            var path = name[Prefix.Length..].Replace('\\', '/');
            assets[path] = Asset.Create(path, copy.ToArray(), ContentTypeOf(path));
        }

        var mode = options.Value.Auth.ParsedMode;
        var template = Encoding.UTF8.GetString(assets["index.html"].Content);
        var html = Placeholder().Replace(template, m => m.Groups[1].Value switch
        {
            "authMode" => mode.ToString(),
            "bannerHidden" => mode == DashboardAuthMode.Unsecured ? string.Empty : "hidden",
            var other when other.StartsWith("hash:", StringComparison.Ordinal) => assets[other["hash:".Length..]].Hash,
            var other => throw new InvalidOperationException($"index.html: unknown placeholder '{other}'"),
        });
        Page = Asset.Create("index.html", Encoding.UTF8.GetBytes(html), ContentTypes[".html"]);
    }

    public Asset Page { get; }

    public Asset? Find(string path) => path != "index.html" && assets.TryGetValue(path, out var asset) ? asset : null;

    private static string ContentTypeOf(string path) =>
        ContentTypes.TryGetValue(Path.GetExtension(path), out var type) ? type : "application/octet-stream";

    [GeneratedRegex(@"\{\{([A-Za-z0-9:._-]+)\}\}")]
    private static partial Regex Placeholder();

    /// <summary>One embedded file with its content type and a content hash used as ETag and cache-busting version.</summary>
    internal sealed record Asset(string Path, byte[] Content, string ContentType, string Hash)
    {
        public string ETag => "\"" + Hash + "\"";

        public static Asset Create(string path, byte[] content, string contentType) =>
            new(path, content, contentType, Convert.ToHexStringLower(SHA256.HashData(content))[..16]);

        /// <summary>Writes the asset, or 304 when the browser holds this version.</summary>
        public IResult ToResult(HttpContext http, string cacheControl)
        {
            http.Response.Headers.ETag = ETag;
            http.Response.Headers.CacheControl = cacheControl;
            http.Response.Headers.XContentTypeOptions = "nosniff";
            var ifNoneMatch = http.Request.Headers.IfNoneMatch;
            if (ifNoneMatch.Count > 0 && EntityTagHeaderValue.TryParseList(ifNoneMatch, out var tags)
                && tags.Any(t => t.Tag == ETag || t.Tag == "*"))
            {
                return Results.StatusCode(StatusCodes.Status304NotModified);
            }

            return Results.Bytes(Content, ContentType);
        }
    }
}
