using FleetWatch.Contracts;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Simulation;

/// <summary>
/// A simulated fleet of GPU nodes with plausible values and injectable faults. Counters grow like real ones
/// (cumulative), faults expire on the injected clock. Thread-safe: the sampler reads while the command
/// consumer injects.
/// </summary>
public sealed class SimulatedFleet
{
    // SW power cap (0x4) is the normal state of a busy GPU (research/gpu-health-anchors.md rule 29).
    private const ulong ClockEventSwPowerCap = 0x4;
    private const ulong ClockEventHwSlowdown = 0x8;

    private readonly SimulationOptions _options;
    private readonly TimeProvider _time;
    private readonly NodeState[] _nodes;
    private readonly Dictionary<string, int> _indexByName;
    private readonly Lock _gate = new();

    public SimulatedFleet(IOptions<SimulationOptions> options, TimeProvider time)
    {
        _options = options.Value;
        _time = time;
        _nodes = new NodeState[_options.Nodes];
        _indexByName = new Dictionary<string, int>(_options.Nodes, StringComparer.Ordinal);
        for (var i = 0; i < _nodes.Length; i++)
        {
            var name = NodeName(_options, _options.FirstNodeIndex + i);
            _nodes[i] = new NodeState(name, Rack(i), _options, _options.Seed * 100_003 + _options.FirstNodeIndex + i);
            _indexByName[name] = i;
        }
    }

    public int NodeCount => _nodes.Length;

    public static string NodeName(SimulationOptions options, int index) => $"{options.NodePrefix}{index:D4}";

    public string NodeNameAt(int index) => _nodes[index].Name;

    public bool Owns(string node) => _indexByName.ContainsKey(node);

    /// <summary>Injects or clears a fault. Returns false when the node is not simulated here.</summary>
    public bool Inject(InjectSimulatedFault fault)
    {
        if (!_indexByName.TryGetValue(fault.Node, out var index))
        {
            return false;
        }

        var now = _time.GetUtcNow();
        var until = fault.For is { } span ? now + span : DateTimeOffset.MaxValue;
        lock (_gate)
        {
            var node = _nodes[index];
            if (fault.Kind == SimulatedFaultKind.Clear)
            {
                node.Faults.RemoveAll(f => fault.Gpu is null || f.Fault.Gpu == fault.Gpu);
                return true;
            }

            node.Faults.Add(new ActiveFault(fault, until));
        }

        return true;
    }

    /// <summary>True while the node has a <see cref="SimulatedFaultKind.NodeSilent"/> fault: its agent publishes nothing.</summary>
    public bool IsSilent(int index)
    {
        var now = _time.GetUtcNow();
        lock (_gate)
        {
            return _nodes[index].Faults.Exists(f => f.Fault.Kind == SimulatedFaultKind.NodeSilent && f.Until > now);
        }
    }

    /// <summary>Reads one node: advances its counters by one tick and applies active faults.</summary>
    public (IReadOnlyList<GpuSample> Gpus, IReadOnlyList<NvLinkSample> Links, IReadOnlyList<IbPortSample> Ports, string Rack) Read(int index)
    {
        var now = _time.GetUtcNow();
        lock (_gate)
        {
            var node = _nodes[index];
            node.Faults.RemoveAll(f => f.Until <= now);
            node.Advance();
            var gpus = new GpuSample[node.Gpus.Length];
            for (var g = 0; g < gpus.Length; g++)
            {
                gpus[g] = node.Gpus[g].ToSample(g, node.Faults);
            }

            var links = new List<NvLinkSample>(node.Gpus.Length * _options.NvLinksPerGpu);
            for (var g = 0; g < node.Gpus.Length; g++)
            {
                var gpu = node.Gpus[g];
                for (var l = 0; l < gpu.LinkReplay.Length; l++)
                {
                    var down = gpu.Lost(g, node.Faults);
                    links.Add(new NvLinkSample
                    {
                        GpuIndex = g,
                        Link = l,
                        Up = !down,
                        CrcFlitErrors = gpu.LinkCrcFlit[l],
                        CrcDataErrors = 0,
                        ReplayErrors = gpu.LinkReplay[l],
                        RecoveryErrors = 0,
                    });
                }
            }

            var ports = new IbPortSample[node.IbData.Length];
            for (var p = 0; p < ports.Length; p++)
            {
                var down = node.Faults.Exists(f => f.Fault.Kind == SimulatedFaultKind.IbLinkDown && (f.Fault.Port ?? 1) == p + 1);
                ports[p] = new IbPortSample
                {
                    Device = $"mlx5_{p}",
                    Port = 1,
                    State = down ? "DOWN" : "ACTIVE",
                    PhysState = down ? "Disabled" : "LinkUp",
                    RateGbps = down ? null : 400,
                    Counters = new Dictionary<string, long>
                    {
                        ["port_xmit_data"] = node.IbData[p],
                        ["port_rcv_data"] = node.IbData[p],
                        ["symbol_error"] = 0,
                        ["link_downed"] = node.IbLinkDowned[p],
                    },
                };
            }

            return (gpus, links, ports, node.Rack);
        }
    }

    private string Rack(int index) => $"rack{(_options.FirstNodeIndex + index) / _options.NodesPerRack:D3}";

    private sealed record ActiveFault(InjectSimulatedFault Fault, DateTimeOffset Until);

