using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Controller.Tests.Scheduling;

/// <summary>
/// A stand-in for the Kubernetes API server, which cannot be installed here: a real HTTP server on loopback that
/// answers the few endpoints the adapter calls (read node, JSON-patch node, list and delete-collection pods), records
/// every request as the official client sent it, and applies JSON patches (RFC 6902 add/remove/replace/test) to its
/// stored nodes, bumping <c>resourceVersion</c> like the real server, so a test sees both the request bodies and their
/// effect. It is not a Kubernetes: no admission, no validation beyond the patch operations.
/// </summary>
public sealed class KubernetesApiStandIn : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Lock _gate = new();
    private int _version = 100;

    private KubernetesApiStandIn(WebApplication app) => _app = app;

    public string Url { get; private set; } = "";

    /// <summary>Nodes by name, as JSON objects.</summary>
    public Dictionary<string, JsonObject> Nodes { get; } = [];

    /// <summary>Pods by namespace, as JSON objects (with <c>metadata.labels</c>).</summary>
    public Dictionary<string, List<JsonObject>> Pods { get; } = [];

    /// <summary>Called after a node is read and before the next patch is applied, once: simulates another writer.</summary>
    public Action<JsonObject>? ChangeBeforeNextPatch { get; set; }

    public ConcurrentQueue<RecordedRequest> Requests { get; } = new();

    public static async Task<KubernetesApiStandIn> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var api = new KubernetesApiStandIn(app);
        app.Use(async (ctx, next) =>
        {
            using var reader = new StreamReader(ctx.Request.Body);
            var body = await reader.ReadToEndAsync();
            api.Requests.Enqueue(new RecordedRequest(ctx.Request.Method, ctx.Request.Path, ctx.Request.QueryString.Value ?? "", ctx.Request.ContentType ?? "", body));
            ctx.Items["body"] = body;
            await next(ctx);
        });
        app.MapGet("/api/v1/nodes/{name}", (string name) => api.ReadNode(name));
        app.MapMethods("/api/v1/nodes/{name}", ["PATCH"], (string name, HttpContext ctx) => api.PatchNode(name, ctx.Request.ContentType, (string)ctx.Items["body"]!));
        app.MapGet("/api/v1/namespaces/{ns}/pods", (string ns, string? labelSelector) => api.ListPods(ns, labelSelector, delete: false));
        app.MapDelete("/api/v1/namespaces/{ns}/pods", (string ns, string? labelSelector) => api.ListPods(ns, labelSelector, delete: true));
        await app.StartAsync();
        api.Url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return api;
    }

    /// <summary>Adds a node with the given spec (JSON) and annotations.</summary>
    public JsonObject AddNode(string name, string specJson = "{}", string? annotationsJson = null)
    {
        var metadata = new JsonObject { ["name"] = name, ["resourceVersion"] = NextVersion() };
        if (annotationsJson is not null)
        {
            metadata["annotations"] = JsonNode.Parse(annotationsJson);
        }

        var node = new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Node", ["metadata"] = metadata, ["spec"] = JsonNode.Parse(specJson) };
        lock (_gate)
        {
            Nodes[name] = node;
        }

        return node;
    }

    public JsonObject Node(string name)
    {
        lock (_gate)
        {
            return (JsonObject)Nodes[name].DeepClone();
        }
    }

    public RecordedRequest[] RequestsOf(string method) => Requests.Where(r => r.Method == method).ToArray();

    private IResult ReadNode(string name)
    {
        lock (_gate)
        {
            return Nodes.TryGetValue(name, out var node) ? Json(node) : NotFound("nodes", name);
        }
    }

    private IResult PatchNode(string name, string? contentType, string body)
    {
        lock (_gate)
        {
            if (!Nodes.TryGetValue(name, out var node))
            {
                return NotFound("nodes", name);
            }

            if (ChangeBeforeNextPatch is { } change)
            {
                ChangeBeforeNextPatch = null;
                change(node);
                node["metadata"]!["resourceVersion"] = NextVersion();
            }

            if (contentType?.StartsWith("application/json-patch+json", StringComparison.Ordinal) != true)
            {
                return Status(415, "UnsupportedMediaType", $"stand-in only takes JSON patches, got {contentType}");
            }

            var patched = (JsonObject)node.DeepClone();
            foreach (var op in JsonNode.Parse(body)!.AsArray())
            {
                if (Apply(patched, op!.AsObject()) is { } error)
                {
                    // The real API server answers a failed "test" (or a bad path) with 422 Invalid.
                    return Status(422, "Invalid", error);
                }
            }

            patched["metadata"]!["resourceVersion"] = NextVersion();
            Nodes[name] = patched;
            return Json(patched);
        }
    }

    private IResult ListPods(string ns, string? selector, bool delete)
    {
        lock (_gate)
        {
            var all = Pods.GetValueOrDefault(ns) ?? [];
            var matched = all.Where(p => Matches(p, selector)).ToList();
            if (delete)
            {
                foreach (var pod in matched)
                {
                    pod["metadata"]!["deletionTimestamp"] = "2026-11-29T23:00:00Z";
                }
            }

            var list = new JsonObject { ["apiVersion"] = "v1", ["kind"] = "PodList", ["metadata"] = new JsonObject { ["resourceVersion"] = NextVersion() } };
            list["items"] = new JsonArray(matched.Select(p => (JsonNode)p.DeepClone()).ToArray());
            return Json(list);
        }
    }

    private static bool Matches(JsonObject pod, string? selector)
    {
        if (string.IsNullOrEmpty(selector))
        {
            return true;
        }

        var parts = selector.Split('=', 2);
        return (string?)pod["metadata"]?["labels"]?[parts[0]] == parts[1];
    }

    /// <summary>One RFC 6902 operation on object members; returns an error text or null.</summary>
    private static string? Apply(JsonObject document, JsonObject op)
    {
        var path = (string)op["path"]!;
        var tokens = path.Split('/').Skip(1).Select(t => t.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal)).ToArray();
        JsonNode? parent = document;
        foreach (var token in tokens[..^1])
        {
            parent = parent is JsonObject o && o.TryGetPropertyValue(token, out var child) ? child : null;
            if (parent is null)
            {
                return $"path {path}: parent missing";
            }
        }

        if (parent is not JsonObject target)
        {
            return $"path {path}: parent is not an object";
        }

        var last = tokens[^1];
        switch ((string)op["op"]!)
        {
            case "test":
                var actual = target.TryGetPropertyValue(last, out var value) ? value : null;
                return JsonNode.DeepEquals(actual, op["value"]) ? null : $"test failed at {path}: {actual?.ToJsonString()} != {op["value"]?.ToJsonString()}";
            case "add":
                target[last] = op["value"]?.DeepClone();
                return null;
            case "replace":
                if (!target.ContainsKey(last))
                {
                    return $"replace of missing {path}";
                }

                target[last] = op["value"]?.DeepClone();
                return null;
            case "remove":
                return target.Remove(last) ? null : $"remove of missing {path}";
            default:
                return $"unsupported op {op["op"]}";
        }
    }

    private string NextVersion() => Interlocked.Increment(ref _version).ToString(CultureInfo.InvariantCulture);

    private static IResult Json(JsonNode node) => Results.Text(node.ToJsonString(), "application/json");

    private static IResult NotFound(string kind, string name) => Status(404, "NotFound", $"{kind} \"{name}\" not found");

    private static IResult Status(int code, string reason, string message) =>
        Results.Text(new JsonObject { ["kind"] = "Status", ["apiVersion"] = "v1", ["status"] = "Failure", ["reason"] = reason, ["message"] = message, ["code"] = code }.ToJsonString(),
            "application/json", statusCode: code);

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}

/// <summary>One request as the stand-in received it.</summary>
public sealed record RecordedRequest(string Method, string Path, string Query, string ContentType, string Body);
