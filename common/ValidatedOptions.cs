// Linked into every product project (see Directory.Build.targets): one validator, no shared runtime assembly.
using System.ComponentModel.DataAnnotations;
using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace FleetWatch.Common;

/// <summary>
/// Options binding with validation at start whose failures name the configuration key and the value
/// (STYLE.md rule 4): "FleetWatch:Agent:Tick = '00:00:00.001': The field Tick must be between ...".
/// </summary>
internal static class ValidatedOptions
{
    /// <summary>Binds <typeparamref name="T"/> to <paramref name="section"/>, validates data annotations and the extra rule at start.</summary>
    public static OptionsBuilder<T> AddValidatedOptions<T>(this IServiceCollection services, IConfiguration configuration, string section,
        Func<T, IEnumerable<(string Key, object? Value, string Error)>>? extra = null)
        where T : class
    {
        services.AddSingleton<IValidateOptions<T>>(new KeyedValidator<T>(section, extra));
        return services.AddOptions<T>().Bind(configuration.GetSection(section)).ValidateOnStart();
    }

    /// <summary>Validates one object's data annotations, producing keyed messages (used for list items too).</summary>
    public static IEnumerable<(string Key, object? Value, string Error)> Annotations(object instance, string prefix)
    {
        var results = new List<ValidationResult>();
        Validator.TryValidateObject(instance, new ValidationContext(instance), results, validateAllProperties: true);
        foreach (var r in results)
        {
            foreach (var member in r.MemberNames.DefaultIfEmpty(""))
            {
                var value = member.Length == 0 ? null : instance.GetType().GetProperty(member)?.GetValue(instance);
                yield return ($"{prefix}:{member}", value, r.ErrorMessage ?? "invalid");
            }
        }
    }

    public static string Format(object? value) => value switch
    {
        null => "(empty)",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    private sealed class KeyedValidator<T>(string section, Func<T, IEnumerable<(string Key, object? Value, string Error)>>? extra) : IValidateOptions<T>
        where T : class
    {
        public ValidateOptionsResult Validate(string? name, T options)
        {
            var failures = Annotations(options, section)
                .Concat(extra?.Invoke(options) ?? [])
                .Select(f => $"{f.Key} = '{Format(f.Value)}': {f.Error}")
                .ToList();
            return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
        }
    }
}
