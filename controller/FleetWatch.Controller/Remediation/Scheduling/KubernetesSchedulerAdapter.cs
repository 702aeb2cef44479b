using System.Net;
using System.Text.Json.Nodes;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Remediation.Scheduling;

/// <summary>
/// Cordons, uncordons and restarts jobs through the Kubernetes API with the official <c>KubernetesClient</c>.
/// <list type="bullet">
/// <item>Drain = cordon (<c>spec.unschedulable=true</c>, as <c>kubectl cordon</c>) plus the taint
/// <c>fleetwatch.io/unhealthy=&lt;incident&gt;:NoSchedule</c>, in one JSON patch guarded by a <c>test</c> of the
/// node's <c>resourceVersion</c> (a concurrent change makes the patch fail and it is retried on the fresh node).</item>
/// <item>Resume = remove FleetWatch's taint; set <c>unschedulable=false</c> only when FleetWatch was the one that set it
/// (the annotation <c>fleetwatch.io/cordoned</c> marks that), so an operator's own cordon survives.</item>
/// <item>Requeue = delete the job's pods by label selector. Assumption: the job's controller (a Job with a
/// <c>backoffLimit</c>, a JobSet, a PyTorchJob...) recreates deleted pods and the launcher resumes from the checkpoint;
/// FleetWatch creates no pods. The excluded nodes are kept out by their cordon and taint, not by this call.</item>
/// </list>
/// </summary>
public sealed partial class KubernetesSchedulerAdapter : ISchedulerAdapter, ISchedulerNodeInspector, IDisposable
{
    /// <summary>FleetWatch's taint key; its value names the incident.</summary>
    public const string TaintKey = "fleetwatch.io/unhealthy";

    /// <summary>Annotation set when FleetWatch itself made the node unschedulable (value: the taint value).</summary>
    public const string CordonedAnnotation = "fleetwatch.io/cordoned";

    /// <summary>Annotation holding the full drain reason (a taint value is limited to 63 characters).</summary>
    public const string ReasonAnnotation = "fleetwatch.io/cordon-reason";

    private const string NoSchedule = "NoSchedule";

    /// <summary>Attempts of a patch that lost a race with another writer of the node.</summary>
    private const int PatchAttempts = 3;

    private readonly KubernetesOptions _options;
    private readonly ILogger<KubernetesSchedulerAdapter> _logger;
    private readonly SchedulerOutcomes _outcomes;
    private readonly Lazy<Kubernetes> _client;

    public KubernetesSchedulerAdapter(IOptions<KubernetesOptions> options, ILogger<KubernetesSchedulerAdapter> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _logger = logger;
        _outcomes = new SchedulerOutcomes(logger, "Kubernetes");
        // Built on first use: reading a kubeconfig or the service account at construction would fail the host's start
        // for a scheduler that may never be called.
        _client = new Lazy<Kubernetes>(() => new Kubernetes(BuildConfiguration(_options)));
    }

    /// <inheritdoc />
    public string Name => "kubernetes";

    /// <inheritdoc />
    public Task<SchedulerResult> DrainAsync(string node, string reason, CancellationToken ct) =>
        SchedulerArguments.IsValidNodeName(node)
            ? PatchNodeAsync("cordon", node, n => CordonPatch(n, reason), ct)
            : Task.FromResult(_outcomes.Refused("cordon", node, "not a single valid node name"));

    /// <inheritdoc />
    public Task<SchedulerResult> ResumeAsync(string node, CancellationToken ct) =>
        SchedulerArguments.IsValidNodeName(node)
            ? PatchNodeAsync("uncordon", node, UncordonPatch, ct)
            : Task.FromResult(_outcomes.Refused("uncordon", node, "not a single valid node name"));

    /// <inheritdoc />
    /// <remarks>
    /// <paramref name="schedulerJobId"/> is <c>namespace/name</c> or <c>name</c> (in <see cref="KubernetesOptions.DefaultNamespace"/>).
    /// Idempotent: when every pod of the job is already terminating or not yet running (a restart in progress), nothing
    /// is deleted again.
    /// </remarks>
    public async Task<SchedulerResult> RequeueAsync(string schedulerJobId, IReadOnlyList<string> excludedNodes, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(schedulerJobId);
        var slash = schedulerJobId.IndexOf('/', StringComparison.Ordinal);
        var ns = slash < 0 ? _options.DefaultNamespace : schedulerJobId[..slash];
        var name = slash < 0 ? schedulerJobId : schedulerJobId[(slash + 1)..];
        if (!SchedulerArguments.IsValidNodeName(ns) || SchedulerArguments.ToLabelValue(name) != name || !SchedulerArguments.IsValidNodeName(name))
        {
            return _outcomes.Refused("requeue", schedulerJobId, "not a Kubernetes job id (namespace/name)");
        }

        var selector = $"{_options.JobLabel}={name}";
        try
        {
            using var timeout = Timeout(ct);
            var pods = await _client.Value.CoreV1.ListNamespacedPodAsync(ns, labelSelector: selector, cancellationToken: timeout.Token).ConfigureAwait(false);
            var live = pods.Items.Where(p => p.Metadata.DeletionTimestamp is null && p.Status?.Phase is not ("Pending" or null)).ToList();
            if (pods.Items.Count == 0)
            {
                return _outcomes.Failed("requeue", schedulerJobId, $"no pods in namespace {ns} match {selector}");
            }

            if (live.Count == 0)
            {
                return _outcomes.Done("requeue", schedulerJobId, $"already restarting: {pods.Items.Count} pod(s) terminating or pending");
            }

            int? grace = _options.PodDeleteGracePeriod is { } g ? (int)g.TotalSeconds : null;
            await _client.Value.CoreV1.DeleteCollectionNamespacedPodAsync(ns, labelSelector: selector, gracePeriodSeconds: grace, cancellationToken: timeout.Token)
                .ConfigureAwait(false);
            var onExcluded = live.Count(p => excludedNodes.Contains(p.Spec?.NodeName ?? "", StringComparer.Ordinal));
            return _outcomes.Done("requeue", schedulerJobId,
                $"deleted {pods.Items.Count} pod(s) matching {selector} ({onExcluded} on excluded nodes); the job's controller recreates them");
        }
        catch (Exception ex) when (ex is HttpOperationException or HttpRequestException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            return _outcomes.Failed("requeue", schedulerJobId, Describe(ex));
        }
    }

