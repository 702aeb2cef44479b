using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace FleetWatch.Cli.Hosting;

/// <summary>One bus configuration for every role; only the transport differs between all-in-one and distributed mode.</summary>
public static class BusSetup
{
    public static IServiceCollection AddFleetWatchBus(this IServiceCollection services, IConfiguration configuration, Action<IBusRegistrationConfigurator> consumers)
    {
        var options = configuration.GetSection(BusOptions.Section).Get<BusOptions>() ?? new BusOptions();
        Validate(options);
        services.AddMassTransit(x =>
        {
            x.SetKebabCaseEndpointNameFormatter();
            consumers(x);
            if (options.Transport == BusTransport.RabbitMq)
            {
                var r = options.RabbitMq;
                x.UsingRabbitMq((context, cfg) =>
                {
                    cfg.Host(r.Host, (ushort)r.Port, r.VirtualHost, h =>
                    {
                        h.Username(r.Username);
                        h.Password(r.Password);
                    });
                    Compact(cfg);
                    cfg.PrefetchCount = r.PrefetchCount;
                    cfg.ConfigureEndpoints(context);
                });
            }
            else
            {
                x.UsingInMemory((context, cfg) =>
                {
                    Compact(cfg);
                    cfg.ConfigureEndpoints(context);
                });
            }
        });
        return services;
    }

    /// <summary>MassTransit 8.5 writes indented JSON by default (8.4 KB for a 4.5 KB sample, deps-and-limits.md): write it compact.</summary>
    private static void Compact(IBusFactoryConfigurator cfg) =>
        cfg.ConfigureJsonSerializerOptions(o =>
        {
            o.WriteIndented = false;
            // A null is "not available on this GPU"; leaving it out of the wire shrinks every sample and reads back as null.
            o.DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull;
            return o;
        });

    private static void Validate(BusOptions o)
    {
        var errors = new List<string>();
        if (!Enum.IsDefined(o.Transport))
        {
            errors.Add($"{BusOptions.Section}:Transport = '{o.Transport}': must be InMemory or RabbitMq");
        }

        if (o.Transport == BusTransport.RabbitMq)
        {
            if (string.IsNullOrWhiteSpace(o.RabbitMq.Host))
            {
                errors.Add($"{BusOptions.Section}:RabbitMq:Host = '': must be set");
            }

            if (o.RabbitMq.Port is < 1 or > 65535)
            {
                errors.Add($"{BusOptions.Section}:RabbitMq:Port = '{o.RabbitMq.Port}': must be 1..65535");
            }

            if (o.RabbitMq.PrefetchCount is < 1 or > 65535)
            {
                errors.Add($"{BusOptions.Section}:RabbitMq:PrefetchCount = '{o.RabbitMq.PrefetchCount}': must be 1..65535");
            }
        }

        if (errors.Count > 0)
        {
            throw new Microsoft.Extensions.Options.OptionsValidationException(BusOptions.Section, typeof(BusOptions), errors);
        }
    }
}
