using FleetWatch.Contracts;
using FleetWatch.Controller.Fleet;
using Microsoft.Extensions.Time.Testing;

namespace FleetWatch.Dashboard.Tests;

/// <summary>The node page's rings: downsampling, rates from cumulative counters, gaps, the window, bounds and memory.</summary>
public sealed class NodeHistoryTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 29, 12, 0, 0, TimeSpan.Zero);

    private static NodeSample Sample(string node, DateTimeOffset time, long sequence, Func<int, GpuSample> gpu, int gpus = 2,
        IReadOnlyList<NvLinkSample>? links = null, IReadOnlyList<IbPortSample>? ports = null) => new()
        {
            Node = node,
            Sequence = sequence,
            Time = time,
            Rack = "rack-a",
            Gpus = [.. Enumerable.Range(0, gpus).Select(gpu)],
            NvLinks = links ?? [],
            IbPorts = ports ?? [],
        };

    private static GpuSample Gpu(int index, int? temperature = 50, long? ecc = null) => new()
    {
        Index = index,
        Uuid = $"GPU-{index:D4}-uuid",
        PciBusId = $"00000000:{0x18 + (index * 0x10):X2}:00.0",
        TemperatureC = temperature,
        PowerW = 300,
        UtilizationPct = 90,
        SmClockMHz = 1980,
        EccCorrectedVolatile = ecc,
    };

    [Fact]
    public void A_bucket_holds_the_mean_of_its_samples_and_counters_become_rates()
    {
        var time = new FakeTimeProvider(Start);
        var history = new NodeHistory(time);
        // 10 s buckets; samples every 2 s for 20 s: temperatures 40, 42, ... and an ECC counter rising 10 per sample (5/s).
        for (var k = 0; k < 10; k++)
        {
            var at = Start.AddSeconds(2 * k);
            history.Record(Sample("n1", at, k, i => Gpu(i, 40 + (2 * k), ecc: 100 + (10 * k))));
        }

        time.SetUtcNow(Start.AddSeconds(19));
        var view = history.Read("n1")!;
        var temps = view.Gpus[0].Series["temperatureC"];
        Assert.Equal(NodeHistory.Buckets, temps.Length);
        Assert.Equal(180, temps.Length);
        Assert.Equal(Start.AddSeconds(19 - (179 * 10)).ToUnixTimeSeconds() / 10 * 10, view.Start.ToUnixTimeSeconds());
        Assert.Equal(44.0, temps[^2]); // first bucket: 40, 42, 44, 46, 48
        Assert.Equal(54.0, temps[^1]); // second bucket: 50 .. 58
        Assert.All(temps[..^2], t => Assert.Null(t));
        var ecc = view.Gpus[0].Series["eccErrorsPerSecond"];
        Assert.Equal(5.0, ecc[^1]);
        Assert.Equal(5.0, ecc[^2]); // the first sample has no rate, the other four have 5/s
        Assert.Equal("rack-a", view.Rack);
        Assert.Equal("00000000:28:00.0", view.Gpus[1].PciBusId);
    }

    [Fact]
    public void A_counter_reset_gives_no_rate_and_a_missing_gpu_shows_a_gap()
    {
        var time = new FakeTimeProvider(Start);
        var history = new NodeHistory(time);
        history.Record(Sample("n1", Start, 1, i => Gpu(i, ecc: 1000)));
        history.Record(Sample("n1", Start.AddSeconds(10), 2, i => Gpu(i, ecc: 5))); // driver reload: counter restarted
        history.Record(Sample("n1", Start.AddSeconds(20), 3, i => Gpu(i, ecc: 25), gpus: 1)); // GPU 1 fell off
        time.SetUtcNow(Start.AddSeconds(25));
        var view = history.Read("n1")!;
        var ecc = view.Gpus[0].Series["eccErrorsPerSecond"];
        Assert.Null(ecc[^2]); // reset: no negative rate, no rate at all
        Assert.Equal(2.0, ecc[^1]);
        Assert.Equal(50.0, view.Gpus[1].Series["temperatureC"][^2]);
        Assert.Null(view.Gpus[1].Series["temperatureC"][^1]); // not carried over
    }

    [Fact]
    public void Data_older_than_the_window_is_not_shown_and_an_out_of_order_sample_is_ignored()
    {
        var time = new FakeTimeProvider(Start);
        var history = new NodeHistory(time);
        history.Record(Sample("n1", Start, 1, i => Gpu(i, 70)));
        history.Record(Sample("n1", Start.AddMinutes(31), 2, i => Gpu(i, 60)));
        history.Record(Sample("n1", Start.AddMinutes(30).AddSeconds(55), 3, i => Gpu(i, 99))); // older than the newest: ignored
        time.SetUtcNow(Start.AddMinutes(31));
        var temps = history.Read("n1")!.Gpus[0].Series["temperatureC"];
        Assert.Equal([60.0], temps.Where(t => t is not null).Select(t => t!.Value));

        // 30 min later the same slot of the ring is reused: the old value must not reappear as a current one.
        time.SetUtcNow(Start.AddMinutes(61).AddSeconds(30));
        Assert.All(history.Read("n1")!.Gpus[0].Series["temperatureC"], t => Assert.Null(t));
    }

    [Fact]
    public void NvLink_and_InfiniBand_error_counters_become_rates_and_port_state_is_current()
    {
        var time = new FakeTimeProvider(Start);
        var history = new NodeHistory(time);
        for (var k = 0; k < 3; k++)
        {
            NvLinkSample[] links = [new() { GpuIndex = 0, Link = 0, CrcFlitErrors = 100 * k, ReplayErrors = 20 * k }, new() { GpuIndex = 1, Link = 0, CrcFlitErrors = 7 }];
            IbPortSample[] ports =
            [
                new()
                {
                    Device = "mlx5_0", Port = 1, State = k == 2 ? "DOWN" : "ACTIVE", PhysState = "LinkUp", RateGbps = 400,
                    Counters = new Dictionary<string, long> { ["symbol_error"] = 30 * k, ["port_rcv_data"] = 1_000_000 * k, ["link_downed"] = k },
                },
            ];
            history.Record(Sample("n1", Start.AddSeconds(10 * k), k, i => Gpu(i), links: links, ports: ports));
        }

        time.SetUtcNow(Start.AddSeconds(25));
        var view = history.Read("n1")!;
        Assert.Equal(12.0, view.Gpus[0].Series["nvlinkErrorsPerSecond"][^1]); // (100 + 20) per 10 s
        Assert.Equal(0.0, view.Gpus[1].Series["nvlinkErrorsPerSecond"][^1]);
        var port = Assert.Single(view.IbPorts);
        Assert.Equal("DOWN", port.State);
        Assert.Equal(400, port.RateGbps);
        Assert.Equal(3.1, port.ErrorsPerSecond[^1]); // 30 symbol errors + 1 link_downed per 10 s; data counters are not errors
    }

    [Fact]
    public void Xids_are_kept_newest_first_up_to_the_bound_and_search_finds_uuid_and_pci()
    {
        var history = new NodeHistory(new FakeTimeProvider(Start));
        history.Record(Sample("node-b7", Start, 1, i => Gpu(i)));
        for (var k = 0; k < NodeHistory.MaxXids + 6; k++)
        {
            history.RecordXid(new GpuXidObserved { Node = "node-b7", Time = Start.AddSeconds(k), Xid = 1000 + k, GpuIndex = 1, Message = $"xid {k}" });
        }

        var xids = history.Read("node-b7")!.Xids;
        Assert.Equal(NodeHistory.MaxXids, xids.Count);
        Assert.Equal(1000 + NodeHistory.MaxXids + 5, xids[0].Xid);
        Assert.Equal(1006, xids[^1].Xid);

        var hit = Assert.Single(history.Search("0001-UUID", 10));
        Assert.Equal((1, "GPU-0001-uuid", "node-b7"), (hit.Gpu, hit.Uuid, hit.Node));
        Assert.Equal(1, Assert.Single(history.Search(":28:00", 10)).Gpu);
        Assert.Equal(2, history.Search("node-b", 10).Count);
        Assert.Empty(history.Search("nothing-like-it", 10));
        Assert.Null(history.Read("unknown"));
    }

    [Fact]
    public void Memory_at_ten_thousand_gpus_is_what_the_estimate_says()
    {
        // 1,250 nodes × 8 GPUs × 8 IB ports: the design point of issue 8.
        var estimate = NodeHistory.EstimateBytes(1250, 8, 8);
        Assert.InRange(estimate, 25_000_000, 32_000_000);

        var history = new NodeHistory(new FakeTimeProvider(Start));
        IbPortSample[] ports = [.. Enumerable.Range(1, 8).Select(p => new IbPortSample { Device = $"mlx5_{p}", Port = 1, State = "ACTIVE" })];
        var samples = Enumerable.Range(0, 1250).Select(n => Sample($"n{n:D4}", Start, 1, i => Gpu(i), gpus: 8, ports: ports)).ToList();
        var before = GC.GetAllocatedBytesForCurrentThread();
        foreach (var s in samples)
        {
            history.Record(s);
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        // The arrays are the estimate; object headers, dictionaries and lists add the rest (measured about 20 %).
        Assert.InRange(allocated, estimate, estimate * 3 / 2);
    }

    [Fact]
    public void Nodes_beyond_the_bound_are_refused_and_counted()
    {
        var history = new NodeHistory(new FakeTimeProvider(Start));
        for (var n = 0; n < NodeHistory.MaxNodes + 3; n++)
        {
            history.RecordXid(new GpuXidObserved { Node = $"n{n}", Time = Start, Xid = 79 });
        }

        Assert.Equal(NodeHistory.MaxNodes, history.NodeCount);
        Assert.Equal(3, history.Refused);
    }
}
