using System.Globalization;
using System.Text;
using FleetWatch.Contracts;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Sources.Infiniband;

/// <summary>
/// Reads every InfiniBand port under <see cref="SysfsInfinibandOptions.Root"/>: <c>state</c>, <c>phys_state</c>,
/// <c>rate</c>, <c>counters/*</c> and <c>hw_counters/*</c> (kernel <c>drivers/infiniband/core/sysfs.c</c>;
/// research/straggler-restore-anchors.md sections 1.1–1.4).
/// </summary>
/// <remarks>
/// <para>
/// Values travel cumulative and raw, under the sysfs file name: <c>port_xmit_data</c> and <c>port_rcv_data</c> are
/// in <b>4-byte words</b>, as the kernel reports them (multiply by <see cref="IbCounterWidths.DataWordBytes"/> for
/// bytes); keeping the raw unit keeps the value comparable with its width's maximum.
/// </para>
/// <para>
/// A counter at its width's maximum (<see cref="IbCounterWidths"/>) is listed in
/// <see cref="IbPortSample.SaturatedCounters"/>. Data and packet counters are 64-bit when the port uses the
/// extended table (detected by <c>counters/unicast_xmit_packets</c>, or a data/packet value above 2³²−1) and
/// 32-bit otherwise (old cards), where a value of 2³²−1 is reported as saturated. A 64-bit value above
/// <see cref="long.MaxValue"/> is clamped to it.
/// </para>
/// <para>
/// Unreadable or garbage files (<c>N/A (no PMA)</c>, empty, binary, EINVAL from a port without a PMA) are
/// skipped and counted in <see cref="SkippedFiles"/>; nothing here throws for what sysfs holds.
/// <c>hw_counters/lifespan</c> is a setting (cache period, ms), not a counter, and is left out.
/// </para>
/// </remarks>
public sealed partial class SysfsInfinibandSource : IInfinibandSource
{
    // sysfs attributes are one short line; anything longer is not a value this reader understands.
    private const int MaxValueBytes = 128;
    private const int MaxWarnedPaths = 256;

    private readonly SysfsInfinibandOptions _options;
    private readonly ILogger<SysfsInfinibandSource> _logger;
    private readonly HashSet<string> _warned = new(StringComparer.Ordinal);
    private readonly object _gate = new();
    private long _skippedFiles;
    private bool _rootWarned;

    public SysfsInfinibandSource(IOptions<SysfsInfinibandOptions> options, ILogger<SysfsInfinibandSource> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _logger = logger ?? throw new ArgumentNullException(nameof(logger));
    }

    /// <summary>Files skipped as unreadable or garbage since start.</summary>
    public long SkippedFiles => Interlocked.Read(ref _skippedFiles);

    /// <inheritdoc />
    public IReadOnlyList<IbPortSample> Read()
    {
        var samples = new List<IbPortSample>();
        string[] devices;
        try
        {
            devices = Directory.GetDirectories(_options.Root);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            lock (_gate)
            {
                if (!_rootWarned)
                {
                    _rootWarned = true;
                    LogRootUnreadable(_logger, _options.Root, ex.Message);
                }
            }

            return samples;
        }

        Array.Sort(devices, StringComparer.Ordinal);
        foreach (var deviceDir in devices)
        {
            var device = Path.GetFileName(deviceDir);
            foreach (var (port, portDir) in Ports(deviceDir))
            {
                samples.Add(ReadPort(device, port, portDir));
            }
        }

        return samples;
    }

    private List<(int Port, string Dir)> Ports(string deviceDir)
    {
        var ports = new List<(int, string)>();
        try
        {
            var portsDir = Path.Combine(deviceDir, "ports");
            if (!Directory.Exists(portsDir))
            {
                return ports;
            }

            foreach (var dir in Directory.GetDirectories(portsDir))
            {
                if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var n))
                {
                    ports.Add((n, dir));
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Skip(deviceDir, ex.Message);
        }

        ports.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        return ports;
    }

    private IbPortSample ReadPort(string device, int port, string dir)
    {
        var state = ReadEnumText(Path.Combine(dir, "state"));
        var physState = ReadEnumText(Path.Combine(dir, "phys_state"));
        var rate = ReadRate(Path.Combine(dir, "rate"));

        var raw = new List<(string Name, ulong Value, bool Hw)>();
        if (_options.ReadCounters)
        {
            ReadCounterFolder(Path.Combine(dir, "counters"), hw: false, raw);
        }

        if (_options.ReadHwCounters)
        {
            ReadCounterFolder(Path.Combine(dir, "hw_counters"), hw: true, raw);
        }

        var extended = File.Exists(Path.Combine(dir, "counters", "unicast_xmit_packets"))
            || raw.Exists(c => !c.Hw && IbCounterWidths.IsDataOrPackets(c.Name) && c.Value > uint.MaxValue);
        var counters = new Dictionary<string, long>(StringComparer.Ordinal);
        var saturated = new List<string>();
        foreach (var (name, value, hw) in raw)
        {
            // counters/ wins a name clash; the driver's copy keeps its folder in the key.
            var key = hw && counters.ContainsKey(name) ? "hw_counters/" + name : name;
            counters[key] = value > long.MaxValue ? long.MaxValue : (long)value;
            var width = hw ? 64 : IbCounterWidths.ForCounter(name, extended);
            if (value == IbCounterWidths.MaxValue(width))
            {
                saturated.Add(key);
            }
        }

        saturated.Sort(StringComparer.Ordinal);
        return new IbPortSample
        {
            Device = device,
            Port = port,
            State = state,
            PhysState = physState,
            RateGbps = rate,
            Counters = counters,
            SaturatedCounters = saturated,
        };
    }

