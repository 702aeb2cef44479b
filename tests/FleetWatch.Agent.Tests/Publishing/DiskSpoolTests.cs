using FleetWatch.Agent.Publishing;
using FleetWatch.Contracts;

namespace FleetWatch.Agent.Tests.Publishing;

public sealed class DiskSpoolTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fw-spool-").FullName;

    private static NodeSample Sample(long seq) => new()
    {
        Node = "n1",
        Sequence = seq,
        AgentRun = "r",
        Time = DateTimeOffset.UnixEpoch.AddSeconds(seq),
        Gpus = [new GpuSample { Index = 0, Uuid = "GPU-1", TemperatureC = 50 }],
    };

    private static GpuXidObserved Xid(int xid) => new() { Node = "n1", Time = DateTimeOffset.UnixEpoch, Xid = xid };

    private static List<object> Drain(DiskSpool spool)
    {
        var all = new List<object>();
        while (spool.Peek() is { } next)
        {
            all.Add(next);
            spool.Remove();
        }

        return all;
    }

    [Fact]
    public void Replays_in_order_with_xid_events_first_and_survives_a_restart()
    {
        var spool = new DiskSpool(_dir, 1 << 20, segmentMessages: 3);
        for (var i = 1; i <= 10; i++)
        {
            spool.Append(Sample(i));
        }

        spool.Append(Xid(79));
        spool.Append(Xid(48));

        // A new process opens the same folder.
        var reopened = new DiskSpool(_dir, 1 << 20, segmentMessages: 3);
        Assert.Equal(12, reopened.Count);
        var all = Drain(reopened);

        Assert.Equal([79, 48], all.Take(2).Cast<GpuXidObserved>().Select(x => x.Xid!.Value));
        Assert.Equal(Enumerable.Range(1, 10).Select(i => (long)i), all.Skip(2).Cast<NodeSample>().Select(s => s.Sequence));
        Assert.True(reopened.IsEmpty);
        Assert.Empty(Directory.GetFiles(_dir));
    }

    [Fact]
    public void Partly_replayed_spool_resumes_where_a_restart_finds_it()
    {
        var spool = new DiskSpool(_dir, 1 << 20, segmentMessages: 4);
        for (var i = 1; i <= 10; i++)
        {
            spool.Append(Sample(i));
        }

        for (var i = 0; i < 5; i++)
        {
            spool.Remove();
        }

        // Segment 1 (1-4) is gone; segment 2 (5-8) was half sent and is replayed whole: at least once, never lost.
        var seqs = Drain(new DiskSpool(_dir, 1 << 20, 4)).Cast<NodeSample>().Select(s => s.Sequence).ToList();
        Assert.Equal([5, 6, 7, 8, 9, 10], seqs);
    }

    [Fact]
    public void At_the_bound_the_oldest_samples_are_dropped_and_counted_never_xids()
    {
        var spool = new DiskSpool(_dir, maxBytes: 20_000, segmentMessages: 5);
        spool.Append(Xid(79));
        for (var i = 1; i <= 100; i++)
        {
            spool.Append(Sample(i));
        }

        Assert.True(spool.Dropped > 0);
        var oneSegment = 5 * 1000;
        Assert.True(spool.Bytes <= 20_000 + oneSegment, $"{spool.Bytes} bytes");
        var all = Drain(spool);
        Assert.IsType<GpuXidObserved>(all[0]);
        var seqs = all.Skip(1).Cast<NodeSample>().Select(s => s.Sequence).ToList();
        Assert.Equal(100, seqs[^1]); // the newest kept
        Assert.Equal(100 - spool.Dropped, seqs.Count);
        Assert.Equal(seqs.Order(), seqs);
    }

    [Fact]
    public void A_torn_last_write_is_skipped_and_counted()
    {
        var spool = new DiskSpool(_dir, 1 << 20, 100);
        spool.Append(Sample(1));
        spool.Append(Sample(2));
        File.AppendAllText(Directory.GetFiles(_dir).Single(), "{\"Node\":\"n1\",\"Seq");

        var reopened = new DiskSpool(_dir, 1 << 20, 100);

        Assert.Equal(1, reopened.Corrupt);
        Assert.Equal([1L, 2L], Drain(reopened).Cast<NodeSample>().Select(s => s.Sequence));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
