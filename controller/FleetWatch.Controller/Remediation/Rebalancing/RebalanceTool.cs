using System.Diagnostics;
using System.Globalization;

namespace FleetWatch.Controller.Remediation.Rebalancing;

/// <summary>
/// The <c>rebalance</c> verb (FORMATS.md section 3): <c>--input FILE --output FILE</c> or
/// <c>--input-dir DIR --output-dir DIR</c> (every <c>*.input.json</c> to <c>&lt;case&gt;.json</c>).
/// Exit 0 on success, 2 on bad arguments or an unreadable input; a malformed case in a folder is skipped and counted.
/// </summary>
public static class RebalanceTool
{
    private const string InputSuffix = ".input.json";

    private const string Usage =
        "usage: rebalance --input FILE --output FILE | --input-dir DIR --output-dir DIR";

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        var parsed = ParseArgs(args, out var error);
        if (parsed is null)
        {
            await stderr.WriteLineAsync($"rebalance: {error}. {Usage}");
            return 2;
        }

        var (input, output, isDir) = parsed.Value;
        if (!isDir)
        {
            string text;
            try
            {
                text = await File.ReadAllTextAsync(input);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                await stderr.WriteLineAsync($"rebalance: cannot read {input}: {e.Message}");
                return 2;
            }

            var result = await RunCaseAsync(text, CaseName(input), output, stdout);
            if (result is not null)
            {
                await stderr.WriteLineAsync($"rebalance: {input}: {result}");
                return 2;
            }

            return 0;
        }

        string[] files;
        try
        {
            files = Directory.GetFiles(input, "*" + InputSuffix);
            Directory.CreateDirectory(output);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            await stderr.WriteLineAsync($"rebalance: cannot use {input} / {output}: {e.Message}");
            return 2;
        }

        Array.Sort(files, StringComparer.Ordinal);
        var skipped = 0;
        foreach (var file in files)
        {
            var name = CaseName(file);
            string? problem;
            try
            {
                problem = await RunCaseAsync(
                    await File.ReadAllTextAsync(file), name, Path.Combine(output, name + ".json"), stdout);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                problem = e.Message;
            }

            if (problem is not null)
            {
                skipped++;
                await stderr.WriteLineAsync($"rebalance: skipped {file}: {problem}");
            }
        }

        await stdout.WriteLineAsync(
            string.Create(CultureInfo.InvariantCulture, $"rebalance: {files.Length - skipped} cases planned, {skipped} skipped"));
        return 0;
    }

    private static async Task<string?> RunCaseAsync(string json, string name, string outputPath, TextWriter stdout)
    {
        var @case = RebalanceCase.Parse(json, name, out var reason);
        if (@case is null)
        {
            return reason;
        }

        ExpertPlan plan;
        var started = Stopwatch.GetTimestamp();
        try
        {
            plan = ExpertPlanner.Plan(new ExpertPlanRequest(@case.Weight, @case.Gpus));
        }
        catch (ArgumentException e)
        {
            return e.Message;
        }

        var elapsed = Stopwatch.GetElapsedTime(started);
        await File.WriteAllTextAsync(outputPath, RebalanceCase.FormatPhy2Log(plan.Phy2Log));
        await stdout.WriteLineAsync(string.Create(
            CultureInfo.InvariantCulture,
            $"{@case.Name}: mean {plan.MeanImbalance:F4} max {plan.MaxImbalance:F4} lower bound {plan.LowerBound.Average():F4} in {elapsed.TotalMilliseconds:F1} ms"));
        return null;
    }

    private static string CaseName(string path)
    {
        var file = Path.GetFileName(path);
        return file.EndsWith(InputSuffix, StringComparison.Ordinal)
            ? file[..^InputSuffix.Length]
            : Path.GetFileNameWithoutExtension(file);
    }

    private static (string Input, string Output, bool IsDir)? ParseArgs(string[] args, out string error)
    {
        string? input = null, output = null, inputDir = null, outputDir = null;
        for (var i = 0; i < args.Length; i++)
        {
            if (i + 1 >= args.Length)
            {
                error = $"missing value after {args[i]}";
                return null;
            }

            switch (args[i])
            {
                case "--input": input = args[++i]; break;
                case "--output": output = args[++i]; break;
                case "--input-dir": inputDir = args[++i]; break;
                case "--output-dir": outputDir = args[++i]; break;
                default:
                    error = $"unknown argument '{args[i]}'";
                    return null;
            }
        }

        error = string.Empty;
        if (input is not null && output is not null && inputDir is null && outputDir is null)
        {
            return (input, output, false);
        }

        if (inputDir is not null && outputDir is not null && input is null && output is null)
        {
            if (!Directory.Exists(inputDir))
            {
                error = $"no such folder {inputDir}";
                return null;
            }

            return (inputDir, outputDir, true);
        }

        error = "give --input and --output, or --input-dir and --output-dir";
        return null;
    }
}
