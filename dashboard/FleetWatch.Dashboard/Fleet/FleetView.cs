using System.Buffers;
using System.Text.Json;
using FleetWatch.Contracts;
using Microsoft.Extensions.Options;

namespace FleetWatch.Dashboard.Fleet;

/// <summary>What the dashboard knows about the controller's stream.</summary>
public enum FleetViewStatus
{
    /// <summary>No snapshot yet: the controller has not answered <see cref="GetFleetSnapshot"/>.</summary>
    WaitingForController,
    Live,

    /// <summary>A delta did not follow the frame held; a new snapshot has been asked for.</summary>
    Resyncing,

    /// <summary>No frame for <see cref="DashboardOptions.StaleAfter"/>: the values shown may be old.</summary>
    Stale,
}

/// <summary>What <see cref="FleetView.Apply"/> did with a frame.</summary>
public enum FrameApplyResult
{
    Applied,

    /// <summary>Old or duplicate frame (same run, not newer), or a frame of an older controller run.</summary>
    Ignored,

    /// <summary>A delta that does not follow what is held: the caller must ask for a snapshot.</summary>
    NeedsSnapshot,
}

/// <summary>Whether a node or GPU is in the fleet as last seen.</summary>
public enum FleetMembership
{
    /// <summary>No snapshot yet, so nothing can be said.</summary>
    Unknown,
    NodeMissing,
    GpuMissing,
    Present,
}

/// <summary>One incident as the page lists it.</summary>
public sealed record IncidentView(
    string Id, string Node, int? Gpu, Severity Severity, string Category, string Action,
    DateTimeOffset OpenedAt, DateTimeOffset? ResolvedAt, string? Summary);

/// <summary>Where one live-feed client is: which layout it holds, the revision it has seen, the status it shows.</summary>
internal readonly record struct StreamCursor(string Layout, long Revision, FleetViewStatus Status);

/// <summary>One encoded push for a client: an SSE event name, its JSON data, and the cursor after it.</summary>
internal sealed record FleetUpdate(string EventName, byte[] Json, StreamCursor Cursor);

/// <summary>
/// The merged fleet state of one dashboard instance: the last controller snapshot plus every delta that followed it.
/// Thread-safe (one lock; frames arrive at most once a second and encodings are cached per revision) and bounded by
/// <see cref="DashboardOptions.MaxCells"/>, <see cref="DashboardOptions.MaxIncidents"/> and
/// <see cref="DashboardOptions.MaxResolved"/>. Cells keep a stable index order (rack, node, GPU) per layout, which the
/// live feed sends once in a snapshot so deltas can name cells by index.
/// </summary>
public sealed class FleetView
{
    private static readonly string[] HealthNames = ["unknown", "healthy", "warning", "high", "critical"];

    private readonly Lock gate = new();
    private readonly TimeProvider time;
    private readonly DashboardOptions options;

    // Layout ids carry a per-process nonce so a browser resuming with Last-Event-ID after a dashboard restart never
    // gets a delta against a layout it does not have.
    private readonly string layoutNonce = Guid.NewGuid().ToString("N")[..8];
    private long layoutNumber;

    private string? run;
    private long version;
    private DateTimeOffset frameTime;
    private DateTimeOffset lastFrameAt;
    private bool hasSnapshot;
    private bool resyncing;

    private string[] racks = [];
    private string[] nodeNames = [];
    private int[] nodeRack = [];
    private int[] cellNode = [];
    private int[] cellGpu = [];
    private string?[] cellUuid = [];
    private CellValues[] values = [];
    private long[] changedAt = [];
    private Dictionary<CellKey, int> index = [];
    private Dictionary<string, int> nodeIndex = new(StringComparer.Ordinal);
    private readonly int[] healthCounts = new int[HealthNames.Length];

    private long revision;
    private long incidentsRevision;
    private IncidentView[] incidents = [];
    private IncidentView[] resolved = [];
    private int openIncidentCount;
    private long droppedCells;

    private TaskCompletionSource changed = NewSignal();
    private (string Layout, long Revision, FleetViewStatus Status, byte[] Json)? snapshotCache;
    private (StreamCursor From, long Revision, FleetViewStatus Status, byte[] Json)? deltaCache;

