using FleetWatch.Contracts;

namespace FleetWatch.Controller.Replay;

/// <summary>What the agents of the fleet publish during one tick: Xids the moment they happen, then one sample per reporting node.</summary>
public sealed record ReplayTick(double Seconds, DateTimeOffset Time, IReadOnlyList<GpuXidObserved> Xids, IReadOnlyList<NodeSample> Samples);

/// <summary>
/// A deterministic simulated fleet in virtual time that publishes exactly what agents publish: cumulative counters
/// (NVML ECC, PCIe replay, NVLink error counters; InfiniBand sysfs counters with their widths, saturating rather than
/// wrapping), clock-event reason bits, thresholds, Xids as <see cref="GpuXidObserved"/>, and no sample at all from a
/// silent node. It adds benign noise a real busy fleet shows (SW power cap, brief power-brake blips, a stray
/// corrected ECC, NVLink CRC or PCIe replay, InfiniBand congestion) so "quiet" is tested against realistic data,
/// then applies the scenario's faults. Same scenario and seed, same samples.
/// </summary>
public sealed class ReplayFleet
{
    /// <summary>Virtual start of every replay; reports give times relative to it.</summary>
    public static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    // research/gpu-health-anchors.md section 1.6.
    private const ulong SwPowerCap = 0x4;
    private const ulong HwSlowdown = 0x8;
    private const ulong HwThermal = 0x40;
    private const ulong HwPowerBrake = 0x80;

    // H100 SXM thresholds as NVML reports them (slowdown 90 °C: replay README's assumption; shutdown above it).
    private const int SlowdownC = 90;
    private const int ShutdownC = 95;

    private static readonly string[] NvLinkColumns = ["crc_flit", "crc_data", "replay", "recovery"];

    private static readonly string[] IbCounterNames = [.. ReplayScenario.IbCounterWidths.Keys.Order(StringComparer.Ordinal)];

    // The largest value of each counter (all-ones at its width), in IbCounterNames order.
    private static readonly long[] IbCounterMax = [.. IbCounterNames.Select(n => ReplayScenario.IbCounterWidths[n] >= 63 ? long.MaxValue : (1L << ReplayScenario.IbCounterWidths[n]) - 1)];

    private readonly ReplayScenario _scenario;
    private readonly NodeState[] _nodes;
    private readonly string _run;
    private long _tick;

    public ReplayFleet(ReplayScenario scenario)
    {
        _scenario = scenario;
        _run = $"replay-{scenario.Seed}";
        _nodes = new NodeState[scenario.Fleet.Nodes];
        for (var n = 0; n < _nodes.Length; n++)
        {
            _nodes[n] = new NodeState(NodeName(n), scenario.Fleet, unchecked((scenario.Seed * 1_000_003) + n));
        }

        foreach (var fault in scenario.Faults)
        {
            _nodes[fault.Node].Faults.Add(fault);
        }
    }

    /// <summary>Name of node <paramref name="index"/> in samples; <see cref="NodeIndex"/> maps it back.</summary>
    public static string NodeName(int index) => $"node{index:D5}";

    public static int? NodeIndex(string name) =>
        name.StartsWith("node", StringComparison.Ordinal) && int.TryParse(name.AsSpan(4), System.Globalization.CultureInfo.InvariantCulture, out var i) ? i : null;

    /// <summary>Every tick from 0 to the scenario's duration.</summary>
    public IEnumerable<ReplayTick> Ticks()
    {
        var tick = _scenario.Fleet.TickSeconds;
        var count = (long)Math.Floor((_scenario.DurationSeconds / tick) + 1e-9);
        for (var k = 0L; k <= count; k++)
        {
            yield return Next();
        }
    }

    /// <summary>Advances the fleet by one tick and returns what its agents publish.</summary>
    public ReplayTick Next()
    {
        var dt = _scenario.Fleet.TickSeconds;
        var seconds = _tick * dt;
        var previousSeconds = _tick == 0 ? double.NegativeInfinity : seconds - dt;
        _tick++;
        var time = At(seconds);
        var xids = new List<GpuXidObserved>();
        var samples = new List<NodeSample>(_nodes.Length);
        foreach (var node in _nodes)
        {
            var silent = node.Silent(seconds);
            // A silent agent publishes nothing, Xids included; the hardware keeps counting meanwhile.
            node.Advance(seconds, previousSeconds, dt, silent ? null : xids);
            if (!silent)
            {
                samples.Add(node.Sample(time, _run));
            }
        }

        xids.Sort((a, b) => a.Time.CompareTo(b.Time));
        return new ReplayTick(seconds, time, xids, samples);
    }

    /// <summary>Virtual time of <paramref name="seconds"/> after the start, to the tick (100 ns) so replays are exact.</summary>
    public static DateTimeOffset At(double seconds) => Start.AddTicks((long)Math.Round(seconds * TimeSpan.TicksPerSecond));

