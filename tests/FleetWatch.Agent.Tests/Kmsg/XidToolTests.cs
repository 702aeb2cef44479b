using System.Text;
using System.Text.Json;
using FleetWatch.Agent.Sources.Kmsg;

namespace FleetWatch.Agent.Tests.Kmsg;

public sealed class XidToolTests
{
    private static async Task<(int Code, string Stdout, string Stderr)> Run(string[] args, byte[]? stdin = null)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await XidTool.RunAsync(args, () => new MemoryStream(stdin ?? []), stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Theory]
    [InlineData(new string[0], "missing --input")]
    [InlineData(new[] { "--input" }, "--input needs a value")]
    [InlineData(new[] { "--input=" }, "--input needs a value")]
    [InlineData(new[] { "--bogus" }, "unknown argument '--bogus'")]
    [InlineData(new[] { "--input", "a", "--input", "b" }, "--input given twice")]
    [InlineData(new[] { "/etc/hostname" }, "unknown argument '/etc/hostname'")]
    public async Task Bad_arguments_exit_2_with_one_line(string[] args, string reason)
    {
        var (code, stdout, stderr) = await Run(args);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.Single(stderr.TrimEnd('\n').Split('\n'));
        Assert.Contains(reason, stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unreadable_inputs_exit_2_with_one_line()
    {
        var missing = Path.Combine(Path.GetTempPath(), "fleetwatch-no-such-" + Guid.NewGuid().ToString("N") + ".log");
        foreach (var input in new[] { missing, Path.GetTempPath() })
        {
            var (code, stdout, stderr) = await Run(["--input", input]);
            Assert.Equal(2, code);
            Assert.Equal("", stdout);
            Assert.Single(stderr.TrimEnd('\n').Split('\n'));
            Assert.StartsWith($"xid: cannot read '{input}'", stderr, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Help_exits_0()
    {
        var (code, stdout, _) = await Run(["--help"]);
        Assert.Equal(0, code);
        Assert.Contains("--input", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stdin_input_prints_objects_in_the_documented_field_order_and_a_summary()
    {
        var log = "5,150003,276519782057,-;NVRM: GPU at PCI:0000:87:00: GPU-21a3550b-68ab-efb3-6e65-d7c83dec2a02\n"
            + " SUBSYSTEM=pci\n"
            + "noise\n"
            + "NVRM: Xid (PCI:0000:3b\n"
            + "Nov 29 12:00:00 host kernel: [ 1.5] NVRM: Xid (PCI:0000:3B:00.0): 79, pid=1234, name=python, GPU has fallen off the bus.\r\n"
            + "nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 20034, \"Fatal\"\\ \u00e9";
        var (code, stdout, stderr) = await Run(["--input", "-"], Encoding.UTF8.GetBytes(log));

        Assert.Equal(0, code);
        string[] expected =
        [
            "{\"line\": 1, \"kind\": \"gpu_uuid\", \"pci\": \"0000:87:00\", \"uuid\": \"GPU-21a3550b-68ab-efb3-6e65-d7c83dec2a02\", \"seq\": 150003, \"uptime_us\": 276519782057}",
            "{\"line\": 5, \"kind\": \"xid\", \"pci\": \"0000:3b:00\", \"xid\": 79, \"pid\": 1234, \"process\": \"python\", \"message\": \"GPU has fallen off the bus.\", \"seq\": null, \"uptime_us\": 1500000}",
            "{\"line\": 6, \"kind\": \"sxid\", \"pci\": \"0000:05:00\", \"xid\": 20034, \"pid\": null, \"process\": null, \"message\": \"\\\"Fatal\\\"\\\\ \\u00e9\", \"seq\": null, \"uptime_us\": null}",
        ];
        Assert.Equal(expected, stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal("xid: lines read 6, events 3, lines skipped as malformed 1", stderr.TrimEnd());
        foreach (var line in expected)
        {
            using var _ = JsonDocument.Parse(line); // valid JSON, the special characters escaped
        }
    }

    [Fact]
    public async Task A_broken_stdout_is_reported_as_an_output_failure_not_as_bad_input()
    {
        var log = string.Concat(Enumerable.Range(0, 2000).Select(i => $"NVRM: Xid (PCI:0000:3b:00): 13, event {i}\n"));
        var stderr = new StringWriter();
        var code = await XidTool.RunAsync(["--input", "-"], () => new MemoryStream(Encoding.UTF8.GetBytes(log)), new BrokenWriter(), stderr);
        Assert.Equal(1, code);
        Assert.StartsWith("xid: cannot write output: Broken pipe", stderr.ToString(), StringComparison.Ordinal);
    }

    private sealed class BrokenWriter : StringWriter
    {
        public override void Write(StringBuilder? value) => throw new IOException("Broken pipe");
    }

    [Fact]
    public async Task Empty_input_prints_nothing_and_exits_0()
    {
        var (code, stdout, stderr) = await Run(["--input", "-"], []);
        Assert.Equal((0, ""), (code, stdout));
        Assert.Equal("xid: lines read 0, events 0, lines skipped as malformed 0", stderr.TrimEnd());
    }

    [Fact]
    public async Task A_line_over_the_reader_limit_is_cut_once_and_later_line_numbers_stay_right()
    {
        // 3 MiB of noise on one line: over the 1 MiB line limit, so the reader cuts it and drops the tail.
        var log = new MemoryStream();
        log.Write("NVRM: Xid (PCI:0000:01:00): 13, first "u8);
        log.Write(Encoding.ASCII.GetBytes(new string('x', 3 << 20)));
        log.Write("\nnoise\nNVRM: Xid (PCI:0000:02:00): 31, second\n"u8);
        var (code, stdout, stderr) = await Run(["--input", "-"], log.ToArray());

        Assert.Equal(0, code);
        var objects = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal([1, 3], objects.Select(o => o.GetProperty("line").GetInt32()));
        Assert.Equal([13, 31], objects.Select(o => o.GetProperty("xid").GetInt32()));
        Assert.Equal("xid: lines read 3, events 2, lines skipped as malformed 0", stderr.TrimEnd());
    }

    [Fact]
    public async Task Own_nasty_captures_pass_the_corpus_scorer_in_strict_mode()
    {
        // Expected events written by Fixtures/xid/make_fixtures.py from what it generated, not by this parser.
        var fixtures = Path.Combine(XidTestPaths.Fixtures, "xid");
        var captures = Directory.GetFiles(fixtures, "*.log");
        Assert.True(captures.Length >= 2, "own captures missing in " + fixtures);
        var outDir = Directory.CreateTempSubdirectory("xid-own-").FullName;
        try
        {
            foreach (var capture in captures)
            {
                var (code, stdout, stderr) = await Run(["--input", capture]);
                Assert.True(code == 0, stderr);
                await File.WriteAllTextAsync(Path.Combine(outDir, Path.GetFileNameWithoutExtension(capture) + ".jsonl"), stdout);
            }

            var (rc, output) = XidScorerTests.RunScorer(XidTestPaths.XidCorpus, "--strict", "--show", "20", "--batch", fixtures, outDir);
            Assert.True(rc == 0, "scorer failed:\n" + output);
            Assert.Contains($"xid: PASS captures {captures.Length}/{captures.Length} pass", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(outDir, recursive: true);
        }
    }

    [Theory]
    [InlineData("N01_eras_hosts")]
    [InlineData("N02_damage")]
    public async Task Own_captures_count_exactly_their_cut_event_lines_as_malformed(string name)
    {
        var dir = Path.Combine(XidTestPaths.Fixtures, "xid");
        var expectedMalformed = (await File.ReadAllTextAsync(Path.Combine(dir, name + ".malformed.txt"))).Trim();
        var expectedEvents = File.ReadLines(Path.Combine(dir, name + ".expected.jsonl")).Count();
        var (_, _, stderr) = await Run(["--input", Path.Combine(dir, name + ".log")]);
        Assert.EndsWith($"events {expectedEvents}, lines skipped as malformed {expectedMalformed}", stderr.TrimEnd(), StringComparison.Ordinal);
    }
}
