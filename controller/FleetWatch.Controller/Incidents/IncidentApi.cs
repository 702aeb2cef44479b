using System.Globalization;
using System.Text.Json;
using FleetWatch.Contracts;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace FleetWatch.Controller.Incidents;

/// <summary>
/// The incident HTTP API, mapped relative to the group the host mounts (<c>/api/v1</c>, behind authentication):
/// incidents with acknowledgement and notes, silences and maintenance windows. The operator of an action is the
/// authenticated user (<c>anonymous</c> without one) and is stored with it. Bad bodies answer 400 naming the field and
/// the value; unknown ids 404. JSON is camelCase with enums by name (<see cref="IncidentJson.Options"/>).
/// </summary>
public static class IncidentApi
{
    private const int DefaultLimit = 100;
    private const int MaxLimit = 1000;

    public static RouteGroupBuilder MapIncidentApi(this RouteGroupBuilder api)
    {
        api.MapGet("/incidents", (string? state, string? limit, IncidentManager incidents) =>
        {
            state ??= "open";
            if (state is not ("open" or "resolved" or "all"))
            {
                return Error($"state: '{state}' is not open, resolved or all");
            }

            var n = DefaultLimit;
            if (limit is not null && (!int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out n) || n < 1 || n > MaxLimit))
            {
                return Error($"limit: '{limit}' is not a whole number from 1 to {MaxLimit}");
            }

            IEnumerable<IncidentSnapshot> result = state switch
            {
                "open" => incidents.Open(),
                "resolved" => incidents.Resolved(n),
                _ => incidents.Open().Concat(incidents.Resolved(n)),
            };
            return Json(result.Take(n).ToList());
        });

        api.MapGet("/incidents/{id}", (string id, IncidentManager incidents) =>
            incidents.Find(id) is { } incident ? Json(incident) : NotFound("incident", id));

        api.MapPost("/incidents/{id}/ack", async (string id, HttpContext http, IncidentManager incidents, TimeProvider time) =>
        {
            var (body, error) = await ReadBodyAsync(http, required: false).ConfigureAwait(false);
            if (error is not null)
            {
                return error;
            }

            string? note = null;
            if (body is { } b && b.TryGetProperty("note", out var n) && n.ValueKind != JsonValueKind.Null)
            {
                if (n.ValueKind != JsonValueKind.String)
                {
                    return Error($"note: '{n}' is not a string");
                }

                note = n.GetString();
            }

            if (incidents.Acknowledge(id, Operator(http), note, time.GetUtcNow()) is not { } incident)
            {
                return NotFound("incident", id);
            }

            // PagerDuty hears of it (acknowledge, same dedup_key); once per incident, so a second ack sends nothing.
            http.RequestServices.GetService<Alerting.WebhookDelivery>()?.EnqueueAcknowledged(incident);
            return Json(incident);
        });

        api.MapPost("/incidents/{id}/notes", async (string id, HttpContext http, IncidentManager incidents, TimeProvider time) =>
        {
            var (body, error) = await ReadBodyAsync(http, required: true).ConfigureAwait(false);
            if (error is not null)
            {
                return error;
            }

            if (!body!.Value.TryGetProperty("text", out var text) || text.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(text.GetString()))
            {
                return Error($"text: '{(body.Value.TryGetProperty("text", out var t) ? t.ToString() : "")}' must be a non-empty string");
            }

            return incidents.AddNote(id, Operator(http), text.GetString()!, time.GetUtcNow()) is { } incident ? Json(incident) : NotFound("incident", id);
        });

