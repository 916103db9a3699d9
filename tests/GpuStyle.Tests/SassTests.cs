using System.Reflection;
using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Runtime;
using GpuStyle.Engine.Ilgpu;
using GpuStyle.Kernels;
using GpuStyle.Tests.Support;

namespace GpuStyle.Tests;

/// <summary>
/// Each kernel's PTX assembled into sm_90 machine code by ptxas (NVIDIA's assembler: what the driver's JIT does when a
/// kernel loads), here, without a GPU. Catches what only a GPU run would otherwise show: inline PTX the driver
/// rejects, spills to local memory, and a register count that leaves a group unable to fit on an SM at the shape the
/// backend launches it (CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES — the TF32 convolution at 155 registers × 512 threads
/// was one, found this way). ptxas comes from Debian's nvidia-cuda-toolkit: `.ci/fetch-ptxas` puts it in .tools/cuda;
/// without it these tests are skipped, saying so.
/// </summary>
public class SassTests
{
    public static IEnumerable<object[]> Kernels() => PtxCompileTests.Kernels();

    /// <summary>The threads a group of each explicitly grouped kernel has at the GPU's default launch options (the
    /// implicitly grouped ones get theirs from CUDA's occupancy calculator, which counts their registers).</summary>
    public static readonly IReadOnlyDictionary<string, int> GroupThreads = DefaultGroupThreads();

    static Dictionary<string, int> DefaultGroupThreads()
    {
        var o = new IlgpuLaunchOptions();
        var mma = o.Mma(emulate: false);
        int gramTiles = o.TileWidth * o.TileHeight, mmaGram = Gram.IlgpuTensorCore.Threads(o.MmaGramWarps);
        return new()
        {
            ["Conv3x3.IlgpuTensorCore.Forward"] = Conv3x3.IlgpuTensorCore.Threads(mma),
            // MmaPrefetch=1: the general kernel 96 registers × 512 threads fit an SM once; MmaPrefetch=2 likewise
            // without launch bounds (the 32×8 kernel: 64 with them).
            ["Conv3x3.IlgpuTensorCore.ForwardPrefetchPatch"] = Conv3x3.IlgpuTensorCore.Threads(mma),
            ["Conv3x3.IlgpuTensorCore.Forward32x8"] = Conv3x3.IlgpuTensorCore.Threads(mma),
            ["Conv3x3.IlgpuTensorCore.Forward32x8PrefetchPatch"] = Conv3x3.IlgpuTensorCore.Threads(mma),
            ["Conv3x3.IlgpuTensorCore.ForwardAsync"] = Conv3x3.IlgpuTensorCore.Threads(mma),
            ["Conv3x3.IlgpuTensorCore.Forward32x8Async"] = Conv3x3.IlgpuTensorCore.Threads(mma),
            ["Conv3x3.IlgpuMmaFragments.Forward"] = Conv3x3.IlgpuMmaFragments.Threads(o.MmaTileHeight),
            ["Conv3x3.IlgpuMmaFragments.ForwardWide"] = Conv3x3.IlgpuMmaFragments.Threads(o.MmaTileHeight, Conv3x3.IlgpuMmaFragments.Wide),
            ["Conv3x3.IlgpuMmaFragments.ForwardSquare"] = Conv3x3.IlgpuMmaFragments.Threads(o.MmaTileHeight, Conv3x3.IlgpuMmaFragments.Square),
            ["Conv3x3.IlgpuMmaFragments.ForwardAsync"] = Conv3x3.IlgpuMmaFragments.Threads(o.MmaTileHeight),
            ["Conv3x3.IlgpuMmaFragments.ForwardWideAsync"] = Conv3x3.IlgpuMmaFragments.Threads(o.MmaTileHeight, Conv3x3.IlgpuMmaFragments.Wide),
            ["Conv3x3.IlgpuBlocked.Forward"] = o.BlockedWidth / Conv3x3.IlgpuBlocked.PixelsPerThread * o.BlockedHeight,
            ["Conv3x3.IlgpuBlockedFewOutputs.Forward"] = o.BlockedWidth / Conv3x3.IlgpuBlocked.PixelsPerThread * o.BlockedHeight,
            ["Conv3x3.IlgpuTiled.Forward"] = o.TileWidth * o.TileHeight,
            ["Conv3x3.IlgpuWinograd.Gemm"] = Conv3x3.IlgpuWinograd.Threads(o.WinogradM, o.WinogradN),
            ["Conv3x3.IlgpuWinograd.Gemm128x128"] = Conv3x3.IlgpuWinograd.Threads(128, 128),
            ["Conv3x3.IlgpuWinograd.Gemm64x128"] = Conv3x3.IlgpuWinograd.Threads(64, 128),
            ["Conv3x3.IlgpuWinograd.Gemm128x128Accumulate"] = Conv3x3.IlgpuWinograd.Threads(128, 128),
            ["Conv3x3.IlgpuWinograd.Gemm64x128Accumulate"] = Conv3x3.IlgpuWinograd.Threads(64, 128),
            ["Conv3x3.IlgpuWinograd.GemmTensorCore"] = mmaGram,
            ["Gram.IlgpuTensorCore.ForwardPartial"] = mmaGram,
            ["Gram.IlgpuTensorCore.ForwardPrefetch"] = Gram.IlgpuTensorCore.Threads(2),
            ["Gram.IlgpuTensorCore.BackwardAccumulate"] = mmaGram,
            ["Gram.IlgpuTensorCore.BackwardFragments"] = Gram.IlgpuTensorCore.FragmentsThreads,
            ["Gram.IlgpuTiled.ForwardPartial"] = gramTiles,
            ["Gram.IlgpuTiled.ReduceSplitsGrouped"] = 32 * o.GramReduceRows,   // a warp of entries × GramReduceRows rows
            ["Gram.IlgpuTiled.BackwardAccumulate"] = gramTiles,
            ["Gram.IlgpuBlocked.ForwardPartial"] = gramTiles,
            ["Gram.IlgpuBlocked.BackwardAccumulate"] = gramTiles,
            ["Gram.IlgpuBlocked.ForwardPartial16"] = 256,
            ["Gram.IlgpuBlocked.BackwardAccumulate16"] = 256,
            ["VectorOps.SumGroups"] = o.FinishThreads,
            ["VectorOps.Finish"] = o.FinishThreads,
            ["Lbfgs.RowDotsPartial"] = o.FinishThreads,
            ["Lbfgs.RowDotsFinish"] = o.FinishThreads,
            ["Lbfgs.Direction"] = o.FinishThreads,
        };
    }

