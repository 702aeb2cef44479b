using FleetWatch.Common;
using FleetWatch.Controller.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace FleetWatch.Controller.Alerting;

public static class AlertingServiceCollectionExtensions
{
    /// <summary>
    /// Alert delivery: validated options, the outbox tables in the controller store, metrics, the delivery engine as a
    /// hosted service, and its HTTP client.
    /// </summary>
    public static IServiceCollection AddAlertDelivery(this IServiceCollection services, IConfiguration configuration)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddMetrics();
        services.AddControllerStore(configuration);
        services.AddStoreSchema(AlertOutbox.SchemaName, AlertOutbox.Schema);
        services.AddValidatedOptions<AlertingOptions>(configuration, AlertingOptions.Section, AlertingValidation.Validate);
        services.AddSingleton<AlertMetrics>();
        services.AddSingleton<AlertOutbox>();
        services.AddSingleton<WebhookDelivery>();
        services.AddHostedService(sp => sp.GetRequiredService<WebhookDelivery>());
        // No request logging on this client: receiver URLs carry tokens and must never reach a log.
        services.AddHttpClient(WebhookDelivery.HttpClientName).RemoveAllLoggers();
        return services;
    }
}
