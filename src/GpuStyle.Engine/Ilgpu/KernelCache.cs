using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using ILGPU;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using GpuStyle.Kernels;
using GpuStyle.Engine.Weights;

namespace GpuStyle.Engine.Ilgpu;

/// <summary>
/// The PTX that ILGPU wrote for each CUDA kernel, kept on disk between runs. ILGPU's compile of a kernel to PTX is
/// host work of ≈ 35 ms a kernel on average (the 61 kernels in 2.0–2.3 s on this machine, with ILGPU's code already
/// compiled ahead of time; measured in one process, a fresh ILGPU context each round) — most of a GPU run's start,
/// every run. A kernel found here is loaded from its PTX at once; the driver compiles PTX to SASS as before (and keeps
/// its own cache of that, which identical PTX text hits: ILGPU's PTX numbers its values in compile order, so without
/// this cache a kernel's PTX changes with the order of the loads).
/// <para>An entry is the PTX and the two facts ILGPU's launcher needs besides it (the static shared memory and whether
/// the kernel takes dynamic shared memory), under a key of everything that decides the PTX: the kernel's method, how
/// it is grouped and specialised, any edit (launch bounds), the target architecture and PTX version, the context's
/// code-generation settings, and the exact builds of our kernels' assembly and ILGPU's (their module version ids: a
/// rebuilt or upgraded GpuStyle or ILGPU never reads an older entry). Entries are written to a temporary file and
/// renamed into place, so a reader sees a whole entry or none; an entry that does not read back exactly (another key,
/// a torn or edited file) is compiled afresh and replaced. Each build's entries sit in a folder of their own; a new
/// build's folder removes all but the <see cref="BuildsKept"/> most recent others.</para>
/// <para>Loading from PTX goes through one of ILGPU 1.5.3's internal members (PTXCompiledKernel's constructor, as
/// <see cref="LaunchBounds"/> does): where that fails the cache turns itself off and ILGPU compiles as usual.</para>
/// </summary>
public sealed class KernelCache
{
    /// <summary>Bumped when an entry's format changes.</summary>
    const string Format = "gpustyle kernel cache 1";
    public const int BuildsKept = 4;

    public KernelCache(string directory) => Directory = directory;

    /// <summary>The cache's root: its builds' folders are under it.</summary>
    public string Directory { get; }

    /// <summary>GPUSTYLE_KERNEL_CACHE: a folder, or "off"; else the kernels folder of GpuStyle's cache
    /// ($XDG_CACHE_HOME/gpustyle/kernels, else ~/.cache/gpustyle/kernels). Null when turned off.</summary>
    public static KernelCache? Default()
    {
        string? asked = Environment.GetEnvironmentVariable("GPUSTYLE_KERNEL_CACHE");
        if (string.Equals(asked, "off", StringComparison.OrdinalIgnoreCase) || asked == "0") return null;
        return new KernelCache(!string.IsNullOrEmpty(asked) ? asked : Path.Combine(WeightsStore.DefaultDirectory(), "kernels"));
    }

    /// <summary>Kernels read from the cache, compiled (and written to it), and why the cache stopped being used (null
    /// while it works).</summary>
    public int Hits { get; private set; }
    public int Misses { get; private set; }
    public string? Note { get; private set; }

    /// <summary>The folder of this build of GpuStyle's kernels and of ILGPU: their assemblies' module version ids
    /// (deterministic builds: the same source and compiler give the same id).</summary>
    public string BuildDirectory => Path.Combine(Directory, Build);

