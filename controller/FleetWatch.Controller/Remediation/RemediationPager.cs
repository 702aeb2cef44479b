using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Incidents;
using MassTransit;

namespace FleetWatch.Controller.Remediation;

/// <summary>
/// Pages on-call when remediation stops or needs a human (research/straggler-restore-anchors.md section 5.4 step 8:
/// the storm guard pages): a <see cref="RemediationHalted"/> becomes a finding of category
/// <c>remediation_halted</c> (action <c>page_oncall</c>) and goes through the incident manager, so it is grouped,
/// persisted, silenced and routed to receivers like any other incident. A job's page is its own incident
/// (node <c>job/&lt;id&gt;</c>); a suspect node's page is on that node; the circuit breaker's on <c>fleet</c>.
/// <see cref="FaultClassifier"/> never remediates these incidents, so a page cannot trigger a restart.
/// </summary>
public sealed class RemediationPager(IncidentManager incidents, IncidentNotifier notifier, TimeProvider time)
{
    public const string Category = "remediation_halted";
    public const string Action = "page_oncall";

    public Task PageAsync(RemediationHalted halted, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(halted);
        var finding = ToFinding(halted);
        var changes = incidents.Apply([finding], time.GetUtcNow());
        return changes.Count > 0 ? notifier.NotifyAsync(changes, ct) : Task.CompletedTask;
    }

    public static Finding ToFinding(RemediationHalted halted)
    {
        ArgumentNullException.ThrowIfNull(halted);
        var node = halted.Kind == "suspect_node" && halted.Nodes.Count > 0 ? halted.Nodes[0]
            : halted.JobId is { Length: > 0 } job ? $"job/{job}"
            : halted.Nodes.Count > 0 ? halted.Nodes[0]
            : "fleet";
        // An info page would be counted and dropped by the incident manager; every halt needs a human.
        var severity = halted.Severity < Severity.Warning ? Severity.Warning : halted.Severity;
        return new Finding(node, null, $"remediation:{halted.Kind}", FindingKind.Event, true, severity, Category, Action, halted.Message, halted.Time);
    }
}

/// <summary>Thin consumer: every halted or paging remediation reaches on-call.</summary>
public sealed class RemediationHaltedConsumer(RemediationPager pager) : IConsumer<RemediationHalted>
{
    public Task Consume(ConsumeContext<RemediationHalted> context) => pager.PageAsync(context.Message, context.CancellationToken);
}
