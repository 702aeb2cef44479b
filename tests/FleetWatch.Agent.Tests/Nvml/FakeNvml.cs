using System.Runtime.InteropServices;
using FleetWatch.Agent.Sources.Nvml;

namespace FleetWatch.Agent.Tests.Nvml;

/// <summary>The fake libnvidia-ml.so.1 built by this project (Native/fake_nvml.c), and its script controls.</summary>
internal static unsafe class FakeNvml
{
    public static readonly string Path = System.IO.Path.Combine(AppContext.BaseDirectory, "native", "libnvidia-ml.so.1");

    private static readonly Lazy<nint> Handle = new(() =>
    {
        NvmlLibrary.Use(Path);
        return NativeLibrary.Load(Path);
    });

    public static void Set(string key, long value)
    {
        var set = (delegate* unmanaged<byte*, long, int>)NativeLibrary.GetExport(Handle.Value, "fake_nvml_set");
        var bytes = System.Text.Encoding.ASCII.GetBytes(key + "\0");
        fixed (byte* k = bytes)
        {
            if (set(k, value) != 0)
            {
                throw new ArgumentException($"fake NVML has no setting '{key}'");
            }
        }
    }

    /// <summary>How many times the agent called nvmlDeviceValidateInforom since the last <see cref="Reset"/>.</summary>
    public static long InforomCalls => ((delegate* unmanaged<long>)NativeLibrary.GetExport(Handle.Value, "fake_nvml_inforom_calls"))();

    /// <summary>Default script: 8 healthy H100-like GPUs with 18 NVLinks each, on a healthy fabric, InfoROM valid.</summary>
    public static void Reset()
    {
        Set("count", 8);
        Set("lost_index", -1);
        Set("hang_ms", 0);
        Set("nvlinks", 18);
        Set("dbe", 0);
        Set("init_fail", 0);
        Set("recovery", 0);
        Set("event_gpu", -1);
        Set("inforom", 0);
        Set("unrepairable", 0);
        Set("fabric", 0);
        Set("fabric_v2_only", 0);
        Set("health_gpu", -1);
        Set("inforom_calls", 0);
    }
}
