using System.ComponentModel.DataAnnotations;
using FleetWatch.Contracts;
using FleetWatch.Common;

namespace FleetWatch.Controller.Alerting;

/// <summary>Alert delivery (section <c>FleetWatch:Alerting</c>): receivers, routes, retry and give-up rules.</summary>
public sealed class AlertingOptions
{
    public const string Section = "FleetWatch:Alerting";

    /// <summary>Receivers of every kind (Slack, Teams, PagerDuty, Alertmanager, generic webhook).</summary>
    public List<ReceiverOptions> Receivers { get; set; } = [];

    /// <summary>
    /// Generic webhooks (Alertmanager version-4 payload). Kept for older configurations: each entry is a receiver of
    /// type <see cref="ReceiverType.Webhook"/>, exactly as if it were listed under <see cref="Receivers"/>.
    /// </summary>
    public List<WebhookReceiverOptions> Webhooks { get; set; } = [];

    /// <summary>
    /// Routes, tried in order like Alertmanager's child routes: the first that matches takes the notification, and
    /// one with <see cref="RouteOptions.Continue"/> lets the next routes match too. With no routes at all, every
    /// receiver gets every notification.
    /// </summary>
    public List<RouteOptions> Routes { get; set; } = [];

    /// <summary>The default route: receivers of notifications that no route matched (none: they are counted as unrouted).</summary>
    public List<string> DefaultReceivers { get; set; } = [];

    /// <summary>Link back to FleetWatch in alerts (<c>externalURL</c>, <c>generatorURL</c>, buttons).</summary>
    public string ExternalUrl { get; set; } = "http://127.0.0.1:5080";

    /// <summary>
    /// First retry delay; doubles per attempt with ±25 % jitter up to <see cref="MaxBackoff"/> (Alertmanager uses
    /// 0.5 s, ×1.5, max 60 s: research/dashboard-alerting-anchors.md section 2.1).
    /// </summary>
    [TimeSpanRange("00:00:00.010", "00:10:00")]
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromMilliseconds(500);

