using FleetWatch.Agent.Metrics;
using FleetWatch.Agent.Publishing;
using FleetWatch.Agent.Sampling;
using FleetWatch.Agent.Sources;
using FleetWatch.Agent.Sources.Kmsg;
using FleetWatch.Contracts;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Tests.Sampling;

/// <summary>The hardware sampler sends the kernel's boot id (so the controller tells a reboot from an agent restart).</summary>
public sealed class BootIdTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fw-bootid-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private sealed class NoGpus : IGpuSource
    {
        public GpuReading Read(CancellationToken cancellationToken) => new([], []);
    }

    private sealed class NoPorts : IInfinibandSource
    {
        public IReadOnlyList<IbPortSample> Read() => [];
    }

    private sealed class Discard : ITelemetryPublisher
    {
        public Task PublishSampleAsync(NodeSample sample, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task PublishXidAsync(GpuXidObserved xid, CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class Lines : ILogger<HardwareSamplerLoop>
    {
        public List<string> Warnings { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel >= LogLevel.Warning)
            {
                Warnings.Add(formatter(state, exception));
            }
        }
    }

    private static HardwareSamplerLoop Loop(string? path, Lines log) =>
        new(new NoGpus(), new NoPorts(), new Discard(), Options.Create(new SamplingOptions { NodeName = "n1" }),
            Options.Create(new KmsgXidWatcherOptions { BootIdPath = path }), TimeProvider.System, new AgentMetrics(), new AgentState(), log);

    [Fact]
    public void The_boot_id_file_is_read_once_and_sent_with_every_sample()
    {
        var path = Path.Combine(_dir, "boot_id");
        File.WriteAllText(path, "6F1C9A52-3A4E-4D7B-9A51-0B6C2F0D1E11\n");
        var log = new Lines();
        var loop = Loop(path, log);

        var first = loop.Sample();
        File.WriteAllText(path, "c2d4e6f8-1a3b-4c5d-8e7f-90a1b2c3d4e5\n"); // only a reboot changes it, and that restarts the agent
        var second = loop.Sample();

        Assert.Equal("6f1c9a52-3a4e-4d7b-9a51-0b6c2f0d1e11", first.BootId); // normalised to the kernel's lower-case form
        Assert.Equal(first.BootId, second.BootId);
        Assert.Empty(log.Warnings);
    }

    [Theory]
    [InlineData("not-a-uuid\n", "gave 'not-a-uuid', not a UUID")]
    [InlineData("", "gave '', not a UUID")]
    [InlineData(null, "Could not find file")] // missing file: the I/O error's message
    public void A_bad_or_missing_boot_id_is_left_out_with_one_warning(string? content, string warned)
    {
        var path = Path.Combine(_dir, "boot_id");
        if (content is not null)
        {
            File.WriteAllText(path, content);
        }

        var log = new Lines();
        var loop = Loop(path, log);

        Assert.Null(loop.Sample().BootId);
        Assert.Null(loop.Sample().BootId);
        var warning = Assert.Single(log.Warnings);
        Assert.Contains(path, warning, StringComparison.Ordinal);
        Assert.Contains(warned, warning, StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_path_sends_no_boot_id_and_says_nothing()
    {
        var log = new Lines();
        Assert.Null(Loop("", log).Sample().BootId);
        Assert.Empty(log.Warnings);
    }

    [Fact]
    public void The_default_path_is_the_kernels_and_reads()
    {
        var path = new KmsgXidWatcherOptions().BootIdPath;
        Assert.Equal("/proc/sys/kernel/random/boot_id", path);
        var log = new Lines();
        Assert.True(Guid.TryParse(Loop(path, log).Sample().BootId, out _), string.Join("; ", log.Warnings));
    }
}
