using System.Text;
using System.Text.RegularExpressions;

namespace FleetWatch.Controller.Remediation.Scheduling;

/// <summary>
/// Checks on the values that reach a scheduler. Node names and reasons come from telemetry (an agent's host name, an
/// incident summary), so they are validated or cleaned before they become arguments: a node name must be one plain
/// host name (no Slurm host-list expression such as <c>gpu[001-999]</c>, no spaces, no <c>=</c>), so that one bad
/// message can never drain a whole rack.
/// </summary>
public static partial class SchedulerArguments
{
    /// <summary>
    /// The longest reason passed to a scheduler. Slurm keeps the reason as free text; 200 characters fit
    /// <c>sinfo -R</c> and the audit log while bounding what telemetry can push into the scheduler.
    /// </summary>
    public const int MaxReasonLength = 200;

    /// <summary>
    /// One host name: an RFC 1123 label-like name, optionally dotted, 1 to 63 characters (the Kubernetes node-name
    /// limit for a label value; Slurm node names are host names too).
    /// </summary>
    [GeneratedRegex("^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$", RegexOptions.CultureInvariant)]
    private static partial Regex NodeNamePattern();

    /// <summary>A Slurm job id: digits, optionally an array task (<c>1234_7</c>).</summary>
    [GeneratedRegex("^[0-9]{1,12}(?:_[0-9]{1,9})?$", RegexOptions.CultureInvariant)]
    private static partial Regex SlurmJobIdPattern();

    /// <summary>True when <paramref name="node"/> is one plain host name.</summary>
    public static bool IsValidNodeName(string? node) => node is not null && NodeNamePattern().IsMatch(node);

    /// <summary>True when <paramref name="jobId"/> is a Slurm job id (not a list, not a name).</summary>
    public static bool IsValidSlurmJobId(string? jobId) => jobId is not null && SlurmJobIdPattern().IsMatch(jobId);

    /// <summary>
    /// The reason as a single line: control characters (newlines included) become spaces, runs of spaces collapse,
    /// the text is trimmed and cut to <see cref="MaxReasonLength"/>. Empty input gives "unspecified" (Slurm refuses a
    /// drain without a reason).
    /// </summary>
    public static string CleanReason(string? reason)
    {
        var builder = new StringBuilder(Math.Min(reason?.Length ?? 0, MaxReasonLength));
        var lastWasSpace = true;
        foreach (var c in reason ?? "")
        {
            var space = char.IsWhiteSpace(c) || char.IsControl(c);
            if (space && lastWasSpace)
            {
                continue;
            }

            builder.Append(space ? ' ' : c);
            lastWasSpace = space;
            if (builder.Length == MaxReasonLength)
            {
                break;
            }
        }

        var text = builder.ToString().TrimEnd();
        return text.Length == 0 ? "unspecified" : text;
    }

    /// <summary>
    /// A Kubernetes label or taint value made from free text: at most 63 characters of <c>[A-Za-z0-9._-]</c>, beginning
    /// and ending with a letter or digit (Kubernetes "Labels and Selectors", syntax and character set). Other characters
    /// become <c>-</c>; empty results give "unspecified".
    /// </summary>
    public static string ToLabelValue(string? text)
    {
        var builder = new StringBuilder(63);
        foreach (var c in text ?? "")
        {
            var ok = char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-';
            var next = ok ? c : '-';
            if (next == '-' && builder.Length > 0 && builder[^1] == '-')
            {
                continue;
            }

            builder.Append(next);
            if (builder.Length == 63)
            {
                break;
            }
        }

        var value = builder.ToString().Trim('-', '.', '_');
        return value.Length == 0 ? "unspecified" : value;
    }
}
