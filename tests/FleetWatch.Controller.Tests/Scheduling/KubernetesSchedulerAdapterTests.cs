using System.Text.Json.Nodes;
using FleetWatch.Controller.Remediation.Scheduling;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Tests.Scheduling;

/// <summary>
/// The Kubernetes adapter through the real <c>KubernetesClient</c> against <see cref="KubernetesApiStandIn"/> (no
/// Kubernetes API server can run here): the tests check the HTTP requests the client actually sends and their effect.
/// </summary>
public sealed class KubernetesSchedulerAdapterTests : IAsyncLifetime
{
    private KubernetesApiStandIn _api = null!;
    private KubernetesSchedulerAdapter _adapter = null!;

    public async Task InitializeAsync()
    {
        _api = await KubernetesApiStandIn.StartAsync();
        _adapter = new KubernetesSchedulerAdapter(
            Options.Create(new KubernetesOptions { Enabled = true, Host = _api.Url, DefaultNamespace = "ml", RequestTimeout = TimeSpan.FromSeconds(10) }),
            NullLogger<KubernetesSchedulerAdapter>.Instance);
    }

    public async Task DisposeAsync()
    {
        _adapter.Dispose();
        await _api.DisposeAsync();
    }

    [Fact]
    public async Task Cordon_sends_one_json_patch_guarded_by_the_resource_version()
    {
        // An existing NoExecute taint (with timeAdded) and annotation must survive the patch untouched.
        var node = _api.AddNode("gpu-a17",
            """{"taints":[{"key":"nvidia.com/gpu","value":"present","effect":"NoExecute","timeAdded":"2026-11-01T10:00:00Z"}]}""",
            """{"team":"llm"}""");
        var version = (string)node["metadata"]!["resourceVersion"]!;

        var result = await _adapter.DrainAsync("gpu-a17", "incident inc-42: Xid 79 on gpu-a17 GPU 3", CancellationToken.None);

        Assert.True(result.Ok, result.Detail);
        var patch = Assert.Single(_api.RequestsOf("PATCH"));
        Assert.Equal("/api/v1/nodes/gpu-a17", patch.Path);
        Assert.StartsWith("application/json-patch+json", patch.ContentType, StringComparison.Ordinal);
        var expected = JsonNode.Parse($$"""
            [
              {"op":"test","path":"/metadata/resourceVersion","value":"{{version}}"},
              {"op":"add","path":"/spec/unschedulable","value":true},
              {"op":"add","path":"/spec/taints","value":[
                {"effect":"NoExecute","key":"nvidia.com/gpu","timeAdded":"2026-11-01T10:00:00Z","value":"present"},
                {"key":"fleetwatch.io/unhealthy","value":"incident-inc-42-Xid-79-on-gpu-a17-GPU-3","effect":"NoSchedule"}]},
              {"op":"add","path":"/metadata/annotations/fleetwatch.io~1cordon-reason","value":"incident inc-42: Xid 79 on gpu-a17 GPU 3"},
              {"op":"add","path":"/metadata/annotations/fleetwatch.io~1cordoned","value":"incident-inc-42-Xid-79-on-gpu-a17-GPU-3"}
            ]
            """);
        Assert.True(JsonNode.DeepEquals(expected, Normalise(JsonNode.Parse(patch.Body))), patch.Body);
        var after = _api.Node("gpu-a17");
        Assert.Equal("llm", (string?)after["metadata"]!["annotations"]!["team"]);
        var state = await _adapter.GetNodeStateAsync("gpu-a17", CancellationToken.None);
        Assert.Equal(new SchedulerNodeState("gpu-a17", true, true, "unschedulable", "incident-inc-42-Xid-79-on-gpu-a17-GPU-3"), state);
    }

