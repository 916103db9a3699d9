using System.Security.Cryptography;
using System.Text;
using ILGPU.Runtime.Cuda;

namespace GpuStyle.Engine.Ilgpu;

/// <summary>
/// The choices tuning made (which kernel runs each convolution's shape, each Gram backward's), kept on disk so that a
/// later run on the same card skips the tuning: the candidates' runs, the timing, and the load of the kernels that
/// lost. Like cuDNN's benchmark mode, tuning by the clock can choose differently from one run to the next where two
/// candidates are close — and the candidates round differently (Winograd's F(2×2) and F(4×4), TF32 tiles), so the
/// same command gave pictures that differed in their last bits. With the choices kept, it gives the same picture.
/// <para>A file holds the choices of one scope: this build of the kernels (the kernel cache's build folder), one card
/// and driver, and one set of launch options — all written as its first lines and checked on reading. A choice is
/// kept with the whole list of candidates it was chosen from, and used only where the run's list is the same (a run
/// with other candidates tunes afresh). The file is written whole to a temporary file and renamed into place, merged
/// with what another process wrote since it was read; a file that does not read back as this scope's is ignored and
/// replaced.</para>
/// <para>What it cannot know: a choice timed while the card was busy stays. GPUSTYLE_TUNING_CACHE=off tunes every run
/// again; deleting the file (or the kernel cache) forgets the choices; `gpustyle bench` always tunes afresh.</para>
/// </summary>
public sealed class TuningCache
{
    const string Format = "gpustyle tuning cache 1";

    /// <summary>A cache in <paramref name="file"/> for the choices made under <paramref name="scope"/> (one line of
    /// text: the card, driver and launch options).</summary>
    public TuningCache(string file, string scope)
    {
        File = file;
        Scope = scope.ReplaceLineEndings(" ");
        _choices = Read(file, Scope) ?? [];
    }

    public string File { get; }
    public string Scope { get; }

    /// <summary>Shapes whose choice came from the file, choices written to it, and why the cache stopped being written
    /// (null while it works).</summary>
    public int Hits { get; private set; }
    public int Recorded { get; private set; }
    public string? Note { get; private set; }

    readonly Dictionary<string, (string Candidates, int Chosen)> _choices;

    /// <summary>GPUSTYLE_TUNING_CACHE=off (or 0) turns the cache off; otherwise the tuning of a CUDA card is kept in the
    /// kernel cache's folder for this build (none where the kernel cache is off), a file for each card, driver and set
    /// of launch options. Null on other accelerators: OpenCL's and the CPU accelerator's tunings are not kept.</summary>
    public static TuningCache? For(KernelCache? kernels, ILGPU.Runtime.Accelerator accelerator, IlgpuLaunchOptions launch)
    {
        string? asked = Environment.GetEnvironmentVariable("GPUSTYLE_TUNING_CACHE");
        if (string.Equals(asked, "off", StringComparison.OrdinalIgnoreCase) || asked == "0") return null;
        if (kernels is null || accelerator is not CudaAccelerator cuda) return null;
        string scope;
        try
        {
            scope = $"{cuda.Name}, {cuda.Architecture}, driver {cuda.DriverVersion}, {cuda.NumMultiprocessors} SMs at {cuda.ClockRate} kHz, "
                + $"{cuda.MemorySize} bytes; {launch}";
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return null;   // a card that cannot say what it is tunes every run, as before the cache
        }
        return new TuningCache(Path.Combine(kernels.BuildDirectory, "tunings", FileNameOf(scope)), scope);
    }

    /// <summary>A file name for a scope: its hash (the scope itself is the file's first line).</summary>
    public static string FileNameOf(string scope) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(scope.ReplaceLineEndings(" "))))[..24].ToLowerInvariant() + ".txt";

    /// <summary>The index of the candidate chosen before for <paramref name="shape"/> from the same candidates, or null
    /// (never tuned in this scope, or tuned among others).</summary>
    public int? Lookup(string shape, IReadOnlyList<string> candidates)
    {
        if (!_choices.TryGetValue(shape, out var known) || known.Candidates != Join(candidates)) return null;
        Hits++;
        return known.Chosen;
    }

    /// <summary>Keeps the choice of candidate <paramref name="chosen"/> for <paramref name="shape"/>, and writes the
    /// file (merged with what another run wrote since).</summary>
    public void Record(string shape, IReadOnlyList<string> candidates, int chosen)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(chosen);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(chosen, candidates.Count);
        _choices[shape] = (Join(candidates), chosen);
        Recorded++;
        if (Note is not null) return;
        // Another run's choices for shapes this one has not met are kept; this run's own win where both tuned one.
        if (Read(File, Scope) is { } onDisk)
            foreach (var (other, choice) in onDisk)
                _choices.TryAdd(other, choice);
        string tmp = $"{File}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(File)!);
            var text = new StringBuilder($"{Format}\n{Scope}\n");
            foreach (var (key, (list, index)) in _choices.OrderBy(c => c.Key, StringComparer.Ordinal))
                text.Append($"{key}\t{list}\t{index}\n");
            text.Append("end\n");
            System.IO.File.WriteAllText(tmp, text.ToString());
            System.IO.File.Move(tmp, File, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A cache that cannot be written costs the next run its tuning only: say so once, carry on.
            Note = $"the tuning cache {File} cannot be written ({e.Message}); set GPUSTYLE_TUNING_CACHE=off to leave it";
            try { System.IO.File.Delete(tmp); } catch (Exception) { }
        }
    }

    // Candidates are named by their ToString, which says everything that tells them apart (algorithm, tile, warps).
    static string Join(IReadOnlyList<string> candidates) => string.Join(" | ", candidates.Select(c => c.ReplaceLineEndings(" ").Replace('\t', ' ')));

    /// <summary>The choices in a file of this format and scope, ending with its last line (a torn file does not), each
    /// line a shape, its candidates and a chosen index among them; else null.</summary>
    static Dictionary<string, (string Candidates, int Chosen)>? Read(string file, string scope)
    {
        string text;
        try { text = System.IO.File.ReadAllText(file); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
        var lines = text.Split('\n');
        // Format, scope, choices…, "end", and the empty string after the last newline.
        if (lines.Length < 4 || lines[0] != Format || lines[1] != scope || lines[^2] != "end" || lines[^1] != "") return null;
        var choices = new Dictionary<string, (string, int)>();
        foreach (var line in lines[2..^2])
        {
            var parts = line.Split('\t');
            if (parts.Length != 3 || !int.TryParse(parts[2], out int chosen) || chosen < 0
                || chosen >= parts[1].Split(" | ").Length || !choices.TryAdd(parts[0], (parts[1], chosen)))
                return null;
        }
        return choices;
    }
}