    /// <summary>Registers an SM of compute capability 9.0 has, as have desktop and server GPUs from 5.0 on (a group may
    /// use them all); a warp's registers are allocated in units of 256, so a thread's count rounds up to a multiple of 8.</summary>
    const int RegistersPerSm = 65536;

    static int Allocated(int registersPerThread, int threads) => (registersPerThread + 7) / 8 * 8 * threads;

    [Fact]
    public void Every_explicitly_grouped_kernel_has_its_group_size_listed()
    {
        var explicitlyGrouped = PtxCompileTests.AllKernels()
            .Where(m => m.GetParameters()[0].ParameterType is var t && t != typeof(Index1D) && t != typeof(Index2D) && t != typeof(Index3D))
            .Select(PtxCompileTests.Name).Order().ToList();
        Assert.Equal(explicitlyGrouped, GroupThreads.Keys.Order().ToList());
    }

    [PtxasTheory]
    [MemberData(nameof(Kernels))]
    public void Kernel_assembles_for_sm90_without_spills_and_its_groups_fit_an_SM(string kernel)
    {
        var method = PtxCompileTests.AllKernels().Single(m => PtxCompileTests.Name(m) == kernel);
        var report = Assemble(Dumped(PtxCompileTests.Ptx(method), kernel), kernel);
        Assert.True(report.SpillBytes == 0, $"{kernel}: {report.SpillBytes} bytes of spills to local memory\n{report.Log}");
        if (GroupThreads.TryGetValue(kernel, out int threads))
        {
            int allocated = Allocated(report.Registers, threads);
            Assert.True(allocated <= RegistersPerSm,
                $"{kernel}: {report.Registers} registers a thread × {threads} threads = {allocated} > {RegistersPerSm}: its groups cannot launch");
        }
    }

