using System.Net;
using System.Net.Http.Headers;

namespace FleetWatch.Controller.Alerting;

/// <summary>What to do after one delivery attempt.</summary>
public enum DeliveryVerdict
{
    Delivered,
    Retry,
    GiveUp,
}

/// <summary>
/// Retry rules for webhook delivery (research/dashboard-alerting-anchors.md section 2.6): 2xx is success;
/// 5xx, 408, 429 and network errors are retried with exponential backoff and jitter; 429 and 503 honour
/// <c>Retry-After</c> (Alertmanager ignores it; we don't); other 4xx are permanent (Slack's 400/403/404/410 mean a
/// misconfiguration that no retry fixes). Pure.
/// </summary>
public static class DeliveryRetry
{
    /// <summary>Statuses whose <c>Retry-After</c> header is honoured (RFC 9110 section 10.2.3: 503 and 3xx; RFC 6585: 429).</summary>
    public static bool HonoursRetryAfter(HttpStatusCode? status) => status is HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable;

    public static DeliveryVerdict Judge(HttpStatusCode? status)
    {
        if (status is null)
        {
            return DeliveryVerdict.Retry; // network error or timeout
        }

        var code = (int)status.Value;
        if (code is >= 200 and < 300)
        {
            return DeliveryVerdict.Delivered;
        }

        return code >= 500 || code == 429 || code == 408 ? DeliveryVerdict.Retry : DeliveryVerdict.GiveUp;
    }

    /// <summary>Delay before attempt <paramref name="attempt"/> + 1 (attempt counts from 1).</summary>
    public static TimeSpan NextDelay(int attempt, RetryConditionHeaderValue? retryAfter, DateTimeOffset now, TimeSpan initial, TimeSpan max, double jitter01)
    {
        // Retry-After is the receiver's own word (Slack: "a Retry-After header containing the number of seconds until
        // you can retry"): honoured as given, not cut to the backoff cap; the give-up deadline still bounds it.
        if (retryAfter?.Delta is { } delta)
        {
            return Clamp(delta, TimeSpan.MaxValue);
        }

        if (retryAfter?.Date is { } date)
        {
            return Clamp(date - now, TimeSpan.MaxValue);
        }

        // Exponential: initial × 2^(attempt-1), with ±25 % jitter so many controllers do not retry in lockstep.
        var exponent = Math.Min(attempt - 1, 20);
        var baseDelay = initial.TotalMilliseconds * Math.Pow(2, exponent);
        var jittered = baseDelay * (0.75 + (jitter01 * 0.5));
        return Clamp(TimeSpan.FromMilliseconds(jittered), max);
    }

    private static TimeSpan Clamp(TimeSpan value, TimeSpan max) =>
        value < TimeSpan.Zero ? TimeSpan.Zero : value > max ? max : value;
}
