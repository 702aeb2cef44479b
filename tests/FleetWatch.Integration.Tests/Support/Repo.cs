namespace FleetWatch.Integration.Tests.Support;

/// <summary>Locates the repository root and the shared folder beside it.</summary>
public static class Repo
{
    public static string Root
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "FleetWatch.sln")))
            {
                dir = dir.Parent;
            }

            return dir?.FullName ?? throw new InvalidOperationException($"FleetWatch.sln not found above {AppContext.BaseDirectory}");
        }
    }
}