    /// <summary>
    /// GPUs before Ampere — Maxwell (5.x, the oldest a CUDA 12 driver runs) to Turing (7.5: a T4, an RTX 2080) — run
    /// the fp32 kernels: each assembles for sm_50. The kernels that need TF32 tensor cores are those ptxas refuses for
    /// sm_75 ("requires .target sm_80 or higher"): why IlgpuBackend.Tf32Refusal refuses `--tf32` there, and why
    /// OlderGpuTests holds the fp32 path to none of them.
    /// </summary>
    [PtxasTheory]
    [MemberData(nameof(Kernels))]
    public void Kernel_assembles_for_sm50_unless_it_needs_TF32_tensor_cores_which_sm75_lacks(string kernel)
    {
        var method = PtxCompileTests.AllKernels().Single(m => PtxCompileTests.Name(m) == kernel);
        if (OlderGpuTests.NeedsTf32TensorCores(method))
        {
            var (code, log) = RunPtxas(PtxCompileTests.Ptx(method, ILGPU.Runtime.Cuda.CudaArchitecture.SM_75), "sm_75");
            Assert.True(code != 0 && log.Contains("requires .target sm_80 or higher"), $"{kernel}: ptxas for sm_75 gave {code}:\n{log}");
        }
        else
        {
            var report = Assemble(OlderGpuTests.PtxForSm50(method), kernel, "sm_50");
            // Desktop and server GPUs from Maxwell on have the same 65 536 registers an SM: the group must still fit one.
            if (GroupThreads.TryGetValue(kernel, out int threads))
                Assert.True(Allocated(report.Registers, threads) <= RegistersPerSm,
                    $"{kernel}: {report.Registers} registers a thread on sm_50 × {threads} threads: its groups cannot launch there");
        }
    }

    [PtxasFact]
    public void The_check_sees_a_group_that_cannot_fit()
    {
        // The prefetching TF32 convolution on a 32×16 tile (`--launch MmaTileHeight=16,MmaPrefetch=1`: 1 024 threads)
        // cannot launch: LaunchableTile lowers it; this check would have flagged it.
        var method = typeof(Conv3x3.IlgpuTensorCore).GetMethod(nameof(Conv3x3.IlgpuTensorCore.ForwardPrefetchPatch))!;
        var report = Assemble(PtxCompileTests.Ptx(method), "ForwardPrefetchPatch");
        int threads = Conv3x3.IlgpuTensorCore.Threads(new IlgpuLaunchOptions { MmaTileHeight = 16 }.Mma(emulate: false));
        Assert.Equal(1024, threads);
        Assert.True(Allocated(report.Registers, threads) > RegistersPerSm, $"{report.Registers} registers × {threads} threads fit after all");
        // And ptxas rejects what the driver would: an mma.sync with a missing operand.
        var broken = PtxCompileTests.Ptx(typeof(Conv3x3.IlgpuTensorCore).GetMethod(nameof(Conv3x3.IlgpuTensorCore.Forward))!);
        int at = broken.IndexOf("mma.sync", StringComparison.Ordinal);
        Assert.True(at > 0, "no mma.sync in the TF32 kernel's PTX");
        int end = broken.IndexOf('}', at);
        broken = broken[..end] + broken[(broken.IndexOf(',', end) + 1)..];
        Assert.Throws<Xunit.Sdk.TrueException>(() => Assemble(broken, "broken"));
    }

    /// <summary>The TF32 convolution compiled as the CUDA backend loads it with MmaLaunchBounds (LaunchBounds): the
    /// PTX backend of an sm_90 accelerator, ILGPU's internal constructor reached, the directives in place.</summary>
    static string BoundedPtx(string kernel) => BoundedPtx(typeof(Conv3x3.IlgpuTensorCore).GetMethod(kernel)!, maxThreads: 512);

