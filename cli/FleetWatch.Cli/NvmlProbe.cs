using System.Text.Json;
using FleetWatch.Agent.Sources.Nvml;
using Microsoft.Extensions.Options;

namespace FleetWatch.Cli;

/// <summary>
/// <c>fleetwatch nvml-probe [--library PATH]</c>: reads every GPU once through the agent's NVML source and prints
/// the reading as JSON, so the P/Invoke path can be checked on a real GPU node (and its output kept as a fixture).
/// </summary>
public static class NvmlProbe
{
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var index = Array.IndexOf(args, "--library");
        var library = index >= 0 && index + 1 < args.Length ? args[index + 1] : NvmlLibrary.DefaultPath;
        try
        {
            using var source = new NvmlGpuSource(Options.Create(new NvmlOptions { LibraryPath = library }));
            var reading = source.Read(CancellationToken.None);
            var json = JsonSerializer.Serialize(new { driver = source.DriverVersion, errors = source.Errors, reading.Gpus, reading.NvLinks }, new JsonSerializerOptions { WriteIndented = true });
            await stdout.WriteLineAsync(json).ConfigureAwait(false);
            return 0;
        }
        catch (Exception ex) when (ex is DllNotFoundException or NvmlUnavailableException or NvmlHangException or EntryPointNotFoundException)
        {
            await stderr.WriteLineAsync($"fleetwatch nvml-probe: {ex.Message}").ConfigureAwait(false);
            return 2;
        }
    }
}
