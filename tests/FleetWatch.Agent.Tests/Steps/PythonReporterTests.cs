using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using FleetWatch.Agent.Sources.Steps;
using Microsoft.Extensions.DependencyInjection;

namespace FleetWatch.Agent.Tests.Steps;

/// <summary>
/// deploy/clients/python/fleetwatch_steps.py run by a real <c>python3</c> process, against the real endpoint (hosted here
/// with the same extension the agent uses) and against no agent at all.
/// </summary>
public sealed class PythonReporterTests : IDisposable
{
    private const string Python = "/usr/bin/python3";

    // A training loop as a user writes it: one report() per step, then close(). It prints what the reporter counted
    // and how long the loop's report() calls took.
    private const string Driver = """
        import json, sys, time
        sys.path.insert(0, sys.argv[1])
        from fleetwatch_steps import StepReporter
        url, ranks, steps = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        reporters = [StepReporter("job-py", r, gpu=r % 8, peer_group="pp%d" % (r // 2), url=url, queue_size=256) for r in range(ranks)]
        worst = 0.0
        t0 = time.perf_counter()
        for step in range(steps):
            for r in reporters:
                a = time.perf_counter()
                r.report(step, 100.0 + r.rank, sections={"fwd": 40.0, "bwd": 55.5})
                worst = max(worst, time.perf_counter() - a)
            time.sleep(0.002)   # the "training" work of a step
        loop = time.perf_counter() - t0
        for r in reporters:
            r.close(2.0)
        print(json.dumps({"loop_s": loop, "worst_report_ms": worst * 1000,
                          "sent": sum(r.sent for r in reporters), "dropped": sum(r.dropped for r in reporters),
                          "rejected": sum(r.rejected for r in reporters), "failures": sum(r.failures for r in reporters),
                          "last_error": [r.last_error for r in reporters]}))
        """;

    private readonly string _dir = Directory.CreateTempSubdirectory("fw-pyreporter-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string ClientFolder
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "FleetWatch.sln")))
            {
                dir = dir.Parent;
            }

            Assert.True(dir is not null, $"no FleetWatch.sln above {AppContext.BaseDirectory}");
            var folder = Path.Combine(dir!.FullName, "deploy", "clients", "python");
            Assert.True(File.Exists(Path.Combine(folder, "fleetwatch_steps.py")), $"reporter missing in {folder}");
            return folder;
        }
    }

    private async Task<(JsonElement Stats, TimeSpan Elapsed)> RunDriverAsync(string url, int ranks, int steps)
    {
        Assert.True(File.Exists(Python), $"{Python} is required (Debian's python3)");
        var script = Path.Combine(_dir, "train_loop.py");
        await File.WriteAllTextAsync(script, Driver);
        var psi = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { script, ClientFolder, url, ranks.ToString(System.Globalization.CultureInfo.InvariantCulture), steps.ToString(System.Globalization.CultureInfo.InvariantCulture) })
        {
            psi.ArgumentList.Add(a);
        }

        var clock = Stopwatch.StartNew();
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("the training loop with the reporter did not finish within 30 s");
        }

        var elapsed = clock.Elapsed;
        Assert.True(process.ExitCode == 0, $"python exited {process.ExitCode}: {await stderr}");
        Assert.Equal("", (await stderr).Trim()); // nothing raised, nothing printed into the training log
        return (JsonDocument.Parse(await stdout).RootElement.Clone(), elapsed);
    }

    [Fact]
    public async Task Reports_from_a_python_training_loop_arrive_at_the_agent()
    {
        var publisher = new RecordingStepPublisher();
        await using var host = await StepEndpointHost.StartAsync(configure: s => s.AddSingleton<IStepTimingsPublisher>(publisher));
        // A long-running agent is warm; a cold one in a fresh test process can miss the reporter's 0.5 s timeout on its first request.
        using (var warm = new HttpClient { BaseAddress = host.BaseAddress })
        {
            (await warm.GetAsync(StepEndpointServer.StatusPath)).EnsureSuccessStatusCode();
        }

        var (stats, _) = await RunDriverAsync(host.BaseAddress.ToString().TrimEnd('/'), ranks: 4, steps: 50);

        Assert.True(
            (204, 0, 0) == (stats.GetProperty("sent").GetInt32(), stats.GetProperty("dropped").GetInt32(), stats.GetProperty("rejected").GetInt32()),
            stats.ToString());
        await host.Flusher.FlushAsync(CancellationToken.None);
        var all = publisher.Batches.SelectMany(b => b.Steps).ToList();
        Assert.Equal(204, host.Counters.Accepted);
        // close() repeats each rank's last step marked final: the job ended, its silence is no hang.
        var finals = all.Where(r => r.Final).ToList();
        Assert.Equal([0, 1, 2, 3], finals.Select(r => r.Rank).Order());
        Assert.All(finals, r => Assert.Equal(49, r.Step));
        var reports = all.Where(r => !r.Final).ToList();
        Assert.Equal(200, reports.Count);
        Assert.Equal(0, host.Counters.RejectedRequests);
        foreach (var rank in Enumerable.Range(0, 4))
        {
            var mine = reports.Where(r => r.Rank == rank).ToList();
            Assert.Equal(Enumerable.Range(0, 50).Select(s => (long)s), mine.Select(r => r.Step).Order());
            Assert.All(mine, r =>
            {
                Assert.Equal(("job-py", "node-7", rank % 8, $"pp{rank / 2}", 100.0 + rank), (r.Job, r.Node, r.Gpu, r.PeerGroup, r.DurationMs));
                Assert.Equal(55.5, r.SectionsMs["bwd"]);
                // end_unix_ms is the python wall clock: within a minute of ours.
                Assert.InRange(r.EndTime, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddMinutes(1));
            });
        }
    }

    public enum AbsentAgent
    {
        NothingListening,
        ListeningButNeverAnswering,
    }

    [Theory]
    [InlineData(AbsentAgent.NothingListening)]
    [InlineData(AbsentAgent.ListeningButNeverAnswering)]
    public async Task Without_an_agent_the_loop_runs_at_full_speed_and_finishes_cleanly(AbsentAgent absent)
    {
        // A port nobody listens on (bound, then released), or one whose backlog accepts connections nobody serves.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        if (absent == AbsentAgent.NothingListening)
        {
            listener.Stop();
        }

        var (stats, elapsed) = await RunDriverAsync($"http://127.0.0.1:{port}", ranks: 8, steps: 200);

        Assert.Equal(0, stats.GetProperty("sent").GetInt32());
        Assert.True(stats.GetProperty("failures").GetInt32() >= 1);
        Assert.True(stats.GetProperty("dropped").GetInt32() > 0);
        // 1,600 report() calls: each only appends to a queue. Generous bounds (a loaded CI machine), far below what one
        // network timeout per call (0.5 s) would cost.
        Assert.True(stats.GetProperty("worst_report_ms").GetDouble() < 100, stats.ToString());
        Assert.True(stats.GetProperty("loop_s").GetDouble() < 10, stats.ToString());
        Assert.True(elapsed < TimeSpan.FromSeconds(25), $"took {elapsed}");
    }
}