    [Fact]
    public async Task Cordon_then_uncordon_restores_the_node_and_repeats_send_nothing()
    {
        _api.AddNode("gpu-b01", """{"taints":[{"key":"dedicated","value":"training","effect":"NoSchedule"}]}""");
        var before = _api.Node("gpu-b01")["spec"]!["taints"]!.DeepClone();

        Assert.True((await _adapter.DrainAsync("gpu-b01", "incident inc-1", CancellationToken.None)).Ok);
        var repeat = await _adapter.DrainAsync("gpu-b01", "incident inc-2", CancellationToken.None);
        var resume = await _adapter.ResumeAsync("gpu-b01", CancellationToken.None);
        var resumeAgain = await _adapter.ResumeAsync("gpu-b01", CancellationToken.None);

        Assert.True(repeat.Ok, repeat.Detail);
        Assert.Contains("already cordoned", repeat.Detail, StringComparison.Ordinal);
        Assert.True(resume.Ok, resume.Detail);
        Assert.True(resumeAgain.Ok, resumeAgain.Detail);
        Assert.Contains("already schedulable", resumeAgain.Detail, StringComparison.Ordinal);
        Assert.Equal(2, _api.RequestsOf("PATCH").Length);
        var node = _api.Node("gpu-b01");
        Assert.False((bool?)node["spec"]!["unschedulable"]);
        Assert.True(JsonNode.DeepEquals(before, node["spec"]!["taints"]), node.ToJsonString());
        Assert.Empty(node["metadata"]!["annotations"]!.AsObject());
    }

    [Fact]
    public async Task An_operator_cordon_is_kept_and_never_lifted_by_fleetwatch()
    {
        _api.AddNode("gpu-c02", """{"unschedulable":true}""", """{"ops/ticket":"1234"}""");
        _api.AddNode("gpu-c03", """{"unschedulable":true}""");

        var cordon = await _adapter.DrainAsync("gpu-c02", "incident inc-5", CancellationToken.None);
        var cordonPatch = JsonNode.Parse(Assert.Single(_api.RequestsOf("PATCH")).Body)!.AsArray();
        var uncordon = await _adapter.ResumeAsync("gpu-c02", CancellationToken.None);
        var refused = await _adapter.ResumeAsync("gpu-c03", CancellationToken.None);

        Assert.True(cordon.Ok, cordon.Detail);
        Assert.DoesNotContain(cordonPatch, op => (string?)op!["path"] == "/spec/unschedulable");
        Assert.True(uncordon.Ok, uncordon.Detail);
        Assert.Contains("left cordoned", uncordon.Detail, StringComparison.Ordinal);
        var node = _api.Node("gpu-c02");
        Assert.True((bool?)node["spec"]!["unschedulable"]);
        Assert.Empty(Taints(node));
        Assert.Equal("1234", (string?)node["metadata"]!["annotations"]!["ops/ticket"]);
        Assert.False(refused.Ok);
        Assert.StartsWith("refused:", refused.Detail, StringComparison.Ordinal);
        Assert.True((bool?)_api.Node("gpu-c03")["spec"]!["unschedulable"]);
    }

    [Fact]
    public async Task A_patch_that_loses_a_race_is_rebuilt_on_the_fresh_node()
    {
        _api.AddNode("gpu-d04");
        // Another controller adds a taint between the adapter's read and its patch.
        _api.ChangeBeforeNextPatch = n => n["spec"]!["taints"] = JsonNode.Parse("""[{"key":"other","effect":"NoSchedule"}]""");

        var result = await _adapter.DrainAsync("gpu-d04", "incident inc-8", CancellationToken.None);

        Assert.True(result.Ok, result.Detail);
        Assert.Equal(2, _api.RequestsOf("PATCH").Length);
        Assert.Equal(["other", KubernetesSchedulerAdapter.TaintKey], Taints(_api.Node("gpu-d04")).Select(t => (string)t["key"]!).ToArray());
    }

