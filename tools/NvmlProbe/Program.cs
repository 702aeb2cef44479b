using System.Text.Json;
using FleetWatch.Agent.Sources.Nvml;
using Microsoft.Extensions.Options;

// The agent's NVML source (the same files, compiled into a self-contained probe) against the real driver.
var library = args.Length > 0 ? args[0] : NvmlLibrary.DefaultPath;
using var source = new NvmlGpuSource(Options.Create(new NvmlOptions { LibraryPath = library }));
var reading = source.Read(CancellationToken.None);
var second = source.Read(CancellationToken.None);
Console.WriteLine(JsonSerializer.Serialize(new { driver = source.DriverVersion, errors = source.Errors, hangs = source.Hangs, reading.Gpus, reading.NvLinks, secondReadGpus = second.Gpus.Count }, new JsonSerializerOptions { WriteIndented = true }));
