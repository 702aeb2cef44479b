using FleetWatch.Contracts;
using FleetWatch.Controller.Alerting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Tests.Alerting;

/// <summary>Routes (Alertmanager's child-route walk) and the validation of receivers and routes.</summary>
public sealed class AlertRoutingTests
{
    private static AlertingOptions Bind(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        return configuration.GetSection(AlertingOptions.Section).Get<AlertingOptions>() ?? new AlertingOptions();
    }

    private static Dictionary<string, string?> Receivers(params string[] names)
    {
        var settings = new Dictionary<string, string?>();
        for (var i = 0; i < names.Length; i++)
        {
            settings[$"FleetWatch:Alerting:Receivers:{i}:Name"] = names[i];
            settings[$"FleetWatch:Alerting:Receivers:{i}:Url"] = $"https://hooks.example/{names[i]}/token";
        }

        return settings;
    }

    [Fact]
    public void Without_routes_every_receiver_including_the_older_webhooks_gets_everything()
    {
        var settings = Receivers("slack", "pd");
        settings["FleetWatch:Alerting:Webhooks:0:Name"] = "legacy";
        settings["FleetWatch:Alerting:Webhooks:0:Url"] = "https://legacy.example/hook";
        var router = new AlertRouter(Bind(settings));

        Assert.Equal(["legacy", "slack", "pd"], router.Route(DeliveryHarness.Incident("i", Severity.Warning)));
    }

