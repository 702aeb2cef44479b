using System.Globalization;
using System.Text.RegularExpressions;

namespace FleetWatch.Controller.Alerting;

/// <summary>
/// Cross-field rules of <see cref="AlertingOptions"/>, each failure naming the key and the value (STYLE.md rule 4).
/// Secrets never appear: URLs are cut to scheme and host, keys and HMAC secrets show only their length.
/// </summary>
public static partial class AlertingValidation
{
    private const string S = AlertingOptions.Section;

    public static IEnumerable<(string Key, object? Value, string Error)> Validate(AlertingOptions o)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < o.Webhooks.Count; i++)
        {
            foreach (var failure in ValidateReceiver(o.Webhooks[i].ToReceiver(), $"{S}:Webhooks:{i}", names))
            {
                yield return failure;
            }
        }

        for (var i = 0; i < o.Receivers.Count; i++)
        {
            foreach (var failure in ValidateReceiver(o.Receivers[i], $"{S}:Receivers:{i}", names))
            {
                yield return failure;
            }
        }

        for (var i = 0; i < o.Routes.Count; i++)
        {
            var route = o.Routes[i];
            var prefix = $"{S}:Routes:{i}";
            if (route.Receivers.Count == 0)
            {
                yield return ($"{prefix}:Receivers", null, "must name at least one receiver");
            }

            for (var j = 0; j < route.Receivers.Count; j++)
            {
                if (!names.Contains(route.Receivers[j]))
                {
                    yield return ($"{prefix}:Receivers:{j}", route.Receivers[j], "is not a configured receiver name");
                }
            }

            foreach (var (label, pattern) in route.Match)
            {
                if (!LabelName().IsMatch(label))
                {
                    yield return ($"{prefix}:Match:{label}", label, "must be a label name ([A-Za-z_][A-Za-z0-9_]*)");
                }

                if (!IsRegex(pattern))
                {
                    yield return ($"{prefix}:Match:{label}", pattern, "is not a valid regular expression");
                }
            }
        }

        for (var j = 0; j < o.DefaultReceivers.Count; j++)
        {
            if (!names.Contains(o.DefaultReceivers[j]))
            {
                yield return ($"{S}:DefaultReceivers:{j}", o.DefaultReceivers[j], "is not a configured receiver name");
            }
        }

        if (o.MaxBackoff < o.InitialBackoff)
        {
            yield return ($"{S}:MaxBackoff", o.MaxBackoff, $"must not be shorter than InitialBackoff ({o.InitialBackoff})");
        }

        foreach (var (r, prefix) in o.Webhooks.Select((w, i) => (w.ToReceiver(), $"{S}:Webhooks:{i}")).Concat(o.Receivers.Select((r, i) => (r, $"{S}:Receivers:{i}"))))
        {
            if (r.Storm() is { } storm && storm.Window >= o.GiveUpAfter)
            {
                yield return ($"{prefix}:StormWindow", storm.Window, $"must be shorter than GiveUpAfter ({o.GiveUpAfter}): a held notification would be given up unsent");
            }
        }
    }

    private static IEnumerable<(string, object?, string)> ValidateReceiver(ReceiverOptions r, string prefix, HashSet<string> names)
    {
        if (string.IsNullOrWhiteSpace(r.Name) || !ReceiverName().IsMatch(r.Name) || !names.Add(r.Name))
        {
            yield return ($"{prefix}:Name", r.Name, "must be set, unique and made of [A-Za-z0-9_.-]");
        }

        var urlOptional = r.Type == ReceiverType.PagerDuty && string.IsNullOrEmpty(r.Url);
        if (!urlOptional && !IsHttpUrl(r.Url))
        {
            // The value may hold a token: show only what cannot be one.
            yield return ($"{prefix}:Url", Redact(r.Url), "must be an absolute http(s) URL");
        }

        if (r.Type == ReceiverType.PagerDuty && string.IsNullOrWhiteSpace(r.RoutingKey))
        {
            yield return ($"{prefix}:RoutingKey", SecretShape(r.RoutingKey), "is required for a pagerduty receiver (the Events API v2 integration key)");
        }

        if (r.Secret is not null && string.IsNullOrWhiteSpace(r.Secret))
        {
            yield return ($"{prefix}:Secret", SecretShape(r.Secret), "must not be blank when set");
        }

        if (!HeaderName().IsMatch(r.SignatureHeader ?? ""))
        {
            yield return ($"{prefix}:SignatureHeader", r.SignatureHeader, "must be an HTTP header name");
        }

        if (r.Type == ReceiverType.Alertmanager && (r.ResendInterval < TimeSpan.FromSeconds(1) || r.ResendInterval > TimeSpan.FromMinutes(4)))
        {
            yield return ($"{prefix}:ResendInterval", r.ResendInterval, "must be between 00:00:01 and 00:04:00 (below Alertmanager's default resolve_timeout of 5 min)");
        }

        if (!r.IsChat && (r.StormThreshold is not null || r.StormWindow is not null))
        {
            yield return ($"{prefix}:{(r.StormThreshold is not null ? "StormThreshold" : "StormWindow")}", (object?)r.StormThreshold ?? r.StormWindow,
                $"only Slack and Teams receivers batch storms; a {r.Type.ToString().ToLowerInvariant()} receiver gets one event per incident and dedups itself");
        }

        if (r.StormThreshold is { } threshold && threshold != 0 && (threshold < StormPolicy.MinThreshold || threshold > StormPolicy.MaxThreshold))
        {
            yield return ($"{prefix}:StormThreshold", threshold, $"must be 0 (off) or from {StormPolicy.MinThreshold} to {StormPolicy.MaxThreshold}");
        }

        if (r.StormWindow is { } window && (window < StormPolicy.MinWindow || window > StormPolicy.MaxWindow))
        {
            yield return ($"{prefix}:StormWindow", window, $"must be between {StormPolicy.MinWindow} and {StormPolicy.MaxWindow}");
        }

        if (r.RateLimit is { } rate)
        {
            var (count, per, burst) = rate.Resolve(r.Type);
            if (count < 0)
            {
                yield return ($"{prefix}:RateLimit:Count", count, "must be 0 (unlimited) or more");
            }

            if (per <= TimeSpan.Zero)
            {
                yield return ($"{prefix}:RateLimit:Per", per, "must be positive");
            }

            if (burst < 1)
            {
                yield return ($"{prefix}:RateLimit:Burst", burst, "must be at least 1");
            }
        }
    }

    /// <summary>Scheme and host of a URL (the token lives in the path or query); a non-URL is cut to 12 characters.</summary>
    public static string Redact(string? url)
    {
        if (string.IsNullOrEmpty(url))
        {
            return "";
        }

        if (Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.Host.Length > 0)
        {
            return $"{uri.Scheme}://{uri.Host}{(uri.IsDefaultPort ? "" : ":" + uri.Port.ToString(CultureInfo.InvariantCulture))}/…";
        }

        return url.Length <= 12 ? url : string.Concat(url.AsSpan(0, 12), "…");
    }

    private static string SecretShape(string? secret) => secret is null ? "(unset)" : $"({secret.Length} characters, hidden)";

    public static bool IsHttpUrl(string? value) =>
        Uri.TryCreate(value, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps);

    private static bool IsRegex(string? pattern)
    {
        try
        {
            _ = new Regex(pattern ?? "", RegexOptions.None, TimeSpan.FromSeconds(1));
            return pattern is not null;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    [GeneratedRegex("^[A-Za-z0-9_.-]+$")]
    private static partial Regex ReceiverName();

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    private static partial Regex LabelName();

    [GeneratedRegex("^[A-Za-z0-9-]+$")]
    private static partial Regex HeaderName();
}
