using System.Text.Json;
using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Fleet;
using FleetWatch.Controller.Incidents;
using FleetWatch.Controller.Replay;
using FleetWatch.Controller.Telemetry;
using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace FleetWatch.Controller.Tests.Replay;

public sealed class ReplayToolTests
{
    private const string Fleet = """ "fleet": {"nodes": 4, "gpus_per_node": 8, "nvlinks_per_gpu": 18, "ib_ports_per_node": 8, "tick_s": 1}""";

    /// <summary>A mixed scenario for the live-versus-replay comparison: events, conditions that end, a silent node, escalation.</summary>
    private const string Mixed = """
        {"fleet": {"nodes": 8, "gpus_per_node": 8, "nvlinks_per_gpu": 18, "ib_ports_per_node": 8, "tick_s": 1},
         "duration_s": 420, "seed": 3,
         "faults": [
           {"at_s": 5, "node": 0, "gpu": 1, "kind": "xid", "xid": 79},
           {"at_s": 10, "node": 1, "gpu": 2, "kind": "over_temperature", "temp_c": 91, "for_s": 100},
           {"at_s": 20, "node": 2, "kind": "node_silent", "for_s": 60},
           {"at_s": 30, "node": 3, "gpu": 4, "kind": "nvlink_errors", "link": 3, "counter": "crc_data", "per_s": 200, "for_s": 60},
           {"at_s": 40, "node": 4, "kind": "ib_errors", "port": 1, "counter": "symbol_error", "per_s": 5, "for_s": 90},
           {"at_s": 50, "node": 5, "gpu": 0, "kind": "hw_slowdown", "for_s": 200},
           {"at_s": 60, "node": 6, "gpu": 3, "kind": "xid", "xid": 13},
           {"at_s": 70, "node": 7, "gpu": 5, "kind": "ecc_dbe"},
           {"at_s": 80, "node": 7, "gpu": 6, "kind": "row_remap_pending", "for_s": 40},
           {"at_s": 90, "node": 6, "kind": "ib_link_down", "port": 0, "for_s": 45}
         ]}
        """;

    public static TheoryData<string, string, string> BadScenarios => new()
    {
        { "unknown kind", $$"""{ {{Fleet}}, "duration_s": 60, "seed": 1, "faults": [{"at_s": 1, "node": 0, "gpu": 0, "kind": "xid", "xid": 79}, {"at_s": 2, "node": 1, "kind": "meteor"}]}""", "faults[1]" },
        { "unknown field", $$"""{ {{Fleet}}, "duration_s": 60, "seed": 1, "faults": [{"at_s": 1, "node": 0, "gpu": 0, "kind": "xid", "xid": 79, "colour": "red"}]}""", "faults[0]" },
        { "field of another kind", $$"""{ {{Fleet}}, "duration_s": 60, "seed": 1, "faults": [{"at_s": 1, "node": 0, "kind": "node_silent", "xid": 79}]}""", "faults[0]" },
        { "missing parameter", $$"""{ {{Fleet}}, "duration_s": 60, "seed": 1, "faults": [{"at_s": 1, "node": 0, "gpu": 1, "kind": "ecc_sbe"}]}""", "faults[0]" },
        { "node outside the fleet", $$"""{ {{Fleet}}, "duration_s": 60, "seed": 1, "faults": [{"at_s": 1, "node": 4, "gpu": 1, "kind": "gpu_lost"}]}""", "faults[0]" },
        { "unknown IB counter", $$"""{ {{Fleet}}, "duration_s": 60, "seed": 1, "faults": [{"at_s": 1, "node": 0, "kind": "ib_errors", "port": 0, "counter": "bogus", "per_s": 1}]}""", "faults[0]" },
        { "unknown top-level field", $$"""{ {{Fleet}}, "duration_s": 60, "seed": 1, "faults": [], "extra": 1}""", "extra" },
        { "not JSON", "{ nope", "not valid JSON" },
    };

