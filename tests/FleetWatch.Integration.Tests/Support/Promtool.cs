using System.Diagnostics;

namespace FleetWatch.Integration.Tests.Support;

/// <summary>Debian's promtool (package prometheus, installed by scripts/test.sh) as the judge of an exposition.</summary>
public static class Promtool
{
    /// <summary>Fails unless <c>promtool check metrics</c> accepts the text without a single finding.</summary>
    public static async Task CheckMetricsAsync(string exposition)
    {
        Assert.True(File.Exists("/usr/bin/promtool"), "/usr/bin/promtool is missing: scripts/test.sh installs the Debian package 'prometheus'");
        var info = new ProcessStartInfo("/usr/bin/promtool", ["check", "metrics"]) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(info)!;
        await p.StandardInput.WriteAsync(exposition);
        p.StandardInput.Close();
        var output = await p.StandardOutput.ReadToEndAsync() + await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0 && output.Trim().Length == 0, $"promtool check metrics: exit {p.ExitCode}\n{output}\n--- input ---\n{exposition}");
    }
}
