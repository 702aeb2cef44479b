using FleetWatch.Contracts;

namespace FleetWatch.Agent.Sources;

/// <summary>Everything the GPU source read from one node in one tick.</summary>
public sealed record GpuReading(IReadOnlyList<GpuSample> Gpus, IReadOnlyList<NvLinkSample> NvLinks);

/// <summary>
/// One capability: read every GPU and NVLink of one node (STYLE.md rule 9). The NVML source reads the local
/// machine; the simulator implements it for many simulated nodes.
/// </summary>
public interface IGpuSource
{
    GpuReading Read(CancellationToken cancellationToken);
}