    private sealed class NodeState
    {
        public NodeState(string name, string rack, SimulationOptions options, int seed)
        {
            Name = name;
            Rack = rack;
            Random = new Random(seed);
            Gpus = new GpuState[options.GpusPerNode];
            for (var g = 0; g < Gpus.Length; g++)
            {
                Gpus[g] = new GpuState(name, g, options.NvLinksPerGpu, Random);
            }

            IbData = new long[options.IbPortsPerNode];
            IbLinkDowned = new long[options.IbPortsPerNode];
        }

        public string Name { get; }
        public string Rack { get; }
        public Random Random { get; }
        public GpuState[] Gpus { get; }
        public long[] IbData { get; }
        public long[] IbLinkDowned { get; }
        public List<ActiveFault> Faults { get; } = [];

        public void Advance()
        {
            foreach (var gpu in Gpus)
            {
                gpu.Advance(Random, Faults);
            }

            for (var p = 0; p < IbData.Length; p++)
            {
                // port_xmit_data counts 4-byte words (kernel sysfs-class-infiniband ABI): ~10 GB/s of traffic.
                IbData[p] += 2_500_000_000L + Random.Next(0, 1_000_000);
            }
        }
    }

    private sealed class GpuState
    {
        private readonly int _index;
        private double _temperature;
        private double _power;
        private int _utilization;

        public GpuState(string node, int index, int links, Random random)
        {
            _index = index;
            Uuid = DeterministicUuid(node, index);
            PciBusId = $"00000000:{0x18 + index * 0x10:X2}:00.0";
            LinkReplay = new long[links];
            LinkCrcFlit = new long[links];
            _temperature = 55 + random.NextDouble() * 10;
            _power = 550 + random.NextDouble() * 100;
            _utilization = 90 + random.Next(0, 10);
        }

        public string Uuid { get; }
        public string PciBusId { get; }
        public long[] LinkReplay { get; }
        public long[] LinkCrcFlit { get; }
        public long EccCorrected { get; private set; }
        public long EccUncorrected { get; private set; }
        public long PcieReplay { get; private set; }

        public bool Lost(int gpu, List<ActiveFault> faults) =>
            faults.Exists(f => f.Fault.Gpu == gpu && (f.Fault.Kind == SimulatedFaultKind.GpuLost
                || (f.Fault.Kind == SimulatedFaultKind.Xid && f.Fault.Xid == 79)));

        public void Advance(Random random, List<ActiveFault> faults)
        {
            // A slow random walk around a busy H100's operating point.
            _temperature = Math.Clamp(_temperature + (random.NextDouble() - 0.5), 45, 75);
            _power = Math.Clamp(_power + (random.NextDouble() - 0.5) * 20, 450, 700);
            _utilization = Math.Clamp(_utilization + random.Next(-2, 3), 80, 100);
            foreach (var fault in faults)
            {
                if (fault.Fault.Gpu != _index)
                {
                    continue;
                }

                switch (fault.Fault.Kind)
                {
                    case SimulatedFaultKind.EccDbe:
                        EccUncorrected++;
                        break;
                    case SimulatedFaultKind.NvLinkErrors:
                        LinkReplay[Math.Clamp(fault.Fault.Link ?? 0, 0, LinkReplay.Length - 1)] += 5;
                        break;
                }
            }

            if (random.Next(0, 1000) == 0)
            {
                EccCorrected++;
            }
        }

        public GpuSample ToSample(int index, List<ActiveFault> faults)
        {
            var lost = Lost(index, faults);
            if (lost)
            {
                // NVML answers GPU_IS_LOST for every call: only identity is known.
                return new GpuSample { Index = index, Uuid = Uuid, PciBusId = PciBusId, Name = "NVIDIA H100 80GB HBM3", Lost = true };
            }

            var temperature = (int)_temperature;
            foreach (var fault in faults)
            {
                if (fault.Fault.Gpu == index && fault.Fault.Kind == SimulatedFaultKind.OverTemperature)
                {
                    temperature = fault.Fault.TemperatureC ?? 92;
                }
            }

            return new GpuSample
            {
                Index = index,
                Uuid = Uuid,
                PciBusId = PciBusId,
                Name = "NVIDIA H100 80GB HBM3",
                TemperatureC = temperature,
                MemoryTemperatureC = temperature + 5,
                // H100 SXM: slowdown 90 °C, shutdown 92 °C + margin (research/gpu-health-anchors.md rule 27).
                SlowdownTemperatureC = 90,
                ShutdownTemperatureC = 95,
                PowerW = Math.Round(_power, 1),
                PowerLimitW = 700,
                UtilizationPct = _utilization,
                MemoryUtilizationPct = _utilization / 2,
                MemoryUsedMiB = 60_000,
                MemoryTotalMiB = 81_559,
                SmClockMHz = 1980,
                MemoryClockMHz = 2619,
                ClockEventReasons = temperature >= 90 ? ClockEventHwSlowdown : ClockEventSwPowerCap,
                EccCorrectedVolatile = EccCorrected,
                EccUncorrectedVolatile = EccUncorrected,
                EccCorrectedAggregate = EccCorrected,
                EccUncorrectedAggregate = EccUncorrected,
                RemappedRowsCorrectable = 0,
                RemappedRowsUncorrectable = 0,
                RemapPending = false,
                RemapFailure = false,
                PcieReplayCounter = PcieReplay,
                PcieLinkGen = 5,
                PcieLinkWidth = 16,
                PcieMaxLinkGen = 5,
                PcieMaxLinkWidth = 16,
                RecoveryAction = 0,
            };
        }

        private static string DeterministicUuid(string node, int index)
        {
            var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes($"{node}/{index}"));
            var g = new Guid(hash.AsSpan(0, 16));
            return $"GPU-{g}";
        }
    }
}
