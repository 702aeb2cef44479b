using FleetWatch.Agent.Metrics;
using FleetWatch.Agent.Sources.Steps;
using FleetWatch.Common;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace FleetWatch.Agent.Hosting;

/// <summary>
/// The agent on a real GPU node: NVML, the kernel log, InfiniBand sysfs and the step endpoint, publishing to RabbitMQ
/// through <see cref="Publishing.RabbitMqPublisher"/> behind the disk spool, with <c>/metrics</c>, <c>/healthz/live</c> and
/// <c>/healthz/ready</c> on its HTTP port. The same host runs as the Native AOT <c>fleetwatch-agent</c> executable (what the
/// systemd unit and the DaemonSet start) and as <c>fleetwatch agent</c> without a simulated fleet; tests build it here.
/// </summary>
public static class AgentNodeHost
{
    /// <summary>Builds the host. <paramref name="configure"/> lets tests add configuration or replace services.</summary>
    /// <exception cref="OptionsValidationException">A setting is invalid (the message names the key and the value).</exception>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        // The slim builder: Kestrel on HTTP, configuration, console logging, no MVC, no reflection-based extras (Native AOT).
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args, ApplicationName = "fleetwatch-agent" });
        ConfigFileArgument.Apply(builder.Configuration, args);
        // Type=notify under systemd (READY=1 once started, STOPPING=1 on shutdown); a no-op elsewhere.
        builder.Services.AddSystemd();
        configure?.Invoke(builder);
        var configuration = builder.Configuration;
        RefuseOtherModes(configuration);
        builder.Services
            .AddAgentCore(configuration)
            .AddAgentBroker(configuration)
            .AddStepEndpoint(configuration)
            .AddHardwareSources(configuration);
        builder.Services.AddHealthChecks();
        var app = builder.Build();
        app.MapHealthChecks("/healthz"); // the process is up; /healthz/ready says whether it samples
        app.MapAgentEndpoints();
        return app;
    }

    /// <summary>Runs the host until SIGTERM; a configuration error is one line on <paramref name="stderr"/> and exit code 2.</summary>
    public static Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, string name = "fleetwatch-agent") =>
        HostRunner.RunAsync(() => Build(args), name, app =>
        {
            foreach (var url in app.Urls)
            {
                stdout.WriteLine($"FleetWatch Agent listening on {url}");
            }
        }, stderr);

    /// <summary>
    /// The node agent reads hardware and publishes to RabbitMQ, nothing else. A file meant for the simulated fleet or the
    /// in-memory bus would otherwise start an agent that reads nothing or sends nowhere: refused, naming the key.
    /// </summary>
    private static void RefuseOtherModes(IConfiguration configuration)
    {
        var errors = new List<string>();
        if (configuration.GetValue<bool>("FleetWatch:Simulation:Enabled"))
        {
            errors.Add("FleetWatch:Simulation:Enabled = 'true': the node agent reads real hardware; the simulated fleet runs in `fleetwatch agent` or `fleetwatch all-in-one`");
        }

        if (configuration["FleetWatch:Bus:Transport"] is { } transport && !transport.Equals("RabbitMq", StringComparison.OrdinalIgnoreCase))
        {
            errors.Add($"FleetWatch:Bus:Transport = '{transport}': the node agent publishes to RabbitMQ (RabbitMq); the in-memory bus exists only inside `fleetwatch all-in-one`");
        }

        if (errors.Count > 0)
        {
            throw new OptionsValidationException("FleetWatch", typeof(AgentNodeHost), errors);
        }
    }
}
