using System.Text;
using System.Text.Json;
using FleetWatch.Contracts;

namespace FleetWatch.Agent.Publishing;

/// <summary>
/// An ordered, bounded, crash-safe queue of messages on disk: two lanes (Xid events and samples), each a series of
/// JSON Lines segment files named by a sequence number. Appends are flushed to the OS before they return; a
/// segment is deleted only after every message in it was published, so a restart replays at least once (the
/// controller deduplicates by node and sequence number). Not thread-safe: <see cref="SpoolingPublisher"/> serialises.
/// </summary>
public sealed class DiskSpool
{
    private readonly string _root;
    private readonly long _maxBytes;
    private readonly int _segmentMessages;
    private readonly Lane _xids;
    private readonly Lane _samples;
    private long _dropped;

    public DiskSpool(string root, long maxBytes, int segmentMessages)
    {
        _root = root;
        _maxBytes = maxBytes;
        _segmentMessages = segmentMessages;
        Directory.CreateDirectory(root);
        _xids = new Lane(root, "xid");
        _samples = new Lane(root, "sample");
    }

    public bool IsEmpty => _xids.Count == 0 && _samples.Count == 0;

    public long Count => _xids.Count + _samples.Count;

    public long Bytes => _xids.Bytes + _samples.Bytes;

    /// <summary>Messages dropped at the bound, since start.</summary>
    public long Dropped => _dropped;

    /// <summary>Lines in segment files that could not be parsed (a torn last write after a crash), skipped and counted.</summary>
    public long Corrupt => _xids.Corrupt + _samples.Corrupt;

    public void Append(NodeSample sample) => Append(_samples, JsonSerializer.SerializeToUtf8Bytes(sample, SpoolJson.Default.NodeSample));

    public void Append(GpuXidObserved xid) => Append(_xids, JsonSerializer.SerializeToUtf8Bytes(xid, SpoolJson.Default.GpuXidObserved));

    /// <summary>The oldest message, Xid events first (they matter most and are few).</summary>
    public object? Peek()
    {
        if (_xids.Peek() is { } x)
        {
            return JsonSerializer.Deserialize(x, SpoolJson.Default.GpuXidObserved);
        }

        return _samples.Peek() is { } s ? JsonSerializer.Deserialize(s, SpoolJson.Default.NodeSample) : null;
    }

    /// <summary>Removes the message <see cref="Peek"/> returned, after it was published.</summary>
    public void Remove()
    {
        if (_xids.Count > 0)
        {
            _xids.Remove();
        }
        else
        {
            _samples.Remove();
        }
    }

    private void Append(Lane lane, byte[] json)
    {
        lane.Append(json, _segmentMessages);
        // Oldest sample segments go first; Xid segments only when no closed sample segment is left. The segment
        // being written is kept, so the bound may be passed by at most one segment.
        while (Bytes > _maxBytes && (_samples.Segments > 1 || (_samples.Segments == 0 && _xids.Segments > 1)))
        {
            _dropped += (_samples.Segments > 1 ? _samples : _xids).DropOldestSegment();
        }
    }

    private sealed class Lane
    {
        private readonly string _root;
        private readonly string _prefix;
        private readonly LinkedList<Segment> _segments = new();
        private long _next;

        public Lane(string root, string prefix)
        {
            _root = root;
            _prefix = prefix;
            foreach (var file in Directory.GetFiles(root, $"{prefix}-*.jsonl").Order(StringComparer.Ordinal))
            {
                var segment = Segment.Load(file, out var corrupt);
                Corrupt += corrupt;
                if (segment.Lines.Count == 0)
                {
                    File.Delete(file);
                    continue;
                }

                _segments.AddLast(segment);
                _next = Math.Max(_next, segment.Number + 1);
                Count += segment.Lines.Count;
            }
        }

        public long Count { get; private set; }

        public long Bytes => _segments.Sum(s => s.Bytes);

        public int Segments => _segments.Count;

        public long Corrupt { get; }

        public void Append(byte[] json, int segmentMessages)
        {
            if (_segments.Last is not { } last || last.Value.Written >= segmentMessages)
            {
                var number = _next++;
                last = _segments.AddLast(new Segment(Path.Combine(_root, $"{_prefix}-{number:D12}.jsonl"), number));
            }

            last.Value.Write(json);
            Count++;
        }

        public byte[]? Peek()
        {
            return _segments.First is { } first ? first.Value.Lines.Peek() : null;
        }

        public void Remove()
        {
            var first = _segments.First!.Value;
            first.Lines.Dequeue();
            Count--;
            if (first.Lines.Count == 0)
            {
                // Every message of the segment is published: delete it (the next append starts a new one).
                first.Delete();
                _segments.RemoveFirst();
            }
        }

        public int DropOldestSegment()
        {
            var first = _segments.First!.Value;
            var n = first.Lines.Count;
            first.Delete();
            _segments.RemoveFirst();
            Count -= n;
            return n;
        }
    }

    private sealed class Segment(string path, long number)
    {
        private FileStream? _writer;

        public long Number { get; } = number;
        public Queue<byte[]> Lines { get; } = new();
        public long Bytes { get; private set; }
        public int Written { get; private set; }

        public static Segment Load(string path, out int corrupt)
        {
            var name = System.IO.Path.GetFileNameWithoutExtension(path);
            var number = long.Parse(name[(name.LastIndexOf('-') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            var segment = new Segment(path, number) { Written = int.MaxValue }; // closed: never appended again
            corrupt = 0;
            foreach (var line in File.ReadAllLines(path, Encoding.UTF8))
            {
                if (line.Length == 0)
                {
                    continue;
                }

                try
                {
                    using var _ = JsonDocument.Parse(line);
                    var bytes = Encoding.UTF8.GetBytes(line);
                    segment.Lines.Enqueue(bytes);
                    segment.Bytes += bytes.Length + 1;
                }
                catch (JsonException)
                {
                    corrupt++; // a torn write at a crash: skip it, keep the rest
                }
            }

            return segment;
        }

        public void Write(byte[] json)
        {
            _writer ??= new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read);
            _writer.Write(json);
            _writer.WriteByte((byte)'\n');
            _writer.Flush(); // to the OS page cache: survives a process crash
            Lines.Enqueue(json);
            Bytes += json.Length + 1;
            Written++;
        }

        public void Delete()
        {
            _writer?.Dispose();
            _writer = null;
            File.Delete(path);
        }
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(NodeSample))]
[System.Text.Json.Serialization.JsonSerializable(typeof(GpuXidObserved))]
internal sealed partial class SpoolJson : System.Text.Json.Serialization.JsonSerializerContext;