    [Fact]
    public async Task Requeue_deletes_the_jobs_pods_by_label_once()
    {
        _api.Pods["ml"] =
        [
            Pod("train-7-0", "train-7", "gpu-a17", "Running"),
            Pod("train-7-1", "train-7", "gpu-a18", "Running"),
            Pod("other-0", "other", "gpu-a19", "Running"),
        ];

        var result = await _adapter.RequeueAsync("ml/train-7", ["gpu-a17"], CancellationToken.None);
        var repeat = await _adapter.RequeueAsync("train-7", ["gpu-a17"], CancellationToken.None);

        Assert.True(result.Ok, result.Detail);
        Assert.Contains("deleted 2 pod(s)", result.Detail, StringComparison.Ordinal);
        Assert.Contains("(1 on excluded nodes)", result.Detail, StringComparison.Ordinal);
        var delete = Assert.Single(_api.RequestsOf("DELETE"));
        Assert.Equal("/api/v1/namespaces/ml/pods", delete.Path);
        Assert.Contains("labelSelector=batch.kubernetes.io%2Fjob-name%3Dtrain-7", delete.Query, StringComparison.Ordinal);
        Assert.True(repeat.Ok, repeat.Detail);
        Assert.Contains("already restarting", repeat.Detail, StringComparison.Ordinal);
        Assert.Null(_api.Pods["ml"][2]["metadata"]!["deletionTimestamp"]);
    }

    [Fact]
    public async Task Unknown_nodes_bad_ids_and_an_unreachable_server_fail_with_the_reason()
    {
        var unknown = await _adapter.DrainAsync("gpu-zz", "incident", CancellationToken.None);
        var range = await _adapter.DrainAsync("gpu[1-9]", "incident", CancellationToken.None);
        var badJob = await _adapter.RequeueAsync("ml/train 7", [], CancellationToken.None);
        var noPods = await _adapter.RequeueAsync("ml/ghost", [], CancellationToken.None);
        var state = await _adapter.GetNodeStateAsync("gpu-zz", CancellationToken.None);
        using var unreachable = new KubernetesSchedulerAdapter(
            Options.Create(new KubernetesOptions { Enabled = true, Host = "http://127.0.0.1:1", RequestTimeout = TimeSpan.FromSeconds(5) }),
            NullLogger<KubernetesSchedulerAdapter>.Instance);
        var down = await unreachable.DrainAsync("gpu-a17", "incident", CancellationToken.None);

        Assert.False(unknown.Ok);
        Assert.Contains("does not know node gpu-zz", unknown.Detail, StringComparison.Ordinal);
        Assert.StartsWith("refused:", range.Detail, StringComparison.Ordinal);
        Assert.StartsWith("refused:", badJob.Detail, StringComparison.Ordinal);
        Assert.False(noPods.Ok);
        Assert.Contains("no pods", noPods.Detail, StringComparison.Ordinal);
        Assert.False(state.Found);
        Assert.False(down.Ok, down.Detail);
        Assert.Empty(_api.RequestsOf("PATCH"));
        Assert.Empty(_api.RequestsOf("DELETE"));
        await Assert.ThrowsAsync<SchedulerUnavailableException>(() => unreachable.GetNodeStateAsync("gpu-a17", CancellationToken.None));
    }

    private static JsonObject Pod(string name, string job, string node, string phase) =>
        JsonNode.Parse($$"""
            {"metadata":{"name":"{{name}}","namespace":"ml","labels":{"batch.kubernetes.io/job-name":"{{job}}"} },
             "spec":{"nodeName":"{{node}}","containers":[{"name":"trainer","image":"trainer:1"}]},
             "status":{"phase":"{{phase}}"} }
            """)!.AsObject();

    private static List<JsonObject> Taints(JsonObject node) =>
        node["spec"]?["taints"]?.AsArray().Select(t => t!.AsObject()).ToList() ?? [];

    /// <summary>Patch operations with annotation ops sorted by path (their order carries no meaning).</summary>
    private static JsonNode Normalise(JsonNode? patch)
    {
        var ops = patch!.AsArray().Select(o => o!.DeepClone()).ToList();
        var annotations = ops.Where(o => ((string)o["path"]!).StartsWith("/metadata/annotations/", StringComparison.Ordinal)).OrderBy(o => (string)o["path"]!, StringComparer.Ordinal).ToList();
        return new JsonArray(ops.Except(annotations).Concat(annotations).ToArray());
    }
}
