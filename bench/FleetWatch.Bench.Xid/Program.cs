using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using FleetWatch.Agent.Sources.Kmsg;

namespace FleetWatch.Bench.Xid;

/// <summary>
/// Throughput of the <c>xid</c> parser on a large generated kernel log: the public captures of
/// <c>bench-data/xid</c> (when the shared folder is found) repeated and interleaved with generated noise, about
/// 1.5 million lines. Prints lines/s and MB/s for the scanner alone, for the whole verb (JSON output to a null
/// writer), and for a Regex baseline (gpud's Xid regex on decoded lines) to justify the hand-written scanner.
/// usage: FleetWatch.Bench.Xid [--lines N] [--runs N]
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var targetLines = 1_500_000;
        var runs = 5;
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--lines":
                    targetLines = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
                    break;
                case "--runs":
                    runs = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
                    break;
                default:
                    await Console.Error.WriteLineAsync($"unknown argument {args[i]}");
                    return 2;
            }
        }

        var (log, sources) = Generate(targetLines);
        var path = Path.Combine(Path.GetTempPath(), $"fleetwatch-xid-bench-{Environment.ProcessId}.log");
        await File.WriteAllBytesAsync(path, log);
        try
        {
            var mb = log.Length / 1e6;
            Console.WriteLine($"log: {mb:F1} MB, built from {sources}; {runs} runs each, best run reported");
            var summary = KernelLogScanner.Scan(new MemoryStream(log), null);
            Console.WriteLine($"lines {summary.Lines}, events {summary.Events}, malformed {summary.Malformed}");

            Report("scanner (in memory)", summary.Lines, mb, runs, () => KernelLogScanner.Scan(new MemoryStream(log, writable: false), null));
            Report("xid verb (file -> JSON Lines to a null writer)", summary.Lines, mb, runs, () =>
            {
                var rc = XidTool.RunAsync(["--input", path], TextWriter.Null, TextWriter.Null).GetAwaiter().GetResult();
                if (rc != 0)
                {
                    throw new InvalidOperationException($"xid exited {rc}");
                }
            });
            Report("Regex baseline (decode + gpud Xid regex)", summary.Lines, mb, Math.Min(runs, 2), () => RegexBaseline(log));
        }
        finally
        {
            File.Delete(path);
        }

        return 0;
    }

    private static void Report(string name, long lines, double mb, int runs, Action run)
    {
        run(); // warm-up (JIT, tiering)
        var best = double.MaxValue;
        for (var i = 0; i < runs; i++)
        {
            var sw = Stopwatch.StartNew();
            run();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }

        Console.WriteLine($"{name}: {lines / best / 1e6:F2} M lines/s, {mb / best:F0} MB/s ({best * 1000:F0} ms per pass)");
    }

    // leptonai/gpud components/accelerator/nvidia/xid/kmsg.go (research/gpu-health-anchors.md section 2.4).
    private static readonly Regex GpudXid = new(@"NVRM: Xid \(((?:PCI:)?[0-9a-fA-F:]+)\).*?: (\d+),", RegexOptions.Compiled);

    private static int RegexBaseline(byte[] log)
    {
        var hits = 0;
        var span = log.AsSpan();
        while (!span.IsEmpty)
        {
            var nl = span.IndexOf((byte)'\n');
            var line = nl < 0 ? span : span[..nl];
            if (GpudXid.IsMatch(Encoding.UTF8.GetString(line)))
            {
                hits++;
            }

            span = nl < 0 ? default : span[(nl + 1)..];
        }

        return hits;
    }

    private static (byte[] Log, string Sources) Generate(int targetLines)
    {
        var captures = FindCaptures();
        var noise = new[]
        {
            "6,{0},{1},-;mlx5_core 0000:9c:00.0 ibp156s0: Link down",
            "[{2}] EXT4-fs (nvme0n1p2): mounted filesystem with ordered data mode. Quota mode: none.",
            "Nov 29 03:2{3}:11 gpu-node-0113 kernel: NVRM: GPU Board Serial Number: 1652823398669",
            "Nov 29 03:2{3}:12 gpu-node-0113 kubelet[2345]: I1129 12:00:00.677226    2345 kubelet.go:2417] \"SyncLoop (probe)\" probe=\"readiness\" status=\"ready\"",
            "2024-11-29T03:13:26.001980+00:00 gpu-node-0114 kernel: audit: type=1400 audit(1732847960.846:410): apparmor=\"DENIED\" operation=\"open\"",
            " SUBSYSTEM=pci",
            "4,{0},{1},-;pcieport 0000:8f:01.0: AER: Corrected error received: 0000:90:00.0",
        };
        var ms = new MemoryStream();
        var lines = 0;
        var seq = 1000L;
        var rng = new Random(20241129);
        var capturesUsed = 0;
        while (lines < targetLines)
        {
            if (captures.Count > 0 && rng.Next(50) == 0)
            {
                var c = captures[capturesUsed++ % captures.Count];
                ms.Write(c);
                if (c[^1] != (byte)'\n')
                {
                    ms.WriteByte((byte)'\n');
                }

                lines += c.AsSpan().Count((byte)'\n') + 1;
                continue;
            }

            for (var k = 0; k < 100; k++)
            {
                seq++;
                var usec = seq * 1234;
                var text = string.Format(CultureInfo.InvariantCulture, noise[rng.Next(noise.Length)], seq, usec,
                    (usec / 1e6).ToString("F6", CultureInfo.InvariantCulture).PadLeft(12), rng.Next(10));
                ms.Write(Encoding.UTF8.GetBytes(text));
                ms.WriteByte((byte)'\n');
                lines++;
            }
        }

        var sources = captures.Count > 0 ? $"{captures.Count} public captures repeated {capturesUsed} times + generated noise" : "generated noise only (shared folder not found)";
        return (ms.ToArray(), sources);
    }

    private static List<byte[]> FindCaptures()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "FleetWatch.sln")))
            {
                var pub = Path.Combine(dir.FullName, "..", "shared", "bench-data", "xid", "public");
                return Directory.Exists(pub)
                    ? Directory.GetFiles(pub, "*.log").Order(StringComparer.Ordinal).Select(File.ReadAllBytes).ToList()
                    : [];
            }
        }

        return [];
    }
}
