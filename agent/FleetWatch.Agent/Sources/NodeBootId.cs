namespace FleetWatch.Agent.Sources;

/// <summary>
/// The kernel's boot id (<c>/proc/sys/kernel/random/boot_id</c>, a UUID the kernel draws at every boot; a container sees
/// the host's). The kmsg watcher honours a saved sequence number only within one boot, and every sample carries it so
/// the controller can tell a reboot from an agent restart.
/// </summary>
public static class NodeBootId
{
    /// <summary>
    /// Reads the boot id at <paramref name="path"/> in the kernel's lower-case form. Null when no path is configured
    /// (<paramref name="problem"/> null too), or when the file cannot be read or holds no UUID (<paramref name="problem"/> says what it held).
    /// </summary>
    public static string? Read(string? path, out string? problem)
    {
        problem = null;
        if (string.IsNullOrWhiteSpace(path))
        {
            return null;
        }

        try
        {
            var text = File.ReadAllText(path).Trim();
            if (Guid.TryParse(text, out var id))
            {
                return id.ToString("D");
            }

            problem = $"{path} gave '{(text.Length > 64 ? text[..64] : text)}', not a UUID";
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            problem = $"{path}: {ex.Message}";
        }

        return null;
    }
}
