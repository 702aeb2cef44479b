using FleetWatch.Agent.Publishing;
using FleetWatch.Agent.Simulation;
using FleetWatch.Contracts;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Sampling;

/// <summary>
/// Publishes one <see cref="NodeSample"/> per simulated node per tick. Each tick's publishes run concurrently
/// (bounded), and a failed publish is logged and counted without stopping the loop (STYLE.md rule 7).
/// </summary>
public sealed partial class SimulatedSamplerLoop(
    SimulatedFleet fleet,
    ITelemetryPublisher publisher,
    IOptions<SamplingOptions> options,
    TimeProvider time,
    AgentMetrics metrics,
    ILogger<SimulatedSamplerLoop> logger) : BackgroundService
{
    private readonly string _run = Guid.NewGuid().ToString("N")[..12];
    private long[] _sequences = [];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _sequences = new long[fleet.NodeCount];
        var tick = options.Value.Tick;
        LogStarted(logger, fleet.NodeCount, tick);
        using var timer = new PeriodicTimer(tick, time);
        using var gate = new SemaphoreSlim(options.Value.MaxPublishesInFlight);
        do
        {
            await TickAsync(gate, stoppingToken).ConfigureAwait(false);
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    /// <summary>Samples and publishes every node once. Public for tests and benchmarks.</summary>
    public async Task TickAsync(SemaphoreSlim gate, CancellationToken cancellationToken)
    {
        if (_sequences.Length != fleet.NodeCount)
        {
            _sequences = new long[fleet.NodeCount];
        }

        var now = time.GetUtcNow();
        var pending = new List<Task>(fleet.NodeCount);
        for (var i = 0; i < fleet.NodeCount; i++)
        {
            if (fleet.IsSilent(i))
            {
                continue;
            }

            var (gpus, links, ports, rack) = fleet.Read(i);
            var sample = new NodeSample
            {
                Node = fleet.NodeNameAt(i),
                Sequence = ++_sequences[i],
                AgentRun = _run,
                Time = now,
                Gpus = gpus,
                NvLinks = links,
                IbPorts = ports,
                Rack = rack,
            };
            await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            pending.Add(PublishAsync(sample, gate, cancellationToken));
        }

        await Task.WhenAll(pending).ConfigureAwait(false);
    }

    private async Task PublishAsync(NodeSample sample, SemaphoreSlim gate, CancellationToken cancellationToken)
    {
        try
        {
            await publisher.PublishSampleAsync(sample, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            metrics.PublishFailures.Add(1);
            LogPublishFailed(logger, sample.Node, sample.Sequence, ex);
        }
        finally
        {
            gate.Release();
        }
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Simulated sampler started: {Nodes} nodes every {Tick}")]
    private static partial void LogStarted(ILogger logger, int nodes, TimeSpan tick);

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "Publishing sample {Sequence} of {Node} failed")]
    private static partial void LogPublishFailed(ILogger logger, string node, long sequence, Exception exception);
}
