namespace FleetWatch.Controller.Tests.Replay;

/// <summary>Locates the repository root (the folder with FleetWatch.sln) and the shared folder beside it.</summary>
internal static class RepoPaths
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

    /// <summary>The shared folder (bench data, scorers); a missing one fails the test with the path it looked for.</summary>
    public static string Shared
    {
        get
        {
            var shared = Path.GetFullPath(Path.Combine(Root, "..", "shared"));
            Assert.True(Directory.Exists(shared), $"the shared folder is missing: expected {shared} (CI puts it beside the repository)");
            return shared;
        }
    }

    public static string PublicReplayScenarios => Path.Combine(Shared, "bench-data", "replay", "public");

    public static string ReplayScorer => Path.Combine(Shared, "bench-data", "replay", "score_replay.py");

    /// <summary>This project's own scenarios, copied next to the test assembly.</summary>
    public static string OwnScenarios => Path.Combine(AppContext.BaseDirectory, "Replay", "Scenarios");
}
