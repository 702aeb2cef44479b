using System.Text;
using FleetWatch.Agent.Sources.Steps;

namespace FleetWatch.Agent.Tests.Steps;

public sealed class StepReportParserTests
{
    private static readonly DateTimeOffset Received = new(2026, 11, 29, 12, 0, 0, TimeSpan.Zero);

    private static string? Parse(string json, out List<FleetWatch.Contracts.StepTimings> reports, int max = 100) =>
        StepReportParser.TryParse(Encoding.UTF8.GetBytes(json), "node-a", Received, max, out reports);

    [Fact]
    public void A_full_report_is_read_field_by_field()
    {
        var error = Parse("""
            {"job":"llama","rank":17,"step":230,"duration_ms":1510.25,"gpu":3,"peer_group":"pp2",
             "end_unix_ms":1764417600123.5,"sections":{"fwd":500,"bwd":910.5},"gpu_uuid":"GPU-abc","future_field":[1,2]}
            """, out var reports);

        Assert.Null(error);
        var r = Assert.Single(reports);
        Assert.Equal(("llama", 17, 230L, 1510.25, 3, "pp2", "node-a", "GPU-abc"), (r.Job, r.Rank, r.Step, r.DurationMs, r.Gpu, r.PeerGroup, r.Node, r.GpuUuid));
        Assert.Equal(1764417600123L, r.EndTime.ToUnixTimeMilliseconds());
        Assert.Equal(910.5, r.SectionsMs["bwd"]);
        Assert.Equal(2, r.SectionsMs.Count);
        Assert.False(r.Final);
        Assert.Null(Parse("""{"job":"j","rank":0,"step":9,"duration_ms":1,"gpu":0,"final":true}""", out var last));
        Assert.True(Assert.Single(last).Final);
    }

    [Fact]
    public void Optional_fields_default_to_the_whole_job_as_one_peer_group_and_the_receive_time()
    {
        Assert.Null(Parse("""{"job":"j","rank":0,"step":0,"duration_ms":1,"gpu":0}""", out var reports));
        var r = Assert.Single(reports);
        Assert.Equal(StepReportParser.DefaultPeerGroup, r.PeerGroup);
        Assert.Equal(Received, r.EndTime);
        Assert.Empty(r.SectionsMs);
    }

    [Fact]
    public void An_array_is_accepted_whole()
    {
        var json = "[" + string.Join(",", Enumerable.Range(0, 5).Select(i => $$"""{"job":"j","rank":{{i}},"step":1,"duration_ms":10,"gpu":{{i}}}""")) + "]";
        Assert.Null(Parse(json, out var reports));
        Assert.Equal([0, 1, 2, 3, 4], reports.Select(r => r.Rank));
    }

    [Theory]
    [InlineData("""{"rank":1,"step":1,"duration_ms":1,"gpu":0}""", "job:")]
    [InlineData("""{"job":"","rank":1,"step":1,"duration_ms":1,"gpu":0}""", "job:")]
    [InlineData("""{"job":"j","step":1,"duration_ms":1,"gpu":0}""", "rank:")]
    [InlineData("""{"job":"j","rank":-1,"step":1,"duration_ms":1,"gpu":0}""", "rank:")]
    [InlineData("""{"job":"j","rank":1.5,"step":1,"duration_ms":1,"gpu":0}""", "rank:")]
    [InlineData("""{"job":"j","rank":"3","step":1,"duration_ms":1,"gpu":0}""", "rank:")]
    [InlineData("""{"job":"j","rank":1,"step":-4,"duration_ms":1,"gpu":0}""", "step:")]
    [InlineData("""{"job":"j","rank":1,"step":1,"gpu":0}""", "duration_ms:")]
    [InlineData("""{"job":"j","rank":1,"step":1,"duration_ms":0,"gpu":0}""", "duration_ms:")]
    [InlineData("""{"job":"j","rank":1,"step":1,"duration_ms":1e12,"gpu":0}""", "duration_ms:")]
    [InlineData("""{"job":"j","rank":1,"step":1,"duration_ms":1}""", "gpu:")]
    [InlineData("""{"job":"j","rank":1,"step":1,"duration_ms":1,"gpu":999}""", "gpu:")]
    [InlineData("""{"job":"j","rank":1,"step":1,"duration_ms":1,"gpu":0,"peer_group":7}""", "peer_group:")]
    [InlineData("""{"job":"j","rank":1,"step":1,"duration_ms":1,"gpu":0,"end_unix_ms":-5}""", "end_unix_ms:")]
    [InlineData("""{"job":"j","rank":1,"step":1,"duration_ms":1,"gpu":0,"sections":[1]}""", "sections:")]
    [InlineData("""{"job":"j","rank":1,"step":1,"duration_ms":1,"gpu":0,"sections":{"fwd":"fast"}}""", "sections.fwd:")]
    [InlineData("""{"job":"j","rank":1,"step":1,"duration_ms":1,"gpu":0,"sections":{"fwd":-1}}""", "sections.fwd:")]
    [InlineData("""[{"job":"j","rank":1,"step":1,"duration_ms":1,"gpu":0},{"job":"j","rank":2,"step":1,"gpu":0}]""", "[1].duration_ms:")]
    [InlineData("""[{"job":"j","rank":1,"step":1,"duration_ms":1,"gpu":0}, 5]""", "[1]:")]
    [InlineData("""{"job":"j","rank":1,"step":1,"duration_ms":1,"gpu":0,"final":"yes"}""", "final:")]
    [InlineData("""[]""", "body:")]
    [InlineData("""42""", "body:")]
    [InlineData("""{"job":"j",""", "body:")]
    [InlineData("""not json""", "body:")]
    public void A_bad_body_is_refused_naming_the_field(string json, string field)
    {
        var error = Parse(json, out var reports);
        Assert.NotNull(error);
        Assert.StartsWith(field, error, StringComparison.Ordinal);
        Assert.Empty(reports); // all or nothing
    }

    [Fact]
    public void Too_many_reports_in_one_request_are_refused()
    {
        var json = "[" + string.Join(",", Enumerable.Repeat("""{"job":"j","rank":1,"step":1,"duration_ms":1,"gpu":0}""", 11)) + "]";
        Assert.StartsWith("body: 11 reports", Parse(json, out _, max: 10), StringComparison.Ordinal);
    }

    [Fact]
    public void Random_garbage_never_throws()
    {
        var random = new Random(5);
        var valid = Encoding.UTF8.GetBytes("""[{"job":"j","rank":1,"step":1,"duration_ms":1,"gpu":0,"sections":{"a":1}}]""");
        for (var i = 0; i < 2_000; i++)
        {
            var bytes = (byte[])valid.Clone();
            for (var k = 0; k < 1 + random.Next(4); k++)
            {
                bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            }

            var error = StepReportParser.TryParse(bytes, "n", Received, 10, out var reports);
            Assert.True(error is null ? reports.Count == 1 : reports.Count == 0);
        }
    }
}
