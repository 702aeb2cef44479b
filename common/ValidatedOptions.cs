// Linked into every product project (see Directory.Build.targets): one validator, no shared runtime assembly.
using System.ComponentModel.DataAnnotations;
using System.Diagnostics.CodeAnalysis;
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
    /// <summary>Binds <typeparamref name="T"/> to <paramref name="section"/> by reflection, validates data annotations and the extra rule at start.</summary>
    [RequiresUnreferencedCode("Binds by reflection; the Native AOT agent passes a source-generated binder to the other overload.")]
    [RequiresDynamicCode("Binds by reflection; the Native AOT agent passes a source-generated binder to the other overload.")]
    public static OptionsBuilder<T> AddValidatedOptions<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.All)] T>(this IServiceCollection services, IConfiguration configuration, string section,
        Func<T, IEnumerable<(string Key, object? Value, string Error)>>? extra = null)
        where T : class
    {
        // A generic call the binder generator cannot intercept (SYSLIB1104, silenced in the agent's project): the reflection binder.
        return services.AddValidatedOptions(configuration, section, static (c, o) => c.Bind(o), extra);
    }

    /// <summary>
    /// Binds <typeparamref name="T"/> to <paramref name="section"/> with <paramref name="bind"/>, validates data annotations and
    /// the extra rule at start. Pass <c>static (c, o) => c.Bind(o)</c> from the call site, where <c>o</c> has its concrete type:
    /// the configuration binder's source generator then binds without reflection (Native AOT).
    /// </summary>
    public static OptionsBuilder<T> AddValidatedOptions<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.All)] T>(this IServiceCollection services, IConfiguration configuration, string section,
        Action<IConfiguration, T> bind, Func<T, IEnumerable<(string Key, object? Value, string Error)>>? extra = null)
        where T : class
    {
        services.AddSingleton<IValidateOptions<T>>(new KeyedValidator<T>(section, extra));
        var source = configuration.GetSection(section);
        return services.AddOptions<T>().Configure(o => bind(source, o)).ValidateOnStart();
    }

    /// <summary>Validates one object's data annotations, producing keyed messages (used for list items too).</summary>
    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "T keeps all its members and attributes (DynamicallyAccessedMembers.All); the validation context is given a display name.")]
    public static IEnumerable<(string Key, object? Value, string Error)> Annotations<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.All)] T>(T instance, string prefix)
        where T : notnull
    {
        var results = new List<ValidationResult>();
        Validator.TryValidateObject(instance, new ValidationContext(instance, typeof(T).Name, null, null), results, validateAllProperties: true);
        foreach (var r in results)
        {
            foreach (var member in r.MemberNames.DefaultIfEmpty(""))
            {
                var value = member.Length == 0 ? null : typeof(T).GetProperty(member)?.GetValue(instance);
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

    private sealed class KeyedValidator<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.All)] T>(string section, Func<T, IEnumerable<(string Key, object? Value, string Error)>>? extra) : IValidateOptions<T>
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
