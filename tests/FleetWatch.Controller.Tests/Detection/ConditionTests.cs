using System.Net;
using System.Text.Json;
using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Fleet;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using static FleetWatch.Controller.Tests.Detection.CatalogueRuleTests;
using static FleetWatch.Controller.Tests.Detection.SampleBuilder;

namespace FleetWatch.Controller.Tests.Detection;

/// <summary>
/// Conditions per (node, GPU, rule): True/False/Unknown with transition times, Unknown for no data (with its own
/// finding), recovery back to False (nothing sticky), and the HTTP view the dashboard reads.
/// </summary>
public sealed class ConditionTests
{
    private static ServiceProvider Services() => new ServiceCollection().AddDetection(new ConfigurationBuilder().Build()).BuildServiceProvider();

    private static DetectionCondition Get(IReadOnlyList<DetectionCondition> all, int? gpu, string rule) => Assert.Single(all, c => c.Gpu == gpu && c.Rule == rule);

    [Fact]
    public void Row_remap_pending_goes_true_and_back_to_false_after_the_reset_with_transition_times()
    {
        using var sp = Services();
        var engine = sp.GetRequiredService<DetectionEngine>();
        for (var s = 0; s < 30; s++)
        {
            // Pending from 5 s; the GPU reset at 20 s applies the remap and clears the flag.
            var sample = Node8((i, g) => i == 2 && s is >= 5 and < 20 ? g with { RemapPending = true } : g with { RemapPending = false })
                with { Sequence = s + 1, Time = T0.AddSeconds(s) };
            engine.OnSample(sample, sample.Time, out _);
            var pending = Get(engine.Conditions("n1", sample.Time)!, 2, "row_remap_pending");
            var expected = s is >= 5 and < 20 ? ConditionStatus.True : ConditionStatus.False;
            Assert.Equal(expected, pending.Status);
            Assert.Equal(s < 5 ? T0 : s < 20 ? T0.AddSeconds(5) : T0.AddSeconds(20), pending.Since);
        }

        // The other GPUs never had it.
        Assert.Equal(ConditionStatus.False, Get(engine.Conditions("n1", T0.AddSeconds(29))!, 3, "row_remap_pending").Status);
    }

    [Fact]
    public void Every_condition_rule_has_one_distinct_name()
    {
        var names = Enum.GetValues<ConditionRule>().Select(ConditionRules.Name).ToList();

        Assert.Equal(ConditionRules.Count, names.Count);
        Assert.Equal(names.Count, names.Distinct().Count());
    }

    [Fact]
    public void A_rule_without_data_is_unknown_not_healthy()
    {
        var state = new NodeDetectionState();
        var output = new List<Finding>();
        // GPU 0 reports no remap flags and no temperature (NOT_SUPPORTED): those conditions are Unknown.
        SampleDetectors.Evaluate(null, Node8((i, g) => i == 0 ? g with { RemapPending = null, TemperatureC = null } : g) with { Time = T0 }, state, new DetectionOptions(), output);
        var all = state.Conditions("n1");

        Assert.Equal(ConditionStatus.Unknown, Get(all, 0, "row_remap_pending").Status);
        Assert.Equal(ConditionStatus.Unknown, Get(all, 0, "over_temperature").Status);
        Assert.Equal(ConditionStatus.False, Get(all, 1, "over_temperature").Status);
        // A delta rule has no data on the first sample.
        Assert.Equal(ConditionStatus.Unknown, Get(all, 1, "ecc_dbe").Status);
    }

    [Fact]
    public void Losing_a_signal_is_its_own_no_data_finding_and_returns_to_false_when_it_comes_back()
    {
        var all = Drive(10, s => Node8((i, g) => i == 4 && s is >= 3 and < 6 ? g with { TemperatureC = null } : g), "no_data");

        var noData = Assert.Single(all);
        Assert.Equal((3, 4, "no_data:over_temperature", Severity.Info, "no_data"), (noData.Second, noData.Finding.Gpu, noData.Finding.Rule, noData.Finding.Severity, noData.Finding.Category));
    }

    [Fact]
    public void A_link_back_up_returns_its_gpu_to_false()
    {
        var state = new NodeDetectionState();
        NodeSample? previous = null;
        var statuses = new List<ConditionStatus>();
        for (var s = 0; s < 6; s++)
        {
            var up = s is not (2 or 3);
            var sample = Node8() with { Sequence = s + 1, Time = T0.AddSeconds(s), NvLinks = [new NvLinkSample { GpuIndex = 1, Link = 0, Up = true }, new NvLinkSample { GpuIndex = 1, Link = 1, Up = up }] };
            SampleDetectors.Evaluate(previous, sample, state, new DetectionOptions(), []);
            statuses.Add(Get(state.Conditions("n1"), 1, "nvlink_down").Status);
            previous = sample;
        }

        Assert.Equal([ConditionStatus.False, ConditionStatus.False, ConditionStatus.True, ConditionStatus.True, ConditionStatus.False, ConditionStatus.False], statuses);
    }

