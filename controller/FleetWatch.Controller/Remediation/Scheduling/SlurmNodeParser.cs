using System.Text.RegularExpressions;

namespace FleetWatch.Controller.Remediation.Scheduling;

/// <summary>
/// Reads one node record of <c>scontrol show node -o &lt;name&gt;</c> (one line of <c>Key=Value</c> pairs). Values may
/// hold spaces (<c>OS=Linux 6.1.0 #1 SMP</c>), so fields are split where a new <c>Key=</c> begins; <c>Reason=</c> is
/// the last field and free text (it may contain <c>=</c>), so everything after it is the reason, less the
/// <c>[user@time]</c> stamp Slurm appends.
/// </summary>
public static partial class SlurmNodeParser
{
    /// <summary>
    /// Base states and flags under which Slurm places no new work on a node (scontrol(1), "NODE STATE"): DRAIN is a
    /// flag (<c>IDLE+DRAIN</c>, <c>MIXED+DRAIN</c> while jobs finish), DOWN and FAIL are states of their own.
    /// </summary>
    private static readonly HashSet<string> OutOfService = new(StringComparer.OrdinalIgnoreCase) { "DRAIN", "DRAINED", "DRAINING", "DOWN", "FAIL", "FAILING" };

    [GeneratedRegex(@"(?:^|\s)([A-Za-z][A-Za-z0-9_]*)=", RegexOptions.CultureInvariant)]
    private static partial Regex KeyPattern();

    [GeneratedRegex(@"\s*\[[^\[\]@]*@[^\[\]]*\]\s*$", RegexOptions.CultureInvariant)]
    private static partial Regex ReasonStamp();

    /// <summary>
    /// The fields of one <c>scontrol show ... -o</c> record, keys as Slurm spells them. <paramref name="freeTextLast"/>
    /// names a last field whose value is free text (a node's <c>Reason</c>); a job's <c>Reason</c> is a code word in
    /// the middle of the record, so job records pass null.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Fields(string line, string? freeTextLast = null)
    {
        ArgumentNullException.ThrowIfNull(line);
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        var text = line.Trim();
        var marker = freeTextLast is null ? null : $" {freeTextLast}=";
        var at = marker is null ? -1 : text.IndexOf(marker, StringComparison.Ordinal);
        if (at >= 0)
        {
            fields[freeTextLast!] = text[(at + marker!.Length)..];
            text = text[..at];
        }

        var matches = KeyPattern().Matches(text);
        for (var i = 0; i < matches.Count; i++)
        {
            var start = matches[i].Index + matches[i].Length;
            var end = i + 1 < matches.Count ? matches[i + 1].Index : text.Length;
            fields[matches[i].Groups[1].Value] = text[start..end].Trim();
        }

        return fields;
    }

    /// <summary>The node's state from one record, or a not-found state when the record names no node.</summary>
    public static SchedulerNodeState Parse(string node, string line)
    {
        var fields = Fields(line, "Reason");
        if (!fields.TryGetValue("NodeName", out var name) || !string.Equals(name, node, StringComparison.Ordinal))
        {
            return new SchedulerNodeState(node, Found: false, Drained: false, State: "unknown", Reason: null);
        }

        var state = fields.GetValueOrDefault("State", "");
        var drained = StateParts(state).Any(OutOfService.Contains);
        string? reason = null;
        if (fields.TryGetValue("Reason", out var raw))
        {
            reason = ReasonStamp().Replace(raw, "").Trim();
            reason = reason.Length == 0 || reason == "(null)" ? null : reason;
        }

        return new SchedulerNodeState(node, Found: true, drained, state, reason);
    }

    /// <summary>True when the state carries Slurm's DRAIN flag (set by <c>state=drain</c>; DOWN alone returns to service by itself).</summary>
    public static bool HasDrainFlag(string state) => StateParts(state).Any(p => p.StartsWith("DRAIN", StringComparison.OrdinalIgnoreCase));

    private static string[] StateParts(string state) => state.Split('+', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
