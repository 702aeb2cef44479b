using System.Text.Json;
using System.Text.Json.Nodes;
using FleetWatch.Controller.Remediation.Rebalancing;

namespace FleetWatch.Controller.Tests.Rebalancing;

/// <summary>The <c>rebalance</c> verb: arguments, exit codes, output shape (FORMATS.md section 3).</summary>
public sealed class RebalanceToolTests : IDisposable
{
    private readonly string _dir = RebalanceTestKit.TempDir("fw-rebalance-tool");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData(new string[0], "give --input and --output")]
    [InlineData(new[] { "--input", "a.json" }, "give --input and --output")]
    [InlineData(new[] { "--input" }, "missing value after --input")]
    [InlineData(new[] { "--frobnicate", "x" }, "unknown argument '--frobnicate'")]
    [InlineData(new[] { "--input-dir", "/nonexistent-fw", "--output-dir", "/tmp/x" }, "no such folder")]
    [InlineData(new[] { "--input", "/nonexistent-fw/a.json", "--output", "/tmp/x.json" }, "cannot read")]
    public async Task BadArguments_Exit2_WithOneLineReason(string[] args, string reason)
    {
        var (code, _, stderr) = await Run(args);
        Assert.Equal(2, code);
        Assert.Contains(reason, stderr, StringComparison.Ordinal);
        Assert.Single(stderr.TrimEnd().Split('\n'));
    }

    [Fact]
    public async Task SingleCase_WritesPhy2LogThatCoversEveryExpert_OnUnevenNodes()
    {
        var input = WriteCase("U1", layers: 3, experts: 32, gpus: 7, slotsPerGpu: 5, gpusPerNode: [4, 3]);
        var output = Path.Combine(_dir, "U1.json");
        var (code, stdout, _) = await Run(["--input", input, "--output", output]);
        Assert.Equal(0, code);
        Assert.Contains("U1: mean", stdout, StringComparison.Ordinal);
        var phy2log = JsonNode.Parse(await File.ReadAllTextAsync(output))!["phy2log"]!.AsArray();
        Assert.Equal(3, phy2log.Count);
        Assert.All(phy2log, row =>
        {
            var ids = row!.AsArray().Select(x => (int)x!).ToArray();
            Assert.Equal(35, ids.Length);
            Assert.Equal(32, ids.Distinct().Count());
        });
    }

    [Fact]
    public async Task Folder_SkipsAndCountsMalformedCases()
    {
        var cases = Path.Combine(_dir, "cases");
        Directory.CreateDirectory(cases);
        WriteCase("A", 2, 16, 4, 5, [4], cases);
        await File.WriteAllTextAsync(Path.Combine(cases, "B.input.json"), "{\"weight\": [[1,2]], \"num_replicas\": 3");
        await File.WriteAllTextAsync(Path.Combine(cases, "C.input.json"), "{\"weight\": [[1,2]], \"num_replicas\": 3, \"num_gpus\": 2}");
        await File.WriteAllTextAsync(Path.Combine(cases, "D.input.json"), "{\"weight\": [[1,2,3,4]], \"num_replicas\": 2, \"num_gpus\": 2}");
        var outDir = Path.Combine(_dir, "out");
        var (code, stdout, stderr) = await Run(["--input-dir", cases, "--output-dir", outDir]);
        Assert.Equal(0, code);
        Assert.Contains("1 cases planned, 3 skipped", stdout, StringComparison.Ordinal);
        Assert.Equal(3, stderr.TrimEnd().Split('\n').Length);
        Assert.Contains("cannot hold 4 experts", stderr, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(outDir, "A.json")));
        Assert.Single(Directory.GetFiles(outDir));
    }

    private string WriteCase(string name, int layers, int experts, int gpus, int slotsPerGpu, int[] gpusPerNode, string? dir = null)
    {
        var loads = ExpertPlannerTests.Loads("zipf", layers, experts, seed: 4);
        var obj = new
        {
            name,
            num_layers = layers,
            num_logical_experts = experts,
            num_replicas = gpus * slotsPerGpu,
            num_groups = 4,
            num_nodes = 1,
            num_gpus = gpus,
            slots_per_gpu = slotsPerGpu,
            gpus_per_node = gpusPerNode,
            weight = loads.Select(r => r.Select(x => (long)x).ToArray()).ToArray(),
        };
        var path = Path.Combine(dir ?? _dir, name + ".input.json");
        File.WriteAllText(path, JsonSerializer.Serialize(obj));
        return path;
    }

    private static async Task<(int Code, string Stdout, string Stderr)> Run(string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var code = await RebalanceTool.RunAsync(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }
}
