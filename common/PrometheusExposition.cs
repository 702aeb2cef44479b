// Linked into every product project (see Directory.Build.targets): the agent's and the controller's /metrics.
using System.Globalization;
using System.Text;

namespace FleetWatch.Common;

/// <summary>Writing the Prometheus text exposition format (version 0.0.4): family headers, sample lines, label escaping.</summary>
internal static class PrometheusExposition
{
    public static void Header(StringBuilder sb, string name, string help, string type) =>
        sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n')
          .Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

    public static void Line(StringBuilder sb, string name, string labels, double value)
    {
        sb.Append(name);
        if (labels.Length > 0)
        {
            sb.Append('{').Append(labels).Append('}');
        }

        sb.Append(' ').Append(value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
    }

    /// <summary>Label values escape backslash, double quote and newline (exposition format).</summary>
    public static string Escape(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
}
