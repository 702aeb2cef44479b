using System.Diagnostics.CodeAnalysis;

namespace FleetWatch.Agent.Sources;

/// <summary>
/// Resolves a normalised PCI bus id (<c>dddd:bb:dd</c>, see <see cref="Kmsg.PciBusId"/>) to a GPU. NVML gives
/// this in production (<c>nvmlDeviceGetPciInfo_v3</c> / <c>nvmlDeviceGetUUID</c>); the kernel log's
/// <c>NVRM: GPU at PCI:...: GPU-&lt;uuid&gt;</c> lines are the fallback.
/// </summary>
public interface IGpuPciMap
{
    /// <summary>False when the PCI id is not a GPU this map knows.</summary>
    bool TryGetGpu(string pciBusId, [NotNullWhen(true)] out string? uuid, out int? index);
}

/// <summary>A fixed <see cref="IGpuPciMap"/> (tests, or a map built once from NVML at start).</summary>
public sealed class StaticGpuPciMap : IGpuPciMap
{
    private readonly Dictionary<string, (string Uuid, int? Index)> _byPci = new(StringComparer.Ordinal);

    /// <summary>Keys are PCI bus ids in any spelling <see cref="Kmsg.PciBusId"/> accepts; unparseable keys are ignored.</summary>
    public StaticGpuPciMap(IEnumerable<(string PciBusId, string Uuid, int? Index)> gpus)
    {
        ArgumentNullException.ThrowIfNull(gpus);
        foreach (var (pci, uuid, index) in gpus)
        {
            if (Kmsg.PciBusId.TryNormalize(pci, out var key))
            {
                _byPci[key] = (uuid, index);
            }
        }
    }

    public bool TryGetGpu(string pciBusId, [NotNullWhen(true)] out string? uuid, out int? index)
    {
        if (_byPci.TryGetValue(pciBusId, out var gpu))
        {
            uuid = gpu.Uuid;
            index = gpu.Index;
            return true;
        }

        uuid = null;
        index = null;
        return false;
    }
}
