using Microsoft.Extensions.Options;

namespace FleetWatch.Dashboard;

/// <summary>How the dashboard decides who may see the fleet and act on it (issue 8: never open by default).</summary>
public enum DashboardAuthMode
{
    /// <summary>A shared key: <c>Authorization: Bearer KEY</c>, <c>X-Api-Key: KEY</c>, or once <c>/?key=KEY</c> in a browser.</summary>
    ApiKey,

    /// <summary>A reverse proxy authenticates users and passes the user name in a configured header.</summary>
    TrustedHeader,

    /// <summary>No authentication at all; labelled on every page and logged as a warning at start.</summary>
    Unsecured,
}

/// <summary>Authentication settings, section <c>FleetWatch:Dashboard:Auth</c>.</summary>
public sealed class DashboardAuthOptions
{
    /// <summary>Required: <c>ApiKey</c>, <c>TrustedHeader</c> or <c>Unsecured</c>. Kept as text so a typo fails start with its value named.</summary>
    public string? Mode { get; set; }

    /// <summary>The shared key for <see cref="DashboardAuthMode.ApiKey"/>; at least <see cref="MinimumApiKeyLength"/> characters.</summary>
    public string? ApiKey { get; set; }

    /// <summary>Header the reverse proxy sets to the authenticated user name (<see cref="DashboardAuthMode.TrustedHeader"/>).</summary>
    public string? Header { get; set; } = DefaultHeader;

    public const string DefaultHeader = "X-Forwarded-User";

    /// <summary>
    /// On a controller: the key a dashboard process presents when it forwards <c>/api/v1</c> calls (its
    /// <see cref="DashboardOptions.ControllerApiKey"/>). Only a request bearing this key may name the operator in
    /// <see cref="OperatorHeader"/>; any other request's header is ignored. Unset: no dashboard may forward identities.
    /// </summary>
    public string? ProxyKey { get; set; }

    /// <summary>The header in which a dashboard forwards the signed-in operator to the controller.</summary>
    public const string OperatorHeader = "X-FleetWatch-Operator";

    /// <summary>128 bits of base64 is 22 characters; a shorter key is guessable or a placeholder.</summary>
    public const int MinimumApiKeyLength = 16;

    internal DashboardAuthMode ParsedMode =>
        TryParseMode(Mode, out var mode) ? mode : throw new InvalidOperationException($"{DashboardOptions.Section}:Auth:Mode = '{Mode}' was not validated");

    /// <summary>
    /// Exactly one mode name, any case. Stricter than <see cref="Enum.TryParse{TEnum}(string?, bool, out TEnum)"/>,
    /// which would read "1" or "ApiKey, Unsecured" (flag syntax) as some mode.
    /// </summary>
    internal static bool TryParseMode(string? text, out DashboardAuthMode mode)
    {
        foreach (var candidate in Enum.GetValues<DashboardAuthMode>())
        {
            if (string.Equals(candidate.ToString(), text?.Trim(), StringComparison.OrdinalIgnoreCase))
            {
                mode = candidate;
                return true;
            }
        }

        mode = default;
        return false;
    }
}

/// <summary>Dashboard settings, section <c>FleetWatch:Dashboard</c>.</summary>
public sealed class DashboardOptions
{
    public const string Section = "FleetWatch:Dashboard";

    public DashboardAuthOptions Auth { get; set; } = new();