    [Fact]
    public void A_silent_node_has_every_condition_unknown_until_it_reports_again()
    {
        using var sp = Services();
        var engine = sp.GetRequiredService<DetectionEngine>();
        var first = Node8() with { Sequence = 1, Time = T0 };
        engine.OnSample(first, T0, out _);

        var quiet = engine.Conditions("n1", T0.AddSeconds(40))!;
        Assert.Equal(ConditionStatus.True, quiet[0].Status);
        Assert.Equal("node_silent", quiet[0].Rule);
        Assert.Equal(T0.AddSeconds(30), quiet[0].Since);
        Assert.All(quiet.Skip(1), c => Assert.Equal(ConditionStatus.Unknown, c.Status));

        var back = Node8() with { Sequence = 2, Time = T0.AddSeconds(41) };
        engine.OnSample(back, back.Time, out _);
        var now = engine.Conditions("n1", back.Time)!;
        Assert.Equal((ConditionStatus.False, T0.AddSeconds(41)), (now[0].Status, now[0].Since));
        Assert.Equal(ConditionStatus.False, Get(now, 5, "over_temperature").Status);
        Assert.Null(engine.Conditions("n-never-seen", back.Time));
    }

    [Fact]
    public async Task Conditions_endpoint_serves_the_node_and_404s_an_unknown_one()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var clock = new FakeTimeProvider(T0.AddSeconds(1));
        builder.Services.AddSingleton<TimeProvider>(clock);
        builder.Services.AddDetection(new ConfigurationBuilder().Build());
        await using var app = builder.Build();
        app.MapGroup("/api/v1").MapDetectionApi();
        await app.StartAsync(CancellationToken.None);
        var engine = app.Services.GetRequiredService<DetectionEngine>();
        engine.OnSample(Node8((i, g) => i == 6 ? g with { RemapPending = true } : g) with { Sequence = 1, Time = T0 }, T0, out _);
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };

        var response = await http.GetAsync(new Uri("/api/v1/nodes/n1/conditions", UriKind.Relative), CancellationToken.None);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(CancellationToken.None));
        var pending = json.RootElement.EnumerateArray().Single(e => e.GetProperty("rule").GetString() == "row_remap_pending" && e.GetProperty("gpu").ValueKind == JsonValueKind.Number && e.GetProperty("gpu").GetInt32() == 6);
        Assert.Equal("True", pending.GetProperty("status").GetString());
        Assert.Equal("node_silent", json.RootElement[0].GetProperty("rule").GetString());

        var missing = await http.GetAsync(new Uri("/api/v1/nodes/nope/conditions", UriKind.Relative), CancellationToken.None);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Contains("nope", await missing.Content.ReadAsStringAsync(CancellationToken.None), StringComparison.Ordinal);
        await app.StopAsync(CancellationToken.None);
    }
}

/// <summary>The new thresholds are validated at start with the key and the value in the message (STYLE.md rule 4).</summary>
public sealed class DetectionOptionsValidationTests
{
    [Theory]
    [InlineData("PowerMinW", "2000", "FleetWatch:Detection:PowerMinW = '2000'")]
    [InlineData("XidDedupWindow", "00:00:50", "FleetWatch:Detection:XidDedupWindow = '00:00:50'")]
    [InlineData("UncorrectableRemappedRowsLimit", "0", "FleetWatch:Detection:UncorrectableRemappedRowsLimit = '0'")]
    [InlineData("AppXidDistinctJobs", "1", "FleetWatch:Detection:AppXidDistinctJobs = '1'")]
    [InlineData("ExpectedGpusPerNode", "65", "FleetWatch:Detection:ExpectedGpusPerNode = '65'")]
    public void A_bad_threshold_fails_at_start_naming_the_key(string key, string value, string expected)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { [$"FleetWatch:Detection:{key}"] = value, ["FleetWatch:Detection:EventHold"] = "00:00:40" })
            .Build();
        using var sp = new ServiceCollection().AddDetection(configuration).BuildServiceProvider();

        var ex = Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(() => sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<DetectionOptions>>().Value);
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }
}
