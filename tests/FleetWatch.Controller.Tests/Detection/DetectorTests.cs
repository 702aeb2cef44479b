using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using static FleetWatch.Controller.Tests.Detection.SampleBuilder;

namespace FleetWatch.Controller.Tests.Detection;

public sealed class DetectorTests
{
    private static readonly DetectionOptions Options = new();
    private static readonly XidCatalog Catalog = XidCatalog.LoadEmbedded();

    [Theory]
    [InlineData(79, Severity.Critical, "gpu_fell_off_bus", "restart_node")]
    [InlineData(48, Severity.Critical, "ecc_double_bit", "drain_and_reset_gpu")]
    [InlineData(95, Severity.Critical, "memory_uncontained", "reset_gpu")]
    [InlineData(94, Severity.Warning, "memory_contained", "restart_app")]
    [InlineData(74, Severity.High, "nvlink_error", "drain_and_diagnose_nvlink")]
    [InlineData(63, Severity.Warning, "row_remap_pending", "reset_gpu_at_next_drain")]
    [InlineData(13, Severity.Info, "app_error", "restart_app")]
    [InlineData(31, Severity.Info, "app_error", "restart_app")]
    [InlineData(999, Severity.Warning, "xid_unknown", "contact_support")]
    public void Xid_is_classified_from_the_catalogue(int xid, Severity severity, string category, string action)
    {
        var finding = XidDetector.Classify(new GpuXidObserved { Node = "n1", Time = T0, Xid = xid, GpuIndex = 3, Message = "msg" }, Catalog);

        Assert.Equal((severity, category, action), (finding.Severity, finding.Category, finding.Action));
        Assert.Equal(FindingKind.Event, finding.Kind);
        Assert.Equal(3, finding.Gpu);
    }

    [Fact]
    public void Text_only_fallen_off_bus_line_is_rule_1()
    {
        var finding = XidDetector.Classify(new GpuXidObserved { Node = "n1", Time = T0, Xid = null, Kind = "fallen_off_bus", PciBusId = "0000:3b:00" }, Catalog);

        Assert.Equal((Severity.Critical, "gpu_fell_off_bus"), (finding.Severity, finding.Category));
    }

    [Fact]
    public void Catalogue_has_a_version_and_every_rule_row()
    {
        Assert.False(string.IsNullOrWhiteSpace(Catalog.Version));
        Assert.True(Catalog.Count >= 30, $"catalogue has only {Catalog.Count} Xids");
    }

