using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Text.Json;
using FleetWatch.Contracts;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Sources.Kmsg;

/// <summary>Counters of a <see cref="KmsgXidWatcher"/> (for <c>/metrics</c> and tests).</summary>
/// <param name="Records">kmsg records read (continuation lines not counted).</param>
/// <param name="Events">Xid / SXid / fallen-off-bus observations published.</param>
/// <param name="Malformed">Lines that start an event shape but are cut or damaged; skipped.</param>
/// <param name="SequenceGaps">Times the sequence number jumped (records lost to a ring-buffer overrun, or while the agent was down).</param>
/// <param name="LostRecords">Records missing across all gaps.</param>
/// <param name="Overruns">Reads that failed with EPIPE: the kernel overwrote records this reader had not read yet.</param>
/// <param name="ReadErrors">Other open or read failures (the log is reopened after <see cref="KmsgXidWatcherOptions.ReopenDelay"/>).</param>
/// <param name="ResumedSkipped">Records at or below the saved sequence number, skipped on resume.</param>
/// <param name="StateWriteErrors">Failures to save the state file.</param>
public readonly record struct KmsgXidWatcherCounters(
    long Records, long Events, long Malformed, long SequenceGaps, long LostRecords, long Overruns, long ReadErrors,
    long ResumedSkipped, long StateWriteErrors);

/// <summary>
/// Follows <c>/dev/kmsg</c> (or a regular file in kmsg record format) and yields a <see cref="GpuXidObserved"/>
/// for every Xid, SXid and fallen-off-the-bus line, parsed by the same <see cref="KernelLogParser"/> as the offline
/// <c>xid</c> verb. Resumes after the last sequence number it saw (saved in <see cref="KmsgXidWatcherOptions.StatePath"/>),
/// counts sequence gaps and <c>EPIPE</c> overruns and carries on, and maps PCI ids to GPU UUIDs from the injected
/// <see cref="IGpuPciMap"/> (NVML) first and the log's own <c>NVRM: GPU at PCI:...: GPU-&lt;uuid&gt;</c> lines second.
/// </summary>
/// <remarks>
/// <para>
/// With no saved state (first run after a boot) every Xid still in the kernel's ring buffer is published: they are
/// real and unreported. <see cref="GpuXidObserved.Time"/> is when the watcher saw the line;
/// <see cref="GpuXidObserved.KmsgSequence"/> lets the controller dedup across restarts. Cancellation ends the
/// enumeration normally and saves the last sequence number.
/// </para>
/// <para>
/// A read of <c>/dev/kmsg</c> blocks until the kernel logs something and cannot be interrupted; on cancellation
/// the enumeration ends at once and the pending read is abandoned (it completes at the next kernel message). This
/// is the accepted trade-off for a source that lives as long as the process (the kernel ABI offers only
/// <c>O_NONBLOCK</c> + <c>poll</c>, which <see cref="FileStream"/> does not expose). Checked by hand against a real
/// <c>/dev/kmsg</c> (348 records, resume and boot id, a 2 s cancellation ending in 2.3 s).
/// </para>
/// </remarks>
public sealed partial class KmsgXidWatcher : IXidSource
{
    // Linux errno EPIPE: /dev/kmsg's read() reports that records this reader had not read were overwritten
    // (Documentation/ABI/testing/dev-kmsg). .NET surfaces an unmapped errno as IOException.HResult.
    private const int Epipe = 32;

    private readonly KmsgXidWatcherOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<KmsgXidWatcher> _logger;
    private readonly IGpuPciMap? _gpuMap;
    private readonly Func<string, Stream> _open;
    private readonly Dictionary<string, string> _uuidFromLog = new(StringComparer.Ordinal);
    private readonly string _node;
    private readonly object _gate = new();
    private KmsgXidWatcherCounters _counters;

    public KmsgXidWatcher(IOptions<KmsgXidWatcherOptions> options, TimeProvider timeProvider, ILogger<KmsgXidWatcher> logger, IGpuPciMap? gpuMap = null)
        : this(options, timeProvider, logger, gpuMap, OpenFile)
    {
    }