    private sealed class NodeState
    {
        private readonly Random _random;
        private readonly GpuState[] _gpus;
        private readonly double[,] _links; // [gpu * links + link, counter]: crc_flit, crc_data, replay, recovery
        private readonly Dictionary<string, double>[] _ports;
        private readonly int _linksPerGpu;
        private long _sequence;

        public NodeState(string name, ReplayFleetSpec fleet, int seed)
        {
            Name = name;
            _random = new Random(seed);
            _linksPerGpu = fleet.NvLinksPerGpu;
            _gpus = new GpuState[fleet.GpusPerNode];
            for (var g = 0; g < _gpus.Length; g++)
            {
                _gpus[g] = new GpuState(name, g, _random);
            }

            _links = new double[fleet.GpusPerNode * fleet.NvLinksPerGpu, 4];
            _ports = new Dictionary<string, double>[fleet.IbPortsPerNode];
            for (var p = 0; p < _ports.Length; p++)
            {
                _ports[p] = IbCounterNames.ToDictionary(n => n, _ => 0.0, StringComparer.Ordinal);
            }
        }

        public string Name { get; }

        public List<ReplayFault> Faults { get; } = [];

        public bool Silent(double seconds) => Faults.Exists(f => f.Kind == "node_silent" && f.ActiveAt(seconds));

        /// <summary>Hardware keeps counting while the agent is silent, so counters advance every tick regardless.</summary>
        public void Advance(double seconds, double previousSeconds, double dt, List<GpuXidObserved>? xids)
        {
            foreach (var gpu in _gpus)
            {
                gpu.Advance(_random, dt);
            }

            AdvanceNoise(dt);
            foreach (var fault in Faults)
            {
                var starts = fault.AtSeconds > previousSeconds && fault.AtSeconds <= seconds;
                if (starts)
                {
                    Begin(fault, xids);
                }

                if (fault.ActiveAt(seconds))
                {
                    Apply(fault, dt);
                }
            }
        }

        private void AdvanceNoise(double dt)
        {
            // Benign noise of a healthy busy fleet, all far below every alerting threshold.
            for (var i = 0; i < _links.GetLength(0); i++)
            {
                if (_random.NextDouble() < 2e-4 * dt)
                {
                    _links[i, 0] += 1; // a stray CRC flit error: ~1 per link per 1.4 h
                }
            }

            foreach (var port in _ports)
            {
                // port_xmit_wait: ticks waiting for credits under all-reduce congestion (never an error).
                port["port_xmit_wait"] += _random.Next(0, 40_000) * dt;
                // port_xmit_data / port_rcv_data count 4-byte words: ~40 GB/s of traffic.
                port["port_xmit_data"] += 1e10 * dt;
                port["port_rcv_data"] += 1e10 * dt;
                port["port_xmit_packets"] += 1e7 * dt;
                port["port_rcv_packets"] += 1e7 * dt;
                if (_random.NextDouble() < 1e-4 * dt)
                {
                    port["symbol_error"] += 1;
                }
            }
        }

        private void Begin(ReplayFault fault, List<GpuXidObserved>? xids)
        {
            var time = At(fault.AtSeconds);
            switch (fault.Kind)
            {
                case "xid":
                    var gpu = _gpus[fault.Gpu!.Value];
                    // The kernel log names the GPU by PCI id; the controller maps it to the index (as for kmsg lines).
                    xids?.Add(new GpuXidObserved
                    {
                        Node = Name, Time = time, Xid = fault.Xid, Kind = "xid", PciBusId = gpu.PciBusId[4..^2], GpuUuid = null,
                        Message = $"pid=4242, name=python, Xid {fault.Xid} (replay fault {fault.Index})", Source = XidSource.Kmsg,
                        KmsgSequence = 1000 + fault.Index, Process = "python",
                    });
                    if (fault.Xid == 79)
                    {
                        gpu.Lost = true; // fallen off the bus: NVML answers GPU_IS_LOST from now on
                    }

                    break;
                case "ecc_dbe":
                    _gpus[fault.Gpu!.Value].Dbe += 1;
                    break;
                case "retired_pages":
                    _gpus[fault.Gpu!.Value].RetiredSbe = fault.Count!.Value;
                    break;
            }
        }

        private void Apply(ReplayFault fault, double dt)
        {
            var gpu = fault.Gpu is { } g ? _gpus[g] : null;
            switch (fault.Kind)
            {
                case "ecc_sbe":
                    gpu!.Sbe += fault.PerSecond!.Value * dt;
                    break;
                case "pcie_replay":
                    gpu!.PcieReplay += fault.PerSecond!.Value * dt;
                    break;
                case "nvlink_errors":
                    var column = Array.IndexOf(NvLinkColumns, fault.Counter!);
                    _links[(fault.Gpu!.Value * _linksPerGpu) + fault.Link!.Value, column] += fault.PerSecond!.Value * dt;
                    break;
                case "ib_errors":
                    _ports[fault.Port!.Value][fault.Counter!] += fault.PerSecond!.Value * dt;
                    break;
            }
        }