    public FleetView(IOptions<DashboardOptions> options, TimeProvider time)
    {
        this.options = options.Value;
        this.time = time;
    }

    private string Layout => layoutNonce + "-" + layoutNumber.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public FleetViewStatus Status
    {
        get
        {
            lock (gate)
            {
                return ComputeStatus();
            }
        }
    }

    /// <summary>Controller frame version held (0 before the first snapshot).</summary>
    public long Version
    {
        get
        {
            lock (gate)
            {
                return version;
            }
        }
    }

    public string? ControllerRun
    {
        get
        {
            lock (gate)
            {
                return run;
            }
        }
    }

    public int CellCount
    {
        get
        {
            lock (gate)
            {
                return cellNode.Length;
            }
        }
    }

    /// <summary>Cells the controller sent beyond <see cref="DashboardOptions.MaxCells"/>, counted, never silent.</summary>
    public long DroppedCells => Interlocked.Read(ref droppedCells);

    /// <summary>Counts of the cells held, by health, and the open incidents the controller reported.</summary>
    public FleetCounts Counts
    {
        get
        {
            lock (gate)
            {
                return CurrentCounts();
            }
        }
    }

    public IReadOnlyList<IncidentView> OpenIncidents
    {
        get
        {
            lock (gate)
            {
                return incidents;
            }
        }
    }

    /// <summary>The health of one GPU as held, or null if the view has no such cell.</summary>
    public GpuHealth? HealthOf(string node, int gpu)
    {
        lock (gate)
        {
            return index.TryGetValue(new CellKey(node, gpu), out var i) ? values[i].Health : null;
        }
    }

    public FleetMembership Contains(string node, int? gpu)
    {
        lock (gate)
        {
            if (!hasSnapshot)
            {
                return FleetMembership.Unknown;
            }

            if (!nodeIndex.ContainsKey(node))
            {
                return FleetMembership.NodeMissing;
            }

            return gpu is null || index.ContainsKey(new CellKey(node, gpu.Value)) ? FleetMembership.Present : FleetMembership.GpuMissing;
        }
    }

    /// <summary>
    /// Merges one frame. A snapshot replaces what is held unless it is older than it (same run, not a newer version) or
    /// comes from an older controller run (earlier frame time). A delta applies only when its version is exactly the
    /// next one of the same run; any other delta is ignored when old and otherwise answered with
    /// <see cref="FrameApplyResult.NeedsSnapshot"/>.
    /// </summary>
    public FrameApplyResult Apply(FleetFrame frame)
    {
        ArgumentNullException.ThrowIfNull(frame);
        TaskCompletionSource? signal;
        FrameApplyResult result;
        lock (gate)
        {
            var sameRun = string.Equals(frame.ControllerRun, run, StringComparison.Ordinal);
            if (frame.IsSnapshot)
            {
                if (hasSnapshot && sameRun && frame.Version <= version)
                {
                    // Nothing newer than what is held, which is therefore complete: a pending resync is over.
                    result = FrameApplyResult.Ignored;
                    signal = resyncing ? MarkChanged() : null;
                    resyncing = false;
                    lastFrameAt = time.GetUtcNow();
                }
                else if (hasSnapshot && !sameRun && frame.Time < frameTime)
                {
                    result = FrameApplyResult.Ignored;
                    signal = null;
                }
                else
                {
                    ApplySnapshot(frame);
                    result = FrameApplyResult.Applied;
                    signal = MarkChanged();
                }
            }
            else if (!hasSnapshot)
            {
                result = FrameApplyResult.NeedsSnapshot;
                signal = null;
            }
            else if (!sameRun)
            {
                if (frame.Time < frameTime)
                {
                    result = FrameApplyResult.Ignored;
                    signal = null;
                }
                else
                {
                    result = FrameApplyResult.NeedsSnapshot;
                    signal = resyncing ? null : MarkChanged();
                    resyncing = true;
                }
            }
            else if (frame.Version <= version)
            {
                result = FrameApplyResult.Ignored;
                signal = null;
            }
            else if (frame.Version != version + 1)
            {
                result = FrameApplyResult.NeedsSnapshot;
                signal = resyncing ? null : MarkChanged();
                resyncing = true;
            }
            else
            {
                ApplyDelta(frame);
                result = FrameApplyResult.Applied;
                signal = MarkChanged();
            }
        }

        signal?.TrySetResult();
        return result;
    }

