using System.Threading.Channels;
using FleetWatch.Contracts;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Sources.Steps;

/// <summary>
/// Reports between the endpoint and the flush loop: a bounded channel that drops the oldest report when full and counts
/// it (STYLE.md rule 8: samples drop-oldest, every drop counted). Recent steps matter more than old ones to a straggler
/// and hang detector, so the oldest go first.
/// </summary>
public sealed class StepBuffer
{
    private readonly Channel<StepTimings> _channel;
    private readonly StepEndpointCounters _counters;

    /// <summary>Creates the buffer with <see cref="StepEndpointOptions.BufferCapacity"/>.</summary>
    public StepBuffer(IOptions<StepEndpointOptions> options, StepEndpointCounters counters)
    {
        ArgumentNullException.ThrowIfNull(options);
        _counters = counters;
        _channel = Channel.CreateBounded<StepTimings>(
            new BoundedChannelOptions(options.Value.BufferCapacity)
            {
                FullMode = BoundedChannelFullMode.DropOldest,
                SingleReader = true,
                SingleWriter = false,
            },
            _ => _counters.OnDropped());
    }

    /// <summary>Reports waiting to be sent.</summary>
    public int Count => _channel.Reader.Count;

    /// <summary>Adds reports; never blocks and never fails (a full buffer drops its oldest).</summary>
    public void Add(IReadOnlyList<StepTimings> reports)
    {
        ArgumentNullException.ThrowIfNull(reports);
        foreach (var r in reports)
        {
            _channel.Writer.TryWrite(r);
        }

        _counters.OnAccepted(reports.Count);
    }

    /// <summary>Takes up to <paramref name="max"/> reports, oldest first, without waiting.</summary>
    public List<StepTimings> Take(int max)
    {
        var batch = new List<StepTimings>(Math.Min(max, Math.Max(_channel.Reader.Count, 1)));
        while (batch.Count < max && _channel.Reader.TryRead(out var r))
        {
            batch.Add(r);
        }

        return batch;
    }
}
