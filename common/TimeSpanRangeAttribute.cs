// Linked into every product project (see Directory.Build.targets) and into tools/NvmlProbe.
using System.ComponentModel.DataAnnotations;
using System.Globalization;

namespace FleetWatch.Common;

/// <summary>
/// <see cref="RangeAttribute"/> for a <see cref="TimeSpan"/> option, with the same message ("The field Tick must be between
/// 00:00:00.050 and 00:10:00."), minus the type converter lookup that Native AOT cannot see through.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field | AttributeTargets.Parameter)]
internal sealed class TimeSpanRangeAttribute(string minimum, string maximum) : ValidationAttribute("The field {0} must be between {1} and {2}.")
{
    public TimeSpan Minimum { get; } = TimeSpan.Parse(minimum, CultureInfo.InvariantCulture);

    public TimeSpan Maximum { get; } = TimeSpan.Parse(maximum, CultureInfo.InvariantCulture);

    /// <summary>Null is valid, as with <see cref="RangeAttribute"/>: [Required] says whether a value must be there.</summary>
    public override bool IsValid(object? value) => value is null || (value is TimeSpan t && t >= Minimum && t <= Maximum);

    public override string FormatErrorMessage(string name) =>
        string.Format(CultureInfo.CurrentCulture, ErrorMessageString, name, minimum, maximum);
}