    private void ReadCounterFolder(string folder, bool hw, List<(string, ulong, bool)> into)
    {
        string[] files;
        try
        {
            if (!Directory.Exists(folder))
            {
                return;
            }

            files = Directory.GetFiles(folder);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Skip(folder, ex.Message);
            return;
        }

        Array.Sort(files, StringComparer.Ordinal);
        foreach (var file in files)
        {
            var name = Path.GetFileName(file);
            if (hw && name == "lifespan")
            {
                continue;
            }

            var text = ReadValue(file);
            if (text is null)
            {
                continue;
            }

            if (ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
            {
                into.Add((name, value, hw));
            }
            else
            {
                // Older kernels print "N/A (no PMA)" for a port without a PMA (prometheus/procfs skips it too).
                Skip(file, "not a counter value");
            }
        }
    }

    // "4: ACTIVE" -> "ACTIVE"; "5: LinkUp" -> "LinkUp" (kernel format "%d: %s").
    private string? ReadEnumText(string file)
    {
        var text = ReadValue(file);
        if (text is null)
        {
            return null;
        }

        var colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon > 0 && int.TryParse(text.AsSpan(0, colon), NumberStyles.None, CultureInfo.InvariantCulture, out _))
        {
            var name = text[(colon + 1)..].Trim();
            if (name.Length > 0)
            {
                return name;
            }
        }

        Skip(file, "not '<id>: <name>'");
        return null;
    }

    // "400 Gb/sec (4X NDR)", "2.5 Gb/sec (1X SDR)": the number before the first space is Gb/s (kernel format "%d%s Gb/sec (%dX%s)").
    private double? ReadRate(string file)
    {
        var text = ReadValue(file);
        if (text is null)
        {
            return null;
        }

        var space = text.IndexOf(' ', StringComparison.Ordinal);
        if (space > 0 && text.AsSpan(space).TrimStart().StartsWith("Gb/sec", StringComparison.Ordinal)
            && double.TryParse(text.AsSpan(0, space), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var gbps)
            && double.IsFinite(gbps))
        {
            return gbps;
        }

        Skip(file, "not '<n> Gb/sec (...)'");
        return null;
    }

    // One short read: the whole attribute, trimmed; null (and counted) when missing, unreadable, too long or binary.
    private string? ReadValue(string file)
    {
        Span<byte> buffer = stackalloc byte[MaxValueBytes + 1];
        int length;
        try
        {
            if (!File.Exists(file))
            {
                return null;
            }

            using var handle = File.OpenHandle(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            length = 0;
            while (length < buffer.Length)
            {
                var n = RandomAccess.Read(handle, buffer[length..], length);
                if (n == 0)
                {
                    break;
                }

                length += n;
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // e.g. EINVAL/EOPNOTSUPP from a counters/ file on a port without a PMA.
            Skip(file, ex.Message);
            return null;
        }

        if (length > MaxValueBytes)
        {
            Skip(file, "longer than a sysfs value");
            return null;
        }

        var value = buffer[..length].Trim(" \t\r\n"u8);
        foreach (var b in value)
        {
            if (b is < 0x20 or > 0x7E)
            {
                Skip(file, "binary content");
                return null;
            }
        }

        if (value.IsEmpty)
        {
            Skip(file, "empty");
            return null;
        }

        return Encoding.ASCII.GetString(value);
    }

    private void Skip(string path, string reason)
    {
        Interlocked.Increment(ref _skippedFiles);
        lock (_gate)
        {
            // Once per path: a port without a PMA would otherwise warn on every poll.
            if (_warned.Count >= MaxWarnedPaths || !_warned.Add(path))
            {
                return;
            }
        }

        LogSkipped(_logger, path, reason);
    }

    [LoggerMessage(EventId = 3201, Level = LogLevel.Warning, Message = "InfiniBand sysfs root {Root} unreadable: {Reason}; no IB ports reported")]
    private static partial void LogRootUnreadable(ILogger logger, string root, string reason);

    [LoggerMessage(EventId = 3202, Level = LogLevel.Warning, Message = "InfiniBand sysfs file {Path} skipped: {Reason}")]
    private static partial void LogSkipped(ILogger logger, string path, string reason);
}