        /// <summary>The faults active at <paramref name="seconds"/>, by what they touch (read fresh each sample, so conditions clear when a fault ends).</summary>
        private ActiveSet ActiveFaults(double seconds)
        {
            var set = new ActiveSet();
            foreach (var f in Faults)
            {
                if (!f.ActiveAt(seconds))
                {
                    continue;
                }

                switch (f.Kind)
                {
                    case "nvlink_down":
                        (set.LinksDown ??= []).Add((f.Gpu!.Value * _linksPerGpu) + f.Link!.Value);
                        break;
                    case "ib_link_down":
                        (set.PortsDown ??= []).Add(f.Port!.Value);
                        break;
                    case "over_temperature":
                        (set.Temperature ??= [])[f.Gpu!.Value] = f.TemperatureC!.Value;
                        break;
                    default:
                        if (f.Gpu is { } g)
                        {
                            (set.ByGpu ??= []).Add((g, f.Kind));
                        }

                        break;
                }
            }

            return set;
        }

        private sealed class ActiveSet
        {
            public HashSet<int>? LinksDown { get; set; }
            public HashSet<int>? PortsDown { get; set; }
            public Dictionary<int, int>? Temperature { get; set; }
            public HashSet<(int Gpu, string Kind)>? ByGpu { get; set; }

            public bool Has(int gpu, string kind) => ByGpu?.Contains((gpu, kind)) == true;
        }

        public NodeSample Sample(DateTimeOffset time, string run)
        {
            var seconds = (time - Start).TotalSeconds;
            var active = ActiveFaults(seconds);
            var gpus = new GpuSample[_gpus.Length];
            for (var g = 0; g < gpus.Length; g++)
            {
                gpus[g] = GpuSample(g, active);
            }

            var links = new NvLinkSample[_links.GetLength(0)];
            for (var i = 0; i < links.Length; i++)
            {
                var g = i / _linksPerGpu;
                var l = i % _linksPerGpu;
                if (gpus[g].Lost)
                {
                    links[i] = new NvLinkSample { GpuIndex = g, Link = l }; // unreadable: Unknown
                    continue;
                }

                var down = active.LinksDown?.Contains(i) == true;
                links[i] = new NvLinkSample
                {
                    GpuIndex = g,
                    Link = l,
                    Up = !down,
                    CrcFlitErrors = (long)_links[i, 0],
                    CrcDataErrors = (long)_links[i, 1],
                    ReplayErrors = (long)_links[i, 2],
                    RecoveryErrors = (long)_links[i, 3],
                };
            }

            var ports = new IbPortSample[_ports.Length];
            for (var p = 0; p < ports.Length; p++)
            {
                var down = active.PortsDown?.Contains(p) == true;
                if (down && _ports[p]["link_downed"] == 0)
                {
                    _ports[p]["link_downed"] = 1;
                }

                ports[p] = PortSample(p, down);
            }

            return new NodeSample { Node = Name, Sequence = ++_sequence, AgentRun = run, Time = time, Gpus = gpus, NvLinks = links, IbPorts = ports };
        }

        private IbPortSample PortSample(int p, bool down)
        {
            var counters = new Dictionary<string, long>(IbCounterNames.Length, StringComparer.Ordinal);
            List<string>? saturated = null;
            for (var i = 0; i < IbCounterNames.Length; i++)
            {
                var name = IbCounterNames[i];
                var max = IbCounterMax[i];
                var value = _ports[p][name];
                if (value >= max)
                {
                    // PortCounters peg at all-ones instead of wrapping; the agent reports them as saturated.
                    counters[name] = max;
                    (saturated ??= []).Add(name);
                }
                else
                {
                    counters[name] = (long)value;
                }
            }

            return new IbPortSample
            {
                Device = $"mlx5_{p}",
                Port = 1,
                State = down ? "1: DOWN" : "4: ACTIVE",
                PhysState = down ? "3: Disabled" : "5: LinkUp",
                RateGbps = down ? null : 400,
                Counters = counters,
                SaturatedCounters = saturated ?? [],
            };
        }