    internal KmsgXidWatcher(
        IOptions<KmsgXidWatcherOptions> options, TimeProvider timeProvider, ILogger<KmsgXidWatcher> logger, IGpuPciMap? gpuMap, Func<string, Stream> open)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _time = timeProvider ?? throw new ArgumentNullException(nameof(timeProvider));
        _logger = logger ?? throw new ArgumentNullException(nameof(logger));
        _gpuMap = gpuMap;
        _open = open;
        _node = string.IsNullOrWhiteSpace(_options.NodeName) ? Environment.MachineName : _options.NodeName;
    }

    /// <summary>A snapshot of the counters.</summary>
    public KmsgXidWatcherCounters Counters
    {
        get
        {
            lock (_gate)
            {
                return _counters;
            }
        }
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<GpuXidObserved> WatchAsync([EnumeratorCancellation] CancellationToken ct)
    {
        var bootId = ReadBootId();
        var resumeAfter = LoadResumePoint(bootId);
        var cursor = new Cursor { ResumeAfter = resumeAfter };
        var lastSaved = resumeAfter;
        var lastSaveAt = _time.GetTimestamp();
        var batch = new List<GpuXidObserved>();
        try
        {
            while (!ct.IsCancellationRequested)
            {
                Stream? stream = null;
                try
                {
                    stream = _open(_options.Path);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
                {
                    Count(static (ref KmsgXidWatcherCounters c) => c = c with { ReadErrors = c.ReadErrors + 1 });
                    LogOpenFailed(_logger, _options.Path, ex.Message);
                }

                if (stream is null)
                {
                    await DelayAsync(_options.ReopenDelay, ct).ConfigureAwait(false);
                    continue;
                }

                // After a reopen the device starts again at its oldest record: skip what this run has seen.
                cursor.ResumeAfter = Max(cursor.ResumeAfter, cursor.LastSeen);
                cursor.LastSeen = null;
                var reader = new KernelLogLineReader(stream, _options.MaxLineBytes);
                await using (stream.ConfigureAwait(false))
                {
                    while (!ct.IsCancellationRequested)
                    {
                        batch.Clear();
                        Drain(reader, cursor, batch);
                        foreach (var observed in batch)
                        {
                            yield return observed;
                        }

                        // Yielded events were handed on: save at once. Noise only: save now and then.
                        if (cursor.LastSeen is { } seen && seen != lastSaved
                            && (batch.Count > 0 || _time.GetElapsedTime(lastSaveAt) >= _options.StateFlushInterval))
                        {
                            SaveState(bootId, seen);
                            lastSaved = seen;
                            lastSaveAt = _time.GetTimestamp();
                        }

                        var read = await FillAsync(reader, ct).ConfigureAwait(false);
                        if (read is ReadOutcome.Failed or ReadOutcome.Cancelled)
                        {
                            break;
                        }

                        if (read == ReadOutcome.EndOfFile)
                        {
                            await DelayAsync(_options.PollInterval, ct).ConfigureAwait(false);
                        }
                    }
                }

                await DelayAsync(_options.ReopenDelay, ct).ConfigureAwait(false);
            }
        }
        finally
        {
            if (cursor.LastSeen is { } seen && seen != lastSaved)
            {
                SaveState(bootId, seen);
            }
        }
    }

    private enum ReadOutcome
    {
        Data,
        EndOfFile,
        Overrun,
        Failed,
        Cancelled,
    }

    // Cancellation ends the enumeration normally rather than throwing through the consumer's await foreach.
    private async ValueTask DelayAsync(TimeSpan delay, CancellationToken ct)
    {
        try
        {
            await Task.Delay(delay, _time, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private async ValueTask<ReadOutcome> FillAsync(KernelLogLineReader reader, CancellationToken ct)
    {
        try
        {
            var n = await reader.FillAsync(ct).AsTask().WaitAsync(ct).ConfigureAwait(false);
            return n > 0 ? ReadOutcome.Data : ReadOutcome.EndOfFile;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return ReadOutcome.Cancelled;
        }
        catch (IOException ex) when (ex.HResult == Epipe)
        {
            // The reader's position now points at the oldest record still held; the sequence jump is counted as a gap.
            Count(static (ref KmsgXidWatcherCounters c) => c = c with { Overruns = c.Overruns + 1 });
            LogOverrun(_logger, _options.Path);
            return ReadOutcome.Overrun;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Count(static (ref KmsgXidWatcherCounters c) => c = c with { ReadErrors = c.ReadErrors + 1 });
            LogReadFailed(_logger, _options.Path, ex.Message);
            return ReadOutcome.Failed;
        }
    }

    private void Drain(KernelLogLineReader reader, Cursor cursor, List<GpuXidObserved> batch)
    {
        while (reader.TryReadLine(out var line))
        {
            HandleLine(line, cursor, batch);
        }
    }

    private void HandleLine(ReadOnlySpan<byte> line, Cursor cursor, List<GpuXidObserved> batch)
    {
        if (line.IsEmpty || line[0] == (byte)' ')
        {
            return; // continuation (dictionary) line of the previous record
        }

        var replay = false;
        if (KmsgRecordHeader.TryParse(line, out var header))
        {
            var seq = header.Sequence;
            Count(static (ref KmsgXidWatcherCounters c) => c = c with { Records = c.Records + 1 });
            if ((cursor.LastSeen ?? cursor.ResumeAfter) is { } previous && seq > previous + 1)
            {
                var lost = seq - previous - 1;
                Count((ref KmsgXidWatcherCounters c) => c = c with { SequenceGaps = c.SequenceGaps + 1, LostRecords = c.LostRecords + lost });
                LogGap(_logger, previous, seq, lost);
            }

            cursor.LastSeen = seq;
            replay = cursor.ResumeAfter is { } resume && seq <= resume;
            if (replay)
            {
                Count(static (ref KmsgXidWatcherCounters c) => c = c with { ResumedSkipped = c.ResumedSkipped + 1 });
            }
        }

        var result = KernelLogParser.Parse(line, out var ev);
        if (result == KernelLogLineResult.Malformed && !replay)
        {
            Count(static (ref KmsgXidWatcherCounters c) => c = c with { Malformed = c.Malformed + 1 });
            return;
        }

        if (result != KernelLogLineResult.Event)
        {
            return;
        }

        if (ev!.Kind == KernelLogEventKind.GpuUuid)
        {
            // Learnt even from replayed records: the driver prints these once, at load.
            _uuidFromLog[ev.Pci] = ev.Uuid!;
            return;
        }

        if (replay)
        {
            return;
        }

        string? uuid = null;
        int? index = null;
        if (ev.Kind != KernelLogEventKind.SXid && !TryResolve(ev.Pci, out uuid, out index))
        {
            uuid = null;
        }

        Count(static (ref KmsgXidWatcherCounters c) => c = c with { Events = c.Events + 1 });
        batch.Add(new GpuXidObserved
        {
            Node = _node,
            Time = _time.GetUtcNow(),
            Xid = ev.Xid,
            Kind = XidJsonLines.KindName(ev.Kind),
            PciBusId = ev.Pci,
            GpuUuid = uuid,
            GpuIndex = index,
            Message = ev.Message,
            Source = XidSource.Kmsg,
            KmsgSequence = ev.Sequence,
            Process = ev.Process,
        });
        LogObserved(_logger, XidJsonLines.KindName(ev.Kind), ev.Xid, ev.Pci, uuid, ev.Sequence);
    }

    private bool TryResolve(string pci, [NotNullWhen(true)] out string? uuid, out int? index)
    {
        if (_gpuMap is not null && _gpuMap.TryGetGpu(pci, out uuid, out index))
        {
            return true;
        }

        index = null;
        return _uuidFromLog.TryGetValue(pci, out uuid);
    }

    private string? ReadBootId() => NodeBootId.Read(_options.BootIdPath, out _);

    private long? LoadResumePoint(string? bootId)
    {
        try
        {
            if (!File.Exists(_options.StatePath))
            {
                return null;
            }

            var state = JsonSerializer.Deserialize(File.ReadAllText(_options.StatePath), KmsgStateJsonContext.Default.KmsgWatcherState);
            if (state is null)
            {
                return null;
            }

            if (!string.Equals(state.BootId, bootId, StringComparison.Ordinal))
            {
                LogNewBoot(_logger, state.LastSequence);
                return null;
            }

            LogResuming(_logger, state.LastSequence);
            return state.LastSequence;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException)
        {
            LogStateUnreadable(_logger, _options.StatePath, ex.Message);
            return null;
        }
    }

    private void SaveState(string? bootId, long lastSequence)
    {
        try
        {
            var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(_options.StatePath));
            if (!string.IsNullOrEmpty(dir))
            {
                Directory.CreateDirectory(dir);
            }

            // Write then rename: a crash mid-write leaves the previous state, never a torn file.
            var tmp = _options.StatePath + ".tmp";
            File.WriteAllText(tmp, JsonSerializer.Serialize(new KmsgWatcherState(bootId, lastSequence), KmsgStateJsonContext.Default.KmsgWatcherState));
            File.Move(tmp, _options.StatePath, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Count(static (ref KmsgXidWatcherCounters c) => c = c with { StateWriteErrors = c.StateWriteErrors + 1 });
            LogStateWriteFailed(_logger, _options.StatePath, ex.Message);
        }
    }

    private delegate void CounterUpdate(ref KmsgXidWatcherCounters counters);

    private void Count(CounterUpdate update)
    {
        lock (_gate)
        {
            update(ref _counters);
        }
    }

    private static long? Max(long? a, long? b) => a is null ? b : b is null ? a : Math.Max(a.Value, b.Value);

    private static FileStream OpenFile(string path) =>
        // bufferSize 0: every ReadAsync is one read() so a /dev/kmsg read gets one whole record.
        new(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0);

    private sealed class Cursor
    {
        public long? ResumeAfter { get; set; }

        public long? LastSeen { get; set; }
    }

    [LoggerMessage(EventId = 3101, Level = LogLevel.Warning, Message = "Kernel log {Path} could not be opened: {Reason}; retrying")]
    private static partial void LogOpenFailed(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 3102, Level = LogLevel.Warning, Message = "Kernel log {Path} could not be read: {Reason}; reopening")]
    private static partial void LogReadFailed(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 3103, Level = LogLevel.Warning, Message = "Kernel log {Path} overrun (EPIPE): records were overwritten before they were read")]
    private static partial void LogOverrun(ILogger logger, string path);

    [LoggerMessage(EventId = 3104, Level = LogLevel.Warning, Message = "Kernel log sequence gap: {Previous} then {Sequence}, {Lost} records lost")]
    private static partial void LogGap(ILogger logger, long previous, long sequence, long lost);

    [LoggerMessage(EventId = 3105, Level = LogLevel.Information, Message = "Kernel log {Kind} {Xid} on {Pci} (GPU {Uuid}), seq {Sequence}")]
    private static partial void LogObserved(ILogger logger, string kind, int? xid, string pci, string? uuid, long? sequence);

    [LoggerMessage(EventId = 3106, Level = LogLevel.Information, Message = "Resuming the kernel log after sequence {Sequence}")]
    private static partial void LogResuming(ILogger logger, long sequence);

    [LoggerMessage(EventId = 3107, Level = LogLevel.Information, Message = "Saved kernel-log sequence {Sequence} belongs to another boot; reading from the start")]
    private static partial void LogNewBoot(ILogger logger, long sequence);

    [LoggerMessage(EventId = 3108, Level = LogLevel.Warning, Message = "Kernel-log state {Path} unreadable ({Reason}); reading from the start")]
    private static partial void LogStateUnreadable(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 3109, Level = LogLevel.Warning, Message = "Kernel-log state {Path} could not be saved: {Reason}")]
    private static partial void LogStateWriteFailed(ILogger logger, string path, string reason);
}

/// <summary>What <see cref="KmsgXidWatcher"/> saves between runs.</summary>
internal sealed record KmsgWatcherState(string? BootId, long LastSequence);

[System.Text.Json.Serialization.JsonSerializable(typeof(KmsgWatcherState))]
internal sealed partial class KmsgStateJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
