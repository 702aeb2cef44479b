using System.ComponentModel.DataAnnotations;

namespace FleetWatch.Controller.Alerting;

/// <summary>Alert delivery (section <c>FleetWatch:Alerting</c>).</summary>
public sealed class AlertingOptions
{
    public const string Section = "FleetWatch:Alerting";

    /// <summary>Generic webhooks that receive the Alertmanager version-4 payload.</summary>
    public List<WebhookReceiverOptions> Webhooks { get; set; } = [];

    /// <summary>Link back to FleetWatch in alerts (<c>externalURL</c>, <c>generatorURL</c>).</summary>
    public string ExternalUrl { get; set; } = "http://127.0.0.1:5080";

    /// <summary>First retry delay; doubles up to <see cref="MaxBackoff"/> (Alertmanager: 0.5 s, ×1.5, max 60 s).</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00")]
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromMilliseconds(500);

    [Range(typeof(TimeSpan), "00:00:00.010", "01:00:00")]
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>A notification not delivered within this time is given up, logged and counted.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan GiveUpAfter { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Timeout of one HTTP attempt.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:05:00")]
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Minimum severity sent to receivers.</summary>
    public FleetWatch.Contracts.Severity MinimumSeverity { get; set; } = FleetWatch.Contracts.Severity.Warning;
}

/// <summary>One generic webhook receiver. The URL is a secret (it often embeds a token): it is never logged.</summary>
public sealed class WebhookReceiverOptions
{
    [Required]
    [RegularExpression("^[A-Za-z0-9_.-]+$")]
    public string Name { get; set; } = "";

    [Required]
    
    public string Url { get; set; } = "";
}
