using System.Runtime.CompilerServices;
using System.Threading.Channels;
using FleetWatch.Contracts;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Sources.Nvml;

/// <summary>
/// Xid events from an NVML event set (XidCriticalError 0x8, GpuUnavailableError 0x4000), on a dedicated thread
/// with a short blocking wait (research section 3.2, agent notes). Runs beside the kmsg watcher: both Xid paths
/// are published and the controller deduplicates them.
/// </summary>
public sealed partial class NvmlXidEventSource(NvmlGpuSource gpus, IOptions<Sampling.SamplingOptions> sampling,
    TimeProvider time, ILogger<NvmlXidEventSource> logger) : IXidSource
{
    /// <summary>eventData of an Xid NVML could not name (research section 3.2).</summary>
    public const int UnknownXid = 999;

    public async IAsyncEnumerable<GpuXidObserved> WatchAsync([EnumeratorCancellation] CancellationToken ct)
    {
        var channel = Channel.CreateBounded<GpuXidObserved>(new BoundedChannelOptions(1024) { FullMode = BoundedChannelFullMode.DropOldest });
        var thread = new Thread(() => Loop(channel.Writer, ct)) { IsBackground = true, Name = "fleetwatch-nvml-events" };
        thread.Start();
        await foreach (var xid in channel.Reader.ReadAllAsync(ct).ConfigureAwait(false))
        {
            yield return xid;
        }
    }

    private void Loop(ChannelWriter<GpuXidObserved> writer, CancellationToken ct)
    {
        try
        {
            // The GPU source initialises NVML and learns the handles; wait for its first read.
            gpus.Read(ct);
            if (NvmlNative.EventSetCreate(out var set) != NvmlReturn.Success)
            {
                LogUnsupported(logger, "nvmlEventSetCreate failed");
                return;
            }

            var handles = new Dictionary<nint, int>();
            NvmlNative.DeviceGetCount(out var count);
            for (var i = 0; i < (int)count; i++)
            {
                if (NvmlNative.DeviceGetHandleByIndex((uint)i, out var device) == NvmlReturn.Success)
                {
                    handles[device] = i;
                    var rc = NvmlNative.DeviceRegisterEvents(device, NvmlNative.EventXidCriticalError | NvmlNative.EventGpuUnavailable, set);
                    if (rc is not (NvmlReturn.Success or NvmlReturn.NotSupported))
                    {
                        LogUnsupported(logger, $"nvmlDeviceRegisterEvents on GPU {i}: {rc}");
                    }
                }
            }

            var node = sampling.Value.NodeName is { Length: > 0 } n ? n : Environment.MachineName.ToLowerInvariant();
            while (!ct.IsCancellationRequested)
            {
                var rc = NvmlNative.EventSetWait(set, out var data, 1000);
                if (rc != NvmlReturn.Success)
                {
                    continue; // TIMEOUT is the normal quiet case
                }

                handles.TryGetValue(data.Device, out var index);
                gpus.TryGetUuid(index, out var uuid, out var pci);
                var unavailable = (data.EventType & NvmlNative.EventGpuUnavailable) != 0;
                writer.TryWrite(new GpuXidObserved
                {
                    Node = node,
                    Time = time.GetUtcNow(),
                    Xid = unavailable ? null : (int)data.EventData,
                    Kind = unavailable ? "fallen_off_bus" : "xid",
                    GpuIndex = index,
                    GpuUuid = uuid,
                    PciBusId = pci,
                    Message = unavailable ? "NVML GpuUnavailableError event" : data.EventData == UnknownXid ? "NVML event: unknown Xid" : "NVML XidCriticalError event",
                    Source = XidSource.NvmlEvent,
                });
            }

            NvmlNative.EventSetFree(set);
        }
        catch (Exception ex) when (ex is NvmlUnavailableException or NvmlHangException or DllNotFoundException or EntryPointNotFoundException or OperationCanceledException)
        {
            LogUnsupported(logger, ex.Message);
        }
        finally
        {
            writer.TryComplete();
        }
    }

    [LoggerMessage(EventId = 150, Level = LogLevel.Warning, Message = "NVML Xid events unavailable ({Reason}); the kernel log watcher still reports Xids")]
    private static partial void LogUnsupported(ILogger logger, string reason);
}
