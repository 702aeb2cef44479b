using FleetWatch.Contracts;
using FleetWatch.Controller.Stragglers;
using MassTransit;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Remediation.Rebalancing;

/// <summary>
/// Keeps <see cref="InMemoryGpuCapacityView"/> in step with its sources (incidents, flagged stragglers). Each source
/// holds its own changes; a GPU's capacity is the worst of its live sources (lost beats slow, the slowest speed
/// wins), so resolving one incident never restores a GPU another incident still holds.
/// </summary>
public sealed class ExpertCapacityTracker(InMemoryGpuCapacityView view)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, GpuCapacityChange[]> _bySource = new(StringComparer.Ordinal);

    /// <summary>Replaces the changes of <paramref name="source"/>; returns the GPUs whose capacity may have changed.</summary>
    public IReadOnlyList<(string Node, int Gpu)> Set(string source, IReadOnlyCollection<GpuCapacityChange> changes)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(changes);
        lock (_gate)
        {
            var touched = Gpus(_bySource.GetValueOrDefault(source)).Union(Gpus([.. changes])).ToArray();
            if (changes.Count == 0)
            {
                _bySource.Remove(source);
            }
            else
            {
                _bySource[source] = [.. changes];
            }

            Recompute(touched);
            return touched;
        }
    }

    /// <summary>Drops the changes of <paramref name="source"/> (capacity restored unless another source holds the GPU).</summary>
    public IReadOnlyList<(string Node, int Gpu)> Remove(string source) => Set(source, []);

    private static IEnumerable<(string Node, int Gpu)> Gpus(GpuCapacityChange[]? changes) =>
        (changes ?? []).Select(c => (c.Node, c.Gpu));

    private void Recompute(IEnumerable<(string Node, int Gpu)> gpus)
    {
        foreach (var (node, gpu) in gpus)
        {
            var live = _bySource.Values.SelectMany(c => c).Where(c => c.Node == node && c.Gpu == gpu).ToArray();
            if (live.Length == 0)
            {
                view.Clear(node, gpu);
            }
            else if (live.Any(c => c.State == GpuCapacityState.Unavailable))
            {
                view.Set(new GpuCapacityChange(node, gpu, GpuCapacityState.Unavailable));
            }
            else
            {
                view.Set(new GpuCapacityChange(node, gpu, GpuCapacityState.Degraded, live.Min(c => c.Speed)));
            }
        }
    }
}