    static string BoundedPtx(MethodInfo kernel, int maxThreads) => PtxCompileTests.WithSm90Backend((context, backend) =>
        LaunchBounds.Compile(backend, context, kernel, maxThreads, minGroups: 2).PTXAssembly);

    [PtxasTheory]
    [InlineData(Conv3x3.IlgpuMmaFragments.Narrow)]
    [InlineData(Conv3x3.IlgpuMmaFragments.Wide)]
    [InlineData(Conv3x3.IlgpuMmaFragments.Square)]
    [InlineData(Conv3x3.IlgpuMmaFragments.Narrow, true)]
    [InlineData(Conv3x3.IlgpuMmaFragments.Wide, true)]
    public void Version_5_with_launch_bounds_fits_two_groups_an_SM_without_spills(int shape, bool asyncWeights = false)
    {
        // As the backend loads it on CUDA (ConvFragmentsKernel): bounds for two groups of the GPU's 8-row tile an SM.
        // The 64×64 warp tiles hold 128 accumulators a thread; at 128 threads a group the bounds leave ptxas 255
        // registers, and their groups must still fit twice.
        int threads = Conv3x3.IlgpuMmaFragments.Threads(new IlgpuLaunchOptions().MmaTileHeight, shape);
        var method = Conv3x3.IlgpuMmaFragments.For(shape, asyncWeights).Method;
        string ptx = BoundedPtx(method, threads);
        Assert.Contains($".maxntid {threads}, 1, 1", ptx);
        var report = Assemble(Dumped(ptx, $"{method.Name}.bounded"), method.Name);
        Assert.True(report.SpillBytes == 0, $"{method.Name} with launch bounds spills {report.SpillBytes} bytes\n{report.Log}");
        Assert.True(2 * Allocated(report.Registers, threads) <= RegistersPerSm,
            $"{method.Name}: {report.Registers} registers × {threads} threads: two groups do not fit an SM");
    }

    [Theory]
    [InlineData(nameof(Conv3x3.IlgpuTensorCore.Forward32x8))]
    [InlineData(nameof(Conv3x3.IlgpuTensorCore.Forward))]
    [InlineData(nameof(Conv3x3.IlgpuTensorCore.Forward32x8Async))]
    [InlineData(nameof(Conv3x3.IlgpuTensorCore.ForwardAsync))]
    public void The_TF32_kernel_with_launch_bounds_is_built_from_ILGPUs_PTX(string kernel)
    {
        string ptx = BoundedPtx(kernel);
        Assert.Matches(@"\)\s*\n\.maxntid 512, 1, 1\n\.minnctapersm 2\n\{", ptx);
        Assert.Contains("mma.sync", ptx);
    }

    [PtxasTheory]
    [InlineData(nameof(Conv3x3.IlgpuTensorCore.Forward32x8))]
    [InlineData(nameof(Conv3x3.IlgpuTensorCore.Forward))]
    [InlineData(nameof(Conv3x3.IlgpuTensorCore.Forward32x8Async))]   // 72 registers without the bounds
    public void With_launch_bounds_two_TF32_groups_fit_an_SM_without_spills(string kernel)
    {
        // Without the bounds the 32×8 kernel takes 72 registers: one 512-thread group an SM. With them, 64 and no
        // spills: two groups, 32 warps (sm_90: 65 536 registers, 2 048 threads an SM). The general kernel with
        // asynchronous copies (96 registers) spills 48 bytes at 64, so the backend bounds only the 32×8 one.
        var report = Assemble(BoundedPtx(kernel), kernel);
        Assert.True(report.SpillBytes == 0, $"{kernel} with launch bounds spills {report.SpillBytes} bytes\n{report.Log}");
        Assert.True(report.Registers <= 64, $"{kernel} with launch bounds takes {report.Registers} registers");
    }