    /// <summary>Completes when anything visible changed after <paramref name="afterRevision"/>.</summary>
    internal Task WaitForChangeAsync(long afterRevision, CancellationToken cancellationToken)
    {
        Task task;
        lock (gate)
        {
            task = revision > afterRevision ? Task.CompletedTask : changed.Task;
        }

        return task.WaitAsync(cancellationToken);
    }

    /// <summary>
    /// What a client at <paramref name="cursor"/> needs next: a snapshot (no cursor, or another layout), a delta of the
    /// cells and lists changed since its revision, or null when it is up to date.
    /// </summary>
    internal FleetUpdate? GetUpdate(StreamCursor? cursor)
    {
        lock (gate)
        {
            var status = ComputeStatus();
            var layout = Layout;
            if (cursor is not { } from || from.Layout != layout || from.Revision > revision)
            {
                return new FleetUpdate("snapshot", SnapshotJson(layout, status), new StreamCursor(layout, revision, status));
            }

            if (from.Revision == revision && from.Status == status)
            {
                return null;
            }

            if (deltaCache is not { } cached || cached.From != from || cached.Revision != revision || cached.Status != status)
            {
                cached = (from, revision, status, WriteDelta(from.Revision, status));
                deltaCache = cached;
            }

            return new FleetUpdate("delta", cached.Json, new StreamCursor(layout, revision, status));
        }
    }

    /// <summary>The whole view in the compact snapshot encoding (also the body of <c>GET /api/fleet</c>).</summary>
    internal byte[] SnapshotJson()
    {
        lock (gate)
        {
            return SnapshotJson(Layout, ComputeStatus());
        }
    }

    private byte[] SnapshotJson(string layout, FleetViewStatus status)
    {
        if (snapshotCache is not { } cached || cached.Layout != layout || cached.Revision != revision || cached.Status != status)
        {
            cached = (layout, revision, status, WriteSnapshot(layout, status));
            snapshotCache = cached;
        }

        return cached.Json;
    }

    private FleetViewStatus ComputeStatus()
    {
        if (!hasSnapshot)
        {
            return FleetViewStatus.WaitingForController;
        }

        if (resyncing)
        {
            return FleetViewStatus.Resyncing;
        }

        return time.GetUtcNow() - lastFrameAt > options.StaleAfter ? FleetViewStatus.Stale : FleetViewStatus.Live;
    }

