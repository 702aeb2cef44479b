using Microsoft.Extensions.Logging;

namespace FleetWatch.Cli.Hosting;

/// <summary>
/// Caps a noisy log category: MassTransit logs hundreds of connection warnings a second while the broker is away
/// (research/deps-and-limits.md). At most <see cref="PerWindow"/> messages pass per window; the rest are counted.
/// Used as a per-message logging filter (the logging framework evaluates filter delegates on every call).
/// </summary>
public sealed class LogRateLimit(TimeProvider time, LogLevel minimum, int perWindow, TimeSpan window)
{
    private readonly Lock _gate = new();
    private long _windowStart;
    private int _passed;
    private long _suppressed;

    public int PerWindow => perWindow;

    /// <summary>Messages dropped by the cap since start.</summary>
    public long Suppressed => Interlocked.Read(ref _suppressed);

    public bool Allow(LogLevel level)
    {
        if (level < minimum)
        {
            return false;
        }

        lock (_gate)
        {
            var now = time.GetTimestamp();
            if (time.GetElapsedTime(_windowStart, now) >= window)
            {
                _windowStart = now;
                _passed = 0;
            }

            if (_passed < perWindow)
            {
                _passed++;
                return true;
            }
        }

        Interlocked.Increment(ref _suppressed);
        return false;
    }
}
