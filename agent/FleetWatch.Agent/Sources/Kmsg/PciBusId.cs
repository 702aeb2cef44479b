namespace FleetWatch.Agent.Sources.Kmsg;

/// <summary>
/// Normalises a PCI bus id to the lower-case <c>dddd:bb:dd</c> form (4-hex domain, no function number) so
/// that kernel-log ids and NVML ids join. Accepted spellings (research/gpu-health-anchors.md section 2.4,
/// FORMATS.md section 1): <c>PCI:0000:3B:00</c>, <c>0000:3b:00.0</c>, NVML's <c>00000000:3B:00.0</c>
/// (<c>nvmlPciInfo_t.busId</c>, <c>"%08X:%02X:%02X.0"</c>), and the old prefix-less <c>0000:03:00</c>.
/// An 8-hex domain keeps its last 4 digits, as NVML's <c>busIdLegacy</c> does.
/// </summary>
public static class PciBusId
{
    /// <summary>Normalises <paramref name="text"/>; false when it is not a PCI bus id.</summary>
    public static bool TryNormalize(string? text, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? normalized)
    {
        normalized = null;
        if (string.IsNullOrEmpty(text) || text.Length > 64)
        {
            return false;
        }

        Span<byte> ascii = stackalloc byte[text.Length];
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] > 0x7F)
            {
                return false;
            }

            ascii[i] = (byte)text[i];
        }

        return TryNormalize(ascii.Trim((byte)' '), out normalized);
    }

    /// <summary>Normalises an ASCII span; false when it is not a PCI bus id.</summary>
    public static bool TryNormalize(ReadOnlySpan<byte> text, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? normalized)
    {
        normalized = null;
        if (text.Length >= 4 && (text[0] | 0x20) == 'p' && (text[1] | 0x20) == 'c' && (text[2] | 0x20) == 'i' && text[3] == ':')
        {
            text = text[4..];
        }

        // The function number (".0") is dropped: the driver's Xid line never carries it (section 2.4).
        var dot = text.IndexOf((byte)'.');
        if (dot >= 0)
        {
            var function = text[(dot + 1)..];
            if (function.Length is < 1 or > 2 || !TryParseHex(function, 2, out _))
            {
                return false;
            }

            text = text[..dot];
        }

        var first = text.IndexOf((byte)':');
        if (first < 0)
        {
            return false;
        }

        var last = text.LastIndexOf((byte)':');
        uint domain = 0;
        ReadOnlySpan<byte> busText;
        if (first == last)
        {
            // "bb:dd": no domain printed, which means domain 0.
            busText = text[..first];
        }
        else
        {
            if (text[(first + 1)..last].Contains((byte)':') || !TryParseHex(text[..first], 8, out domain))
            {
                return false;
            }

            busText = text[(first + 1)..last];
        }

        if (!TryParseHex(busText, 2, out var bus) || !TryParseHex(text[(last + 1)..], 2, out var device))
        {
            return false;
        }

        normalized = Format(domain & 0xFFFF, bus, device);
        return true;
    }

    private static string Format(uint domain, uint bus, uint device) =>
        string.Create(10, (domain, bus, device), static (span, v) =>
        {
            const string Hex = "0123456789abcdef";
            span[0] = Hex[(int)(v.domain >> 12) & 0xF];
            span[1] = Hex[(int)(v.domain >> 8) & 0xF];
            span[2] = Hex[(int)(v.domain >> 4) & 0xF];
            span[3] = Hex[(int)v.domain & 0xF];
            span[4] = ':';
            span[5] = Hex[(int)(v.bus >> 4) & 0xF];
            span[6] = Hex[(int)v.bus & 0xF];
            span[7] = ':';
            span[8] = Hex[(int)(v.device >> 4) & 0xF];
            span[9] = Hex[(int)v.device & 0xF];
        });

    private static bool TryParseHex(ReadOnlySpan<byte> text, int maxDigits, out uint value)
    {
        value = 0;
        if (text.Length == 0 || text.Length > maxDigits)
        {
            return false;
        }

        foreach (var b in text)
        {
            var d = HexValue(b);
            if (d < 0)
            {
                return false;
            }

            value = (value << 4) | (uint)d;
        }

        return true;
    }

    internal static int HexValue(byte b) => b switch
    {
        >= (byte)'0' and <= (byte)'9' => b - '0',
        >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
        _ => -1,
    };
}
