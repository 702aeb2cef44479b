using FleetWatch.Contracts;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Incidents;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Fleet;

/// <summary>
/// Builds fleet frames for dashboards: each <see cref="Next"/> returns the cells that changed since the previous
/// frame; <see cref="LastSnapshot"/> returns the full state as of the last frame, so a delta always applies to it.
/// </summary>
public sealed class FleetFrameBuilder(FleetState fleet, IncidentManager incidents, IOptions<DetectionOptions> options, TimeProvider time)
{
    private readonly string _run = Guid.NewGuid().ToString("N")[..12];
    private readonly Lock _gate = new();
    private Dictionary<(string Node, int Gpu), GpuCell> _cells = [];
    private FleetFrame? _lastSnapshot;
    private long _version;

    public string ControllerRun => _run;

    /// <summary>Computes the next delta frame and remembers the full state behind it.</summary>
    public FleetFrame Next()
    {
        var now = time.GetUtcNow();
        var severities = incidents.ActiveSeverities();
        var open = incidents.Open();
        var resolved = incidents.RecentlyResolved();
        var cells = new Dictionary<(string, int), GpuCell>(_cells.Count);
        var ordered = new List<GpuCell>(_cells.Count);
        int healthy = 0, warning = 0, high = 0, critical = 0, unknown = 0, nodes = 0;
        foreach (var (node, last, lastSeen) in fleet.Nodes().OrderBy(n => n.Node, StringComparer.Ordinal))
        {
            nodes++;
            if (last is null)
            {
                continue;
            }

            var quiet = lastSeen is { } seen ? now - seen : TimeSpan.MaxValue;
            var stale = quiet >= options.Value.NodeUnknownAfter;
            severities.TryGetValue((node, null), out var nodeSeverity);
            var nodeHas = severities.ContainsKey((node, null));
            foreach (var gpu in last.Gpus)
            {
                var has = severities.TryGetValue((node, gpu.Index), out var gpuSeverity);
                var worst = has && nodeHas ? (Severity)Math.Max((int)gpuSeverity, (int)nodeSeverity) : has ? gpuSeverity : nodeSeverity;
                var health = (has || nodeHas) ? ToHealth(worst) : stale ? GpuHealth.Unknown : GpuHealth.Healthy;

                var cell = new GpuCell
                {
                    Node = node,
                    Gpu = gpu.Index,
                    Health = health,
                    Uuid = gpu.Uuid,
                    Rack = last.Rack,
                    TemperatureC = gpu.TemperatureC is { } t ? (short)t : null,
                    PowerW = gpu.PowerW is { } p ? (short)Math.Round(p) : null,
                    UtilizationPct = gpu.UtilizationPct is { } u ? (byte)Math.Clamp(u, 0, 100) : null,
                };
                cells[(node, gpu.Index)] = cell;
                ordered.Add(cell);
                switch (health)
                {
                    case GpuHealth.Healthy: healthy++; break;
                    case GpuHealth.Warning: warning++; break;
                    case GpuHealth.High: high++; break;
                    case GpuHealth.Critical: critical++; break;
                    default: unknown++; break;
                }
            }
        }

        var counts = new FleetCounts(healthy, warning, high, critical, unknown, nodes, open.Count);
        lock (_gate)
        {
            var changed = new List<GpuCell>();
            foreach (var cell in ordered)
            {
                if (!_cells.TryGetValue((cell.Node, cell.Gpu), out var before) || before != cell)
                {
                    changed.Add(cell);
                }
            }

            _cells = cells;
            _version++;
            _lastSnapshot = new FleetFrame
            {
                Version = _version,
                ControllerRun = _run,
                IsSnapshot = true,
                Time = now,
                Cells = ordered,
                OpenIncidents = open,
                RecentlyResolved = resolved,
                Counts = counts,
            };
            return _lastSnapshot with { IsSnapshot = false, Cells = changed };
        }
    }

    /// <summary>The full state as of the last frame (an empty version-0 frame before the first).</summary>
    public FleetFrame LastSnapshot()
    {
        lock (_gate)
        {
            return _lastSnapshot ?? new FleetFrame
            {
                Version = 0,
                ControllerRun = _run,
                IsSnapshot = true,
                Time = time.GetUtcNow(),
                Cells = [],
                OpenIncidents = [],
                Counts = new FleetCounts(0, 0, 0, 0, 0, 0, 0),
            };
        }
    }

    private static GpuHealth ToHealth(Severity severity) => severity switch
    {
        Severity.Critical => GpuHealth.Critical,
        Severity.High => GpuHealth.High,
        Severity.Warning => GpuHealth.Warning,
        _ => GpuHealth.Healthy,
    };
}
