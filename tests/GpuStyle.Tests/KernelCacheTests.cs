using System.Reflection;
using ILGPU;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Algorithms;
using GpuStyle.Engine.Ilgpu;
using GpuStyle.Kernels;

namespace GpuStyle.Tests;

/// <summary>
/// The kernel cache (KernelCache: the PTX of each CUDA kernel kept between runs), with ILGPU's PTX backend for SM_90
/// and no GPU: an entry read back gives the very compiled kernel ILGPU would have made (its PTX, and the entry point
/// that ILGPU's launcher is built from), entries that do not read back whole are compiled afresh, and a cache that
/// cannot be written only turns itself off. The CUDA load of such a kernel is the one LaunchBounds has made on the
/// H200 since the fifteenth session (PTXCompiledKernel's constructor); docs/gpu-verify.sh times a run with the cache.
/// </summary>
public sealed class KernelCacheTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), $"gpustyle-kernel-cache-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    /// <summary>A kernel with static shared memory (ours all take dynamic shared memory): both kinds must read back.</summary>
    static void StaticSharedKernel(ArrayView<float> data)
    {
        var tile = SharedMemory.Allocate<float>(48);
        int i = Group.IdxX;
        tile[i % 48] = data[Grid.GlobalIndex.X];
        Group.Barrier();
        data[Grid.GlobalIndex.X] = tile[(i + 1) % 48];
    }

    static readonly MethodInfo StaticShared = typeof(KernelCacheTests).GetMethod(nameof(StaticSharedKernel), BindingFlags.NonPublic | BindingFlags.Static)!;

    /// <summary>Kernels of each kind: implicitly grouped, explicitly grouped with dynamic shared memory, with static.</summary>
    static IEnumerable<EntryPointDescription> Entries() =>
    [
        EntryPointDescription.FromImplicitlyGroupedKernel(typeof(VectorOps.Ilgpu).GetMethod(nameof(VectorOps.Ilgpu.Axpy))!),
        EntryPointDescription.FromExplicitlyGroupedKernel(typeof(VectorOps.Ilgpu).GetMethod(nameof(VectorOps.Ilgpu.SumGroups))!),
        EntryPointDescription.FromExplicitlyGroupedKernel(StaticShared),
    ];

    [Fact]
    public void An_entry_reads_back_as_the_kernel_ILGPU_compiles()
    {
        var first = new KernelCache(_dir);
        var compiled = PtxCompileTests.WithSm90Backend((_, backend) =>
            Entries().Select(e => first.GetOrCompile(backend, e, KernelSpecialization.Empty)).Select(Describe).ToList());
        Assert.Equal((0, 3), (first.Hits, first.Misses));
        Assert.Null(first.Note);
        Assert.Equal(3, Directory.GetFiles(first.BuildDirectory, "*.ptx").Length);
        Assert.Empty(Directory.GetFiles(first.BuildDirectory, "*.tmp"));

        // Another run: a fresh context and backend, the same folder.
        var second = new KernelCache(_dir);
        var cached = PtxCompileTests.WithSm90Backend((_, backend) =>
            Entries().Select(e => second.GetOrCompile(backend, e, KernelSpecialization.Empty)).Select(Describe).ToList());
        Assert.Equal((3, 0), (second.Hits, second.Misses));
        Assert.Equal(compiled, cached);
        // The three kinds differ where ILGPU's launcher looks: grouping, static and dynamic shared memory.
        Assert.Contains(compiled, d => d.Contains("implicit") && d.Contains("shared 0 False"));
        Assert.Contains(compiled, d => d.Contains("explicit") && d.Contains("shared 0 True"));
        Assert.Contains(compiled, d => d.Contains("explicit") && d.Contains("shared 192 False"));
    }

    /// <summary>What ILGPU's loader and launcher take from a compiled kernel, as text.</summary>
    static string Describe(PTXCompiledKernel k)
    {
        var e = KernelCache.EntryPointOf(k);
        return string.Join(" | ", k.Name, e.IsExplicitlyGrouped ? "explicit" : "implicit", e.IndexType, e.KernelIndexType,
            $"shared {e.SharedMemory.StaticSize} {e.SharedMemory.HasDynamicMemory}", e.Specialization.MaxNumThreadsPerGroup,
            e.Specialization.MinNumGroupsPerMultiprocessor, e.Parameters.Count, string.Join(",", e.Parameters.ParameterTypes.Select(t => t.FullName)),
            e.HasSpecializedParameters, e.NumFlattendedIndexParameters, e.MethodInfo, Canonical(k.PTXAssembly));
    }

    /// <summary>ILGPU names PTX values with a context-wide counter: two compiles of a kernel differ only there.</summary>
    static string Canonical(string ptx) => System.Text.RegularExpressions.Regex.Replace(ptx, @"_\d+\b", "_N");

    [Fact]
    public void A_cached_kernel_is_the_PTX_text_stored_and_a_first_compile_is_ILGPUs_own()
    {
        var entry = Entries().First();
        var cache = new KernelCache(_dir);
        string direct = PtxCompileTests.WithSm90Backend((_, b) => ((PTXCompiledKernel)b.Compile(entry, KernelSpecialization.Empty)).PTXAssembly);
        string stored = PtxCompileTests.WithSm90Backend((_, b) => cache.GetOrCompile(b, entry, KernelSpecialization.Empty).PTXAssembly);
        string read = PtxCompileTests.WithSm90Backend((_, b) => new KernelCache(_dir).GetOrCompile(b, entry, KernelSpecialization.Empty).PTXAssembly);
        Assert.Equal(Canonical(direct), Canonical(stored));
        Assert.Equal(stored, read);   // the very text: the driver's own cache of its SASS then hits too
    }

    [Fact]
    public void Launch_bounds_are_part_of_the_key()
    {
        var method = typeof(Conv3x3.IlgpuTensorCore).GetMethod(nameof(Conv3x3.IlgpuTensorCore.Forward32x8))!;
        var entry = EntryPointDescription.FromExplicitlyGroupedKernel(method);
        var cache = new KernelCache(_dir);
        var (plain, bounded, again) = PtxCompileTests.WithSm90Backend((_, b) => (
            cache.GetOrCompile(b, entry, KernelSpecialization.Empty).PTXAssembly,
            cache.GetOrCompile(b, entry, KernelSpecialization.Empty, () => LaunchBounds.Compile(b, b.Context, method, 512, 2), "launch bounds 512 2").PTXAssembly,
            cache.GetOrCompile(b, entry, KernelSpecialization.Empty, () => LaunchBounds.Compile(b, b.Context, method, 256, 2), "launch bounds 256 2").PTXAssembly));
        Assert.DoesNotContain(".maxntid", plain);
        Assert.Contains(".maxntid 512, 1, 1", bounded);
        Assert.Contains(".maxntid 256, 1, 1", again);
        Assert.Equal((0, 3), (cache.Hits, cache.Misses));
        var read = PtxCompileTests.WithSm90Backend((_, b) =>
            new KernelCache(_dir).GetOrCompile(b, entry, KernelSpecialization.Empty, () => throw new InvalidOperationException("a hit is not compiled again"), "launch bounds 512 2").PTXAssembly);
        Assert.Equal(bounded, read);
    }

    [Fact]
    public void The_key_names_what_decides_the_PTX()
    {
        var entry = Entries().First();
        var (key, bounded, sm80) = (
            PtxCompileTests.WithSm90Backend((_, b) => KernelCache.Key(b, entry, KernelSpecialization.Empty, "")),
            PtxCompileTests.WithSm90Backend((_, b) => KernelCache.Key(b, entry, KernelSpecialization.Empty, "launch bounds 512 2")),
            WithBackend(ILGPU.Runtime.Cuda.CudaArchitecture.SM_80, b => KernelCache.Key(b, entry, KernelSpecialization.Empty, "")));
        Assert.Contains("VectorOps+Ilgpu.Axpy", key);
        Assert.Contains("SM_90", key);
        Assert.True(key.Contains("Release"), key);   // OptimizationLevel.O1
        Assert.NotEqual(key, bounded);
        Assert.NotEqual(key, sm80);
        Assert.NotEqual(key, PtxCompileTests.WithSm90Backend((_, b) => KernelCache.Key(b, entry, new KernelSpecialization(256, 2), "")));
    }

    static T WithBackend<T>(ILGPU.Runtime.Cuda.CudaArchitecture arch, Func<PTXBackend, T> use)
    {
        using var context = Context.Create(b => b.CPU().EnableAlgorithms().Optimize(OptimizationLevel.O1));
        using var backend = new PTXBackend(context, new ILGPU.Runtime.Cuda.CudaCapabilityContext(arch), arch,
            ILGPU.Runtime.Cuda.CudaInstructionSet.ISA_88, null);
        return use(backend);
    }

    [Theory]
    [InlineData("cut")]        // a write cut short (a full disk): no end line
    [InlineData("key")]        // another kernel's entry under this name
    [InlineData("shared")]     // a damaged shared-memory line
    [InlineData("empty")]
    public void An_entry_that_does_not_read_back_whole_is_compiled_afresh(string damage)
    {
        var entry = Entries().Last();
        var cache = new KernelCache(_dir);
        string good = PtxCompileTests.WithSm90Backend((_, b) => cache.GetOrCompile(b, entry, KernelSpecialization.Empty).PTXAssembly);
        string file = Directory.GetFiles(cache.BuildDirectory, "*.ptx").Single();
        string text = File.ReadAllText(file);
        File.WriteAllText(file, damage switch
        {
            "cut" => text[..(text.Length * 2 / 3)],
            "key" => text.Replace("StaticSharedKernel", "OtherKernel"),
            "shared" => text.Replace("// shared 192 0", "// shared -1 0"),
            _ => "",
        });
        var again = new KernelCache(_dir);
        var kernel = PtxCompileTests.WithSm90Backend((_, b) => again.GetOrCompile(b, entry, KernelSpecialization.Empty));
        Assert.Equal((0, 1), (again.Hits, again.Misses));
        Assert.Equal(Canonical(good), Canonical(kernel.PTXAssembly));
        Assert.Equal(192, KernelCache.EntryPointOf(kernel).SharedMemory.StaticSize);
        // …and the entry is whole again.
        var third = new KernelCache(_dir);
        PtxCompileTests.WithSm90Backend((_, b) => third.GetOrCompile(b, entry, KernelSpecialization.Empty));
        Assert.Equal((1, 0), (third.Hits, third.Misses));
    }

    [Fact]
    public void A_cache_that_cannot_be_written_turns_itself_off_and_the_kernels_still_compile()
    {
        File.WriteAllText(_dir, "a file where the cache's folder would be");
        try
        {
            var cache = new KernelCache(_dir);
            var kernels = PtxCompileTests.WithSm90Backend((_, b) => Entries().Select(e => cache.GetOrCompile(b, e, KernelSpecialization.Empty).PTXAssembly).ToList());
            Assert.All(kernels, ptx => Assert.Contains(".entry", ptx));
            Assert.NotNull(cache.Note);
            Assert.Contains("cannot be written", cache.Note);
            Assert.Contains("GPUSTYLE_KERNEL_CACHE", cache.Note);
            Assert.Equal(3, cache.Misses);
        }
        finally { File.Delete(_dir); }
    }

    [Fact]
    public void A_new_build_keeps_the_most_recent_other_builds_only()
    {
        Directory.CreateDirectory(_dir);
        var now = DateTime.UtcNow;
        var builds = Enumerable.Range(0, 7).Select(i => Path.Combine(_dir, $"{i:x}{new string('a', 15)}")).ToList();
        for (int i = 0; i < builds.Count; i++)
        {
            Directory.CreateDirectory(builds[i]);
            File.WriteAllText(Path.Combine(builds[i], "x.ptx"), "old");
            Directory.SetLastWriteTimeUtc(builds[i], now.AddDays(-i));   // build 0 the most recent
        }
        string mine = Path.Combine(_dir, "not-a-build");
        Directory.CreateDirectory(mine);
        var cache = new KernelCache(_dir);
        PtxCompileTests.WithSm90Backend((_, b) => cache.GetOrCompile(b, Entries().First(), KernelSpecialization.Empty));
        Assert.True(Directory.Exists(cache.BuildDirectory));
        Assert.Equal(builds.Take(KernelCache.BuildsKept), builds.Where(Directory.Exists));
        Assert.True(Directory.Exists(mine), "a folder that is not a build's is left alone");
    }

    [Fact]
    public void The_CPU_accelerator_loads_its_kernels_through_the_loader_without_the_cache()
    {
        using var backend = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny, kernelCache: new KernelCache(_dir));
        Assert.True(backend.Kernels.Loaded >= 20, $"{backend.Kernels.Loaded} kernels loaded");
        Assert.True(backend.Kernels.Seconds > 0);
        Assert.Null(backend.Kernels.Cache);   // PTX only: CUDA
        Assert.False(Directory.Exists(_dir));
    }

    [Fact]
    public void The_default_cache_follows_GPUSTYLE_KERNEL_CACHE()
    {
        string? before = Environment.GetEnvironmentVariable("GPUSTYLE_KERNEL_CACHE");
        try
        {
            Environment.SetEnvironmentVariable("GPUSTYLE_KERNEL_CACHE", "off");
            Assert.Null(KernelCache.Default());
            Environment.SetEnvironmentVariable("GPUSTYLE_KERNEL_CACHE", _dir);
            Assert.Equal(_dir, KernelCache.Default()!.Directory);
            Environment.SetEnvironmentVariable("GPUSTYLE_KERNEL_CACHE", null);
            Assert.EndsWith(Path.Combine("gpustyle", "kernels"), KernelCache.Default()!.Directory);
        }
        finally { Environment.SetEnvironmentVariable("GPUSTYLE_KERNEL_CACHE", before); }
    }
}
