using FleetWatch.Contracts;

namespace FleetWatch.Controller.Ingest;

/// <summary>Checks that a message is usable before it touches fleet state. Pure; throws with the field and value named.</summary>
public static class TelemetryValidation
{
    public const int MaxGpusPerNode = 64;

    public static void Validate(NodeSample sample)
    {
        if (string.IsNullOrWhiteSpace(sample.Node) || sample.Node.Length > 253)
        {
            throw new InvalidTelemetryException($"NodeSample.Node '{sample.Node}' must be 1..253 characters");
        }

        if (sample.Sequence < 0)
        {
            throw new InvalidTelemetryException($"NodeSample.Sequence {sample.Sequence} of node {sample.Node} is negative");
        }

        if (sample.Gpus is null || sample.Gpus.Count > MaxGpusPerNode)
        {
            throw new InvalidTelemetryException($"NodeSample.Gpus of node {sample.Node} has {sample.Gpus?.Count.ToString() ?? "null"} entries (0..{MaxGpusPerNode})");
        }

        Span<bool> seen = stackalloc bool[MaxGpusPerNode];
        foreach (var gpu in sample.Gpus)
        {
            if (gpu is null || gpu.Index is < 0 or >= MaxGpusPerNode || seen[gpu.Index])
            {
                throw new InvalidTelemetryException($"NodeSample.Gpus of node {sample.Node}: GPU index {gpu?.Index.ToString() ?? "null"} is out of range or repeated");
            }

            seen[gpu.Index] = true;
            if (string.IsNullOrWhiteSpace(gpu.Uuid))
            {
                throw new InvalidTelemetryException($"NodeSample.Gpus[{gpu.Index}].Uuid of node {sample.Node} is empty");
            }
        }

        if (sample.NvLinks is null || sample.IbPorts is null)
        {
            throw new InvalidTelemetryException($"NodeSample of node {sample.Node}: NvLinks and IbPorts must be lists (possibly empty)");
        }
    }

    public static void Validate(GpuXidObserved xid)
    {
        if (string.IsNullOrWhiteSpace(xid.Node))
        {
            throw new InvalidTelemetryException($"GpuXidObserved.Node '{xid.Node}' is empty");
        }

        if (xid.Xid is < 0 or > 100_000)
        {
            throw new InvalidTelemetryException($"GpuXidObserved.Xid {xid.Xid} of node {xid.Node} is out of range");
        }

        if (xid.Kind is not ("xid" or "sxid" or "fallen_off_bus"))
        {
            throw new InvalidTelemetryException($"GpuXidObserved.Kind '{xid.Kind}' of node {xid.Node} is not xid, sxid or fallen_off_bus");
        }
    }
}