/// <summary>
/// Topology changes to re-plans: maps an incident (or a flagged straggler) to capacity changes of the GPUs the MoE
/// jobs report, updates <see cref="ExpertCapacityTracker"/>, and re-plans at once every job on a GPU that changed.
/// </summary>
public sealed class ExpertTopologyResponder(
    ExpertCapacityTracker tracker,
    ExpertLoadReportStore store,
    ExpertReplanner replanner,
    IOptions<ExpertRebalancingOptions> options,
    ILogger<ExpertTopologyResponder> logger)
{
    /// <summary>
    /// What an incident does to GPU capacity: none below <see cref="Severity.High"/>; a straggler category slows the
    /// GPU; any other removes it (cordoned or lost). A node-wide critical incident (node silent, InfiniBand down)
    /// removes every GPU of the node that a job reports.
    /// </summary>
    public static IReadOnlyList<GpuCapacityChange> Map(
        IncidentSnapshot incident, ExpertRebalancingOptions options, IEnumerable<ExpertSlotGpu> knownGpus)
    {
        ArgumentNullException.ThrowIfNull(incident);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(knownGpus);
        if (incident.Severity < Severity.High || incident.ResolvedAt is not null)
        {
            return [];
        }

        var slow = options.StragglerCategories
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Contains(incident.Category, StringComparer.Ordinal);
        var state = slow ? GpuCapacityState.Degraded : GpuCapacityState.Unavailable;
        if (incident.GpuIndex is { } gpu)
        {
            return [new GpuCapacityChange(incident.Node, gpu, state, slow ? options.StragglerSpeed : 1.0)];
        }

        return incident.Severity == Severity.Critical && !slow
            ? [.. knownGpus.Where(g => g.Node == incident.Node).Select(g => g.Gpu).Distinct()
                .Select(g => new GpuCapacityChange(incident.Node, g, GpuCapacityState.Unavailable))]
            : [];
    }

    /// <summary>An incident opened, changed or resolved: update capacity and re-plan the jobs it touches.</summary>
    public Task<int> OnIncidentAsync(IncidentSnapshot incident, bool resolved, ISendEndpointProvider sender, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(incident);
        var source = "incident " + incident.Id;
        var touched = resolved
            ? tracker.Remove(source)
            : tracker.Set(source, Map(incident, options.Value, store.Jobs.SelectMany(j => store.Latest(j)?.Gpus ?? [])));
        return ReplanAffectedAsync(source + (resolved ? " resolved" : " opened"), touched, sender, cancellationToken);
    }

    /// <summary>
    /// A straggler was flagged (the GPU keeps its slots at the flagged score as its speed) or cleared (capacity
    /// restored). <see cref="HangDetected"/> and <see cref="HangCleared"/> leave capacity alone.
    /// </summary>
    public Task<int> OnStragglerAsync(StragglerFinding finding, ISendEndpointProvider sender, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(finding);
        IReadOnlyList<(string, int)> touched;
        string source;
        switch (finding)
        {
            case StragglerFlagged f:
                source = $"straggler {f.Job}/{f.Rank}";
                var speed = double.IsFinite(f.Score) && f.Score > 0 ? Math.Min(f.Score, 1.0) : options.Value.StragglerSpeed;
                touched = tracker.Set(source, [new GpuCapacityChange(f.Node, f.Gpu, GpuCapacityState.Degraded, speed)]);
                break;
            case StragglerCleared c:
                source = $"straggler {c.Job}/{c.Rank}";
                touched = tracker.Remove(source);
                break;
            default:
                return Task.FromResult(0);
        }

        return ReplanAffectedAsync(source, touched, sender, cancellationToken);
    }

    private async Task<int> ReplanAffectedAsync(
        string trigger, IReadOnlyList<(string Node, int Gpu)> touched, ISendEndpointProvider sender, CancellationToken cancellationToken)
    {
        if (touched.Count == 0)
        {
            return 0;
        }

        var gpus = touched.ToHashSet();
        var jobs = store.Jobs
            .Where(j => store.Latest(j)?.Gpus.Any(g => gpus.Contains((g.Node, g.Gpu))) == true)
            .Order(StringComparer.Ordinal)
            .ToArray();
        RebalancingLog.CapacityChanged(logger, trigger, touched.Count, jobs.Length);
        return await replanner.ReplanManyAsync(jobs, trigger, sender, cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>Thin consumer of the controller's incident events: hands them to <see cref="ExpertTopologyResponder"/>.</summary>
public sealed class ExpertIncidentConsumer(ExpertTopologyResponder responder)
    : IConsumer<IncidentOpened>, IConsumer<IncidentUpdated>, IConsumer<IncidentResolved>
{
    public Task Consume(ConsumeContext<IncidentOpened> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return responder.OnIncidentAsync(context.Message.Incident, resolved: false, context, context.CancellationToken);
    }

    /// <summary>An incident that escalates to high or critical (or drops below) changes capacity too.</summary>
    public Task Consume(ConsumeContext<IncidentUpdated> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return responder.OnIncidentAsync(context.Message.Incident, resolved: false, context, context.CancellationToken);
    }

    public Task Consume(ConsumeContext<IncidentResolved> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return responder.OnIncidentAsync(context.Message.Incident, resolved: true, context, context.CancellationToken);
    }
}

/// <summary>Bus registrations of expert rebalancing (STYLE.md rule 13: its own lanes).</summary>
public static class ExpertRebalancingBusExtensions
{
    /// <summary>Queue of expert-load reports of MoE jobs (low volume: one per job per window).</summary>
    public const string ExpertLoadQueue = ControllerServiceCollectionExtensions.ExpertLoadQueue;

    /// <summary>Queue on which the rebalancer hears incident events (its own copy of the published events).</summary>
    public const string IncidentQueue = "fleetwatch-expert-incidents";

    /// <summary>
    /// Registers <see cref="ExpertLoadReportConsumer"/> on <see cref="ExpertLoadQueue"/> and
    /// <see cref="ExpertIncidentConsumer"/> on <see cref="IncidentQueue"/>. Incident events are handled one at a time
    /// (concurrency 1) so an incident's open and its resolve never race on the capacity view.
    /// </summary>
    public static IBusRegistrationConfigurator AddExpertRebalancingConsumers(this IBusRegistrationConfigurator bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        bus.AddConsumer<ExpertLoadReportConsumer>().Endpoint(e => e.Name = ExpertLoadQueue);
        bus.AddConsumer<ExpertIncidentConsumer>().Endpoint(e =>
        {
            e.Name = IncidentQueue;
            e.ConcurrentMessageLimit = 1;
        });
        return bus;
    }
}
