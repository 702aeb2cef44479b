namespace FleetWatch.Cli;

/// <summary>Verb dispatch for <c>./fleetwatch</c>.</summary>
public static class Verbs
{
    private const string Usage = """
        usage: fleetwatch VERB [ARGS...]

        Roles:
          all-in-one   controller + dashboard + simulated fleet in one process (in-memory bus)
          agent        node agent (simulated GPUs, or real sources when configured)
          controller   controller (detectors, incidents, alerts, telemetry sink)
          dashboard    operator dashboard (fleet state from the controller over the bus)

        Offline tools (FORMATS.md):
          xid          Xid / SXid / fallen-off-bus events from a kernel log as JSON Lines (--input FILE|-)
          stragglers   straggler and hang analysis of step timings (--trace FILE [--end-ms N] [--output FILE])
          replay       a fault scenario through the real detectors in virtual time (--scenario FILE --output FILE)
          rebalance    MoE expert placement (--input FILE --output FILE | --input-dir DIR --output-dir DIR)

        Tools:
          nvml-probe   read every GPU once through the agent's NVML source and print JSON [--library PATH]
          job-sim      a simulated training job against a controller's API (--controller URL; see job-sim --help)

        Every role takes ASP.NET Core configuration: --urls, --FleetWatch:Section:Key=value, appsettings files
        through --config FILE, environment variables FleetWatch__Section__Key.
        """;

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0 || args[0] is "--help" or "-h" or "help")
        {
            await stdout.WriteLineAsync(Usage);
            return args.Length == 0 ? 2 : 0;
        }

        var rest = args[1..];
        switch (args[0])
        {
            case "all-in-one":
                return await Hosting.FleetWatchHost.RunAsync(Hosting.Role.AllInOne, rest, stdout, stderr);
            case "agent":
                return await Hosting.FleetWatchHost.RunAsync(Hosting.Role.Agent, rest, stdout, stderr);
            case "controller":
                return await Hosting.FleetWatchHost.RunAsync(Hosting.Role.Controller, rest, stdout, stderr);
            case "dashboard":
                return await Hosting.FleetWatchHost.RunAsync(Hosting.Role.Dashboard, rest, stdout, stderr);
            case "xid":
                return await FleetWatch.Agent.Sources.Kmsg.XidTool.RunAsync(rest, stdout, stderr);
            case "stragglers":
                return await FleetWatch.Controller.Stragglers.StragglerTool.RunAsync(rest, stdout, stderr);
            case "rebalance":
                return await FleetWatch.Controller.Remediation.Rebalancing.RebalanceTool.RunAsync(rest, stdout, stderr);
            case "replay":
                return await FleetWatch.Controller.Replay.ReplayTool.RunAsync(rest, stdout, stderr);
            case "nvml-probe":
                return await NvmlProbe.RunAsync(rest, stdout, stderr);
            case "job-sim":
                return await FleetWatch.Controller.Remediation.JobSimulator.JobSimTool.RunAsync(rest, stdout, stderr);
            default:
                await stderr.WriteLineAsync($"fleetwatch: unknown verb '{args[0]}' (see fleetwatch --help)");
                return 2;
        }
    }
}
