using FleetWatch.Contracts;

namespace FleetWatch.Controller.Tests.Detection;

/// <summary>Builds plausible samples for table tests.</summary>
internal static class SampleBuilder
{
    public static readonly DateTimeOffset T0 = new(2026, 11, 29, 12, 0, 0, TimeSpan.Zero);

    public static GpuSample Gpu(int index, long dbe = 0, bool lost = false, int temp = 60, bool? remapFailure = false) => new()
    {
        Index = index,
        Uuid = $"GPU-{index:D8}-0000-0000-0000-000000000000",
        PciBusId = $"00000000:{0x18 + index:X2}:00.0",
        Lost = lost,
        TemperatureC = lost ? null : temp,
        SlowdownTemperatureC = 90,
        ShutdownTemperatureC = 97,
        EccUncorrectedVolatile = lost ? null : dbe,
        RemapFailure = lost ? null : remapFailure,
    };

    public static NodeSample Node(long seq, int seconds, params GpuSample[] gpus) => new()
    {
        Node = "n1",
        Sequence = seq,
        AgentRun = "run1",
        Time = T0.AddSeconds(seconds),
        Gpus = gpus,
    };
}