    static readonly string Build = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join("|",
        Id(typeof(Conv3x3).Assembly), Id(typeof(Context).Assembly), Id(typeof(ILGPU.Algorithms.XMath).Assembly)))))[..16].ToLowerInvariant();

    static string Id(Assembly a) => $"{a.GetName().Name} {a.GetName().Version} {a.ManifestModule.ModuleVersionId}";

    /// <summary>The kernel compiled for <paramref name="backend"/>, from the cache where it has it, else compiled and
    /// stored: by ILGPU, or by <paramref name="compile"/> where the caller edits the PTX (launch bounds), the edit
    /// named by <paramref name="editKey"/>.</summary>
    public PTXCompiledKernel GetOrCompile(PTXBackend backend, EntryPointDescription entry, KernelSpecialization specialization,
        Func<PTXCompiledKernel>? compile = null, string editKey = "")
    {
        string key = Key(backend, entry, specialization, editKey);
        string file = Path.Combine(BuildDirectory, Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..32].ToLowerInvariant() + ".ptx");
        if (Note is null && Read(file, key) is { } cached)
            try
            {
                var kernel = Construct(backend.Context, new EntryPoint(entry, new SharedMemorySpecification(cached.StaticShared, cached.DynamicShared), specialization),
                    info: null, cached.Ptx);   // ILGPU writes kernel information only when asked (EnableKernelInformation)
                Hits++;
                return kernel;
            }
            catch (Exception e) when (e is TargetInvocationException or MissingMethodException or InvalidCastException or ArgumentException)
            {
                Note = $"the kernel cache is not used: ILGPU's compiled kernels cannot be made from PTX here ({e.GetType().Name}: {e.Message})";
            }
        var compiled = compile?.Invoke() ?? (PTXCompiledKernel)backend.Compile(entry, specialization);
        Misses++;
        if (Note is null) Write(file, key, EntryPointOf(compiled).SharedMemory, compiled.PTXAssembly);
        return compiled;
    }

    /// <summary>Everything that decides a kernel's PTX, as text (kept in the entry, to check it on reading).</summary>
    public static string Key(PTXBackend backend, EntryPointDescription entry, KernelSpecialization specialization, string editKey)
    {
        var m = entry.MethodSource;
        var p = backend.Context.Properties;
        return string.Join("|", Build, $"{m.DeclaringType!.FullName}.{m.Name} #{m.MetadataToken:x8}", entry.IndexType,
            $"threads {specialization.MaxNumThreadsPerGroup} groups {specialization.MinNumGroupsPerMultiprocessor}", editKey,
            $"{backend.Architecture} {backend.InstructionSet}",
            $"{p.OptimizationLevel} {p.MathMode} {p.InliningMode} {p.DebugSymbolsMode} assertions {p.EnableAssertions} io {p.EnableIOOperations} {p.StaticFieldMode} {p.ArrayMode}");
    }

    sealed record Entry(string Ptx, int StaticShared, bool DynamicShared);

    /// <summary>An entry whose header is this format and key, with its shared-memory line, else null.</summary>
    static Entry? Read(string file, string key)
    {
        string text;
        try { text = File.ReadAllText(file); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
        var lines = text.Split('\n', 4);
        if (lines.Length < 4 || lines[0] != "// " + Format || lines[1] != "// " + key) return null;
        var shared = lines[2].Split(' ');
        if (shared.Length != 4 || shared[1] != "shared" || !int.TryParse(shared[2], out int bytes) || bytes < 0 || shared[3] is not ("0" or "1")) return null;
        // The PTX ends with the entry's last line: a file cut short (a full disk) lacks it.
        const string End = "// end of entry";
        if (!lines[3].EndsWith(End + "\n", StringComparison.Ordinal)) return null;
        return new Entry(lines[3][..^(End.Length + 1)], bytes, shared[3] == "1");
    }

    void Write(string file, string key, SharedMemorySpecification shared, string ptx)
    {
        string tmp = $"{file}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            if (!System.IO.Directory.Exists(BuildDirectory))
            {
                System.IO.Directory.CreateDirectory(BuildDirectory);
                RemoveOldBuilds();
            }
            File.WriteAllText(tmp, $"// {Format}\n// {key}\n// shared {shared.StaticSize} {(shared.HasDynamicMemory ? 1 : 0)}\n{ptx}// end of entry\n");
            File.Move(tmp, file, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A cache that cannot be written only costs the next run its compile: say so once, carry on.
            Note = $"the kernel cache in {Directory} cannot be written ({e.Message}); set GPUSTYLE_KERNEL_CACHE to a folder you can write, or to off";
            try { File.Delete(tmp); } catch (Exception) { }
        }
    }

    /// <summary>All but the <see cref="BuildsKept"/> most recently written other builds' folders.</summary>
    void RemoveOldBuilds()
    {
        var others = new DirectoryInfo(Directory).GetDirectories()
            .Where(d => d.Name != Build && d.Name.Length == Build.Length && d.Name.All(char.IsAsciiHexDigitLower))
            .OrderByDescending(d => d.LastWriteTimeUtc).Skip(BuildsKept);
        foreach (var old in others)
            try { old.Delete(recursive: true); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    static readonly PropertyInfo EntryPointProperty =
        typeof(CompiledKernel).GetProperty("EntryPoint", BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.Instance)!;

    public static EntryPoint EntryPointOf(CompiledKernel kernel) => (EntryPoint)EntryPointProperty.GetValue(kernel)!;

    /// <summary>A compiled kernel from its PTX: ILGPU 1.5.3's internal constructor.</summary>
    internal static PTXCompiledKernel Construct(Context context, EntryPoint entryPoint, CompiledKernel.KernelInfo? info, string ptx) =>
        (PTXCompiledKernel)Activator.CreateInstance(typeof(PTXCompiledKernel), BindingFlags.NonPublic | BindingFlags.Instance, null,
            [context, entryPoint, info, ptx], null)!;
}
