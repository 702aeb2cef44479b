using System.Reflection;
using System.Runtime.InteropServices;

namespace FleetWatch.Agent.Sources.Nvml;

/// <summary>
/// Resolves the "nvidia-ml" import to one configured path, loaded by absolute path or exact soname so the search
/// path cannot be hijacked (research section 3.1). Set once per process.
/// </summary>
public static class NvmlLibrary
{
    /// <summary>Linux: the driver's library (it ships with the driver, not the CUDA toolkit). Windows: nvml.dll.</summary>
    public static string DefaultPath => OperatingSystem.IsWindows() ? "nvml.dll" : "libnvidia-ml.so.1";

    private static readonly Lock Gate = new();
    private static string? _path;

    /// <summary>Points the import at <paramref name="path"/>. Calling again with another path is an error: the library is process-wide.</summary>
    public static void Use(string path)
    {
        lock (Gate)
        {
            if (_path is not null)
            {
                if (_path != path)
                {
                    throw new InvalidOperationException($"NVML library already set to '{_path}'; cannot switch to '{path}' in one process");
                }

                return;
            }

            _path = path;
            NativeLibrary.SetDllImportResolver(typeof(NvmlLibrary).Assembly, Resolve);
        }
    }

    private static nint Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != NvmlNative.Library || _path is null)
        {
            return 0;
        }

        return NativeLibrary.TryLoad(_path, out var handle)
            ? handle
            : throw new DllNotFoundException($"NVML library '{_path}' could not be loaded (is the NVIDIA driver installed? FleetWatch:Nvml:LibraryPath)");
    }
}
