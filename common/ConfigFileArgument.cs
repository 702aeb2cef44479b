// Linked into every product project (see Directory.Build.targets).
using Microsoft.Extensions.Configuration;

namespace FleetWatch.Common;

/// <summary>"--config FILE": a JSON file below the command line, which still wins.</summary>
internal static class ConfigFileArgument
{
    /// <summary>Adds the file named after <c>--config</c>, then the command line again without those two arguments.</summary>
    /// <exception cref="ArgumentException">--config is the last argument.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist (the message names the full path).</exception>
    public static void Apply(IConfigurationBuilder configuration, string[] args)
    {
        var index = Array.IndexOf(args, "--config");
        if (index < 0)
        {
            return;
        }

        if (index + 1 >= args.Length)
        {
            throw new ArgumentException("--config needs a file path");
        }

        var path = Path.GetFullPath(args[index + 1]);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"--config '{path}': file not found", path);
        }

        configuration.AddJsonFile(path, optional: false, reloadOnChange: false);
        configuration.AddCommandLine(args.Where((_, i) => i != index && i != index + 1).ToArray());
    }
}