    [Theory]
    [MemberData(nameof(BadScenarios))]
    public async Task Invalid_scenario_exits_2_naming_the_fault(string name, string json, string named)
    {
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(file, json);
            var stderr = new StringWriter();
            var code = await ReplayTool.RunAsync(["--scenario", file, "--output", file + ".out"], TextWriter.Null, stderr);

            Assert.True(code == 2, $"{name}: exit {code}");
            Assert.Contains(named, stderr.ToString(), StringComparison.Ordinal);
            Assert.Single(stderr.ToString().TrimEnd().Split('\n'));
            Assert.False(File.Exists(file + ".out"), name);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void A_null_gpu_on_a_node_level_fault_is_no_gpu_but_a_number_is_an_error()
    {
        var ok = ReplayScenario.Parse($$"""{ {{Fleet}}, "duration_s": 60, "seed": 1, "faults": [{"at_s": 1, "node": 2, "gpu": null, "kind": "ib_link_down", "port": 3}]}""");
        Assert.Equal((2, (int?)null, (int?)3), (ok.Faults[0].Node, ok.Faults[0].Gpu, ok.Faults[0].Port));

        var e = Assert.Throws<ScenarioException>(() => ReplayScenario.Parse($$"""{ {{Fleet}}, "duration_s": 60, "seed": 1, "faults": [{"at_s": 1, "node": 2, "kind": "node_silent"}, {"at_s": 1, "node": 2, "gpu": 3, "kind": "ib_link_down", "port": 3}]}"""));
        Assert.Contains("faults[1]", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--scenario")]
    [InlineData("--scenario", "/nonexistent/scenario.json", "--output", "-")]
    [InlineData("--output", "x.json")]
    [InlineData("--bogus", "1")]
    public async Task Bad_arguments_or_missing_files_exit_2(params string[] args)
    {
        var stderr = new StringWriter();

        Assert.Equal(2, await ReplayTool.RunAsync(args, TextWriter.Null, stderr));
        Assert.StartsWith("replay:", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Report_has_the_formats_shape_and_is_deterministic()
    {
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(file, Mixed);
            var first = new StringWriter();
            var second = new StringWriter();
            Assert.Equal(0, await ReplayTool.RunAsync(["--scenario", file, "--output", "-"], first, TextWriter.Null));
            Assert.Equal(0, await ReplayTool.RunAsync(["--scenario", file, "--output", "-"], second, TextWriter.Null));

            Assert.Equal(first.ToString(), second.ToString());
            using var report = JsonDocument.Parse(first.ToString());
            var incidents = report.RootElement.GetProperty("incidents").EnumerateArray().ToList();
            Assert.True(report.RootElement.GetProperty("alerts_sent").GetInt32() >= incidents.Count);
            var xid79 = Assert.Single(incidents, i => i.GetProperty("node").GetInt32() == 0);
            Assert.Equal(("inc-1", 5.0, 1, "critical", "gpu_fell_off_bus", "restart_node"), (
                xid79.GetProperty("id").GetString(), xid79.GetProperty("opened_s").GetDouble(), xid79.GetProperty("gpu").GetInt32(),
                xid79.GetProperty("severity").GetString(), xid79.GetProperty("category").GetString(), xid79.GetProperty("action").GetString()));
            Assert.Equal(JsonValueKind.Null, xid79.GetProperty("resolved_s").ValueKind); // the GPU stays lost
            Assert.Contains(xid79.GetProperty("findings").EnumerateArray(), f => f.GetString()!.StartsWith("xid:79", StringComparison.Ordinal));

            // The silent node: node-level, critical, opened 30 s after its last sample, resolved after it returns.
            var silent = Assert.Single(incidents, i => i.GetProperty("node").GetInt32() == 2);
            Assert.Equal(JsonValueKind.Null, silent.GetProperty("gpu").ValueKind);
            Assert.Equal(("node_silent", 49.0), (silent.GetProperty("category").GetString(), silent.GetProperty("opened_s").GetDouble()));
            Assert.Equal(80.0 + 30, silent.GetProperty("resolved_s").GetDouble());

            // One app-class Xid 13 is info: no incident on node 6 GPU 3.
            Assert.DoesNotContain(incidents, i => i.GetProperty("node").GetInt32() == 6 && i.GetProperty("gpu").ValueKind == JsonValueKind.Number);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Config_file_thresholds_reach_the_detectors_and_bad_ones_exit_2()
    {
        var dir = Directory.CreateTempSubdirectory("fleetwatch-replay-config-").FullName;
        try
        {
            var scenario = Path.Combine(dir, "ib.json");
            await File.WriteAllTextAsync(scenario, """
                {"fleet": {"nodes": 2, "gpus_per_node": 2, "nvlinks_per_gpu": 2, "ib_ports_per_node": 2, "tick_s": 1}, "duration_s": 120, "seed": 1,
                 "faults": [{"at_s": 10, "node": 0, "kind": "ib_errors", "port": 1, "counter": "symbol_error", "per_s": 20},
                            {"at_s": 10, "node": 1, "kind": "ib_errors", "port": 1, "counter": "link_error_recovery", "per_s": 20}]}
                """);
            async Task<List<int>> Nodes(string? config)
            {
                var stdout = new StringWriter();
                var stderr = new StringWriter();
                string[] args = config is null ? ["--scenario", scenario, "--output", "-"] : ["--scenario", scenario, "--output", "-", "--config", config];
                Assert.True(await ReplayTool.RunAsync(args, stdout, stderr) == 0, stderr.ToString());
                using var report = JsonDocument.Parse(stdout.ToString());
                return [.. report.RootElement.GetProperty("incidents").EnumerateArray().Select(i => i.GetProperty("node").GetInt32()).Order()];
            }

            Assert.Equal([0, 1], await Nodes(null));
            Assert.Equal([0, 1], await Nodes(Path.Combine(RepoPaths.Root, "deploy", "config", "controller.json")));
            var onlySymbolErrors = Path.Combine(dir, "symbol-only.json");
            await File.WriteAllTextAsync(onlySymbolErrors, """{"FleetWatch": {"Detection": {"IbErrorCounters": ["symbol_error"]}}}""");
            Assert.Equal([0], await Nodes(onlySymbolErrors));

            var bad = Path.Combine(dir, "bad.json");
            await File.WriteAllTextAsync(bad, """{"FleetWatch": {"Detection": {"NodeSilentAfter": "00:00:05"}}}""");
            var error = new StringWriter();
            Assert.Equal(2, await ReplayTool.RunAsync(["--scenario", scenario, "--output", "-", "--config", bad], TextWriter.Null, error));
            Assert.Contains("FleetWatch:Detection:NodeSilentAfter", error.ToString(), StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Own_scenarios_pass_the_scorer_and_the_quiet_run_opens_nothing()
    {
        var scenarios = RepoPaths.OwnScenarios;
        var output = Directory.CreateTempSubdirectory("fleetwatch-replay-own-").FullName;
        try
        {
            var files = Directory.GetFiles(scenarios, "*.json").Where(f => !f.EndsWith(".expect.json", StringComparison.Ordinal)).Order().ToList();
            Assert.True(files.Count >= 2, $"own scenarios missing in {scenarios}");
            foreach (var file in files)
            {
                var stderr = new StringWriter();
                Assert.True(await ReplayTool.RunAsync(["--scenario", file, "--output", Path.Combine(output, Path.GetFileName(file))], TextWriter.Null, stderr) == 0, stderr.ToString());
            }

            var (exit, text) = await ReplayScorerTests.RunScorerAsync("--batch", scenarios, output);
            Assert.True(exit == 0, $"scorer exit {exit}:\n{text}");

            using var quiet = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, "F02_quiet_hour.json")));
            Assert.Empty(quiet.RootElement.GetProperty("incidents").EnumerateArray());
            Assert.Equal(0, quiet.RootElement.GetProperty("alerts_sent").GetInt32());

            // Many faults at the same second on different nodes: one incident per node, never one for several nodes.
            using var many = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, "F01_many_simultaneous.json")));
            var incidents = many.RootElement.GetProperty("incidents").EnumerateArray().ToList();
            Assert.True(incidents.Count >= 30, $"{incidents.Count} incidents");
            Assert.Equal(incidents.Count, incidents.Select(i => (i.GetProperty("node").GetInt32(), i.GetProperty("gpu").ToString())).Distinct().Count());
            CategoryDocsTests.AssertDocumented(incidents);
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
    }

    [Fact]
    public async Task Live_pipeline_fed_the_same_samples_opens_the_same_incidents_as_the_replay()
    {
        var scenario = ReplayScenario.Parse(Mixed);
        var replay = ReplayRunner.Run(scenario);

        var time = new FakeTimeProvider(ReplayFleet.Start);
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["FleetWatch:Incidents:RecentResolvedKept"] = "1000",
        }).Build();
        var services = new ServiceCollection();
        services.AddSingleton<TimeProvider>(time);
        services.AddLogging(b => b.SetMinimumLevel(LogLevel.Warning));
        // The controller's detection and alerting registrations (no Quartz: the test drives the sweep as Quartz would).
        services.AddMetrics();
        services.AddDetection(configuration);
        services.AddAlerting(configuration);
        services.AddOptions<TelemetrySinkOptions>();
        services.AddSingleton<InfluxTelemetrySink>();
        services.AddMassTransitTestHarness();
        await using var provider = services.BuildServiceProvider();
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();
        var pipeline = provider.GetRequiredService<DetectionPipeline>();
        var manager = provider.GetRequiredService<IncidentManager>();
        var sweep = provider.GetRequiredService<Microsoft.Extensions.Options.IOptions<DetectionOptions>>().Value.SweepInterval;

        // The live path, message by message, with the clock set to each arrival: Xids, samples, the Quartz sweep.
        foreach (var e in ReplayRunner.Schedule(scenario, sweep))
        {
            time.SetUtcNow(e.Time);
            switch (e.Kind)
            {
                case ReplayEventKind.Xid:
                    await pipeline.OnXidAsync(e.Xid!, CancellationToken.None);
                    break;
                case ReplayEventKind.Sample:
                    await pipeline.OnSampleAsync(e.Sample!, CancellationToken.None);
                    break;
                default:
                    await pipeline.SweepAsync(CancellationToken.None);
                    break;
            }
        }

        var live = manager.Open().Concat(manager.RecentlyResolved()).OrderBy(i => int.Parse(i.Id[4..], System.Globalization.CultureInfo.InvariantCulture))
            .Select(i => (i.Id, Seconds(i.OpenedAt), i.ResolvedAt is { } r ? Seconds(r) : (double?)null, ReplayFleet.NodeIndex(i.Node), i.GpuIndex, i.Severity, i.Category, i.Action))
            .ToList();
        var replayed = replay.Incidents.Select(i => (i.Id, i.OpenedSeconds, i.ResolvedSeconds, (int?)i.Node, i.Gpu, i.Severity, i.Category, i.Action)).ToList();

        Assert.True(replayed.Count >= 8, $"only {replayed.Count} incidents");
        Assert.Equal(replayed, live);
        Assert.Contains(replayed, i => i.Category == "nvlink_crc" && i.Severity == Severity.High);
        Assert.Contains(replayed, i => i.ResolvedSeconds is not null);
        await harness.Stop();
    }

    private static double Seconds(DateTimeOffset time) => Math.Round((time - ReplayFleet.Start).TotalSeconds, 3);
}
