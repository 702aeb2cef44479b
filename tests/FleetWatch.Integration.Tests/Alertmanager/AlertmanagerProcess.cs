using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace FleetWatch.Integration.Tests.Alertmanager;

/// <summary>
/// A real Prometheus Alertmanager (Debian package <c>prometheus-alertmanager</c>) on a free loopback port with its own
/// temporary directory, clustering off, routing everything to one webhook receiver with short group timers
/// (group_wait 1 s, group_interval 2 s, send_resolved). Killed and cleaned up on dispose (../shared/SERVICES.md).
/// </summary>
public sealed class AlertmanagerProcess : IAsyncDisposable
{
    public const string ReceiverName = "fleetwatch-test";

    private readonly Process _process;
    private readonly string _dir;
    private readonly StringBuilder _output = new();

    private AlertmanagerProcess(Process process, string dir, string url)
    {
        _process = process;
        _dir = dir;
        Url = url;
    }

    /// <summary>Base URL, e.g. <c>http://127.0.0.1:41234</c>.</summary>
    public string Url { get; }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public static async Task<AlertmanagerProcess> StartAsync(string webhookUrl)
    {
        var binary = FindBinary()
            ?? throw new InvalidOperationException("prometheus-alertmanager is not installed (not on PATH): install the Debian package with `apt-get install -y prometheus-alertmanager`, as scripts/test.sh does");
        var dir = Directory.CreateTempSubdirectory("fleetwatch-am-").FullName;
        var config = Path.Combine(dir, "am.yml");
        await File.WriteAllTextAsync(config, $"""
            route:
              receiver: {ReceiverName}
              group_by: ['incident_id']
              group_wait: 1s
              group_interval: 2s
              repeat_interval: 1h
            receivers:
              - name: {ReceiverName}
                webhook_configs:
                  - url: '{webhookUrl}'
                    send_resolved: true
            """);
        var port = FreePort();
        var info = new ProcessStartInfo(binary) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add($"--config.file={config}");
        info.ArgumentList.Add($"--storage.path={Path.Combine(dir, "data")}");
        info.ArgumentList.Add($"--web.listen-address=127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}");
        info.ArgumentList.Add("--cluster.listen-address="); // empty: no gossip cluster
        var process = new Process { StartInfo = info };
        var am = new AlertmanagerProcess(process, dir, $"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}");
        process.OutputDataReceived += (_, e) => am.Append(e.Data);
        process.ErrorDataReceived += (_, e) => am.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (process.HasExited)
            {
                await am.DisposeAsync();
                throw new InvalidOperationException($"Alertmanager exited with {process.ExitCode} at start: {am.Output}");
            }

            try
            {
                using var ready = await http.GetAsync(new Uri($"{am.Url}/-/ready"));
                if (ready.StatusCode == HttpStatusCode.OK)
                {
                    return am;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                // not listening yet, or a probe that took longer than 2 s on a loaded machine: ask again until the deadline
            }

            if (deadline.Elapsed > TimeSpan.FromSeconds(20))
            {
                await am.DisposeAsync();
                throw new TimeoutException($"Alertmanager not ready after 20 s: {am.Output}");
            }

            await Task.Delay(100);
        }
    }

    private static string? FindBinary() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .SelectMany(d => new[] { Path.Combine(d, "prometheus-alertmanager"), Path.Combine(d, "alertmanager") })
            .FirstOrDefault(File.Exists);

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