        MapMutes(api, "/silences", MuteKind.Silence, "sil");
        MapMutes(api, "/maintenance", MuteKind.Maintenance, "mnt");
        return api;
    }

    private static void MapMutes(RouteGroupBuilder api, string path, MuteKind kind, string prefix)
    {
        var what = kind == MuteKind.Silence ? "silence" : "maintenance window";
        api.MapGet(path, (string? all, IncidentManager incidents, TimeProvider time) =>
            Json(incidents.Mutes(kind, time.GetUtcNow(), includeEnded: string.Equals(all, "true", StringComparison.OrdinalIgnoreCase))));

        api.MapPost(path, async (HttpContext http, IncidentManager incidents, TimeProvider time) =>
        {
            var (body, error) = await ReadBodyAsync(http, required: true).ConfigureAwait(false);
            if (error is not null)
            {
                return error;
            }

            var now = time.GetUtcNow();
            var id = $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 13)];
            var (mute, invalid) = ParseMute(body!.Value, kind, id, Operator(http), now);
            if (invalid is not null)
            {
                return Error(invalid);
            }

            incidents.AddMute(mute!, now);
            return Results.Json(mute, IncidentJson.Options, statusCode: StatusCodes.Status201Created);
        });

        api.MapDelete($"{path}/{{id}}", (string id, IncidentManager incidents, TimeProvider time) =>
            incidents.ExpireMute(kind, id, time.GetUtcNow()) ? Results.NoContent() : NotFound(what, id));
    }

    /// <summary>Reads a mute from a POST body; returns the error naming the field and value when it is invalid.</summary>
    internal static (Mute? Mute, string? Error) ParseMute(JsonElement body, MuteKind kind, string id, string by, DateTimeOffset now)
    {
        if (body.ValueKind != JsonValueKind.Object)
        {
            return (null, $"body: '{body}' is not a JSON object");
        }

        if (!body.TryGetProperty("matchers", out var matchers) || matchers.ValueKind != JsonValueKind.Array || matchers.GetArrayLength() == 0)
        {
            // A mute without matchers would mute everything (Alertmanager refuses it too).
            return (null, $"matchers: '{(body.TryGetProperty("matchers", out var m) ? m.ToString() : "")}' must be a non-empty array");
        }

        var list = new List<MuteMatcher>();
        var i = 0;
        foreach (var item in matchers.EnumerateArray())
        {
            var field = $"matchers[{i++}]";
            if (item.ValueKind != JsonValueKind.Object)
            {
                return (null, $"{field}: '{item}' is not an object");
            }

            var name = String(item, "name");
            if (name is null || !MuteMatcher.Names.Contains(name))
            {
                return (null, $"{field}.name: '{name}' is not one of {string.Join(", ", MuteMatcher.Names)}");
            }

            var value = String(item, "value");
            if (string.IsNullOrEmpty(value))
            {
                return (null, $"{field}.value: '{value}' must be a non-empty string");
            }

            var isRegex = Bool(item, "isRegex", out var badRegex);
            var isEqual = Bool(item, "isEqual", out var badEqual, fallback: true);
            if (badRegex is not null || badEqual is not null)
            {
                return (null, badRegex is not null ? $"{field}.isRegex: '{badRegex}' is not true or false" : $"{field}.isEqual: '{badEqual}' is not true or false");
            }

            if (isRegex)
            {
                try
                {
                    _ = CompiledMute.Compile(value);
                }
                catch (ArgumentException ex)
                {
                    return (null, $"{field}.value: '{value}' is not a valid regular expression ({ex.Message})");
                }
            }

            list.Add(new MuteMatcher(name, value, isRegex, isEqual));
        }

        var startsAt = now;
        if (body.TryGetProperty("startsAt", out var s) && s.ValueKind != JsonValueKind.Null && !s.TryGetDateTimeOffset(out startsAt))
        {
            return (null, $"startsAt: '{s}' is not an ISO 8601 time");
        }

        if (!body.TryGetProperty("endsAt", out var e) || !e.TryGetDateTimeOffset(out var endsAt))
        {
            return (null, $"endsAt: '{(body.TryGetProperty("endsAt", out var x) ? x.ToString() : "")}' must be an ISO 8601 time");
        }

        if (endsAt <= startsAt || endsAt <= now)
        {
            return (null, $"endsAt: '{e}' must be after startsAt ({startsAt:O}) and in the future");
        }

        var comment = body.TryGetProperty("comment", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
        return (new Mute(id, kind, list, startsAt, endsAt, by, now, comment), null);
    }

    private static string? String(JsonElement item, string name) =>
        item.TryGetProperty(name, out var v) ? v.ValueKind == JsonValueKind.String ? v.GetString() : v.ToString() : null;

    private static bool Bool(JsonElement item, string name, out string? invalid, bool fallback = false)
    {
        invalid = null;
        if (!item.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return fallback;
        }

        if (v.ValueKind is JsonValueKind.True or JsonValueKind.False)
        {
            return v.GetBoolean();
        }

        invalid = v.ToString();
        return fallback;
    }

    private static async Task<(JsonElement? Body, IResult? Error)> ReadBodyAsync(HttpContext http, bool required)
    {
        try
        {
            using var doc = await JsonDocument.ParseAsync(http.Request.Body, cancellationToken: http.RequestAborted).ConfigureAwait(false);
            return (doc.RootElement.Clone(), null);
        }
        catch (JsonException ex) when (!required && http.Request.ContentLength is null or 0 && ex.BytePositionInLine == 0 && ex.LineNumber == 0)
        {
            return (null, null); // an empty body where one is optional
        }
        catch (JsonException ex)
        {
            return (null, Error($"body: not valid JSON ({ex.Message})"));
        }
    }

    private static string Operator(HttpContext http) =>
        http.User.Identity?.Name is { Length: > 0 } name ? name : "anonymous";

    private static IResult Json<T>(T value) => Results.Json(value, IncidentJson.Options);

    private static IResult Error(string message) => Results.Json(new { error = message }, IncidentJson.Options, statusCode: StatusCodes.Status400BadRequest);

    private static IResult NotFound(string what, string id) => Results.Json(new { error = $"{what} '{id}' not found" }, IncidentJson.Options, statusCode: StatusCodes.Status404NotFound);
}
