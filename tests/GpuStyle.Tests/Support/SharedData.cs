namespace GpuStyle.Tests.Support;

/// <summary>Data outside the repository (../shared): tests that need it are skipped, visibly, where it is absent.</summary>
public static class SharedData
{
    /// <summary>The shared folder beside the checkout, found by walking up from the test binaries.</summary>
    public static string? Root { get; } = Find();

    static string? Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared");
            if (Directory.Exists(Path.Combine(candidate, "weights"))) return candidate;
        }
        return null;
    }

    public static string? File(string relative) =>
        Root is not null && System.IO.File.Exists(Path.Combine(Root, relative)) ? Path.Combine(Root, relative) : null;

    public const string RealWeights = "weights/vgg19_notop_blocks1-3.h5";
}

/// <summary>A fact that is skipped, with the reason shown, when a file under ../shared is missing.</summary>
public sealed class SharedFileFactAttribute : FactAttribute
{
    public SharedFileFactAttribute(string relative)
    {
        if (SharedData.File(relative) is null)
            Skip = $"needs ../shared/{relative}, which is not present on this machine";
    }
}

public static class Fixtures
{
    public static string Path(string name) => System.IO.Path.Combine(AppContext.BaseDirectory, "Fixtures", name);
}
