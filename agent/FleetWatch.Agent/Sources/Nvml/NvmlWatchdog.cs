namespace FleetWatch.Agent.Sources.Nvml;

/// <summary>
/// Runs NVML work on one dedicated thread and waits for it with a timeout. An NVML call that hangs (the process
/// stuck in D state) is itself the failure signal (gpu-monitoring-tools#46): the caller gets
/// <see cref="NvmlHangException"/> at once, and keeps getting it without queueing more work until the stuck call
/// returns, so the other sources keep sampling.
/// </summary>
public sealed class NvmlWatchdog : IDisposable
{
    private readonly Thread _thread;
    private readonly BlockingQueue _queue = new();
    private volatile string? _stuckIn;
    private long _hangs;

    public NvmlWatchdog()
    {
        _thread = new Thread(Loop) { IsBackground = true, Name = "fleetwatch-nvml" };
        _thread.Start();
    }

    /// <summary>Reads that did not return in time, since start.</summary>
    public long Hangs => Interlocked.Read(ref _hangs);

    /// <summary>The work still stuck, or null.</summary>
    public string? StuckIn => _stuckIn;

    public T Run<T>(string what, Func<T> work, TimeSpan timeout)
    {
        if (_stuckIn is { } stuck)
        {
            throw new NvmlHangException($"NVML is still stuck in {stuck}");
        }

        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        _queue.Add(() =>
        {
            try
            {
                done.SetResult(work());
            }
            catch (Exception ex)
            {
                done.SetException(ex);
            }
        });
        // WaitOne, not Task.Wait: a faulted read must surface its own exception, not an AggregateException.
        if (!((IAsyncResult)done.Task).AsyncWaitHandle.WaitOne(timeout))
        {
            Interlocked.Increment(ref _hangs);
            _stuckIn = what;
            done.Task.ContinueWith(_ => _stuckIn = null, TaskScheduler.Default);
            throw new NvmlHangException($"NVML {what} did not return within {timeout.TotalSeconds:F1} s");
        }

        return done.Task.GetAwaiter().GetResult();
    }

    public void Dispose() => _queue.Complete();

    private void Loop()
    {
        while (_queue.Take() is { } work)
        {
            work();
        }
    }

    private sealed class BlockingQueue
    {
        private readonly System.Collections.Concurrent.BlockingCollection<Action> _items = [];

        public void Add(Action a) => _items.Add(a);

        public Action? Take() => _items.TryTake(out var a, Timeout.Infinite) ? a : null;

        public void Complete() => _items.CompleteAdding();
    }
}

/// <summary>NVML did not answer in time: a driver hang (rule 31, critical).</summary>
public sealed class NvmlHangException(string message) : Exception(message);