    [Fact]
    public void Launch_bounds_go_between_the_parameters_and_the_body()
    {
        const string ptx = ".version 8.8\n.target sm_80\n.visible .entry K(\n\t.param .b32 a,\n\t.param .align 8 .b8 v[16]\n)\n{\n\tret;\n}\n";
        Assert.Equal(".version 8.8\n.target sm_80\n.visible .entry K(\n\t.param .b32 a,\n\t.param .align 8 .b8 v[16]\n)\n.maxntid 256, 1, 1\n.minnctapersm 3\n{\n\tret;\n}\n",
            LaunchBounds.Insert(ptx, 256, 3));
        Assert.Throws<ArgumentException>(() => LaunchBounds.Insert(".version 8.8\n", 256, 2));
    }

    public sealed record SassReport(int Registers, int SpillBytes, string Log);

    /// <summary>The PTX, also written to $GPUSTYLE_DUMP_PTX/NAME.ptx where that folder is set: for counting a kernel's
    /// SASS by hand (ptxas, then cuobjdump -sass), as docs/performance.md's tables were.</summary>
    static string Dumped(string ptx, string name)
    {
        if (Environment.GetEnvironmentVariable("GPUSTYLE_DUMP_PTX") is { Length: > 0 } dump)
            File.WriteAllText(Path.Combine(dump, $"{name}.ptx"), ptx);
        return ptx;
    }

    /// <summary>Runs ptxas -arch=<paramref name="arch"/> -v on the PTX, which it must accept.</summary>
    static SassReport Assemble(string ptx, string name, string arch = "sm_90")
    {
        var (code, log) = RunPtxas(ptx, arch);
        Assert.True(code == 0, $"{name}: ptxas for {arch} failed ({code}):\n{log}");
        var used = Regex.Match(log, @"Used (\d+) registers");
        Assert.True(used.Success, $"{name}: no register count in ptxas's report:\n{log}");
        int spills = Regex.Matches(log, @"(\d+) bytes spill (stores|loads)").Sum(m => int.Parse(m.Groups[1].Value));
        return new SassReport(int.Parse(used.Groups[1].Value), spills, log);
    }

    /// <summary>Runs ptxas -arch=<paramref name="arch"/> -v on the PTX: its exit code and report. Debian's ptxas (CUDA
    /// 11.8) reads PTX ISA up to 7.8; ILGPU writes 8.8 but emits nothing newer than 7.x, so the version line is lowered
    /// to match.</summary>
    static (int Code, string Log) RunPtxas(string ptx, string arch)
    {
        string dir = Directory.CreateTempSubdirectory("gpustyle-sass-").FullName;
        try
        {
            string input = Path.Combine(dir, "kernel.ptx");
            File.WriteAllText(input, Regex.Replace(ptx, @"^\.version \d+\.\d+", ".version 7.8", RegexOptions.Multiline));
            return ChildProcess.Run(Ptxas.Path!, [$"-arch={arch}", "-O3", "-v", input, "-o", Path.Combine(dir, "kernel.cubin")], timeoutMs: 120_000);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

/// <summary>Where ptxas is: $GPUSTYLE_PTXAS, else .tools/cuda/ptxas in the checkout (.ci/fetch-ptxas), else on PATH.</summary>
public static class Ptxas
{
    public static string? Path { get; } = Find();

    static string? Find()
    {
        if (Environment.GetEnvironmentVariable("GPUSTYLE_PTXAS") is { Length: > 0 } named && File.Exists(named)) return named;
        string local = Repo.File(System.IO.Path.Combine(".tools", "cuda", "ptxas"));
        if (File.Exists(local)) return local;
        return (Environment.GetEnvironmentVariable("PATH") ?? "").Split(System.IO.Path.PathSeparator)
            .Select(p => System.IO.Path.Combine(p, "ptxas")).FirstOrDefault(File.Exists);
    }

    public const string Missing = "needs ptxas (NVIDIA's PTX assembler): run .ci/fetch-ptxas, or set GPUSTYLE_PTXAS";
}

public sealed class PtxasFactAttribute : FactAttribute
{
    public PtxasFactAttribute() { if (Ptxas.Path is null) Skip = Ptxas.Missing; }
}

public sealed class PtxasTheoryAttribute : TheoryAttribute
{
    public PtxasTheoryAttribute() { if (Ptxas.Path is null) Skip = Ptxas.Missing; }
}
