using System.Collections.Concurrent;
using FleetWatch.Contracts;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace FleetWatch.Controller.Fleet;

/// <summary>The per-GPU series <see cref="NodeHistory"/> keeps, in the order of <see cref="NodeHistory.GpuSeriesNames"/>.</summary>
public enum GpuSeries
{
    TemperatureC,
    PowerW,
    UtilizationPct,
    SmClockMHz,

    /// <summary>Corrected plus uncorrected volatile ECC errors per second.</summary>
    EccErrorsPerSecond,

    /// <summary>CRC flit + CRC data + replay + recovery errors over the GPU's NVLinks, per second.</summary>
    NvLinkErrorsPerSecond,
}

/// <summary>
/// The node page's recent history (issue 8, view 2): per node and GPU, the last <see cref="Window"/> of temperature, power,
/// utilization, SM clock and ECC / NVLink error rates, per InfiniBand port its error rate, state and rate, and the node's
/// last <see cref="MaxXids"/> Xids. Samples are downsampled into <see cref="BucketWidth"/> buckets (the mean of the samples
/// in a bucket) in fixed rings, so memory is bounded by the fleet's shape and never by time.
/// <para>
/// Memory: a bucket holds one <see cref="Half"/> per series (2 bytes: 11 bits of mantissa, far finer than a sparkline
/// needs), so a GPU costs 6 series × 180 buckets × 2 B = 2,160 B, plus 20 B of running state per series (the open
/// bucket's sum and count, the last counter value); a node adds 180 × 8 B of bucket stamps, 380 B per IB port and at most
/// 64 Xids. At 10,000 GPUs (1,250 nodes of 8 GPUs, 8 IB ports each) that is 28.4 MB (<see cref="EstimateBytes"/>; the
/// unit test measures the allocation of recording such a fleet against it).
/// </para>
/// Thread-safe: one lock per node; samples of one node arrive one after the other anyway.
/// </summary>
public sealed class NodeHistory(TimeProvider time)
{
    /// <summary>How far back the node page looks (issue 8: "sparklines of the last 30 minutes").</summary>
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(30);

    /// <summary>
    /// One point per 10 s: 180 points fill a sparkline of a few hundred pixels, and 10 s is a third of dcgm-exporter's
    /// default 30 s collect interval (research/dashboard-alerting-anchors.md section 1.1), so nothing the stock stack
    /// shows is lost.
    /// </summary>
    public static readonly TimeSpan BucketWidth = TimeSpan.FromSeconds(10);

    /// <summary>Buckets per ring: <see cref="Window"/> / <see cref="BucketWidth"/>.</summary>
    public static readonly int Buckets = (int)(Window / BucketWidth);

    /// <summary>Xids kept per node, newest last.</summary>
    public const int MaxXids = 64;

    /// <summary>GPUs kept per node (NVML indexes; a node with more is clipped, never grown without bound).</summary>
    public const int MaxGpusPerNode = 64;

    /// <summary>InfiniBand ports kept per node.</summary>
    public const int MaxPortsPerNode = 32;

    /// <summary>Nodes kept; beyond it new nodes are not recorded (10x the 10,000-GPU design point at 8 GPUs a node).</summary>
    public const int MaxNodes = 12_500;

    public static readonly IReadOnlyList<string> GpuSeriesNames =
        ["temperatureC", "powerW", "utilizationPct", "smClockMHz", "eccErrorsPerSecond", "nvlinkErrorsPerSecond"];

    private static readonly int SeriesCount = GpuSeriesNames.Count;
    private readonly ConcurrentDictionary<string, NodeRing> _nodes = new(StringComparer.Ordinal);
    private long _refused;

    /// <summary>Samples of nodes refused because <see cref="MaxNodes"/> were already held.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    public int NodeCount => _nodes.Count;

    /// <summary>Bytes held for a fleet of this shape (the arrays, not object headers).</summary>
    public static long EstimateBytes(int nodes, int gpusPerNode, int portsPerNode) =>
        nodes * ((long)Buckets * sizeof(long) // bucket stamps
                 + gpusPerNode * (SeriesCount * ((long)Buckets * 2 + sizeof(double) + sizeof(int) + sizeof(double)))
                 + portsPerNode * ((long)Buckets * 2 + sizeof(double) + sizeof(int) + sizeof(double)));

