using System.Threading.Channels;
using FleetWatch.Contracts;
using InfluxDB.Client;
using InfluxDB.Client.Writes;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FleetWatch.Controller.Telemetry;

/// <summary>
/// Writes samples to an InfluxDB v2 write endpoint through InfluxDB.Client, batched and gzipped. The buffer is a
/// bounded channel that drops the oldest sample when full (STYLE.md rule 8); every drop, written point and
/// failed batch is counted — never silent.
/// </summary>
public sealed partial class InfluxTelemetrySink : BackgroundService
{
    private readonly TelemetrySinkOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<InfluxTelemetrySink> _logger;
    private readonly Channel<NodeSample> _buffer;
    private long _dropped;
    private long _written;
    private long _failedBatches;
    private long _enqueued;

    public InfluxTelemetrySink(IOptions<TelemetrySinkOptions> options, TimeProvider time, ILogger<InfluxTelemetrySink> logger)
    {
        _options = options.Value;
        _time = time;
        _logger = logger;
        _buffer = Channel.CreateBounded<NodeSample>(
            new BoundedChannelOptions(_options.BufferSamples) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true },
            _ => Interlocked.Increment(ref _dropped));
    }

    public long Dropped => Interlocked.Read(ref _dropped);
    public long PointsWritten => Interlocked.Read(ref _written);
    public long FailedBatches => Interlocked.Read(ref _failedBatches);
    public long Enqueued => Interlocked.Read(ref _enqueued);

    public void Enqueue(NodeSample sample)
    {
        if (_options.Enabled && _buffer.Writer.TryWrite(sample))
        {
            Interlocked.Increment(ref _enqueued);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_options.Enabled)
        {
            return;
        }

        var clientOptions = new InfluxDBClientOptions(_options.Url) { Token = _options.Token, Org = _options.Organization, Bucket = _options.Bucket };
        using var client = new InfluxDBClient(clientOptions);
        if (_options.Gzip)
        {
            client.EnableGzip();
        }

        var writer = client.GetWriteApiAsync();
        var batch = new List<PointData>(_options.BatchPoints);
        LogStarted(_logger, _options.Bucket);
        var reader = _buffer.Reader;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                // Wait for the first sample, then gather until the batch is full or the flush interval passes.
                if (!await reader.WaitToReadAsync(stoppingToken).ConfigureAwait(false))
                {
                    break;
                }

                var deadline = _time.GetUtcNow() + _options.FlushInterval;
                while (batch.Count < _options.BatchPoints)
                {
                    while (batch.Count < _options.BatchPoints && reader.TryRead(out var sample))
                    {
                        SamplePoints.Append(sample, batch);
                    }

                    var left = deadline - _time.GetUtcNow();
                    if (batch.Count >= _options.BatchPoints || left <= TimeSpan.Zero)
                    {
                        break;
                    }

                    using var wait = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                    wait.CancelAfter(left);
                    try
                    {
                        await reader.WaitToReadAsync(wait.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
                    {
                        break;
                    }
                }

                await WriteWithRetryAsync(writer, batch, stoppingToken).ConfigureAwait(false);
                batch.Clear();
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
        }
    }

    private async Task WriteWithRetryAsync(WriteApiAsync writer, List<PointData> batch, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await writer.WritePointsAsync(batch, _options.Bucket, _options.Organization, ct).ConfigureAwait(false);
                Interlocked.Add(ref _written, batch.Count);
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                if (attempt >= _options.MaxAttempts)
                {
                    Interlocked.Increment(ref _failedBatches);
                    LogBatchDropped(_logger, batch.Count, attempt, ex.Message);
                    return;
                }

                LogWriteRetry(_logger, attempt, ex.Message);
                await Task.Delay(TimeSpan.FromMilliseconds(200 * Math.Pow(2, attempt)), _time, ct).ConfigureAwait(false);
            }
        }
    }

    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "Telemetry sink writing to bucket {Bucket}")]
    private static partial void LogStarted(ILogger logger, string bucket);

    [LoggerMessage(EventId = 401, Level = LogLevel.Warning, Message = "Telemetry write attempt {Attempt} failed: {Error}")]
    private static partial void LogWriteRetry(ILogger logger, int attempt, string error);

    [LoggerMessage(EventId = 402, Level = LogLevel.Error, Message = "Telemetry batch of {Points} points dropped after {Attempts} attempts: {Error}")]
    private static partial void LogBatchDropped(ILogger logger, int points, int attempts, string error);
}
