using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using FleetWatch.Contracts;
using FleetWatch.Dashboard.Fleet;

namespace FleetWatch.Dashboard.Http;

/// <summary>Body of <c>POST /api/faults</c>: <c>{node, kind, gpu?, xid?, temperatureC?, link?, port?, forSeconds?}</c>.</summary>
internal sealed record FaultRequest
{
    public string? Node { get; init; }
    public string? Kind { get; init; }
    public int? Gpu { get; init; }
    public int? Xid { get; init; }
    public int? TemperatureC { get; init; }
    public int? Link { get; init; }
    public int? Port { get; init; }
    public double? ForSeconds { get; init; }
}

/// <summary>A rejected field: its JSON name, the value sent, and why.</summary>
internal sealed record FaultError(string Field, string? Value, string Message);

/// <summary>
/// Turns a fault request into an <see cref="InjectSimulatedFault"/> or names the first field that is wrong. Kinds use
/// the FORMATS.md section 4 vocabulary (<c>xid</c>, <c>ecc_dbe</c>, ...) and also accept the contract's enum names.
/// </summary>
internal static class FaultRequestValidator
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        NumberHandling = JsonNumberHandling.Strict,
    };

    private const string Fields = "node, kind, gpu, xid, temperatureC, link, port, forSeconds";

    // Which optional fields each kind takes, and which of them it requires.
    private static readonly Dictionary<SimulatedFaultKind, (string[] Allowed, string[] Required)> Shapes = new()
    {
        [SimulatedFaultKind.Xid] = (["gpu", "xid", "forSeconds"], ["gpu", "xid"]),
        [SimulatedFaultKind.EccDbe] = (["gpu", "forSeconds"], ["gpu"]),
        [SimulatedFaultKind.OverTemperature] = (["gpu", "temperatureC", "forSeconds"], ["gpu"]),
        [SimulatedFaultKind.NvLinkErrors] = (["gpu", "link", "forSeconds"], ["gpu"]),
        [SimulatedFaultKind.IbLinkDown] = (["port", "forSeconds"], []),
        [SimulatedFaultKind.NodeSilent] = (["forSeconds"], []),
        [SimulatedFaultKind.GpuLost] = (["gpu", "forSeconds"], ["gpu"]),
        [SimulatedFaultKind.Clear] = (["gpu"], []),
    };

    /// <summary>The kind names the API documents, in FORMATS.md spelling.</summary>
    public static readonly string KindNames = "xid, ecc_dbe, over_temperature, nvlink_errors, ib_link_down, node_silent, gpu_lost, clear";

    /// <summary>A JSON syntax or type error as a field error (System.Text.Json names the path, e.g. <c>$.gpu</c>).</summary>
    public static FaultError FromJsonException(JsonException ex)
    {
        var field = ex.Path is { Length: > 2 } path && path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : null;
        if (ex.Message.Contains("could not be mapped", StringComparison.Ordinal))
        {
            // The unmapped-member message names the property; the path may stop at the object.
            var start = ex.Message.IndexOf('\'', StringComparison.Ordinal);
            var end = start < 0 ? -1 : ex.Message.IndexOf('\'', start + 1);
            var name = end > start ? ex.Message[(start + 1)..end] : field ?? "?";
            return new FaultError(name, null, $"field '{name}' is not known; fields are: {Fields}");
        }

        if (field is null)
        {
            return new FaultError("body", null, "body is not a JSON object: " + FirstSentence(ex.Message));
        }

        var expected = field switch
        {
            "node" or "kind" => "a string",
            "forSeconds" => "a number of seconds",
            _ => "a whole number",
        };
        return new FaultError(field, null, $"field '{field}' has an invalid value (expected {expected})");
    }

    public static FaultError? Validate(FaultRequest request, FleetView view, out InjectSimulatedFault? fault)
    {
        fault = null;
        var node = request.Node?.Trim();
        if (string.IsNullOrEmpty(node))
        {
            return new FaultError("node", request.Node, "field 'node' is required (a node name as the dashboard shows it)");
        }

        if (node.Length > 253 || node.Any(char.IsControl) || node.Any(char.IsWhiteSpace))
        {
            return new FaultError("node", request.Node, $"field 'node' = '{Printable(request.Node)}' is not a node name");
        }

        if (string.IsNullOrWhiteSpace(request.Kind))
        {
            return new FaultError("kind", request.Kind, $"field 'kind' is required; one of: {KindNames}");
        }

        if (!TryParseKind(request.Kind, out var kind))
        {
            return new FaultError("kind", request.Kind, $"field 'kind' = '{Printable(request.Kind)}' is not one of: {KindNames}");
        }

        var (allowed, required) = Shapes[kind];
        var kindName = request.Kind.Trim();
        foreach (var (field, present, value) in Present(request))
        {
            if (present && !allowed.Contains(field))
            {
                return new FaultError(field, value, $"field '{field}' = {value} does not apply to kind '{kindName}' (it takes: {Describe(allowed)})");
            }
        }

        foreach (var field in required)
        {
            if (!Present(request).Single(p => p.Field == field).Present)
            {
                return new FaultError(field, null, $"field '{field}' is required for kind '{kindName}'");
            }
        }

        // Ranges: GPUs per node and links per GPU follow FORMATS.md section 4's fleet shape (18 NVLinks on an H100);
        // Xids are NVIDIA's catalogue numbers (research/gpu-health-anchors.md section 7), all below 1000.
        if (request.Gpu is { } gpu && gpu is < 0 or > 63)
        {
            return new FaultError("gpu", Invariant(gpu), $"field 'gpu' = {Invariant(gpu)} is out of range 0..63");
        }

        if (request.Xid is { } xid && xid is < 1 or > 999)
        {
            return new FaultError("xid", Invariant(xid), $"field 'xid' = {Invariant(xid)} is out of range 1..999");
        }

        if (request.TemperatureC is { } temperature && temperature is < 0 or > 200)
        {
            return new FaultError("temperatureC", Invariant(temperature), $"field 'temperatureC' = {Invariant(temperature)} is out of range 0..200");
        }

        if (request.Link is { } link && link is < 0 or > 17)
        {
            return new FaultError("link", Invariant(link), $"field 'link' = {Invariant(link)} is out of range 0..17");
        }

        if (request.Port is { } port && port is < 0 or > 63)
        {
            return new FaultError("port", Invariant(port), $"field 'port' = {Invariant(port)} is out of range 0..63");
        }

        if (request.ForSeconds is { } seconds && (!double.IsFinite(seconds) || seconds <= 0 || seconds > 86_400))
        {
            return new FaultError("forSeconds", Invariant(seconds), $"field 'forSeconds' = {Invariant(seconds)} must be more than 0 and at most 86400");
        }

        switch (view.Contains(node, request.Gpu))
        {
            case FleetMembership.NodeMissing:
                return new FaultError("node", node, $"field 'node' = '{node}' is not a node of the fleet");
            case FleetMembership.GpuMissing:
                return new FaultError("gpu", Invariant(request.Gpu!.Value), $"field 'gpu' = {Invariant(request.Gpu!.Value)} is not a GPU of node '{node}'");
        }

        fault = new InjectSimulatedFault
        {
            Node = node,
            Kind = kind,
            Gpu = request.Gpu,
            Xid = request.Xid,
            TemperatureC = request.TemperatureC,
            Link = request.Link,
            Port = request.Port,
            For = request.ForSeconds is { } s ? TimeSpan.FromSeconds(s) : null,
        };
        return null;
    }

    /// <summary>Accepts <c>ecc_dbe</c>, <c>ecc-dbe</c> and <c>EccDbe</c> alike; rejects numbers.</summary>
    internal static bool TryParseKind(string text, out SimulatedFaultKind kind)
    {
        var squeezed = text.Trim().Replace("_", string.Empty, StringComparison.Ordinal).Replace("-", string.Empty, StringComparison.Ordinal);
        foreach (var candidate in Enum.GetValues<SimulatedFaultKind>())
        {
            if (string.Equals(candidate.ToString(), squeezed, StringComparison.OrdinalIgnoreCase))
            {
                kind = candidate;
                return true;
            }
        }

        kind = default;
        return false;
    }

    private static IEnumerable<(string Field, bool Present, string? Value)> Present(FaultRequest r) =>
    [
        ("gpu", r.Gpu is not null, r.Gpu?.ToString(CultureInfo.InvariantCulture)),
        ("xid", r.Xid is not null, r.Xid?.ToString(CultureInfo.InvariantCulture)),
        ("temperatureC", r.TemperatureC is not null, r.TemperatureC?.ToString(CultureInfo.InvariantCulture)),
        ("link", r.Link is not null, r.Link?.ToString(CultureInfo.InvariantCulture)),
        ("port", r.Port is not null, r.Port?.ToString(CultureInfo.InvariantCulture)),
        ("forSeconds", r.ForSeconds is not null, r.ForSeconds?.ToString(CultureInfo.InvariantCulture)),
    ];

    private static string Describe(string[] fields) => fields.Length == 0 ? "no other fields" : string.Join(", ", fields);

    private static string Invariant(IFormattable value) => value.ToString(null, CultureInfo.InvariantCulture);

    private static string Printable(string? text) =>
        text is null ? string.Empty : new string([.. text.Take(80).Select(c => char.IsControl(c) ? '?' : c)]);

    private static string FirstSentence(string message)
    {
        var end = message.IndexOf(". ", StringComparison.Ordinal);
        return end > 0 ? message[..(end + 1)] : message;
    }
}