    /// <summary>Records an accepted sample.</summary>
    public void Record(NodeSample sample)
    {
        ArgumentNullException.ThrowIfNull(sample);
        if (NodeOf(sample.Node) is not { } ring)
        {
            return;
        }

        lock (ring)
        {
            ring.Add(sample);
        }
    }

    /// <summary>Records an Xid (kept for the node page, newest last, at most <see cref="MaxXids"/>).</summary>
    public void RecordXid(GpuXidObserved xid)
    {
        ArgumentNullException.ThrowIfNull(xid);
        if (NodeOf(xid.Node) is not { } ring)
        {
            return;
        }

        lock (ring)
        {
            if (ring.Xids.Count == MaxXids)
            {
                ring.Xids.Dequeue();
            }

            ring.Xids.Enqueue(new XidRecord(xid.Time, xid.Xid, xid.Kind, xid.GpuIndex, xid.PciBusId, xid.Message));
        }
    }

    public bool Contains(string node) => _nodes.ContainsKey(node);

    /// <summary>The node's history as of now, oldest point first; null for an unknown node.</summary>
    public NodeHistoryView? Read(string node)
    {
        if (!_nodes.TryGetValue(node, out var ring))
        {
            return null;
        }

        var now = time.GetUtcNow();
        lock (ring)
        {
            return ring.View(node, now);
        }
    }

    /// <summary>GPUs whose node name, UUID or PCI bus id contains <paramref name="query"/> (case-insensitive), at most <paramref name="limit"/>.</summary>
    public IReadOnlyList<GpuIdentity> Search(string query, int limit)
    {
        var hits = new List<GpuIdentity>();
        if (string.IsNullOrWhiteSpace(query))
        {
            return hits;
        }

        var q = query.Trim();
        foreach (var (name, ring) in _nodes)
        {
            lock (ring)
            {
                var nodeHit = name.Contains(q, StringComparison.OrdinalIgnoreCase);
                foreach (var g in ring.Gpus)
                {
                    if (g is null)
                    {
                        continue;
                    }

                    if (nodeHit || g.Uuid.Contains(q, StringComparison.OrdinalIgnoreCase)
                        || (g.PciBusId?.Contains(q, StringComparison.OrdinalIgnoreCase) ?? false))
                    {
                        hits.Add(new GpuIdentity(name, g.Index, g.Uuid, g.PciBusId));
                        if (hits.Count >= limit)
                        {
                            return hits;
                        }
                    }
                }
            }
        }

        return hits;
    }

    private NodeRing? NodeOf(string node)
    {
        if (_nodes.TryGetValue(node, out var ring))
        {
            return ring;
        }

        if (_nodes.Count >= MaxNodes)
        {
            Interlocked.Increment(ref _refused);
            return null;
        }

        return _nodes.GetOrAdd(node, static _ => new NodeRing());
    }

    /// <summary>One series ring: the finished buckets as <see cref="Half"/>, the open bucket as a running sum.</summary>
    private sealed class Ring
    {
        public readonly Half[] Values = CreateEmpty();
        public double Sum;
        public int Count;

        /// <summary>Previous cumulative counter value (for rates), NaN before the first.</summary>
        public double LastCounter = double.NaN;

        private static Half[] CreateEmpty()
        {
            var values = new Half[Buckets];
            Array.Fill(values, Half.NaN);
            return values;
        }

        /// <summary>A new bucket takes this slot: forget what the slot held 30 minutes ago.</summary>
        public void Open(int slot)
        {
            Sum = 0;
            Count = 0;
            Values[slot] = Half.NaN;
        }

        public void Add(int slot, double? value)
        {
            if (value is not { } v || double.IsNaN(v))
            {
                return;
            }

            Sum += v;
            Count++;
            Values[slot] = (Half)(Sum / Count);
        }

        /// <summary>Per-second rate of a cumulative counter; null on the first value, a reset, or no counter.</summary>
        public double? Rate(double? counter, double seconds)
        {
            if (counter is not { } c)
            {
                LastCounter = double.NaN;
                return null;
            }

            var last = LastCounter;
            LastCounter = c;
            // A counter that went down was reset (driver reload, agent on a new GPU): no rate for this interval.
            return double.IsNaN(last) || c < last || seconds <= 0 ? null : (c - last) / seconds;
        }
    }