    private TaskCompletionSource MarkChanged()
    {
        revision++;
        var old = changed;
        changed = NewSignal();
        return old;
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private void ApplySnapshot(FleetFrame frame)
    {
        var next = revision + 1;
        var incoming = new Dictionary<CellKey, GpuCell>(frame.Cells.Count);
        foreach (var cell in frame.Cells)
        {
            incoming[new CellKey(cell.Node, cell.Gpu)] = cell;
        }

        var sameLayout = incoming.Count == cellNode.Length;
        if (sameLayout)
        {
            foreach (var (key, cell) in incoming)
            {
                if (!index.TryGetValue(key, out var i) || !SameIdentity(i, cell))
                {
                    sameLayout = false;
                    break;
                }
            }
        }

        if (sameLayout)
        {
            foreach (var (key, cell) in incoming)
            {
                UpdateValues(index[key], CellValues.Of(cell), next);
            }
        }
        else
        {
            Rebuild(incoming.Values, next);
        }

        ReplaceIncidents(frame.OpenIncidents, frame.RecentlyResolved, replaceResolved: true, next);
        openIncidentCount = Math.Max(frame.Counts.OpenIncidents, frame.OpenIncidents.Count);
        run = frame.ControllerRun;
        version = frame.Version;
        frameTime = frame.Time;
        lastFrameAt = time.GetUtcNow();
        hasSnapshot = true;
        resyncing = false;
    }

    private void ApplyDelta(FleetFrame frame)
    {
        var next = revision + 1;
        List<GpuCell>? reshaped = null;
        foreach (var cell in frame.Cells)
        {
            if (index.TryGetValue(new CellKey(cell.Node, cell.Gpu), out var i) && SameIdentity(i, cell))
            {
                UpdateValues(i, CellValues.Of(cell), next);
            }
            else
            {
                (reshaped ??= []).Add(cell);
            }
        }

        if (reshaped is not null)
        {
            // A new GPU, or a GPU whose UUID or rack changed (a swap): rebuild the layout so order stays rack, node, GPU.
            var merged = new Dictionary<CellKey, GpuCell>(cellNode.Length + reshaped.Count);
            for (var i = 0; i < cellNode.Length; i++)
            {
                merged[new CellKey(nodeNames[cellNode[i]], cellGpu[i])] = ToCell(i);
            }

            foreach (var cell in reshaped)
            {
                merged[new CellKey(cell.Node, cell.Gpu)] = cell;
            }

            Rebuild(merged.Values, next);
        }

        // A delta carries the full open list (FleetFrame docs); an empty resolved list means "unchanged".
        ReplaceIncidents(frame.OpenIncidents, frame.RecentlyResolved, replaceResolved: frame.RecentlyResolved.Count > 0, next);
        openIncidentCount = Math.Max(frame.Counts.OpenIncidents, frame.OpenIncidents.Count);
        version = frame.Version;
        frameTime = frame.Time;
        lastFrameAt = time.GetUtcNow();
    }

    private bool SameIdentity(int i, GpuCell cell) =>
        string.Equals(cellUuid[i], cell.Uuid, StringComparison.Ordinal)
        && string.Equals(racks[nodeRack[cellNode[i]]], cell.Rack ?? string.Empty, StringComparison.Ordinal);

    private GpuCell ToCell(int i) => new()
    {
        Node = nodeNames[cellNode[i]],
        Gpu = cellGpu[i],
        Health = values[i].Health,
        Uuid = cellUuid[i],
        Rack = racks[nodeRack[cellNode[i]]] is { Length: > 0 } rack ? rack : null,
        TemperatureC = values[i].TemperatureC,
        PowerW = values[i].PowerW,
        UtilizationPct = values[i].UtilizationPct,
    };

    private void UpdateValues(int i, CellValues next, long atRevision)
    {
        if (values[i] == next)
        {
            return;
        }

        healthCounts[(int)values[i].Health]--;
        healthCounts[(int)next.Health]++;
        values[i] = next;
        changedAt[i] = atRevision;
    }

    private void Rebuild(IEnumerable<GpuCell> cells, long atRevision)
    {
        // Order: rack (unracked last), node, GPU, so a rack-wide fault shows as one block (research
        // dashboard-alerting-anchors.md section 1.6, "Layout tip").
        var ordered = cells
            .OrderBy(c => string.IsNullOrEmpty(c.Rack) ? 1 : 0)
            .ThenBy(c => c.Rack ?? string.Empty, NaturalComparer.Instance)
            .ThenBy(c => c.Node, NaturalComparer.Instance)
            .ThenBy(c => c.Gpu)
            .ToList();
        if (ordered.Count > options.MaxCells)
        {
            Interlocked.Add(ref droppedCells, ordered.Count - options.MaxCells);
            ordered.RemoveRange(options.MaxCells, ordered.Count - options.MaxCells);
        }

        var rackIds = new Dictionary<string, int>(StringComparer.Ordinal);
        var rackList = new List<string>();
        var nodes = new Dictionary<string, int>(StringComparer.Ordinal);
        var nodeList = new List<string>();
        var nodeRackList = new List<int>();
        var n = ordered.Count;
        cellNode = new int[n];
        cellGpu = new int[n];
        cellUuid = new string?[n];
        values = new CellValues[n];
        changedAt = new long[n];
        index = new Dictionary<CellKey, int>(n);
        Array.Clear(healthCounts);
        for (var i = 0; i < n; i++)
        {
            var cell = ordered[i];
            if (!nodes.TryGetValue(cell.Node, out var node))
            {
                var rackName = cell.Rack ?? string.Empty;
                if (!rackIds.TryGetValue(rackName, out var rack))
                {
                    rack = rackList.Count;
                    rackIds.Add(rackName, rack);
                    rackList.Add(rackName);
                }

                node = nodeList.Count;
                nodes.Add(cell.Node, node);
                nodeList.Add(cell.Node);
                nodeRackList.Add(rack);
            }

            cellNode[i] = node;
            cellGpu[i] = cell.Gpu;
            cellUuid[i] = cell.Uuid;
            values[i] = CellValues.Of(cell);
            changedAt[i] = atRevision;
            index[new CellKey(cell.Node, cell.Gpu)] = i;
            healthCounts[(int)values[i].Health]++;
        }

        racks = [.. rackList];
        nodeNames = [.. nodeList];
        nodeRack = [.. nodeRackList];
        nodeIndex = nodes;
        layoutNumber++;
    }

    private void ReplaceIncidents(IReadOnlyList<IncidentSnapshot> open, IReadOnlyList<IncidentSnapshot> recent, bool replaceResolved, long atRevision)
    {
        // Worst first, then oldest first: what an operator must look at leads the list.
        var nextOpen = open
            .OrderByDescending(i => i.Severity)
            .ThenBy(i => i.OpenedAt)
            .Take(options.MaxIncidents)
            .Select(ToView)
            .ToArray();
        var nextResolved = replaceResolved ? recent.Take(options.MaxResolved).Select(ToView).ToArray() : resolved;
        if (!nextOpen.SequenceEqual(incidents) || !nextResolved.SequenceEqual(resolved))
        {
            incidents = nextOpen;
            resolved = nextResolved;
            incidentsRevision = atRevision;
        }
    }

    private static IncidentView ToView(IncidentSnapshot i) => new(
        i.Id, i.Node, i.GpuIndex, i.Severity, i.Category, i.Action, i.OpenedAt, i.ResolvedAt,
        i.Findings.OrderByDescending(f => f.Severity).FirstOrDefault()?.Message);

    private FleetCounts CurrentCounts() => new(
        healthCounts[(int)GpuHealth.Healthy], healthCounts[(int)GpuHealth.Warning], healthCounts[(int)GpuHealth.High],
        healthCounts[(int)GpuHealth.Critical], healthCounts[(int)GpuHealth.Unknown], nodeNames.Length, openIncidentCount);

    private byte[] WriteSnapshot(string layout, FleetViewStatus status)
    {
        var buffer = new ArrayBufferWriter<byte>(256 + (cellNode.Length * 24));
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            WriteHeader(json, layout, status);
            WriteStrings(json, "healthNames", HealthNames);
            WriteStrings(json, "racks", racks);

            // [name, rackIndex] per node.
            json.WriteStartArray("nodes");
            for (var n = 0; n < nodeNames.Length; n++)
            {
                json.WriteStartArray();
                json.WriteStringValue(nodeNames[n]);
                json.WriteNumberValue(nodeRack[n]);
                json.WriteEndArray();
            }

            json.WriteEndArray();

            // [nodeIndex, gpu, uuid, health, temperatureC, powerW, utilizationPct] per cell; the position is the cell index.
            json.WriteStartArray("cells");
            for (var i = 0; i < cellNode.Length; i++)
            {
                json.WriteStartArray();
                json.WriteNumberValue(cellNode[i]);
                json.WriteNumberValue(cellGpu[i]);
                if (cellUuid[i] is { } uuid)
                {
                    json.WriteStringValue(uuid);
                }
                else
                {
                    json.WriteNullValue();
                }

                WriteValues(json, values[i]);
                json.WriteEndArray();
            }

            json.WriteEndArray();
            WriteIncidents(json);
            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private byte[] WriteDelta(long since, FleetViewStatus status)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            WriteHeader(json, Layout, status);

            // [cellIndex, health, temperatureC, powerW, utilizationPct] per changed cell.
            json.WriteStartArray("cells");
            for (var i = 0; i < changedAt.Length; i++)
            {
                if (changedAt[i] > since)
                {
                    json.WriteStartArray();
                    json.WriteNumberValue(i);
                    WriteValues(json, values[i]);
                    json.WriteEndArray();
                }
            }

            json.WriteEndArray();
            if (incidentsRevision > since)
            {
                WriteIncidents(json);
            }

            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private void WriteHeader(Utf8JsonWriter json, string layout, FleetViewStatus status)
    {
        json.WriteString("status", StatusName(status));
        json.WriteString("layout", layout);
        json.WriteNumber("rev", revision);
        if (run is not null)
        {
            json.WriteString("run", run);
            json.WriteNumber("version", version);
            json.WriteString("time", frameTime);
        }

        var counts = CurrentCounts();
        json.WriteStartObject("counts");
        json.WriteNumber("healthy", counts.Healthy);
        json.WriteNumber("warning", counts.Warning);
        json.WriteNumber("high", counts.High);
        json.WriteNumber("critical", counts.Critical);
        json.WriteNumber("unknown", counts.Unknown);
        json.WriteNumber("nodes", counts.Nodes);
        json.WriteNumber("gpus", cellNode.Length);
        json.WriteNumber("openIncidents", counts.OpenIncidents);
        json.WriteEndObject();
    }

    private static void WriteStrings(Utf8JsonWriter json, string name, string[] items)
    {
        json.WriteStartArray(name);
        foreach (var item in items)
        {
            json.WriteStringValue(item);
        }

        json.WriteEndArray();
    }

    private static void WriteValues(Utf8JsonWriter json, CellValues v)
    {
        json.WriteNumberValue((int)v.Health);
        WriteNullable(json, v.TemperatureC);
        WriteNullable(json, v.PowerW);
        WriteNullable(json, v.UtilizationPct);
    }

    private static void WriteNullable(Utf8JsonWriter json, int? value)
    {
        if (value is { } v)
        {
            json.WriteNumberValue(v);
        }
        else
        {
            json.WriteNullValue();
        }
    }

    private void WriteIncidents(Utf8JsonWriter json)
    {
        json.WriteStartArray("incidents");
        foreach (var incident in incidents)
        {
            WriteIncident(json, incident);
        }

        json.WriteEndArray();
        json.WriteStartArray("resolved");
        foreach (var incident in resolved)
        {
            WriteIncident(json, incident);
        }

        json.WriteEndArray();
    }

    private static void WriteIncident(Utf8JsonWriter json, IncidentView incident)
    {
        json.WriteStartObject();
        json.WriteString("id", incident.Id);
        json.WriteString("node", incident.Node);
        if (incident.Gpu is { } gpu)
        {
            json.WriteNumber("gpu", gpu);
        }
        else
        {
            json.WriteNull("gpu");
        }

        json.WriteString("severity", SeverityName(incident.Severity));
        json.WriteString("category", incident.Category);
        json.WriteString("action", incident.Action);
        json.WriteString("openedAt", incident.OpenedAt);
        if (incident.ResolvedAt is { } resolvedAt)
        {
            json.WriteString("resolvedAt", resolvedAt);
        }

        if (incident.Summary is { } summary)
        {
            json.WriteString("summary", summary);
        }

        json.WriteEndObject();
    }

    internal static string StatusName(FleetViewStatus status) => status switch
    {
        FleetViewStatus.WaitingForController => "waiting",
        FleetViewStatus.Live => "live",
        FleetViewStatus.Resyncing => "resyncing",
        _ => "stale",
    };

    private static string SeverityName(Severity severity) => severity switch
    {
        Severity.Critical => "critical",
        Severity.High => "high",
        Severity.Warning => "warning",
        _ => "info",
    };

    private readonly record struct CellKey(string Node, int Gpu);

    private readonly record struct CellValues(GpuHealth Health, short? TemperatureC, short? PowerW, byte? UtilizationPct)
    {
        // An out-of-range health byte from a newer controller is shown as unknown, never as healthy.
        public static CellValues Of(GpuCell cell) => new(
            Enum.IsDefined(cell.Health) ? cell.Health : GpuHealth.Unknown, cell.TemperatureC, cell.PowerW, cell.UtilizationPct);
    }
}
