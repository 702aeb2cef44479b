using System.ComponentModel.DataAnnotations;
using FleetWatch.Common;

namespace FleetWatch.Controller.Remediation.Scheduling;

/// <summary>The Kubernetes scheduler adapter (section <c>FleetWatch:Schedulers:Kubernetes</c>).</summary>
public sealed class KubernetesOptions
{
    public const string Section = "FleetWatch:Schedulers:Kubernetes";

    /// <summary>Registers the adapter. Off by default.</summary>
    public bool Enabled { get; set; }

    /// <summary>
    /// A kubeconfig file. Empty: the client's default (<c>KUBECONFIG</c> or <c>~/.kube/config</c>, else the pod's
    /// service account when the controller runs in the cluster).
    /// </summary>
    public string? KubeConfigPath { get; set; }

    /// <summary>
    /// The API server URL, overriding the kubeconfig's (for example a <c>kubectl proxy</c> on loopback). When set
    /// without <see cref="KubeConfigPath"/>, no credentials are sent.
    /// </summary>
    public string? Host { get; set; }

    /// <summary>The namespace of a job whose scheduler job id has no <c>namespace/</c> part.</summary>
    [Required]
    [RegularExpression("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
    public string DefaultNamespace { get; set; } = "default";

    /// <summary>
    /// The pod label that names a job; a requeue deletes the pods whose label has the job's name. The Job controller
    /// sets <c>batch.kubernetes.io/job-name</c> (Kubernetes 1.27+); Kubeflow's training operator sets
    /// <c>training.kubeflow.org/job-name</c>; JobSet sets <c>jobset.sigs.k8s.io/jobset-name</c>.
    /// </summary>
    [Required]
    [RegularExpression("^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")]
    public string JobLabel { get; set; } = "batch.kubernetes.io/job-name";

    /// <summary>Time limit of one request to the API server.</summary>
    [TimeSpanRange("00:00:01", "00:10:00")]
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Grace period for the deleted pods; null keeps each pod's own <c>terminationGracePeriodSeconds</c>.</summary>
    [TimeSpanRange("00:00:00", "01:00:00")]
    public TimeSpan? PodDeleteGracePeriod { get; set; }

    internal static IEnumerable<(string Key, object? Value, string Error)> Validate(KubernetesOptions o)
    {
        if (o.Host is { Length: > 0 } host && !(Uri.TryCreate(host, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"))
        {
            yield return ($"{Section}:{nameof(Host)}", host, "must be an absolute http(s) URL");
        }

        if (o.Enabled && o.KubeConfigPath is { Length: > 0 } path && !File.Exists(path))
        {
            yield return ($"{Section}:{nameof(KubeConfigPath)}", path, "file not found");
        }
    }
}
