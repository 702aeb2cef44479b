using System.Diagnostics.Metrics;

namespace FleetWatch.Controller.Fleet;

/// <summary>Ingest counters of the controller.</summary>
public sealed class FleetMetrics
{
    private long _accepted;
    private long _duplicates;
    private long _stale;
    private long _xids;

    public FleetMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create("FleetWatch.Controller");
        meter.CreateObservableCounter("fleetwatch_samples_accepted_total", () => Interlocked.Read(ref _accepted));
        meter.CreateObservableCounter("fleetwatch_samples_duplicate_total", () => Interlocked.Read(ref _duplicates));
        meter.CreateObservableCounter("fleetwatch_samples_stale_total", () => Interlocked.Read(ref _stale));
        meter.CreateObservableCounter("fleetwatch_xids_total", () => Interlocked.Read(ref _xids));
    }

    public long Accepted => Interlocked.Read(ref _accepted);
    public long Duplicates => Interlocked.Read(ref _duplicates);
    public long Stale => Interlocked.Read(ref _stale);
    public long Xids => Interlocked.Read(ref _xids);

    public void OnAccepted() => Interlocked.Increment(ref _accepted);
    public void OnDuplicate() => Interlocked.Increment(ref _duplicates);
    public void OnStale() => Interlocked.Increment(ref _stale);
    public void OnXid() => Interlocked.Increment(ref _xids);
}
