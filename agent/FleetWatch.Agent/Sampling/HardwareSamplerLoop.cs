using FleetWatch.Agent.Publishing;
using FleetWatch.Agent.Sources;
using FleetWatch.Agent.Sources.Kmsg;
using FleetWatch.Agent.Sources.Nvml;
using FleetWatch.Contracts;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Sampling;

/// <summary>
/// The agent on a real GPU node: one <see cref="NodeSample"/> per tick from the GPU source (NVML) and the IB
/// source (sysfs). Each source is isolated: an NVML hang or error leaves the GPU list empty and flags
/// <see cref="NodeSample.GpuSourceError"/>, and IB counters still go out (STYLE.md rule 7).
/// </summary>
public sealed partial class HardwareSamplerLoop(
    IGpuSource gpus,
    IInfinibandSource infiniband,
    ITelemetryPublisher publisher,
    IOptions<SamplingOptions> options,
    IOptions<KmsgXidWatcherOptions> kmsg,
    TimeProvider time,
    AgentMetrics metrics,
    Metrics.AgentState state,
    ILogger<HardwareSamplerLoop> logger) : BackgroundService
{
    private readonly string _run = Guid.NewGuid().ToString("N")[..12];
    private long _sequence;

    // Read once: the boot id changes only with a reboot, which also restarts the agent.
    private readonly Lazy<string?> _bootId = new(() => ReadBootId(kmsg.Value.BootIdPath, logger));

    public string NodeName => options.Value.NodeName is { Length: > 0 } n ? n : Environment.MachineName.ToLowerInvariant();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.Tick, time);
        do
        {
            var sample = Sample();
            state.OnSample(sample);
            try
            {
                await publisher.PublishSampleAsync(sample, stoppingToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                metrics.PublishFailures.Add(1);
                LogPublishFailed(logger, sample.Sequence, ex);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    /// <summary>Reads every source once. Public for tests.</summary>
    public NodeSample Sample()
    {
        IReadOnlyList<GpuSample> gpuList = [];
        IReadOnlyList<NvLinkSample> links = [];
        string? gpuError = null;
        try
        {
            var reading = gpus.Read(CancellationToken.None);
            (gpuList, links) = (reading.Gpus, reading.NvLinks);
        }
        catch (Exception ex) when (ex is NvmlHangException or NvmlUnavailableException or DllNotFoundException or EntryPointNotFoundException)
        {
            gpuError = ex.Message;
            LogGpuSourceFailed(logger, ex.Message);
        }

        IReadOnlyList<IbPortSample> ports = [];
        try
        {
            ports = infiniband.Read();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            LogIbFailed(logger, ex.Message);
        }

        return new NodeSample
        {
            Node = NodeName,
            Sequence = Interlocked.Increment(ref _sequence),
            AgentRun = _run,
            BootId = _bootId.Value,
            Time = time.GetUtcNow(),
            Gpus = gpuList,
            NvLinks = links,
            IbPorts = ports,
            GpuSourceError = gpuError,
        };
    }

    /// <summary>The boot id; null (with one warning) when unreadable.</summary>
    private static string? ReadBootId(string? path, ILogger logger)
    {
        var id = NodeBootId.Read(path, out var problem);
        if (problem is not null)
        {
            LogBootIdInvalid(logger, problem);
        }

        return id;
    }

    [LoggerMessage(EventId = 123, Level = LogLevel.Warning,
        Message = "Boot id not sent ({Problem}): the controller then takes an agent restart for a node restart")]
    private static partial void LogBootIdInvalid(ILogger logger, string problem);

    [LoggerMessage(EventId = 120, Level = LogLevel.Warning, Message = "Publishing sample {Sequence} failed")]
    private static partial void LogPublishFailed(ILogger logger, long sequence, Exception exception);

    [LoggerMessage(EventId = 121, Level = LogLevel.Error, Message = "GPU source failed: {Error}")]
    private static partial void LogGpuSourceFailed(ILogger logger, string error);

    [LoggerMessage(EventId = 122, Level = LogLevel.Warning, Message = "InfiniBand source failed: {Error}")]
    private static partial void LogIbFailed(ILogger logger, string error);
}
