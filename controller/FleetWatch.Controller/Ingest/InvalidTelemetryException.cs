namespace FleetWatch.Controller.Ingest;

/// <summary>A message that parsed but makes no sense. It goes to the error queue, never retried, never crashes the consumer.</summary>
public sealed class InvalidTelemetryException(string message) : Exception(message);
