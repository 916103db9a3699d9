namespace GpuStyle.Tests.Support;

/// <summary>The checkout the tests were built from (the folder holding GpuStyle.sln), found by walking up from the
/// test binaries: for tests that read the repository's own scripts and tools.</summary>
public static class Repo
{
    public static string Root { get; } = Find();

    static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (System.IO.File.Exists(Path.Combine(dir.FullName, "GpuStyle.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException($"no GpuStyle.sln above {AppContext.BaseDirectory}");
    }

    public static string File(string relative) => Path.Combine(Root, relative);
}
