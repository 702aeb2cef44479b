namespace FleetWatch.Agent.Sources.Kmsg;

/// <summary>
/// Splits a byte stream into lines at LF without decoding it (kernel logs hold invalid UTF-8 and NUL bytes).
/// A line longer than the limit is handed out cut to the limit, once, and the rest of it up to the next LF is
/// dropped, so one runaway line cannot grow memory without bound. The returned span is valid until the next
/// call to <see cref="Fill"/> or <see cref="FillAsync"/>.
/// </summary>
internal sealed class KernelLogLineReader
{
    /// <summary>Default cap on one line; far above any real kernel record (the kernel caps one at 8 KB, <c>CONSOLE_EXT_LOG_MAX</c>).</summary>
    public const int DefaultMaxLineBytes = 1 << 20;

    // A /dev/kmsg read() returns one whole record and fails with EINVAL when the buffer is smaller than it,
    // so every read offers at least this much room (CONSOLE_EXT_LOG_MAX is 8192).
    private const int MinReadBytes = 16 * 1024;

    private readonly Stream _stream;
    private readonly int _maxLineBytes;
    private byte[] _buffer;
    private int _start;
    private int _end;
    private int _scanned;
    private bool _discarding;

    public KernelLogLineReader(Stream stream, int maxLineBytes = DefaultMaxLineBytes, int initialBufferBytes = 64 * 1024)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLineBytes, 16);
        _stream = stream;
        _maxLineBytes = maxLineBytes;
        _buffer = new byte[Math.Max(initialBufferBytes, MinReadBytes)];
    }

    /// <summary>Bytes buffered that do not yet form a complete line.</summary>
    public int PendingBytes => _end - _start;

    /// <summary>Returns the next complete line (without its LF) from what is buffered.</summary>
    public bool TryReadLine(out ReadOnlySpan<byte> line)
    {
        while (true)
        {
            var pending = _buffer.AsSpan(_start + _scanned, _end - _start - _scanned);
            var nl = pending.IndexOf((byte)'\n');
            if (nl >= 0)
            {
                var length = _scanned + nl;
                var wasDiscarding = _discarding;
                line = _buffer.AsSpan(_start, Math.Min(length, _maxLineBytes));
                _start += length + 1;
                _scanned = 0;
                _discarding = false;
                if (wasDiscarding)
                {
                    // The tail of an over-long line already handed out.
                    continue;
                }

                return true;
            }

            if (_end - _start >= _maxLineBytes && !_discarding)
            {
                line = _buffer.AsSpan(_start, _maxLineBytes);
                _start = _end;
                _scanned = 0;
                _discarding = true;
                return true;
            }

            if (_discarding)
            {
                _start = _end;
                _scanned = 0;
            }
            else
            {
                _scanned = _end - _start;
            }

            line = default;
            return false;
        }
    }

    /// <summary>At the end of the input: the last line when the input does not end with LF.</summary>
    public bool TryReadRemainder(out ReadOnlySpan<byte> line)
    {
        if (_end > _start && !_discarding)
        {
            line = _buffer.AsSpan(_start, Math.Min(_end - _start, _maxLineBytes));
            _start = _end;
            _scanned = 0;
            return true;
        }

        line = default;
        return false;
    }

    /// <summary>Reads more bytes; 0 at the end of the stream.</summary>
    public int Fill()
    {
        var room = PrepareRoom();
        var n = _stream.Read(room.Span);
        _end += n;
        return n;
    }

    /// <summary>Reads more bytes; 0 at the end of the stream (for a regular file in follow mode: no new bytes yet).</summary>
    public async ValueTask<int> FillAsync(CancellationToken ct)
    {
        var room = PrepareRoom();
        var n = await _stream.ReadAsync(room, ct).ConfigureAwait(false);
        _end += n;
        return n;
    }

    private Memory<byte> PrepareRoom()
    {
        if (_start > 0)
        {
            var pending = _end - _start;
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, pending);
            _start = 0;
            _end = pending;
        }

        if (_buffer.Length - _end < MinReadBytes)
        {
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _end + MinReadBytes));
        }

        return _buffer.AsMemory(_end);
    }
}