    public static TheoryData<Severity, string, string, string, string[]> Cases => new()
    {
        // severity, node, category, rule, expected receivers
        { Severity.Critical, "gpu0001", "gpu_fell_off_bus", "xid:79", ["pagerduty", "slack"] },       // route 0 continues into route 1
        { Severity.High, "gpu0001", "gpu_fell_off_bus", "xid:79", ["slack"] },                        // below route 0's severity
        { Severity.Warning, "gpu0001", "thermal_slowdown", "hw_slowdown", ["teams"] },                // first match without continue wins
        { Severity.Warning, "r12n07", "nvlink_errors", "nvlink_crc", ["teams"] },                     // node regex
        { Severity.Warning, "gpu0001", "nvlink_errors", "nvlink_crc", ["default"] },                  // nothing matched → default
        { Severity.Warning, "gpu0001", "ecc", "xid:48", ["xid-team"] },                                // rule regex over findings
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Routes_match_severity_labels_and_rules_with_continue_and_a_default(Severity severity, string node, string category, string rule, string[] expected)
    {
        var settings = Receivers("pagerduty", "slack", "teams", "xid-team", "default");
        settings["FleetWatch:Alerting:Routes:0:MinSeverity"] = "Critical";
        settings["FleetWatch:Alerting:Routes:0:Receivers:0"] = "pagerduty";
        settings["FleetWatch:Alerting:Routes:0:Continue"] = "true";
        settings["FleetWatch:Alerting:Routes:1:MinSeverity"] = "High";
        settings["FleetWatch:Alerting:Routes:1:Receivers:0"] = "slack";
        settings["FleetWatch:Alerting:Routes:2:Match:category"] = "thermal_.*|power_.*";
        settings["FleetWatch:Alerting:Routes:2:Receivers:0"] = "teams";
        settings["FleetWatch:Alerting:Routes:3:Match:node"] = "r[0-9]+n[0-9]+";
        settings["FleetWatch:Alerting:Routes:3:Receivers:0"] = "teams";
        settings["FleetWatch:Alerting:Routes:4:Match:rule"] = "xid:(48|63|64)";
        settings["FleetWatch:Alerting:Routes:4:Receivers:0"] = "xid-team";
        settings["FleetWatch:Alerting:DefaultReceivers:0"] = "default";
        var options = Bind(settings);
        Assert.Empty(AlertingValidation.Validate(options));
        var incident = DeliveryHarness.Incident("i", severity, node, category: category) with
        {
            Findings = [new FindingInfo { Rule = rule, Severity = severity, Message = "m", FirstSeen = DateTimeOffset.UnixEpoch, LastSeen = DateTimeOffset.UnixEpoch }],
        };

        Assert.Equal(expected, new AlertRouter(options).Route(incident));
    }

    [Fact]
    public void Regex_is_anchored_like_alertmanager()
    {
        var settings = Receivers("a");
        settings["FleetWatch:Alerting:Routes:0:Match:node"] = "gpu00";
        settings["FleetWatch:Alerting:Routes:0:Receivers:0"] = "a";
        var router = new AlertRouter(Bind(settings));

        Assert.Empty(router.Route(DeliveryHarness.Incident("i", node: "gpu0001")));
        Assert.Equal(["a"], router.Route(DeliveryHarness.Incident("i", node: "gpu00")));
    }

    [Theory]
    [InlineData("FleetWatch:Alerting:Receivers:0:Type", "Slack", "FleetWatch:Alerting:Receivers:0:Url", "ftp://hooks.slack.com/services/T1/B2/SECRETTOKEN", "ftp://hooks.slack.com/…")]
    [InlineData("FleetWatch:Alerting:Receivers:0:Type", "PagerDuty", "FleetWatch:Alerting:Receivers:0:RoutingKey", "", "(0 characters, hidden)")]
    [InlineData("FleetWatch:Alerting:Routes:0:Receivers:0", "nobody", "FleetWatch:Alerting:Routes:0:Receivers:0", "", "nobody")]
    [InlineData("FleetWatch:Alerting:Routes:0:Match:node", "gpu[", "FleetWatch:Alerting:Routes:0:Match:node", "", "gpu[")]
    [InlineData("FleetWatch:Alerting:Receivers:0:Type", "Alertmanager", "FleetWatch:Alerting:Receivers:0:ResendInterval", "00:10:00", "00:10:00")]
    [InlineData("FleetWatch:Alerting:Receivers:0:RateLimit:Burst", "0", "FleetWatch:Alerting:Receivers:0:RateLimit:Burst", "", "0")]
    public void Validation_names_key_and_value_and_never_prints_secrets(string setKey, string setValue, string badKey, string badValue, string shown)
    {
        var settings = new Dictionary<string, string?>
        {
            ["FleetWatch:Alerting:Receivers:0:Name"] = "r",
            ["FleetWatch:Alerting:Receivers:0:Url"] = "https://hooks.slack.com/services/T1/B2/SECRETTOKEN",
            ["FleetWatch:Alerting:Receivers:0:RoutingKey"] = "0123456789abcdef0123456789abcdef",
            [setKey] = setValue,
        };
        if (badValue.Length > 0 || badKey.EndsWith("RoutingKey", StringComparison.Ordinal))
        {
            settings[badKey] = badValue;
        }

        var services = new ServiceCollection();
        settings["FleetWatch:Storage:Path"] = ":memory:";
        services.AddAlertDelivery(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
        using var provider = services.BuildServiceProvider();
        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<AlertingOptions>>().Value);

        Assert.Contains($"{badKey} = '{shown}'", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("SECRETTOKEN", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("0123456789abcdef", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Duplicate_names_across_webhooks_and_receivers_are_rejected()
    {
        var settings = Receivers("oncall");
        settings["FleetWatch:Alerting:Webhooks:0:Name"] = "oncall";
        settings["FleetWatch:Alerting:Webhooks:0:Url"] = "https://legacy.example/hook";

        var failure = Assert.Single(AlertingValidation.Validate(Bind(settings)));
        Assert.Equal("FleetWatch:Alerting:Receivers:0:Name", failure.Key);
    }

    [Theory]
    [InlineData("https://hooks.slack.com/services/T1/B2/XYZ", "https://hooks.slack.com/…")]
    [InlineData("https://user:pw@prod-12.westus.logic.azure.com:443/workflows/abc?sig=SECRET", "https://prod-12.westus.logic.azure.com/…")]
    [InlineData("http://127.0.0.1:9093", "http://127.0.0.1:9093/…")]
    [InlineData("not-a-url", "not-a-url")]
    [InlineData("hooks.slack.com/services/T1/B2/XYZ", "hooks.slack.…")]
    public void Redaction_keeps_scheme_and_host_only(string url, string expected) =>
        Assert.Equal(expected, AlertingValidation.Redact(url));
}
