using System.Collections.Concurrent;
using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;

namespace FleetWatch.Controller.Fleet;

/// <summary>Outcome of offering a sample to the fleet state.</summary>
public enum SampleAcceptance
{
    Accepted,

    /// <summary>Same agent run and a sequence number already seen (redelivery, spool replay).</summary>
    Duplicate,

    /// <summary>Older than the newest sample of the same run (arrived out of order); counted, not applied.</summary>
    Stale,
}

/// <summary>
/// The controller's view of every node: the newest sample (for deltas) and when it arrived. Deduplicates by
/// (node, agent run, sequence number), so at-least-once delivery never double-counts.
/// </summary>
public sealed class FleetState
{
    private readonly ConcurrentDictionary<string, NodeEntry> _nodes = new(StringComparer.Ordinal);

    public int NodeCount => _nodes.Count;

    /// <summary>Offers a sample received at <paramref name="receivedAt"/>; returns the previous sample of the node when accepted.</summary>
    public SampleAcceptance Accept(NodeSample sample, DateTimeOffset receivedAt, out NodeSample? previous)
    {
        var entry = _nodes.GetOrAdd(sample.Node, static _ => new NodeEntry());
        lock (entry)
        {
            previous = entry.Last;
            if (entry.Last is { } last && last.AgentRun == sample.AgentRun)
            {
                if (sample.Sequence == last.Sequence || entry.Seen(sample.Sequence))
                {
                    return SampleAcceptance.Duplicate;
                }

                if (sample.Sequence < last.Sequence)
                {
                    entry.Remember(sample.Sequence);
                    return SampleAcceptance.Stale;
                }
            }

            entry.Remember(sample.Sequence);
            entry.Last = sample;
            entry.LastSeen = receivedAt;
            return SampleAcceptance.Accepted;
        }
    }

    /// <summary>
    /// The node's detector memory (rate windows, sustained conditions), created with the node. Callers lock it around
    /// accept-and-evaluate so two samples of one node are evaluated one after the other, in order.
    /// </summary>
    public NodeDetectionState DetectionState(string node) => _nodes.GetOrAdd(node, static _ => new NodeEntry()).Detection;

    /// <summary>Every known node with its newest sample and arrival time.</summary>
    public IEnumerable<(string Node, NodeSample? Last, DateTimeOffset? LastSeen)> Nodes()
    {
        foreach (var (name, entry) in _nodes)
        {
            lock (entry)
            {
                yield return (name, entry.Last, entry.Last is null ? null : entry.LastSeen);
            }
        }
    }

    /// <summary>Registers a node known from another source (an Xid before its first sample) without data.</summary>
    public void Touch(string node) => _nodes.GetOrAdd(node, static _ => new NodeEntry());

    public NodeSample? Latest(string node) => _nodes.TryGetValue(node, out var e) ? e.Last : null;

    /// <summary>The detector memory and last arrival of a node this state knows; false for a node never seen.</summary>
    public bool TryGetNode(string node, out NodeDetectionState detection, out DateTimeOffset? lastSeen)
    {
        if (_nodes.TryGetValue(node, out var entry))
        {
            lock (entry)
            {
                (detection, lastSeen) = (entry.Detection, entry.Last is null ? null : entry.LastSeen);
            }

            return true;
        }

        (detection, lastSeen) = (null!, null);
        return false;
    }

    private sealed class NodeEntry
    {
        // Recent sequence numbers of the current run: catches a redelivered older sample after a newer one.
        private readonly long[] _recent = new long[64];
        private int _next;

        public NodeSample? Last { get; set; }
        public DateTimeOffset LastSeen { get; set; }
        public NodeDetectionState Detection { get; } = new();

        public bool Seen(long sequence) => Array.IndexOf(_recent, sequence) >= 0 && sequence != 0;

        public void Remember(long sequence)
        {
            _recent[_next] = sequence;
            _next = (_next + 1) % _recent.Length;
        }
    }
}
