namespace FleetWatch.Integration.Tests.Support;

/// <summary>Bounded polling: every wait in the tests has a limit and says what it waited for.</summary>
public static class Wait
{
    public static async Task UntilAsync(Func<bool> condition, TimeSpan limit, string what, Func<string>? detail = null)
    {
        var deadline = DateTime.UtcNow + limit;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out after {limit.TotalSeconds:F0} s waiting for {what}{(detail is null ? "" : ": " + detail())}");
            }

            await Task.Delay(50);
        }
    }
}
