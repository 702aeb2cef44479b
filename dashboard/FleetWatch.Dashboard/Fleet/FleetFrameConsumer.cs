using FleetWatch.Contracts;
using MassTransit;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Dashboard.Fleet;

/// <summary>
/// Feeds controller frames into <see cref="FleetView"/>. Runs on a temporary endpoint of its own per dashboard instance
/// (so every dashboard gets every frame) with one message at a time (so deltas apply in order).
/// </summary>
public sealed partial class FleetFrameConsumer(FleetView view, FleetSnapshotLoader loader, ILogger<FleetFrameConsumer> logger)
    : IConsumer<FleetFrame>
{
    public Task Consume(ConsumeContext<FleetFrame> context)
    {
        var frame = context.Message;
        var dropped = view.DroppedCells;
        if (view.Apply(frame) == FrameApplyResult.NeedsSnapshot)
        {
            LogGap(frame.ControllerRun, frame.Version, view.ControllerRun, view.Version);
            loader.RequestSnapshot();
        }

        if (view.DroppedCells > dropped)
        {
            LogCellsDropped(view.DroppedCells - dropped, view.DroppedCells);
        }

        return Task.CompletedTask;
    }

    [LoggerMessage(EventId = 2010, Level = LogLevel.Information,
        Message = "Fleet delta {ControllerRun} v{Version} does not follow {HeldRun} v{HeldVersion}; requesting a snapshot")]
    private partial void LogGap(string controllerRun, long version, string? heldRun, long heldVersion);

    [LoggerMessage(EventId = 2011, Level = LogLevel.Warning,
        Message = "Dropped {Dropped} GPU cells over FleetWatch:Dashboard:MaxCells ({Total} so far)")]
    private partial void LogCellsDropped(long dropped, long total);
}
