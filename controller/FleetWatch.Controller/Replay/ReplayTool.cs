using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Replay;

/// <summary>
/// The <c>replay</c> verb (FORMATS.md section 4): <c>--scenario FILE --output FILE [--config FILE]</c>. Replays a
/// fault scenario through the controller's detectors and incident manager in virtual time and writes the incident
/// report. <c>--config</c> takes a controller configuration file (for example deploy/config/controller.json) so a
/// replay uses production thresholds. Exit codes: 0 ok, 2 bad arguments, unreadable or invalid scenario.
/// </summary>
public static class ReplayTool
{
    private const string Usage = "usage: replay --scenario FILE --output FILE|- [--config controller.json]";

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        string? scenarioPath = null, outputPath = null, configPath = null;
        for (var i = 0; i < args.Length; i++)
        {
            var value = i + 1 < args.Length ? args[i + 1] : null;
            switch (args[i])
            {
                case "--scenario" when value is not null:
                    scenarioPath = value;
                    i++;
                    break;
                case "--output" when value is not null:
                    outputPath = value;
                    i++;
                    break;
                case "--config" when value is not null:
                    configPath = value;
                    i++;
                    break;
                default:
                    await stderr.WriteLineAsync($"replay: unexpected argument '{args[i]}'; {Usage}").ConfigureAwait(false);
                    return 2;
            }
        }

        if (scenarioPath is null || outputPath is null)
        {
            await stderr.WriteLineAsync($"replay: --scenario and --output are required; {Usage}").ConfigureAwait(false);
            return 2;
        }

        ReplayScenario scenario;
        try
        {
            scenario = ReplayScenario.Parse(await File.ReadAllTextAsync(scenarioPath).ConfigureAwait(false));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            await stderr.WriteLineAsync($"replay: cannot read scenario {scenarioPath}: {e.Message}").ConfigureAwait(false);
            return 2;
        }
        catch (ScenarioException e)
        {
            await stderr.WriteLineAsync($"replay: invalid scenario {scenarioPath}: {e.Message}").ConfigureAwait(false);
            return 2;
        }

        ReplayReport report;
        var watch = Stopwatch.StartNew();
        try
        {
            var configuration = configPath is null ? null : new ConfigurationBuilder().AddJsonFile(Path.GetFullPath(configPath), optional: false).Build();
            report = ReplayRunner.Run(scenario, configuration);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or FormatException or OptionsValidationException or InvalidOperationException)
        {
            // An unreadable configuration file or a threshold the controller itself would refuse at start.
            await stderr.WriteLineAsync($"replay: configuration {configPath}: {e.Message.ReplaceLineEndings(" ")}").ConfigureAwait(false);
            return 2;
        }

        var json = ToJson(report);
        try
        {
            if (outputPath == "-")
            {
                await stdout.WriteLineAsync(json).ConfigureAwait(false);
            }
            else
            {
                await File.WriteAllTextAsync(outputPath, json + "\n", new UTF8Encoding(false)).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            await stderr.WriteLineAsync($"replay: cannot write {outputPath}: {e.Message}").ConfigureAwait(false);
            return 2;
        }

        var counted = report.Incidents.Count(i => i.Severity >= Contracts.Severity.Warning);
        await stderr.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"replay: {scenario.Fleet.Nodes} nodes, {scenario.DurationSeconds:F0} s virtual in {watch.Elapsed.TotalSeconds:F2} s, {report.Samples} samples, {report.Xids} Xids, {report.Incidents.Count} incidents ({counted} >= warning), {report.AlertsSent} alerts")).ConfigureAwait(false);
        return 0;
    }

    /// <summary>The report in the FORMATS.md section 4 shape.</summary>
    public static string ToJson(ReplayReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = false }))
        {
            w.WriteStartObject();
            w.WriteStartArray("incidents");
            foreach (var i in report.Incidents)
            {
                w.WriteStartObject();
                w.WriteString("id", i.Id);
                w.WriteNumber("opened_s", i.OpenedSeconds);
                if (i.ResolvedSeconds is { } r)
                {
                    w.WriteNumber("resolved_s", r);
                }
                else
                {
                    w.WriteNull("resolved_s");
                }

                w.WriteNumber("node", i.Node);
                if (i.Gpu is { } g)
                {
                    w.WriteNumber("gpu", g);
                }
                else
                {
                    w.WriteNull("gpu");
                }

                w.WriteString("severity", i.Severity.ToString().ToLowerInvariant());
                w.WriteString("category", i.Category);
                w.WriteString("action", i.Action);
                w.WriteStartArray("findings");
                foreach (var f in i.Findings)
                {
                    w.WriteStringValue(f);
                }

                w.WriteEndArray();
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteNumber("alerts_sent", report.AlertsSent);
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }
}
