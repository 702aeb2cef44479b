using System.ComponentModel.DataAnnotations;

namespace FleetWatch.Agent.Simulation;

/// <summary>Options of the simulated fleet (section <c>FleetWatch:Simulation</c>).</summary>
public sealed class SimulationOptions
{
    public const string Section = "FleetWatch:Simulation";

    /// <summary>Simulate GPUs instead of reading hardware.</summary>
    public bool Enabled { get; set; }

    /// <summary>Number of simulated nodes this process publishes for.</summary>
    [Range(1, 100_000)]
    public int Nodes { get; set; } = 128;

    /// <summary>GPUs per node (8 on HGX/DGX boards).</summary>
    [Range(1, 64)]
    public int GpusPerNode { get; set; } = 8;

    /// <summary>NVLinks per GPU (18 on H100 SXM).</summary>
    [Range(0, 64)]
    public int NvLinksPerGpu { get; set; } = 18;

    /// <summary>InfiniBand ports per node (one NIC per GPU on HGX).</summary>
    [Range(0, 64)]
    public int IbPortsPerNode { get; set; } = 8;

    /// <summary>Node names are <c>{NodePrefix}{index:D4}</c>; index starts at <see cref="FirstNodeIndex"/>.</summary>
    [Required]
    [RegularExpression("^[a-z0-9-]+$")]
    public string NodePrefix { get; set; } = "gpu";

    [Range(0, 1_000_000)]
    public int FirstNodeIndex { get; set; }

    /// <summary>Nodes per rack, for grouping.</summary>
    [Range(1, 1024)]
    public int NodesPerRack { get; set; } = 16;

    /// <summary>Seed of the value noise, so runs are repeatable.</summary>
    public int Seed { get; set; } = 1;

    /// <summary>Inject a few demo faults over the first minutes (all-in-one default).</summary>
    public bool DemoFaults { get; set; }
}
