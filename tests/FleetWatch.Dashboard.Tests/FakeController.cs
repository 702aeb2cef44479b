using FleetWatch.Contracts;
using MassTransit;
using Microsoft.Extensions.Hosting;

namespace FleetWatch.Dashboard.Tests;

/// <summary>
/// A small stand-in for the controller's dashboard side: answers <see cref="GetFleetSnapshot"/>, publishes deltas of
/// what changed, and on <see cref="InjectSimulatedFault"/> marks that GPU critical with an incident in the next frame.
/// </summary>
public sealed class FakeController
{
    private readonly Lock gate = new();
    private readonly Dictionary<(string Node, int Gpu), GpuCell> cells = [];
    private readonly HashSet<(string Node, int Gpu)> changed = [];
    private readonly List<IncidentSnapshot> open = [];
    private readonly List<IncidentSnapshot> resolved = [];
    private readonly TimeProvider time;
    private readonly Random random = new(7);
    private long version;
    private int incidentNumber;
    private int snapshotRequests;

    public FakeController(int racks, int nodesPerRack, int gpusPerNode = 8, TimeProvider? time = null, string run = "run-1")
    {
        this.time = time ?? TimeProvider.System;
        Run = run;
        for (var r = 0; r < racks; r++)
        {
            for (var n = 0; n < nodesPerRack; n++)
            {
                var node = NodeName(r, n);
                for (var g = 0; g < gpusPerNode; g++)
                {
                    cells[(node, g)] = new GpuCell
                    {
                        Node = node,
                        Gpu = g,
                        Health = GpuHealth.Healthy,
                        Rack = RackName(r),
                        Uuid = $"GPU-{r:x2}{n:x2}{g:x2}00-1111-2222-3333-{random.NextInt64(0, 0xFFFFFFFFFFFF):x12}",
                        TemperatureC = (short)random.Next(38, 70),
                        PowerW = (short)random.Next(280, 690),
                        UtilizationPct = (byte)random.Next(70, 100),
                    };
                }
            }
        }
    }

    public string Run { get; }

    public int GpuCount => cells.Count;

    public int SnapshotRequests => Volatile.Read(ref snapshotRequests);

    /// <summary>When false the fake stays silent: no snapshot answers, no deltas (a controller that is not up yet).</summary>
    public bool Answering { get; set; } = true;

    public static string RackName(int rack) => $"rack-{rack + 1:00}";

    public static string NodeName(int rack, int node) => $"gpu-r{rack + 1:00}n{node + 1:00}";

    public FleetFrame Snapshot()
    {
        Interlocked.Increment(ref snapshotRequests);
        lock (gate)
        {
            return Frame(isSnapshot: true, [.. cells.Values]);
        }
    }

    /// <summary>The next delta, or null when nothing changed since the last one.</summary>
    public FleetFrame? NextDelta()
    {
        lock (gate)
        {
            if (changed.Count == 0)
            {
                return null;
            }

            version++;
            var frame = Frame(isSnapshot: false, [.. changed.Select(k => cells[k])]);
            changed.Clear();
            return frame;
        }
    }

    /// <summary>Changes one GPU's values (health and telemetry) as a real fleet would between frames.</summary>
    public void Set(string node, int gpu, GpuHealth health, short? temperatureC = null)
    {
        lock (gate)
        {
            var cell = cells[(node, gpu)];
            cells[(node, gpu)] = cell with { Health = health, TemperatureC = temperatureC ?? cell.TemperatureC };
            changed.Add((node, gpu));
        }
    }

    /// <summary>Small telemetry drift on a few GPUs, so deltas carry ordinary changes too.</summary>
    public void Drift(int count)
    {
        lock (gate)
        {
            var keys = cells.Keys.ToArray();
            for (var i = 0; i < count; i++)
            {
                var key = keys[random.Next(keys.Length)];
                var cell = cells[key];
                cells[key] = cell with { TemperatureC = (short)Math.Clamp((cell.TemperatureC ?? 50) + random.Next(-2, 3), 30, 80) };
                changed.Add(key);
            }
        }
    }

