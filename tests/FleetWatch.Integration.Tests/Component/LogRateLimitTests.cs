using FleetWatch.Cli.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace FleetWatch.Integration.Tests.Component;

public sealed class LogRateLimitTests
{
    [Fact]
    public void Passes_a_few_per_window_counts_the_rest_and_opens_again_next_window()
    {
        var time = new FakeTimeProvider();
        var limit = new LogRateLimit(time, LogLevel.Information, perWindow: 3, TimeSpan.FromSeconds(10));

        var first = Enumerable.Range(0, 500).Count(_ => limit.Allow(LogLevel.Warning));
        Assert.Equal(3, first);
        Assert.Equal(497, limit.Suppressed);
        Assert.False(limit.Allow(LogLevel.Debug));

        time.Advance(TimeSpan.FromSeconds(10));
        Assert.True(limit.Allow(LogLevel.Error));
    }
}