    private sealed class GpuRings(GpuSample first)
    {
        public int Index { get; } = first.Index;
        public string Uuid { get; set; } = first.Uuid;
        public string? PciBusId { get; set; } = first.PciBusId;
        public string? Name { get; set; } = first.Name;
        public bool Lost { get; set; }
        public Ring[] Series { get; } = [.. Enumerable.Range(0, SeriesCount).Select(_ => new Ring())];
    }

    private sealed class PortRings(IbPortSample first)
    {
        public string Device { get; } = first.Device;
        public int Port { get; } = first.Port;
        public string? State { get; set; }
        public string? PhysState { get; set; }
        public double? RateGbps { get; set; }
        public Ring Errors { get; } = new();
    }

    private sealed class NodeRing
    {
        private readonly long[] _stamps = CreateStamps();
        private DateTimeOffset? _lastTime;

        public GpuRings?[] Gpus { get; } = new GpuRings?[MaxGpusPerNode];
        public List<PortRings> Ports { get; } = [];
        public Queue<XidRecord> Xids { get; } = new();
        public string? Rack { get; private set; }
        public DateTimeOffset? LastSample => _lastTime;

        private static long[] CreateStamps()
        {
            var stamps = new long[Buckets];
            Array.Fill(stamps, long.MinValue);
            return stamps;
        }

        public void Add(NodeSample sample)
        {
            if (_lastTime is { } previous && sample.Time <= previous)
            {
                return; // out of order: the rings only move forward
            }

            var seconds = _lastTime is { } last ? (sample.Time - last).TotalSeconds : 0;
            _lastTime = sample.Time;
            Rack = sample.Rack ?? Rack;
            var bucket = sample.Time.ToUnixTimeMilliseconds() / (long)BucketWidth.TotalMilliseconds;
            var slot = (int)(bucket % Buckets);
            var fresh = _stamps[slot] != bucket;
            if (fresh)
            {
                // Every ring of the node opens the bucket, so a GPU or port missing from this sample shows a gap, not
                // what the slot held one window ago. Buckets skipped entirely keep their old stamp and read as gaps.
                _stamps[slot] = bucket;
                foreach (var g in Gpus)
                {
                    foreach (var r in g?.Series ?? [])
                    {
                        r.Open(slot);
                    }
                }

                foreach (var p in Ports)
                {
                    p.Errors.Open(slot);
                }
            }

            foreach (var g in sample.Gpus)
            {
                if (g.Index is < 0 or >= MaxGpusPerNode)
                {
                    continue;
                }

                var rings = Gpus[g.Index] ??= new GpuRings(g);
                rings.Uuid = g.Uuid;
                rings.PciBusId = g.PciBusId ?? rings.PciBusId;
                rings.Name = g.Name ?? rings.Name;
                rings.Lost = g.Lost;
                var s = rings.Series;
                s[(int)GpuSeries.TemperatureC].Add(slot, g.TemperatureC);
                s[(int)GpuSeries.PowerW].Add(slot, g.PowerW);
                s[(int)GpuSeries.UtilizationPct].Add(slot, g.UtilizationPct);
                s[(int)GpuSeries.SmClockMHz].Add(slot, g.SmClockMHz);
                long? ecc = g.EccCorrectedVolatile is null && g.EccUncorrectedVolatile is null
                    ? null
                    : (g.EccCorrectedVolatile ?? 0) + (g.EccUncorrectedVolatile ?? 0);
                var eccRing = s[(int)GpuSeries.EccErrorsPerSecond];
                eccRing.Add(slot, eccRing.Rate(ecc, seconds));
                var nvRing = s[(int)GpuSeries.NvLinkErrorsPerSecond];
                nvRing.Add(slot, nvRing.Rate(NvLinkErrors(sample, g.Index), seconds));
            }

            foreach (var p in sample.IbPorts)
            {
                var port = Ports.Find(x => x.Port == p.Port && string.Equals(x.Device, p.Device, StringComparison.Ordinal));
                if (port is null)
                {
                    if (Ports.Count >= MaxPortsPerNode)
                    {
                        continue;
                    }

                    port = new PortRings(p);
                    Ports.Add(port);
                }

                port.State = p.State;
                port.PhysState = p.PhysState;
                port.RateGbps = p.RateGbps;
                port.Errors.Add(slot, port.Errors.Rate(IbErrors(p), seconds));
            }
        }

