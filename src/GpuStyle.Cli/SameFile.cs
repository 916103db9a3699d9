namespace GpuStyle.Cli;

/// <summary>
/// Whether two paths name one file, so that an output is never written over an input: the same full path, a symbolic
/// link to it, or the same name in other letter case where the file system ignores case (Windows' and macOS's by
/// default: there photo.PNG and photo.png are one file, and comparing the strings alone let an output replace its
/// input). Hard links are not told apart (.NET gives no file identity).
/// </summary>
public static class SameFile
{
    /// <summary>What the case check asks the file system: whether a path exists (a file or a folder), and the exact
    /// names a folder lists. A seam so that the tests can play a case-insensitive file system on a case-sensitive one.</summary>
    public interface IProbe
    {
        bool Exists(string path);
        IReadOnlySet<string> Names(string folder);
    }

    sealed class Disk : IProbe
    {
        public bool Exists(string path) => File.Exists(path) || Directory.Exists(path);
        public IReadOnlySet<string> Names(string folder) =>
            Directory.EnumerateFileSystemEntries(folder).Select(e => Path.GetFileName(e)).ToHashSet(StringComparer.Ordinal);
    }

    static readonly IProbe OnDisk = new Disk();

    /// <summary>a and b: full paths.</summary>
    public static bool Check(string a, string b) => Check(a, b, OnDisk);

    public static bool Check(string a, string b, IProbe probe)
    {
        if (string.Equals(a, b, StringComparison.Ordinal)) return true;
        // The same file under another name (a symbolic link to an input).
        string ra = Resolved(a), rb = Resolved(b);
        if (string.Equals(ra, rb, StringComparison.Ordinal)) return true;
        try
        {
            return string.Equals(ra, rb, StringComparison.OrdinalIgnoreCase) && SameInOtherCase(ra, rb, probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    /// <summary>Where a symbolic link finally leads; the path itself if it is no link (or not there at all).</summary>
    static string Resolved(string path)
    {
        try { return new FileInfo(path).ResolveLinkTarget(true)?.FullName ?? path; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return path; }
    }

    /// <summary>
    /// a and b differ only in letter case. They are one file when both exist, their folders are one folder, and the
    /// folder does not list both names: a case-sensitive file system lists two files (and says a name it does not
    /// have is missing); a case-insensitive one finds the file under either name but lists it under one.
    /// </summary>
    static bool SameInOtherCase(string a, string b, IProbe probe)
    {
        if (string.Equals(a, b, StringComparison.Ordinal)) return true;
        if (!probe.Exists(a) || !probe.Exists(b)) return false;
        string? folderA = Path.GetDirectoryName(a), folderB = Path.GetDirectoryName(b);
        if (folderA is null || folderB is null) return true;   // two spellings of one root that both exist (C:\ and c:\)
        if (!SameInOtherCase(folderA, folderB, probe)) return false;
        string nameA = Path.GetFileName(a), nameB = Path.GetFileName(b);
        if (string.Equals(nameA, nameB, StringComparison.Ordinal)) return true;
        var names = probe.Names(folderA);
        return !(names.Contains(nameA) && names.Contains(nameB));
    }
}
