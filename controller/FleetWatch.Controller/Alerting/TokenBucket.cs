namespace FleetWatch.Controller.Alerting;

/// <summary>
/// A receiver's rate budget: <c>count</c> tokens per <c>per</c>, holding at most <c>burst</c>. Time is passed in, so
/// it is a pure state machine; one sender owns it (not thread-safe). <c>count</c> 0 means unlimited.
/// </summary>
public sealed class TokenBucket
{
    private readonly double _perToken;
    private readonly int _burst;
    private double _tokens;
    private DateTimeOffset _last;

    public TokenBucket(int count, TimeSpan per, int burst, DateTimeOffset now)
    {
        Unlimited = count <= 0;
        _perToken = Unlimited ? 0 : per.TotalMilliseconds / count;
        _burst = Math.Max(1, burst);
        _tokens = _burst;
        _last = now;
    }

    public bool Unlimited { get; }

    /// <summary>Takes a token and returns zero, or takes nothing and returns how long until one is available.</summary>
    public TimeSpan TryTake(DateTimeOffset now)
    {
        if (Unlimited)
        {
            return TimeSpan.Zero;
        }

        if (now > _last)
        {
            _tokens = Math.Min(_burst, _tokens + ((now - _last).TotalMilliseconds / _perToken));
            _last = now;
        }

        if (_tokens >= 1)
        {
            _tokens -= 1;
            return TimeSpan.Zero;
        }

        return TimeSpan.FromMilliseconds(Math.Ceiling((1 - _tokens) * _perToken));
    }

    /// <summary>After a 429 the receiver's own budget is spent: empty the bucket so the next send waits a full token.</summary>
    public void Drain(DateTimeOffset now)
    {
        _tokens = 0;
        _last = now;
    }
}