        public NodeHistoryView View(string node, DateTimeOffset now)
        {
            var width = (long)BucketWidth.TotalMilliseconds;
            var newest = now.ToUnixTimeMilliseconds() / width;
            var oldest = newest - Buckets + 1;
            var slots = new int[Buckets]; // slot of each point, -1 when the point has no bucket
            for (var k = 0; k < Buckets; k++)
            {
                var b = oldest + k;
                var slot = (int)(b % Buckets);
                slots[k] = _stamps[slot] == b ? slot : -1;
            }

            double?[] Points(Half[] values) =>
                [.. slots.Select(s => s < 0 || Half.IsNaN(values[s]) ? (double?)null : Math.Round((double)values[s], 3))];

            var gpus = Gpus.Where(g => g is not null).Select(g => new GpuHistoryView(
                g!.Index, g.Uuid, g.PciBusId, g.Name, g.Lost,
                GpuSeriesNames.Select((name, i) => (name, i)).ToDictionary(x => x.name, x => Points(g.Series[x.i].Values)))).ToList();
            var ports = Ports.Select(p => new IbPortHistoryView(p.Device, p.Port, p.State, p.PhysState, p.RateGbps, Points(p.Errors.Values))).ToList();
            return new NodeHistoryView(node, Rack, _lastTime, DateTimeOffset.FromUnixTimeMilliseconds(oldest * width), BucketWidth.TotalSeconds,
                gpus, ports, [.. Xids.Reverse()]);
        }

        private static double? NvLinkErrors(NodeSample sample, int gpu)
        {
            double total = 0;
            var any = false;
            foreach (var l in sample.NvLinks)
            {
                if (l.GpuIndex != gpu)
                {
                    continue;
                }

                foreach (var v in (ReadOnlySpan<long?>)[l.CrcFlitErrors, l.CrcDataErrors, l.ReplayErrors, l.RecoveryErrors])
                {
                    if (v is { } x)
                    {
                        total += x;
                        any = true;
                    }
                }
            }

            return any ? total : null;
        }

        /// <summary>
        /// The error counters of the port (kernel sysfs ABI, Documentation/ABI/stable/sysfs-class-infiniband: symbol_error,
        /// port_rcv_errors, link_error_recovery, link_downed, local_link_integrity_errors, excessive_buffer_overrun_errors,
        /// port_rcv_remote_physical_errors, port_xmit_discards). Traffic counters are not errors and are left out.
        /// </summary>
        private static double? IbErrors(IbPortSample port)
        {
            double total = 0;
            var any = false;
            foreach (var (name, value) in port.Counters)
            {
                if (name.Contains("error", StringComparison.Ordinal) || name.Contains("downed", StringComparison.Ordinal)
                    || name.Contains("discard", StringComparison.Ordinal))
                {
                    total += value;
                    any = true;
                }
            }

            return any ? total : null;
        }
    }
}

/// <summary>A GPU's identity, for search.</summary>
public sealed record GpuIdentity(string Node, int Gpu, string Uuid, string? PciBusId);

/// <summary>One Xid seen on the node.</summary>
public sealed record XidRecord(DateTimeOffset Time, int? Xid, string Kind, int? GpuIndex, string? PciBusId, string Message);

/// <summary>A GPU's series: name (see <see cref="NodeHistory.GpuSeriesNames"/>) to points, oldest first, null where no data.</summary>
public sealed record GpuHistoryView(int Index, string Uuid, string? PciBusId, string? Name, bool Lost, IReadOnlyDictionary<string, double?[]> Series);

/// <summary>An InfiniBand port: current state and rate, and its error rate per bucket.</summary>
public sealed record IbPortHistoryView(string Device, int Port, string? State, string? PhysState, double? RateGbps, double?[] ErrorsPerSecond);

/// <summary>The node page's history: points start at <paramref name="Start"/>, one per <paramref name="BucketSeconds"/>.</summary>
public sealed record NodeHistoryView(
    string Node,
    string? Rack,
    DateTimeOffset? LastSample,
    DateTimeOffset Start,
    double BucketSeconds,
    IReadOnlyList<GpuHistoryView> Gpus,
    IReadOnlyList<IbPortHistoryView> IbPorts,
    IReadOnlyList<XidRecord> Xids);

/// <summary>Registration of <see cref="NodeHistory"/>.</summary>
public static class NodeHistoryServiceCollectionExtensions
{
    /// <summary>The singleton <see cref="DetectionPipeline"/> feeds and the node API reads.</summary>
    public static IServiceCollection AddNodeHistory(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<NodeHistory>();
        return services;
    }
}