    [Fact]
    public void Malformed_catalogue_names_the_entry()
    {
        var json = """{"version":"x","unknown":{"severity":"warning","category":"u","action":"a"},"entries":[{"xids":[1],"severity":"fatal","category":"c","action":"a"}]}""";
        var ex = Assert.Throws<InvalidDataException>(() => XidCatalog.Load(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(json)), "test.json"));
        Assert.Contains("entries[0]", ex.Message);
        Assert.Contains("fatal", ex.Message);
    }

    public static TheoryData<string, long?, long?, bool> DbeCases => new()
    {
        { "increase fires", 0, 1, true },
        { "unchanged is quiet", 5, 5, false },
        { "counter reset (GPU reset) does not fire", 7, 0, false },
        { "no previous sample: no delta, no fire", null, 3, false },
    };

    [Theory]
    [MemberData(nameof(DbeCases))]
    public void Double_bit_ecc_fires_on_increase_only(string name, long? before, long? after, bool fires)
    {
        var previous = before is { } b ? Node(1, 0, Gpu(0, dbe: b)) : null;
        var output = new List<Finding>();
        SampleDetectors.Evaluate(previous, Node(2, 1, Gpu(0, dbe: after ?? 0)), Options, output);

        Assert.True(fires == output.Exists(f => f.Rule == "ecc_dbe" && f.Active), name);
    }

    [Fact]
    public void Dbe_counter_across_a_swapped_gpu_does_not_fire()
    {
        var previous = Node(1, 0, Gpu(0, dbe: 0) with { Uuid = "GPU-old" });
        var output = new List<Finding>();
        SampleDetectors.Evaluate(previous, Node(2, 1, Gpu(0, dbe: 4)), Options, output);

        Assert.DoesNotContain(output, f => f.Rule == "ecc_dbe");
    }

    [Theory]
    [InlineData(60, false, Severity.Warning)]
    [InlineData(90, true, Severity.Warning)]
    [InlineData(92, true, Severity.Critical)]
    public void Over_temperature_against_nvml_thresholds(int temp, bool active, Severity severity)
    {
        var output = new List<Finding>();
        SampleDetectors.Evaluate(null, Node(1, 0, Gpu(0, temp: temp)), Options, output);

        var f = Assert.Single(output, f => f.Rule == "over_temperature");
        Assert.Equal(active, f.Active);
        if (active)
        {
            Assert.Equal(severity, f.Severity);
        }
    }

    [Fact]
    public void Lost_gpu_is_a_critical_condition_and_nothing_else_is_read()
    {
        var output = new List<Finding>();
        SampleDetectors.Evaluate(null, Node(1, 0, Gpu(0, lost: true)), Options, output);

        // The first evaluation also reports the clear node-level conditions (GPU source, inventory) once.
        var f = Assert.Single(output, x => x.Active);
        Assert.Equal((Severity.Critical, "gpu_fell_off_bus"), (f.Severity, f.Category));
    }

    [Fact]
    public void Nvlink_not_supported_is_not_a_fault_but_an_inactive_link_is()
    {
        var sample = Node(1, 0, Gpu(0)) with
        {
            NvLinks = [new NvLinkSample { GpuIndex = 0, Link = 0, Up = null }, new NvLinkSample { GpuIndex = 0, Link = 1, Up = false }],
        };
        var output = new List<Finding>();
        SampleDetectors.Evaluate(null, sample, Options, output);

        Assert.DoesNotContain(output, f => f.Rule == "nvlink_down:0");
        Assert.Contains(output, f => f.Rule == "nvlink_down:1" && f.Active && f.Severity == Severity.Critical);
    }

    [Fact]
    public void Ib_port_not_active_is_critical()
    {
        var sample = Node(1, 0, Gpu(0)) with
        {
            IbPorts = [new IbPortSample { Device = "mlx5_0", Port = 1, State = "1: DOWN" }, new IbPortSample { Device = "mlx5_1", Port = 1, State = "4: ACTIVE" }],
        };
        var output = new List<Finding>();
        SampleDetectors.Evaluate(null, sample, Options, output);

        Assert.True(output.Single(f => f.Rule == "ib_down:mlx5_0/1").Active);
        Assert.False(output.Single(f => f.Rule == "ib_down:mlx5_1/1").Active);
    }

    public static TheoryData<string, int?, int, ConditionStatus> SilenceCases => new()
    {
        { "never seen is Unknown, not healthy", null, 0, ConditionStatus.Unknown },
        { "reporting", 0, 2, ConditionStatus.False },
        { "a few ticks missed: Unknown", 0, 15, ConditionStatus.Unknown },
        { "silent past the limit: True", 0, 31, ConditionStatus.True },
    };

    [Theory]
    [MemberData(nameof(SilenceCases))]
    public void Node_silence(string name, int? lastSeenSecond, int nowSecond, ConditionStatus expected)
    {
        DateTimeOffset? lastSeen = lastSeenSecond is { } s ? T0.AddSeconds(s) : null;
        var (status, finding) = NodeSilenceDetector.Evaluate("n1", lastSeen, T0.AddSeconds(nowSecond), Options);

        Assert.True(expected == status, name);
        Assert.Equal(expected == ConditionStatus.True, finding.Active);
    }

    [Theory]
    [InlineData("0000:3b:00", "00000000:3B:00.0", true)]
    [InlineData("0000:3b:00", "0000:3c:00.0", false)]
    [InlineData("0009:01:00", "00000009:01:00.0", true)]
    public void Pci_ids_match_across_notations(string a, string b, bool match) =>
        Assert.Equal(match, FleetWatch.Controller.Fleet.DetectionPipeline.PciMatches(a, b));
}
