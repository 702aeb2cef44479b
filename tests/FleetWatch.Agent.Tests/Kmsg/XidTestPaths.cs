namespace FleetWatch.Agent.Tests.Kmsg;

/// <summary>Locates the repository root (the folder with FleetWatch.sln) and the shared folder beside it.</summary>
internal static class XidTestPaths
{
    public static string RepoRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "FleetWatch.sln")))
                {
                    return dir.FullName;
                }
            }

            throw new InvalidOperationException($"FleetWatch.sln not found above {AppContext.BaseDirectory}");
        }
    }

    /// <summary>The shared folder (<c>&lt;repo&gt;/../shared</c>); a missing folder fails the test, never skips it.</summary>
    public static string Shared
    {
        get
        {
            var shared = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));
            Assert.True(Directory.Exists(shared), $"shared folder missing: expected {shared} (bench-data lives there)");
            return shared;
        }
    }

    public static string XidCorpus => Path.Combine(Shared, "bench-data", "xid");

    public static string Fixtures => Path.Combine(RepoRoot, "tests", "FleetWatch.Agent.Tests", "Fixtures");
}
