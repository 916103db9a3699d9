using GpuStyle.Cli;

namespace GpuStyle.Tests;

/// <summary>
/// Whether an output names an input: on this (case-sensitive) disk, and on a case-insensitive file system played by a
/// probe — Windows' and macOS's default, where photo.PNG is photo.png and comparing the strings let an output replace
/// its input.
/// </summary>
public sealed class SameFileTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("gpustyle-same-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A file system holding these paths (files and their folders), spelled as created, that finds a path
    /// ignoring case or not.</summary>
    sealed class Probe(bool ignoresCase, params string[] files) : SameFile.IProbe
    {
        readonly List<string> _entries = files.SelectMany(Ancestry).Distinct().ToList();

        static IEnumerable<string> Ancestry(string path)
        {
            for (string? p = path; p is not null && Path.GetDirectoryName(p) is not null; p = Path.GetDirectoryName(p)) yield return p;
        }

        StringComparison Comparison => ignoresCase ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;

        public bool Exists(string path) => _entries.Any(e => string.Equals(e, path, Comparison));

        public IReadOnlySet<string> Names(string folder) => _entries
            .Where(e => string.Equals(Path.GetDirectoryName(e), folder, Comparison))
            .Select(e => Path.GetFileName(e)).ToHashSet(StringComparer.Ordinal);
    }

    // Paths under a folder that does not exist on this disk, so that only the probe answers for them.
    static string P(string relative) => Path.Combine("/gpustyle-no-such-root", relative);

    [Fact]
    public void On_a_case_insensitive_file_system_another_spelling_is_the_same_file()
    {
        var insensitive = new Probe(true, P("Photos/Photo.png"), P("Photos/other.png"));
        Assert.True(SameFile.Check(P("Photos/photo.PNG"), P("Photos/Photo.png"), insensitive));
        Assert.True(SameFile.Check(P("PHOTOS/Photo.png"), P("Photos/Photo.png"), insensitive));    // the folder's spelling
        Assert.True(SameFile.Check(P("photos/PHOTO.PNG"), P("Photos/Photo.png"), insensitive));
        Assert.False(SameFile.Check(P("Photos/other.png"), P("Photos/Photo.png"), insensitive));
        Assert.False(SameFile.Check(P("Photos/Photo2.png"), P("Photos/Photo.png"), insensitive));
    }

    [Fact]
    public void On_a_case_sensitive_file_system_other_spellings_are_other_files()
    {
        // Both spellings there (two files), or the output's not there yet (a new file).
        var sensitive = new Probe(false, P("Photos/Photo.png"), P("Photos/photo.png"), P("photos/Photo.png"));
        Assert.False(SameFile.Check(P("Photos/photo.png"), P("Photos/Photo.png"), sensitive));
        Assert.False(SameFile.Check(P("photos/Photo.png"), P("Photos/Photo.png"), sensitive));
        Assert.False(SameFile.Check(P("Photos/PHOTO.png"), P("Photos/Photo.png"), sensitive));
        Assert.True(SameFile.Check(P("Photos/Photo.png"), P("Photos/Photo.png"), sensitive));
    }

    [Fact]
    public void On_this_disk_a_link_is_its_target_and_other_spellings_are_told_apart()
    {
        string photo = Path.Combine(_dir, "Photo.png"), lower = Path.Combine(_dir, "photo.png"), link = Path.Combine(_dir, "link.png");
        File.WriteAllText(photo, "photo");
        File.CreateSymbolicLink(link, photo);
        Assert.True(SameFile.Check(link, photo));
        Assert.True(SameFile.Check(photo, link));
        bool insensitiveHere = File.Exists(lower);   // this disk's own answer (ext4 and tmpfs: sensitive)
        Assert.Equal(insensitiveHere, SameFile.Check(lower, photo));
        if (!insensitiveHere)
        {
            File.WriteAllText(lower, "another file");
            Assert.False(SameFile.Check(lower, photo));
        }
    }
}