    /// <inheritdoc />
    public async Task<SchedulerNodeState> GetNodeStateAsync(string node, CancellationToken ct)
    {
        if (!SchedulerArguments.IsValidNodeName(node))
        {
            return new SchedulerNodeState(node, Found: false, Drained: false, State: "invalid node name", Reason: null);
        }

        try
        {
            using var timeout = Timeout(ct);
            var n = await _client.Value.CoreV1.ReadNodeAsync(node, cancellationToken: timeout.Token).ConfigureAwait(false);
            var unschedulable = n.Spec?.Unschedulable == true;
            var taint = OurTaint(n);
            return new SchedulerNodeState(node, Found: true, Drained: unschedulable || taint is not null,
                State: unschedulable ? "unschedulable" : "schedulable", Reason: taint?.Value);
        }
        catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return new SchedulerNodeState(node, Found: false, Drained: false, State: "not found", Reason: null);
        }
        catch (Exception ex) when (ex is HttpOperationException or HttpRequestException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            throw new SchedulerUnavailableException($"reading node {node}: {Describe(ex)}", ex);
        }
    }

    public void Dispose()
    {
        if (_client.IsValueCreated)
        {
            _client.Value.Dispose();
        }
    }

    /// <summary>The JSON patch that cordons and taints the node, or a result when there is nothing to change.</summary>
    internal static (JsonArray? Patch, string Detail) CordonPatch(V1Node node, string reason)
    {
        var value = SchedulerArguments.ToLabelValue(reason);
        var unschedulable = node.Spec?.Unschedulable == true;
        var existing = OurTaint(node);
        if (unschedulable && existing is not null)
        {
            return (null, $"already cordoned (taint {TaintKey}={existing.Value}:{NoSchedule})");
        }

        var patch = StartPatch(node);
        var annotations = new Dictionary<string, string> { [ReasonAnnotation] = SchedulerArguments.CleanReason(reason) };
        if (!unschedulable)
        {
            patch.Add(Op("add", "/spec/unschedulable", true));
            annotations[CordonedAnnotation] = value;
        }

        if (existing is null)
        {
            var taints = Taints(node);
            taints.Add(new JsonObject { ["key"] = TaintKey, ["value"] = value, ["effect"] = NoSchedule });
            patch.Add(Op("add", "/spec/taints", taints));
        }

        AddAnnotations(patch, node, annotations);
        var detail = unschedulable ? $"tainted {TaintKey}={value}:{NoSchedule}; node was already cordoned by someone else"
            : $"cordoned and tainted {TaintKey}={value}:{NoSchedule}";
        return (patch, detail);
    }

    /// <summary>The JSON patch that removes FleetWatch's taint and, if FleetWatch set it, the cordon.</summary>
    internal static (JsonArray? Patch, string Detail) UncordonPatch(V1Node node)
    {
        var unschedulable = node.Spec?.Unschedulable == true;
        var ours = node.Metadata?.Annotations?.ContainsKey(CordonedAnnotation) == true;
        var taint = OurTaint(node);
        if (taint is null && !ours)
        {
            return (null, unschedulable ? "refused: cordoned by someone else, not by FleetWatch; left cordoned" : "already schedulable");
        }

        var patch = StartPatch(node);
        if (taint is not null)
        {
            var rest = new JsonArray();
            foreach (var t in Taints(node).Where(t => !IsOurs(t)))
            {
                rest.Add(t?.DeepClone());
            }

            patch.Add(Op("add", "/spec/taints", rest));
        }

        if (ours)
        {
            patch.Add(Op("add", "/spec/unschedulable", false));
        }

        foreach (var key in new[] { CordonedAnnotation, ReasonAnnotation }.Where(k => node.Metadata?.Annotations?.ContainsKey(k) == true))
        {
            patch.Add(new JsonObject { ["op"] = "remove", ["path"] = $"/metadata/annotations/{Escape(key)}" });
        }

        return (patch, ours ? "uncordoned and untainted" : "untainted; left cordoned (cordoned by someone else before FleetWatch)");
    }

    private async Task<SchedulerResult> PatchNodeAsync(string action, string node, Func<V1Node, (JsonArray? Patch, string Detail)> plan, CancellationToken ct)
    {
        try
        {
            for (var attempt = 1; ; attempt++)
            {
                using var timeout = Timeout(ct);
                V1Node current;
                try
                {
                    current = await _client.Value.CoreV1.ReadNodeAsync(node, cancellationToken: timeout.Token).ConfigureAwait(false);
                }
                catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.NotFound)
                {
                    return _outcomes.Failed(action, node, $"Kubernetes does not know node {node}");
                }

                var (patch, detail) = plan(current);
                if (patch is null)
                {
                    return detail.StartsWith("refused: ", StringComparison.Ordinal) ? _outcomes.Refused(action, node, detail["refused: ".Length..]) : _outcomes.Done(action, node, detail);
                }

                try
                {
                    await _client.Value.CoreV1.PatchNodeAsync(new V1Patch(patch.ToJsonString(), V1Patch.PatchType.JsonPatch), node, cancellationToken: timeout.Token)
                        .ConfigureAwait(false);
                    return _outcomes.Done(action, node, detail);
                }
                catch (HttpOperationException ex) when (IsLostRace(ex) && attempt < PatchAttempts)
                {
                    LogRetry(action, node, attempt);
                }
            }
        }
        catch (Exception ex) when (ex is HttpOperationException or HttpRequestException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            return _outcomes.Failed(action, node, Describe(ex));
        }
    }

    /// <summary>A failed <c>test</c> of the resourceVersion answers 422 (Invalid); a write conflict answers 409.</summary>
    private static bool IsLostRace(HttpOperationException ex) => ex.Response.StatusCode is HttpStatusCode.Conflict or HttpStatusCode.UnprocessableEntity;

    private static JsonArray StartPatch(V1Node node) =>
        [new JsonObject { ["op"] = "test", ["path"] = "/metadata/resourceVersion", ["value"] = node.Metadata?.ResourceVersion }];

    private static JsonObject Op(string op, string path, JsonNode? value) => new() { ["op"] = op, ["path"] = path, ["value"] = value };

    private static void AddAnnotations(JsonArray patch, V1Node node, Dictionary<string, string> annotations)
    {
        if (node.Metadata?.Annotations is null)
        {
            // JSON patch cannot add a member to a missing object: add the whole map.
            var map = new JsonObject();
            foreach (var (k, v) in annotations)
            {
                map[k] = v;
            }

            patch.Add(Op("add", "/metadata/annotations", map));
            return;
        }

        foreach (var (k, v) in annotations)
        {
            patch.Add(Op("add", $"/metadata/annotations/{Escape(k)}", v));
        }
    }

    /// <summary>The node's taints as JSON, exactly as the client serialises them (keeps <c>timeAdded</c> of NoExecute taints).</summary>
    private static JsonArray Taints(V1Node node) =>
        node.Spec?.Taints is { Count: > 0 } taints ? JsonNode.Parse(KubernetesJson.Serialize(taints))!.AsArray() : [];

    private static V1Taint? OurTaint(V1Node node) =>
        node.Spec?.Taints?.FirstOrDefault(t => t.Key == TaintKey && t.Effect == NoSchedule);

    private static bool IsOurs(JsonNode? taint) =>
        (string?)taint?["key"] == TaintKey && (string?)taint?["effect"] == NoSchedule;

    /// <summary>JSON pointer escaping (RFC 6901 section 3): <c>~</c> as <c>~0</c>, <c>/</c> as <c>~1</c>.</summary>
    private static string Escape(string key) => key.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);

    private CancellationTokenSource Timeout(CancellationToken ct)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(_options.RequestTimeout);
        return cts;
    }

    private static string Describe(Exception ex) => ex switch
    {
        HttpOperationException h => $"API server answered {(int)h.Response.StatusCode} {h.Response.ReasonPhrase}: {Shorten(h.Response.Content)}",
        OperationCanceledException => "API server did not answer in time",
        _ => ex.Message,
    };

    private static string Shorten(string? text) => text is null ? "" : text.Length <= 300 ? text : text[..300];

    private static KubernetesClientConfiguration BuildConfiguration(KubernetesOptions o)
    {
        var config = o.KubeConfigPath is { Length: > 0 } path ? KubernetesClientConfiguration.BuildConfigFromConfigFile(path)
            : o.Host is { Length: > 0 } ? new KubernetesClientConfiguration()
            : KubernetesClientConfiguration.BuildDefaultConfig();
        if (o.Host is { Length: > 0 } host)
        {
            config.Host = host;
        }

        config.HttpClientTimeout = o.RequestTimeout;
        return config;
    }

    [LoggerMessage(EventId = 7214, Level = LogLevel.Information, Message = "Kubernetes {Action} {Target}: node changed meanwhile (attempt {Attempt}), retrying")]
    private partial void LogRetry(string action, string target, int attempt);
}
