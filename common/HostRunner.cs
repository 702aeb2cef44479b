// Linked into every product project (see Directory.Build.targets): how every FleetWatch executable runs its host.
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Options;

namespace FleetWatch.Common;

/// <summary>
/// Builds and runs a host until SIGTERM. A configuration error, whether found while building or by the validators and the
/// binder at start, is one line on stderr naming the key and the value, and exit code 2 — never a stack trace.
/// </summary>
internal static class HostRunner
{
    public static async Task<int> RunAsync(Func<WebApplication> build, string name, Action<WebApplication> started, TextWriter stderr)
    {
        WebApplication app;
        try
        {
            app = build();
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or FileNotFoundException or OptionsValidationException or FormatException)
        {
            await stderr.WriteLineAsync($"{name}: configuration error: {ex.Message}").ConfigureAwait(false);
            return 2;
        }

        app.Lifetime.ApplicationStarted.Register(() => started(app));
        try
        {
            await app.RunAsync().ConfigureAwait(false);
            return 0;
        }
        catch (Exception ex) when (ex is OptionsValidationException
            || (ex is InvalidOperationException && ex.Message.StartsWith("Failed to convert configuration value", StringComparison.Ordinal)))
        {
            // Validation at start, or a value the binder cannot convert ("Failed to convert configuration value at 'KEY' ...").
            await stderr.WriteLineAsync($"{name}: configuration error: {ex.Message}").ConfigureAwait(false);
            return 2;
        }
        finally
        {
            await app.DisposeAsync().ConfigureAwait(false);
        }
    }
}
