using System.Diagnostics.Metrics;

namespace FleetWatch.Controller.Alerting;

/// <summary>Delivery counters, exported as metrics and shown on the dashboard.</summary>
public sealed class AlertMetrics
{
    private long _delivered;
    private long _givenUp;
    private long _attempts;

    public AlertMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create("FleetWatch.Controller.Alerting");
        meter.CreateObservableCounter("fleetwatch_alerts_delivered_total", () => Interlocked.Read(ref _delivered));
        meter.CreateObservableCounter("fleetwatch_alerts_given_up_total", () => Interlocked.Read(ref _givenUp));
        meter.CreateObservableCounter("fleetwatch_alert_attempts_total", () => Interlocked.Read(ref _attempts));
    }

    public long Delivered => Interlocked.Read(ref _delivered);
    public long GivenUp => Interlocked.Read(ref _givenUp);
    public long Attempts => Interlocked.Read(ref _attempts);

    public void OnDelivered() => Interlocked.Increment(ref _delivered);
    public void OnGivenUp() => Interlocked.Increment(ref _givenUp);
    public void OnAttempt() => Interlocked.Increment(ref _attempts);
}
