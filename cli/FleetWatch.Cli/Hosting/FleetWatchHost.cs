using FleetWatch.Agent;
using FleetWatch.Agent.Hosting;
using FleetWatch.Agent.Metrics;
using FleetWatch.Agent.Sources.Steps;
using FleetWatch.Controller.Stragglers.Live;
using FleetWatch.Controller;
using FleetWatch.Controller.Alerting;
using FleetWatch.Controller.Api;
using FleetWatch.Controller.Detection;
using FleetWatch.Controller.Incidents;
using FleetWatch.Controller.Remediation;
using FleetWatch.Controller.Remediation.Scheduling;
using FleetWatch.Dashboard.Security;
using FleetWatch.Dashboard;
using FleetWatch.Common;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FleetWatch.Cli.Hosting;

/// <summary>The roles FleetWatch runs as. All share one code path; only configuration differs.</summary>
public enum Role
{
    AllInOne,
    Agent,
    Controller,
    Dashboard,
}

/// <summary>Builds the host of a role. Tests build the real host through here (STYLE.md rule 2).</summary>
public static class FleetWatchHost
{
    /// <summary>Defaults of the embedded all-in-one mode: in-memory bus, a simulated 1,024-GPU fleet with demo faults.</summary>
    public static readonly IReadOnlyDictionary<string, string?> AllInOneDefaults = new Dictionary<string, string?>
    {
        ["urls"] = "http://127.0.0.1:5080",
        ["FleetWatch:Bus:Transport"] = "InMemory",
        ["FleetWatch:Simulation:Enabled"] = "true",
        ["FleetWatch:Simulation:Nodes"] = "128",
        ["FleetWatch:Simulation:GpusPerNode"] = "8",
        ["FleetWatch:Simulation:DemoFaults"] = "true",
        ["FleetWatch:Agent:Spool:Enabled"] = "false", // in-memory bus: no broker to be away
        ["FleetWatch:Agent:Steps:Enabled"] = "false", // the simulator reports no steps; --FleetWatch:Agent:Steps:Enabled=true opens 127.0.0.1:9478
        // A demo starts clean: incidents, silences and the audit of a previous demo's simulated fleet are not carried
        // over. --FleetWatch:Storage:Path=FILE keeps them across restarts, as the controller role does by default.
        ["FleetWatch:Storage:Path"] = ":memory:",
    };

    public static WebApplication Build(Role role, string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ApplicationName = "fleetwatch" });
        if (role == Role.AllInOne)
        {
            // The demo is secured by default: a key generated for this run, printed with the URL.
            var defaults = new Dictionary<string, string?>(AllInOneDefaults)
            {
                ["FleetWatch:Dashboard:Auth:Mode"] = "ApiKey",
                ["FleetWatch:Dashboard:Auth:ApiKey"] = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16)),
            };
            builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource { InitialData = defaults });
        }

        ConfigFileArgument.Apply(builder.Configuration, args);
        if (role == Role.Agent && !builder.Configuration.GetValue<bool>("FleetWatch:Simulation:Enabled"))
        {
            // A real GPU node: the same host as the Native AOT fleetwatch-agent executable (RabbitMQ client, no MassTransit).
            return AgentNodeHost.Build(args, configure);
        }

        // MassTransit: at most 20 messages per 10 s, so a broker outage cannot flood the journal.
        var massTransitLogs = new LogRateLimit(TimeProvider.System, LogLevel.Information, 20, TimeSpan.FromSeconds(10));
        builder.Logging.AddFilter("MassTransit", massTransitLogs.Allow);
        builder.Services.AddSingleton(massTransitLogs);
        // Type=notify under systemd (READY=1 once started, STOPPING=1 on shutdown); a no-op elsewhere.
        builder.Services.AddSystemd();
        configure?.Invoke(builder);
        var configuration = builder.Configuration;
        var services = builder.Services;
        var instance = $"{Environment.MachineName.ToLowerInvariant()}-{Guid.NewGuid().ToString("N")[..8]}";
        var rabbit = configuration.GetSection(BusOptions.Section).Get<BusOptions>()?.RabbitMq ?? new RabbitMqOptions();
        var hasAgent = role is Role.AllInOne or Role.Agent;
        var hasController = role is Role.AllInOne or Role.Controller;
        var hasDashboard = role is Role.AllInOne or Role.Dashboard;
        if (hasAgent)
        {
            // Here always the simulated fleet (a real node's agent is AgentNodeHost, above), on the MassTransit bus, which
            // also delivers the fault-injection commands.
            services.AddAgentCore(configuration);
            services.AddAgentBus();
            services.AddStepEndpoint(configuration);
            services.AddSimulatedFleet(configuration);
        }

        if (hasController)
        {
            services.AddFleetController(configuration);
            services.AddLiveStragglers(configuration);
            services.AddControllerApiState();
            services.AddRemediation(configuration);
            services.AddSchedulerAdapters(configuration);
        }

        // The operator API (/api/v1) takes the dashboard's auth (FleetWatch:Dashboard:Auth, ProxyKey for a forwarding dashboard).
        // A controller-only process without an auth mode keeps running without the API until its config names one.
        var hasApi = hasController && (hasDashboard || configuration["FleetWatch:Dashboard:Auth:Mode"] is not null);
        if (hasApi)
        {
            services.AddFleetWatchApiAuth(configuration);
        }

        if (hasDashboard)
        {
            services.AddFleetDashboard(configuration);
        }

        services.AddFleetWatchBus(configuration, bus =>
        {
            if (hasAgent)
            {
                bus.AddAgentConsumers(instance);
            }

            if (hasController)
            {
                bus.AddFleetControllerConsumers(rabbit.PrefetchCount, rabbit.ConcurrentMessageLimit);
                bus.AddStragglerConsumers();
                bus.AddRemediationConsumers();
            }

            if (hasDashboard)
            {
                bus.AddFleetDashboardConsumers();
            }
        });
        services.AddHealthChecks();
        var app = builder.Build();
        if (hasDashboard)
        {
            app.MapFleetDashboard(); // includes /healthz
        }
        else
        {
            app.MapHealthChecks("/healthz");
        }
        if (role == Role.Agent)
        {
            app.MapAgentEndpoints();
        }

        if (hasController)
        {
            // Unauthenticated for now; the dashboard's auth covers the operator API (see README, security).
            app.MapControllerStatus();
            app.MapControllerMetrics();
        }

        if (hasApi)
        {
            var api = app.MapGroup("/api/v1").RequireFleetWatchAuth();
            api.MapNodeApi();
            api.MapStragglerApi();
            api.MapIncidentApi();
            api.MapAlertingApi();
            api.MapRemediationApi();
            api.MapDetectionApi();
        }

        return app;
    }

    public static Task<int> RunAsync(Role role, string[] args, TextWriter stdout, TextWriter stderr) =>
        HostRunner.RunAsync(() => Build(role, args), $"fleetwatch {role}", app =>
        {
            foreach (var url in app.Urls)
            {
                stdout.WriteLine($"FleetWatch {role} listening on {url}");
            }

            if (role == Role.AllInOne && app.Configuration["FleetWatch:Dashboard:Auth:Mode"] == "ApiKey" && app.Urls.FirstOrDefault() is { } first)
            {
                // The key of this run (generated unless configured): the link signs the browser in once.
                stdout.WriteLine($"Dashboard: {first.TrimEnd('/')}/?key={app.Configuration["FleetWatch:Dashboard:Auth:ApiKey"]}");
            }
        }, stderr);
}