    /// <summary>Fastest the live feed pushes to one browser (issue 2: at most one update a second).</summary>
    public TimeSpan StreamInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>A comment line keeps idle streams open through proxies that cut silent connections.</summary>
    public TimeSpan StreamKeepAlive { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>How long one <c>GetFleetSnapshot</c> request waits for the controller.</summary>
    public TimeSpan SnapshotTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>First wait before asking the controller again; doubles up to <see cref="SnapshotRetryMax"/>.</summary>
    public TimeSpan SnapshotRetryInitial { get; set; } = TimeSpan.FromSeconds(1);

    public TimeSpan SnapshotRetryMax { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// No frame for this long marks the view stale in the UI. The controller sends at least one frame a second
    /// when anything changes and periodic snapshots otherwise, so ten silent seconds means it is gone.
    /// </summary>
    public TimeSpan StaleAfter { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Upper bound on GPU cells held (10x the 10,000-GPU design point); extra cells are dropped and counted.</summary>
    public int MaxCells { get; set; } = 200_000;

    /// <summary>Upper bound on open incidents kept for the page (the count still reports all of them).</summary>
    public int MaxIncidents { get; set; } = 500;

    /// <summary>Upper bound on recently resolved incidents kept for the page.</summary>
    public int MaxResolved { get; set; } = 50;

    /// <summary>
    /// Distributed mode: the controller's base address (e.g. <c>http://controller:5081</c>). When set, this process forwards
    /// <c>/api/v1/*</c> there after its own sign-in check. Unset (all-in-one): the API is mapped in this process.
    /// </summary>
    public Uri? ControllerUrl { get; set; }

    /// <summary>The key this dashboard presents to the controller (the controller's <c>Auth:ProxyKey</c>); never sent to a browser.</summary>
    public string? ControllerApiKey { get; set; }

    /// <summary>How long a forwarded API call may take.</summary>
    public TimeSpan ControllerTimeout { get; set; } = TimeSpan.FromSeconds(10);
}

/// <summary>Fails start with the key and the value named (STYLE.md rule 4).</summary>
internal sealed class DashboardOptionsValidator : IValidateOptions<DashboardOptions>
{
    public ValidateOptionsResult Validate(string? name, DashboardOptions options)
    {
        var errors = new List<string>();
        const string auth = DashboardOptions.Section + ":Auth";
        var modes = string.Join(", ", Enum.GetNames<DashboardAuthMode>());
        if (string.IsNullOrWhiteSpace(options.Auth.Mode))
        {
            errors.Add($"{auth}:Mode is not set: the dashboard refuses to start without an explicit auth mode ({modes}).");
        }
        else if (!DashboardAuthOptions.TryParseMode(options.Auth.Mode, out var mode))
        {
            errors.Add($"{auth}:Mode = '{options.Auth.Mode}' is not one of {modes}.");
        }
        else if (mode == DashboardAuthMode.ApiKey && (options.Auth.ApiKey?.Trim().Length ?? 0) < DashboardAuthOptions.MinimumApiKeyLength)
        {
            // The key itself is never echoed: only its length.
            errors.Add($"{auth}:ApiKey must be at least {DashboardAuthOptions.MinimumApiKeyLength} characters when {auth}:Mode = 'ApiKey' "
                       + $"(it has {options.Auth.ApiKey?.Trim().Length ?? 0}).");
        }
        else if (mode == DashboardAuthMode.TrustedHeader && !IsHeaderName(options.Auth.Header))
        {
            errors.Add($"{auth}:Header = '{options.Auth.Header}' is not a valid HTTP header name (needed when {auth}:Mode = 'TrustedHeader').");
        }

        Positive(errors, nameof(options.StreamInterval), options.StreamInterval);
        Positive(errors, nameof(options.StreamKeepAlive), options.StreamKeepAlive);
        Positive(errors, nameof(options.SnapshotTimeout), options.SnapshotTimeout);
        Positive(errors, nameof(options.SnapshotRetryInitial), options.SnapshotRetryInitial);
        Positive(errors, nameof(options.StaleAfter), options.StaleAfter);
        if (options.SnapshotRetryMax < options.SnapshotRetryInitial)
        {
            errors.Add($"{DashboardOptions.Section}:SnapshotRetryMax = '{options.SnapshotRetryMax}' is shorter than SnapshotRetryInitial = '{options.SnapshotRetryInitial}'.");
        }

        if (options.Auth.ProxyKey is { } proxyKey && proxyKey.Trim().Length < DashboardAuthOptions.MinimumApiKeyLength)
        {
            errors.Add($"{auth}:ProxyKey must be at least {DashboardAuthOptions.MinimumApiKeyLength} characters (it has {proxyKey.Trim().Length}).");
        }

        if (options.ControllerUrl is { } url)
        {
            if (!url.IsAbsoluteUri || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps))
            {
                errors.Add($"{DashboardOptions.Section}:ControllerUrl = '{url}' must be an absolute http or https address.");
            }

            if ((options.ControllerApiKey?.Trim().Length ?? 0) < DashboardAuthOptions.MinimumApiKeyLength)
            {
                errors.Add($"{DashboardOptions.Section}:ControllerApiKey must be at least {DashboardAuthOptions.MinimumApiKeyLength} characters when "
                           + $"ControllerUrl is set (it has {options.ControllerApiKey?.Trim().Length ?? 0}).");
            }

            Positive(errors, nameof(options.ControllerTimeout), options.ControllerTimeout);
        }

        if (options.MaxCells is < 1 or > 10_000_000)
        {
            errors.Add($"{DashboardOptions.Section}:MaxCells = '{options.MaxCells}' must be between 1 and 10000000.");
        }

        if (options.MaxIncidents is < 1 or > 100_000)
        {
            errors.Add($"{DashboardOptions.Section}:MaxIncidents = '{options.MaxIncidents}' must be between 1 and 100000.");
        }

        if (options.MaxResolved is < 0 or > 10_000)
        {
            errors.Add($"{DashboardOptions.Section}:MaxResolved = '{options.MaxResolved}' must be between 0 and 10000.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void Positive(List<string> errors, string key, TimeSpan value)
    {
        if (value <= TimeSpan.Zero)
        {
            errors.Add($"{DashboardOptions.Section}:{key} = '{value}' must be positive.");
        }
    }

    // RFC 9110 token characters.
    private static bool IsHeaderName(string? header) =>
        !string.IsNullOrEmpty(header) && header.All(c => char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c));
}