    public void OpenIncident(string node, int? gpu, Severity severity, string category, string action, string message)
    {
        lock (gate)
        {
            var now = time.GetUtcNow();
            open.Add(new IncidentSnapshot
            {
                Id = $"inc-{++incidentNumber}",
                Node = node,
                GpuIndex = gpu,
                GpuUuid = gpu is { } g ? cells[(node, g)].Uuid : null,
                Severity = severity,
                Category = category,
                Action = action,
                OpenedAt = now,
                Findings = [new FindingInfo { Rule = category, Severity = severity, Message = message, GpuIndex = gpu, FirstSeen = now, LastSeen = now }],
            });

            // An incident alone is a change the next delta must carry.
            if (gpu is { } changedGpu)
            {
                changed.Add((node, changedGpu));
            }
            else
            {
                changed.Add(cells.Keys.First(k => k.Node == node));
            }
        }
    }

    /// <summary>Resolves an open incident: it moves to the recently resolved list and its GPUs turn healthy.</summary>
    public void Resolve(string id)
    {
        IncidentSnapshot incident;
        lock (gate)
        {
            incident = open.Single(i => i.Id == id);
            open.Remove(incident);
            resolved.Insert(0, incident with { ResolvedAt = time.GetUtcNow() });
        }

        foreach (var key in cells.Keys.Where(k => k.Node == incident.Node && (incident.GpuIndex is null || k.Gpu == incident.GpuIndex)).ToList())
        {
            Set(key.Node, key.Gpu, GpuHealth.Healthy);
        }
    }

    public void Inject(InjectSimulatedFault fault)
    {
        if (fault.Kind == SimulatedFaultKind.Xid && fault.Gpu is { } gpu)
        {
            Set(fault.Node, gpu, GpuHealth.Critical);
            OpenIncident(fault.Node, gpu, Severity.Critical, fault.Xid == 79 ? "gpu_fell_off_bus" : "gpu_xid", "restart_node",
                $"Xid {fault.Xid} on {fault.Node} GPU {gpu}");
        }
    }

    private FleetFrame Frame(bool isSnapshot, IReadOnlyList<GpuCell> frameCells) => new()
    {
        Version = version,
        ControllerRun = Run,
        IsSnapshot = isSnapshot,
        Time = time.GetUtcNow(),
        Cells = frameCells,
        OpenIncidents = [.. open],
        RecentlyResolved = [.. resolved],
        Counts = new FleetCounts(
            cells.Values.Count(c => c.Health == GpuHealth.Healthy), cells.Values.Count(c => c.Health == GpuHealth.Warning),
            cells.Values.Count(c => c.Health == GpuHealth.High), cells.Values.Count(c => c.Health == GpuHealth.Critical),
            cells.Values.Count(c => c.Health == GpuHealth.Unknown), cells.Keys.Select(k => k.Node).Distinct().Count(), open.Count),
    };
}

internal sealed class FakeSnapshotResponder(FakeController controller) : IConsumer<GetFleetSnapshot>
{
    public async Task Consume(ConsumeContext<GetFleetSnapshot> context)
    {
        if (controller.Answering)
        {
            await context.RespondAsync(controller.Snapshot());
        }
    }
}

internal sealed class FakeFaultConsumer(FakeController controller) : IConsumer<InjectSimulatedFault>
{
    public Task Consume(ConsumeContext<InjectSimulatedFault> context)
    {
        controller.Inject(context.Message);
        return Task.CompletedTask;
    }
}

/// <summary>Publishes the fake controller's deltas, like the controller's frame loop (faster, to keep tests short).</summary>
internal sealed class FakeFramePublisher(FakeController controller, IBus bus) : BackgroundService
{
    public static readonly TimeSpan Period = TimeSpan.FromMilliseconds(250);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Period);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            if (controller.Answering && controller.NextDelta() is { } frame)
            {
                await bus.Publish(frame, stoppingToken);
            }
        }
    }
}