        private GpuSample GpuSample(int g, ActiveSet active)
        {
            var gpu = _gpus[g];
            if (gpu.Lost || active.Has(g, "gpu_lost"))
            {
                // NVML answers GPU_IS_LOST for every call: only identity is known.
                return new GpuSample { Index = g, Uuid = gpu.Uuid, PciBusId = gpu.PciBusId, Name = "NVIDIA H100 80GB HBM3", Lost = true };
            }

            var temperature = (int)gpu.Temperature;
            if (active.Temperature?.TryGetValue(g, out var forced) == true)
            {
                temperature = forced;
            }

            var reasons = gpu.BaseReasons;
            var power = gpu.Power;
            var smClock = 1980;
            if (active.Has(g, "power_cap"))
            {
                reasons |= SwPowerCap;
                power = 700;
                smClock = 1755;
            }

            if (active.Has(g, "hw_slowdown"))
            {
                reasons |= HwSlowdown;
                smClock = 900; // HW slowdown cuts clocks by at least half
            }

            if (temperature >= SlowdownC)
            {
                reasons |= HwThermal;
                smClock = Math.Min(smClock, 1100);
            }

            return new GpuSample
            {
                Index = g,
                Uuid = gpu.Uuid,
                PciBusId = gpu.PciBusId,
                Name = "NVIDIA H100 80GB HBM3",
                TemperatureC = temperature,
                MemoryTemperatureC = temperature + 6,
                SlowdownTemperatureC = SlowdownC,
                ShutdownTemperatureC = ShutdownC,
                PowerW = Math.Round(power, 1),
                PowerLimitW = 700,
                UtilizationPct = gpu.Utilization,
                MemoryUtilizationPct = gpu.Utilization / 2,
                MemoryUsedMiB = 62_000,
                MemoryTotalMiB = 81_559,
                SmClockMHz = smClock,
                MemoryClockMHz = 2619,
                ClockEventReasons = reasons,
                EccCorrectedVolatile = (long)gpu.Sbe,
                EccUncorrectedVolatile = gpu.Dbe,
                EccCorrectedAggregate = (long)gpu.Sbe,
                EccUncorrectedAggregate = gpu.Dbe,
                // H100 retires memory by row remapping; page-retirement counters are what older GPUs report and
                // what a retired_pages fault drives. Zero is a real reading, not "unsupported".
                RetiredPagesSbe = gpu.RetiredSbe,
                RetiredPagesDbe = 0,
                RetiredPagesPending = false,
                RemappedRowsCorrectable = 0,
                RemappedRowsUncorrectable = active.Has(g, "row_remap_failure") ? 1 : 0,
                RemapPending = active.Has(g, "row_remap_pending"),
                RemapFailure = active.Has(g, "row_remap_failure"),
                PcieReplayCounter = (long)gpu.PcieReplay,
                PcieLinkGen = 5,
                PcieLinkWidth = 16,
                PcieMaxLinkGen = 5,
                PcieMaxLinkWidth = 16,
                RecoveryAction = 0,
            };
        }
    }

    private sealed class GpuState
    {
        private int _blipLeft;

        public GpuState(string node, int index, Random random)
        {
            Uuid = DeterministicUuid(node, index);
            PciBusId = $"00000000:{0x18 + (index * 0x10):X2}:00.0";
            Temperature = 55 + (random.NextDouble() * 10);
            Power = 550 + (random.NextDouble() * 100);
            Utilization = 90 + random.Next(0, 10);
        }

        public string Uuid { get; }
        public string PciBusId { get; }
        public bool Lost { get; set; }
        public double Temperature { get; private set; }
        public double Power { get; private set; }
        public int Utilization { get; private set; }
        public ulong BaseReasons { get; private set; }
        public double Sbe { get; set; }
        public long Dbe { get; set; }
        public double PcieReplay { get; set; }
        public int RetiredSbe { get; set; }

        public void Advance(Random random, double dt)
        {
            // A slow random walk around a busy H100's operating point.
            Temperature = Math.Clamp(Temperature + (random.NextDouble() - 0.5), 45, 78);
            Power = Math.Clamp(Power + ((random.NextDouble() - 0.5) * 20), 450, 700);
            Utilization = Math.Clamp(Utilization + random.Next(-2, 3), 80, 100);

            // Busy GPUs ride the power limit (SW power cap, rule 29) much of the time; brief power-brake blips of a
            // few seconds happen on healthy racks and must stay quiet (rule 25 wants >= 60 s).
            var reasons = Power > 640 ? SwPowerCap : 0UL;
            if (_blipLeft > 0)
            {
                _blipLeft--;
                reasons |= HwPowerBrake;
            }
            else if (random.NextDouble() < 2e-4 * dt)
            {
                _blipLeft = random.Next(2, 9);
            }

            BaseReasons = reasons;
            if (random.NextDouble() < 1e-3 * dt)
            {
                Sbe += 1; // a stray corrected ECC error
            }

            if (random.NextDouble() < 2e-4 * dt)
            {
                PcieReplay += 1; // a stray PCIe replay
            }
        }

        private static string DeterministicUuid(string node, int index)
        {
            var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes($"{node}/{index}"));
            return $"GPU-{new Guid(hash.AsSpan(0, 16))}";
        }
    }
}
