using System.Text;
using System.Threading.Channels;
using FleetWatch.Agent.Sources;
using FleetWatch.Agent.Sources.Kmsg;
using FleetWatch.Contracts;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Tests.Kmsg;

public sealed class KmsgXidWatcherTests : IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);
    private static readonly DateTimeOffset Now = new(2026, 11, 29, 12, 0, 0, TimeSpan.Zero);
    private readonly string _dir = Directory.CreateTempSubdirectory("fleetwatch-kmsg-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string LogPath => Path.Combine(_dir, "kmsg");

    private string StatePath => Path.Combine(_dir, "state", "kmsg.state");

    private KmsgXidWatcherOptions Options(string? bootIdPath = null) => new()
    {
        Path = LogPath,
        StatePath = StatePath,
        BootIdPath = bootIdPath,
        NodeName = "gpu-node-0113",
        PollInterval = TimeSpan.FromMilliseconds(10),
        ReopenDelay = TimeSpan.FromMilliseconds(20),
        StateFlushInterval = TimeSpan.FromMilliseconds(10),
    };

    private static KmsgXidWatcher Watcher(KmsgXidWatcherOptions options, IGpuPciMap? map = null, Func<string, Stream>? open = null) =>
        open is null
            ? new KmsgXidWatcher(Microsoft.Extensions.Options.Options.Create(options), new FixedClock(), NullLogger<KmsgXidWatcher>.Instance, map)
            : new KmsgXidWatcher(Microsoft.Extensions.Options.Options.Create(options), new FixedClock(), NullLogger<KmsgXidWatcher>.Instance, map, open);

    private void CopyFixture() => File.Copy(Path.Combine(XidTestPaths.Fixtures, "kmsg", "dgx-boot.kmsg"), LogPath);

    private void Append(string text) => File.AppendAllText(LogPath, text);

    [Fact]
    public async Task Follows_a_kmsg_file_and_publishes_appended_events_with_their_gpu()
    {
        CopyFixture();
        var map = new StaticGpuPciMap([("00000000:47:00.0", "GPU-from-nvml-47", 5)]);
        var watcher = Watcher(Options(), map);
        await using var run = Run.Start(watcher);

        // The Xid already in the file, mapped through the log's own "GPU at" line.
        var first = await run.Next();
        Assert.Equal(
            ("gpu-node-0113", Now, 13, "xid", "0000:07:00", "GPU-7aa963fa-6bda-e9fa-fc9b-c48d80d99820", (int?)null, XidSource.Kmsg, 8L, "python"),
            (first.Node, first.Time, first.Xid, first.Kind, first.PciBusId, first.GpuUuid, first.GpuIndex, first.Source, first.KmsgSequence, first.Process));
        Assert.StartsWith("Graphics SM Warp Exception", first.Message, StringComparison.Ordinal);

        // Appended while watching: a record written in two pieces, continuation lines, noise, an SXid,
        // the text-only fallen-off-bus line, and a GPU the NVML map knows (which wins over nothing in the log).
        Append("3,10,9200000000,-;NVRM: Xid (PCI:0000:0F:00): 79, pid='<unknown>', name=<unknown>, GPU ha");
        await Task.Delay(50);
        Append("s fallen off the bus.\n SUBSYSTEM=pci\n");
        Append("6,11,9200000100,-;cni0: port 3 entered forwarding state\n");
        Append("4,12,9200000200,c;nvidia-nvswitch2: SXid (PCI:0000:07:00.0): 12028, Non-fatal, Link 62 egress non-posted PRIV error (First)\n");
        Append("3,13,9200000300,-;NVRM: The NVIDIA GPU 0000:0f:00.0 (PCI ID: 10de:20b2) installed in this system has fallen off the bus and is not responding to commands.\n");
        Append("4,14,9200000400,-;NVRM: Xid (PCI:0000:47:00): 48, DBE\n");
        Append("4,15,9200000500,-;NVRM: Xid (PCI:0000:99:00): 31, unmapped\n");

        var xid79 = await run.Next();
        Assert.Equal((79, "0000:0f:00", "GPU-2ec1cc4b-2f7f-ba90-5121-6096c6fa4bb3", 10L, (string?)null, "GPU has fallen off the bus."),
            (xid79.Xid, xid79.PciBusId, xid79.GpuUuid, xid79.KmsgSequence, xid79.Process, xid79.Message));
        var sxid = await run.Next();
        Assert.Equal(("sxid", 12028, "0000:07:00", (string?)null, 12L), (sxid.Kind, sxid.Xid, sxid.PciBusId, sxid.GpuUuid, sxid.KmsgSequence));
        var fell = await run.Next();
        Assert.Equal(("fallen_off_bus", (int?)null, "GPU-2ec1cc4b-2f7f-ba90-5121-6096c6fa4bb3"), (fell.Kind, fell.Xid, fell.GpuUuid));
        var nvml = await run.Next();
        Assert.Equal((48, "GPU-from-nvml-47", (int?)5), (nvml.Xid, nvml.GpuUuid, nvml.GpuIndex));
        var unmapped = await run.Next();
        Assert.Equal((31, "0000:99:00", (string?)null), (unmapped.Xid, unmapped.PciBusId, unmapped.GpuUuid));

        var c = watcher.Counters;
        Assert.Equal((16L, 6L, 0L, 0L), (c.Records, c.Events, c.SequenceGaps, c.Overruns));
    }

    [Fact]
    public async Task Resumes_after_the_last_sequence_number_it_saw_and_keeps_the_uuid_map()
    {
        CopyFixture();
        var first = Watcher(Options());
        await using (var run = Run.Start(first))
        {
            Assert.Equal(8L, (await run.Next()).KmsgSequence);
            await run.WaitUntil(() => File.Exists(StatePath) && File.ReadAllText(StatePath).Contains("\"LastSequence\":9", StringComparison.Ordinal));
        }

        // While the agent was down: one more Xid; then a restart.
        Append("4,10,9300000000,-;NVRM: Xid (PCI:0000:07:00): 43, pid=1, name=python, Ch 00000018\n");
        var second = Watcher(Options());
        await using (var run = Run.Start(second))
        {
            var ev = await run.Next();
            Assert.Equal((43, 10L, "GPU-7aa963fa-6bda-e9fa-fc9b-c48d80d99820"), (ev.Xid, ev.KmsgSequence, ev.GpuUuid));
            await run.WaitUntil(() => second.Counters.Records == 11);
            Assert.Equal(10L, second.Counters.ResumedSkipped);
            Assert.Equal(1L, second.Counters.Events); // the Xid of seq 8 was not published again
        }
    }

    [Fact]
    public async Task A_state_file_from_another_boot_is_ignored()
    {
        CopyFixture();
        var bootId = Path.Combine(_dir, "boot_id");
        await File.WriteAllTextAsync(bootId, "c2d4e6f8-1a3b-4c5d-8e7f-90a1b2c3d4e5\n");
        Directory.CreateDirectory(Path.GetDirectoryName(StatePath)!);
        await File.WriteAllTextAsync(StatePath, "{\"BootId\":\"6f1c9a52-3a4e-4d7b-9a51-0b6c2f0d1e11\",\"LastSequence\":500}");

        var watcher = Watcher(Options(bootId));
        await using var run = Run.Start(watcher);
        Assert.Equal(8L, (await run.Next()).KmsgSequence);
        await run.WaitUntil(() => File.ReadAllText(StatePath).Contains("c2d4e6f8-1a3b-4c5d-8e7f-90a1b2c3d4e5", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Sequence_gaps_are_counted_including_records_lost_while_the_agent_was_down()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(StatePath)!);
        await File.WriteAllTextAsync(StatePath, "{\"BootId\":null,\"LastSequence\":100}");
        await File.WriteAllTextAsync(LogPath,
            "6,150,1,-;first record still in the ring buffer\n"
            + "6,151,2,-;noise\n"
            + "6,160,3,-;after an overrun\n"
            + "4,161,4,-;NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus.\n"
            + "4,162,5,-;NVRM: Xid (PCI:0000:3b\n");

        var watcher = Watcher(Options());
        await using var run = Run.Start(watcher);
        Assert.Equal(161L, (await run.Next()).KmsgSequence);
        await run.WaitUntil(() => watcher.Counters.Records == 5);
        var c = watcher.Counters;
        Assert.Equal((2L, 49L + 8L, 1L), (c.SequenceGaps, c.LostRecords, c.Malformed));
    }

    [Fact]
    public async Task Epipe_overrun_is_logged_counted_and_reading_goes_on()
    {
        var script = new ScriptedStream(
            "6,1,1,-;noise\n",
            new IOException("Broken pipe", 32),
            "4,40,2,-;NVRM: Xid (PCI:0000:3b:00): 13, after the overrun\n");
        var watcher = Watcher(Options(), open: _ => script);
        await using var run = Run.Start(watcher);

        var ev = await run.Next();
        Assert.Equal((13, 40L), (ev.Xid, ev.KmsgSequence));
        var c = watcher.Counters;
        Assert.Equal((1L, 1L, 38L, 0L), (c.Overruns, c.SequenceGaps, c.LostRecords, c.ReadErrors));
    }

    [Fact]
    public async Task Cancellation_ends_the_enumeration_without_throwing_and_saves_the_position()
    {
        CopyFixture();
        var watcher = Watcher(Options());
        using var cts = new CancellationTokenSource();
        var seen = new List<long?>();
        await foreach (var e in watcher.WatchAsync(cts.Token).WithCancellation(cts.Token))
        {
            seen.Add(e.KmsgSequence);
            await cts.CancelAsync();
        }

        Assert.Equal([8L], seen);
        Assert.Contains("\"LastSequence\":9", await File.ReadAllTextAsync(StatePath), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_log_is_retried_until_it_appears()
    {
        var watcher = Watcher(Options());
        await using var run = Run.Start(watcher);
        await run.WaitUntil(() => watcher.Counters.ReadErrors >= 2);
        await File.WriteAllTextAsync(LogPath, "4,1,1,-;NVRM: Xid (PCI:0000:3b:00): 45, Ch 00000010\n");
        Assert.Equal(45, (await run.Next()).Xid);
    }

    [Fact]
    public async Task An_unwritable_state_path_is_counted_not_fatal()
    {
        CopyFixture();
        var blocker = Path.Combine(_dir, "file-not-dir");
        await File.WriteAllTextAsync(blocker, "");
        var options = Options();
        options.StatePath = Path.Combine(blocker, "kmsg.state");
        var watcher = Watcher(options);
        await using var run = Run.Start(watcher);
        Assert.Equal(13, (await run.Next()).Xid);
        await run.WaitUntil(() => watcher.Counters.StateWriteErrors >= 1);
    }

    [Theory]
    [InlineData("Path", "")]
    [InlineData("StatePath", " ")]
    [InlineData("PollInterval", "00:00:00")]
    [InlineData("ReopenDelay", "-00:00:01")]
    [InlineData("StateFlushInterval", "02:00:00")]
    [InlineData("MaxLineBytes", "100")]
    public void Options_validator_names_the_bad_key_and_value(string key, string value)
    {
        var o = new KmsgXidWatcherOptions();
        switch (key)
        {
            case "Path": o.Path = value; break;
            case "StatePath": o.StatePath = value; break;
            case "PollInterval": o.PollInterval = TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
            case "ReopenDelay": o.ReopenDelay = TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
            case "StateFlushInterval": o.StateFlushInterval = TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
            case "MaxLineBytes": o.MaxLineBytes = int.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
        }

        var result = new KmsgXidWatcherOptionsValidator().Validate(null, o);
        Assert.True(result.Failed);
        Assert.Contains($"FleetWatch:Agent:Kmsg:{key}", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains(value.Trim(), result.FailureMessage, StringComparison.Ordinal);
        Assert.True(new KmsgXidWatcherOptionsValidator().Validate(null, new KmsgXidWatcherOptions()).Succeeded);
    }

    /// <summary>Fixed wall clock, real timers (the watcher's poll delays must elapse).</summary>
    private sealed class FixedClock : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => Now;
    }

    /// <summary>Pumps a watcher into a channel on a background task; disposal cancels it and waits for it.</summary>
    private sealed class Run : IAsyncDisposable
    {
        private readonly CancellationTokenSource _cts = new();
        private readonly Channel<GpuXidObserved> _events = Channel.CreateUnbounded<GpuXidObserved>();
        private Task _pump = Task.CompletedTask;

        public static Run Start(IXidSource source)
        {
            var run = new Run();
            run._pump = Task.Run(async () =>
            {
                try
                {
                    await foreach (var e in source.WatchAsync(run._cts.Token))
                    {
                        run._events.Writer.TryWrite(e);
                    }
                }
                catch (OperationCanceledException)
                {
                }
            });
            return run;
        }

        public async Task<GpuXidObserved> Next() => await _events.Reader.ReadAsync().AsTask().WaitAsync(Wait);

        public async Task WaitUntil(Func<bool> condition)
        {
            var deadline = DateTime.UtcNow + Wait;
            while (!condition())
            {
                Assert.True(DateTime.UtcNow < deadline, "condition not met within " + Wait);
                await Task.Delay(10);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _cts.CancelAsync();
            await _pump.WaitAsync(Wait);
            _cts.Dispose();
        }
    }

    /// <summary>Hands out byte chunks and exceptions in order, then reports end of file (as a drained regular file would).</summary>
    private sealed class ScriptedStream(params object[] steps) : Stream
    {
        private readonly Queue<object> _steps = new(steps);

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (!_steps.TryDequeue(out var step))
            {
                return 0;
            }

            if (step is Exception ex)
            {
                throw ex;
            }

            var bytes = Encoding.UTF8.GetBytes((string)step);
            bytes.CopyTo(buffer);
            return bytes.Length;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