    [TimeSpanRange("00:00:00.010", "01:00:00")]
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// A notification not delivered this long after it was queued is given up (row state <c>given_up</c>), logged
    /// and counted. A notification always gets at least one attempt, even when resumed after a long outage.
    /// </summary>
    [TimeSpanRange("00:00:01", "1.00:00:00")]
    public TimeSpan GiveUpAfter { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Timeout of one HTTP attempt.</summary>
    [TimeSpanRange("00:00:00.100", "00:05:00")]
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How often a sender looks at the outbox without being signalled: a safety net only, since every enqueue
    /// wakes the receiver's sender at once.
    /// </summary>
    [TimeSpanRange("00:00:00.050", "00:10:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Delivered and given-up outbox rows older than this are deleted. Must outlast the longest-open incident: a
    /// notification key forgotten while its incident is still open could be sent again after a restart.
    /// </summary>
    [TimeSpanRange("01:00:00", "365.00:00:00")]
    public TimeSpan OutboxRetention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>Minimum severity sent to receivers.</summary>
    public Severity MinimumSeverity { get; set; } = Severity.Warning;

    /// <summary>The older <see cref="Webhooks"/> (as webhook receivers) followed by <see cref="Receivers"/>.</summary>
    public IReadOnlyList<ReceiverOptions> AllReceivers() => [.. Webhooks.Select(w => w.ToReceiver()), .. Receivers];
}

/// <summary>Kinds of receiver, each with its own payload (research/dashboard-alerting-anchors.md section 2).</summary>
public enum ReceiverType
{
    /// <summary>Generic webhook: the Alertmanager webhook version-4 JSON, optionally HMAC-signed.</summary>
    Webhook,

    /// <summary>Slack incoming webhook: <c>text</c> + Block Kit <c>blocks</c>.</summary>
    Slack,

    /// <summary>Microsoft Teams Workflows webhook: a message with one Adaptive Card.</summary>
    Teams,

    /// <summary>PagerDuty Events API v2: trigger/resolve with <c>dedup_key</c> = incident id.</summary>
    PagerDuty,

    /// <summary>Prometheus Alertmanager: POST <c>/api/v2/alerts</c>, firing alerts re-posted periodically.</summary>
    Alertmanager,
}

/// <summary>
/// One receiver. <see cref="Url"/>, <see cref="RoutingKey"/> and <see cref="Secret"/> are secrets (webhook URLs
/// embed tokens): they are never logged, never returned by the API and redacted in validation messages.
/// </summary>
public sealed class ReceiverOptions
{
    /// <summary>Name used in routes, logs, metrics and the API.</summary>
    public string Name { get; set; } = "";

    public ReceiverType Type { get; set; } = ReceiverType.Webhook;

    /// <summary>
    /// Where to POST. For Alertmanager the base URL (<c>http://am:9093</c>; <c>/api/v2/alerts</c> is appended).
    /// For PagerDuty it may be left empty: <see cref="PagerDutyPayload.DefaultUrl"/>.
    /// </summary>
    public string Url { get; set; } = "";

    /// <summary>PagerDuty integration key (32 characters), required for <see cref="ReceiverType.PagerDuty"/>.</summary>
    public string? RoutingKey { get; set; }

    /// <summary>Generic webhook: HMAC-SHA256 key; when set each POST carries <see cref="SignatureHeader"/>.</summary>
    public string? Secret { get; set; }

    /// <summary>Header carrying <c>sha256=&lt;hex HMAC of the body&gt;</c>.</summary>
    public string SignatureHeader { get; set; } = WebhookSignature.DefaultHeader;

    /// <summary>Rate budget; unset fields take the type's default (<see cref="RateLimitOptions.DefaultFor"/>).</summary>
    public RateLimitOptions? RateLimit { get; set; }

    /// <summary>
    /// Alertmanager only: how often firing alerts are posted again. Alertmanager resolves an alert that is not
    /// re-sent within its <c>resolve_timeout</c> (default 5 min), so this must be well below that.
    /// </summary>
    public TimeSpan ResendInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Whether resolve notifications are sent (Alertmanager's <c>send_resolved</c>; default true). Ignored for an
    /// Alertmanager receiver, which always gets the resolve (its own send_resolved decides what it forwards).
    /// </summary>
    public bool SendResolved { get; set; } = true;

    /// <summary>
    /// Chat receivers (Slack, Teams) only: when notifications about at least this many incidents are queued within
    /// <see cref="StormWindow"/>, they go out as ONE summary message instead of one message each. 0 turns batching
    /// off; unset takes <see cref="StormPolicy.DefaultThreshold"/>. PagerDuty, Alertmanager and webhooks always get one
    /// event per incident (they dedup and group themselves), so setting it on them is a configuration error.
    /// </summary>
    public int? StormThreshold { get; set; }

    /// <summary>
    /// Chat receivers only: how long a notification waits for others to form a storm before it is sent (alone, or in
    /// the summary). Unset takes <see cref="StormPolicy.DefaultWindow"/>. Every chat message is delayed by up to this.
    /// </summary>
    public TimeSpan? StormWindow { get; set; }

    /// <summary>Whether this receiver type batches storms at all (chat: a person reads every message).</summary>
    public bool IsChat => Type is ReceiverType.Slack or ReceiverType.Teams;

    /// <summary>The effective storm batching of this receiver; null when off or not a chat receiver.</summary>
    public StormPolicy? Storm()
    {
        var threshold = StormThreshold ?? StormPolicy.DefaultThreshold;
        return IsChat && threshold > 0 ? new StormPolicy(threshold, StormWindow ?? StormPolicy.DefaultWindow) : null;
    }
}

/// <summary>
/// A token bucket: <see cref="Count"/> messages per <see cref="Per"/>, at most <see cref="Burst"/> at once.
/// <see cref="Count"/> 0 means unlimited.
/// </summary>
public sealed class RateLimitOptions
{
    public int? Count { get; set; }

    public TimeSpan? Per { get; set; }

    public int? Burst { get; set; }

    /// <summary>
    /// Budgets of research/dashboard-alerting-anchors.md sections 2.2-2.4: Slack "no more than one message per
    /// second"; Teams 4 per 1 s and 60 per 30 s (2/s with a burst of 2 keeps any second at 4 or fewer); PagerDuty
    /// about 120 per minute per integration key over a sliding 60 s window (110/min + a burst of 10 never exceeds
    /// 120 in any 60 s). Alertmanager and generic webhooks: unlimited.
    /// </summary>
    public static (int Count, TimeSpan Per, int Burst) DefaultFor(ReceiverType type) => type switch
    {
        ReceiverType.Slack => (1, TimeSpan.FromSeconds(1), 1),
        ReceiverType.Teams => (60, TimeSpan.FromSeconds(30), 2),
        ReceiverType.PagerDuty => (110, TimeSpan.FromMinutes(1), 10),
        _ => (0, TimeSpan.FromSeconds(1), 1),
    };

    public (int Count, TimeSpan Per, int Burst) Resolve(ReceiverType type)
    {
        var d = DefaultFor(type);
        return (Count ?? d.Count, Per ?? d.Per, Burst ?? d.Burst);
    }
}

/// <summary>
/// One route. All set conditions must hold. Label matchers are anchored regular expressions over the alert labels
/// (<c>alertname, severity, category, node, gpu, gpu_uuid, incident_id, source</c>) plus <c>rule</c>, which
/// matches when any finding's rule matches.
/// </summary>
public sealed class RouteOptions
{
    /// <summary>Receiver names this route delivers to.</summary>
    public List<string> Receivers { get; set; } = [];

    /// <summary>Matches incidents at this severity or above.</summary>
    public Severity? MinSeverity { get; set; }

    /// <summary>Label name → anchored regular expression (Alertmanager's <c>=~</c>).</summary>
    public Dictionary<string, string> Match { get; set; } = [];

    /// <summary>Keep trying the following routes after this one matched (Alertmanager's <c>continue</c>).</summary>
    public bool Continue { get; set; }
}

/// <summary>One generic webhook receiver (the older <c>Webhooks</c> list). The URL is a secret: it is never logged.</summary>
public sealed class WebhookReceiverOptions
{
    public string Name { get; set; } = "";

    public string Url { get; set; } = "";

    /// <summary>HMAC-SHA256 key for the signature header (optional).</summary>
    public string? Secret { get; set; }

    public ReceiverOptions ToReceiver() => new() { Name = Name, Type = ReceiverType.Webhook, Url = Url, Secret = Secret };
}
