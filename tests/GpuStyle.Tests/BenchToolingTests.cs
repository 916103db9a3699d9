using ILGPU;
using ILGPU.Runtime;
using GpuStyle.Engine;
using GpuStyle.Engine.Ilgpu;
using GpuStyle.Kernels;
using GpuStyle.Tests.Support;

namespace GpuStyle.Tests;

/// <summary>`bench --profile`'s clock on an ILGPU device, and the device FMA-peak kernel.</summary>
public class DeviceProfilingTests
{
    [Fact]
    public void Profiling_markers_time_each_op_without_synchronising_between_them()
    {
        using var b = IlgpuBackend.Open("ilgpu-cpu", profiling: true);
        Assert.True(b.Profiling);
        using var profiler = new GpuStyle.Engine.Bench.ProfilingBackend(b);
        Assert.Contains("markers", profiler.Clock);
        var rnd = new TestData(Environment.TickCount);
        using var x = b.Allocate(new Shape(5, 9, 7)); b.Upload(x, TestData.ToFloat(rnd.UniformF32(5 * 9 * 7)));
        using var w = b.Allocate(new Shape(6, 5, 9)); b.Upload(w, TestData.ToFloat(rnd.ConvWeights(5, 6)));
        using var bias = b.Allocate(Shape.Vector(6)); b.Upload(bias, TestData.ToFloat(rnd.UniformF32(6)));
        using var y = b.Allocate(new Shape(6, 9, 7));
        using var g = b.Allocate(new Shape(6, 6, 1));
        for (int i = 0; i < 3; i++)
        {
            profiler.Conv3x3Forward(x, w, bias, y, relu: true);
            profiler.GramForward(y, g);
        }
        var results = profiler.Results();
        var conv = Assert.Single(results, r => r.Op.StartsWith("conv forward 5→6 9×7", StringComparison.Ordinal));
        Assert.Equal(3, conv.Calls);
        Assert.True(conv.Seconds > 0 && conv.Gflop > 0, $"{conv}");
        Assert.Equal(3, Assert.Single(results, r => r.Op.StartsWith("gram forward", StringComparison.Ordinal)).Calls);
        // The profiled ops computed what the unprofiled backend computes.
        var viaProfiler = new float[y.Length]; b.Download(y, viaProfiler);
        using var direct = b.Allocate(new Shape(6, 9, 7));
        b.Conv3x3Forward(x, w, bias, direct, relu: true);
        var expected = new float[y.Length]; b.Download(direct, expected);
        Assert.Equal(expected, viaProfiler);
    }

    [Fact]
    public void Without_profiling_an_ILGPU_backend_is_timed_by_a_stopwatch()
    {
        using var b = IlgpuBackend.Open("ilgpu-cpu");
        Assert.False(b.Profiling);
        Assert.Contains("stopwatch", new GpuStyle.Engine.Bench.ProfilingBackend(b).Clock);
    }

    [Fact]
    public void The_FMA_peak_kernel_computes_its_chains_and_reports_a_rate()
    {
        using var b = IlgpuBackend.Open("ilgpu-cpu");
        var kernel = b.Accelerator.LoadAutoGroupedStreamKernel<ILGPU.Index1D, ILGPU.ArrayView<float>, int, float, float>(Peak.Ilgpu.FmaChains);
        using var sink = b.Accelerator.Allocate1D<float>(37);
        int iterations = new Random().Next(5, 50);
        kernel(37, sink.View, iterations, 0.999f, 1e-3f);
        var got = sink.GetAsArray1D();
        for (int i = 0; i < got.Length; i++) Assert.Equal(Peak.Reference(i, iterations, 0.999f, 1e-3f), got[i], 5);
        Assert.True(b.MeasureFmaPeak(seconds: 0.01, threads: 64) > 0);
    }
}

/// <summary>The optimisation loop's traffic to the host: a few small reads an iteration, never an image.</summary>
public class HostReadTests
{
    [Fact]
    public void An_LBFGS_iteration_reads_a_few_scalars_and_never_the_image()
    {
        using var cpu = new GpuStyle.Engine.Cpu.CpuBackend();
        var spec = GpuStyle.Engine.Weights.Vgg.BuildSpec(GpuStyle.Engine.Weights.Vgg.Random("vgg16"));
        int size = 48;   // a 3×48×48 image is 6912 floats
        var p = GpuStyle.Engine.Bench.Benchmark.Profile(cpu, spec, size, new GpuStyle.Engine.Pipelines.RunSettings(), iterations: 3);
        // Per iteration: the loss of each evaluation (1–3 in a line search), g·d, s·y and the progress report's scalars.
        Assert.InRange(p.HostReadsPerIteration, 3, 8);
        Assert.True(p.HostFloatsPerIteration < 3 * size * size / 2, $"{p.HostFloatsPerIteration} floats an iteration: an image is being read");
    }
}

/// <summary>`bench --launch`: launch shapes from the command line, for trying tiles in one device call.</summary>
public class LaunchOptionTests
{
    [Fact]
    public void Overrides_change_only_the_named_fields()
    {
        var baseline = new IlgpuLaunchOptions();
        var changed = baseline.With("blockedwidth=64, BlockedHeight=8,MmaChunk=16");
        Assert.Equal(baseline with { BlockedWidth = 64, BlockedHeight = 8, MmaChunk = 16 }, changed);
        Assert.Equal(baseline, baseline.With(""));
        // Switches take 0 (off): docs/gpu-check.sh compares WinogradPrefetch=0 and SgemmFixedBlocks=0 with the defaults.
        Assert.Equal(baseline with { WinogradPrefetch = 0, SgemmFixedBlocks = 0, MmaPrefetch = 1 },
            baseline.With("WinogradPrefetch=0,SgemmFixedBlocks=0,MmaPrefetch=1"));
    }

    [Theory]
    [InlineData("TileSize=8")]
    [InlineData("BlockedWidth")]
    [InlineData("BlockedWidth=0")]
    [InlineData("WinogradPrefetch=-1")]
    [InlineData("BlockedWidth=wide")]
    [InlineData("Conv=3")]   // not an integer field
    public void Bad_overrides_are_refused_naming_the_fields(string overrides)
    {
        var e = Assert.Throws<ArgumentException>(() => new IlgpuLaunchOptions().With(overrides));
        Assert.Contains("BlockedWidth", e.Message);
    }

    [Theory]
    [InlineData(3)]
    [InlineData(4)]
    public void A_TF32_GEMM_staging_batch_other_than_1_or_2_is_refused(int batch)
    {
        var options = new IlgpuLaunchOptions().WithTf32().With($"MmaGemmBatch={batch}");
        Assert.Contains("MmaGemmBatch is 1", Assert.Throws<ArgumentException>(() => IlgpuBackend.Validate(options, "an H200", 1024)).Message);
        IlgpuBackend.Validate(options with { MmaGemmBatch = 1 }, "an H200", 1024);
    }

    /// <summary>MmaGramFragments is 0 or 1; untuned, version 5 of the TF32 Gram backward needs 128-thread groups, which a
    /// device of 64 (ILGPU's CPU accelerator by default) is told it lacks — under the tuning it is only not offered.</summary>
    [Fact]
    public void Mma_gram_fragments_is_refused_where_it_cannot_run()
    {
        var options = IlgpuLaunchOptions.Tiny.WithTf32(tiny: true).With("MmaGram=1,MmaGramWarps=1,MmaTune=0,MmaGramFragments=1");
        IlgpuBackend.Validate(options, "an H200", 1024);
        Assert.Contains("needs 128 threads a group; ilgpu-cpu allows 64", Assert.Throws<ArgumentException>(() => IlgpuBackend.Validate(options, "ilgpu-cpu", 64)).Message);
        IlgpuBackend.Validate(options with { MmaTune = 1 }, "ilgpu-cpu", 64);
        Assert.Contains("MmaGramFragments is 0", Assert.Throws<ArgumentException>(() => IlgpuBackend.Validate(options with { MmaGramFragments = 2 }, "an H200", 1024)).Message);
    }

    /// <summary>MmaGramPrefetch is 0 or 1, and its kernel runs 2×2 warps: with the TF32 Gram in other warps it is
    /// refused with the reason (with the Gram off tensor cores, MmaGram=0, it does nothing); 0 is accepted in a launch string.</summary>
    [Fact]
    public void Mma_gram_prefetch_is_refused_where_it_cannot_run()
    {
        var options = new IlgpuLaunchOptions().WithTf32().With("MmaGramPrefetch=1");
        IlgpuBackend.Validate(options, "an H200", 1024);
        Assert.Contains("MmaGramPrefetch=1 runs the TF32 Gram forward in 2×2 warps (MmaGramWarps=2), not 3×3",
            Assert.Throws<ArgumentException>(() => IlgpuBackend.Validate(options with { MmaGramWarps = 3 }, "an H200", 1024)).Message);
        IlgpuBackend.Validate(options with { MmaGram = 0, MmaGramWarps = 3 }, "an H200", 1024);
        Assert.Contains("MmaGramPrefetch is 0", Assert.Throws<ArgumentException>(() => IlgpuBackend.Validate(options with { MmaGramPrefetch = 2 }, "an H200", 1024)).Message);
        Assert.Equal(0, options.With("MmaGramPrefetch=0,MmaGramFragments=0").MmaGramPrefetch);
    }

    /// <summary>Every "Name=value,…" in docs/gpu-check.sh, docs/gpu-verify.sh and docs/gpu-ncu.sh (not their environment variables, STEPS=…), the prepared GPU calls: a launch string it cannot parse,
    /// or one the GPU would refuse, costs a GPU session its measurement (WinogradPrefetch=0 was refused until
    /// 2026-11-27).</summary>
    public static IEnumerable<object[]> GpuCheckLaunchStrings() =>
        new[] { "docs/gpu-check.sh", "docs/gpu-verify.sh", "docs/gpu-ncu.sh" }.SelectMany(script =>
            System.Text.RegularExpressions.Regex.Matches(File.ReadAllText(Repo.File(script)), @"\b[A-Z][a-z][A-Za-z]*=\d+(,[A-Z][a-z][A-Za-z]*=\d+)*"))
            .Select(m => m.Value).Distinct().Select(s => new object[] { s });

    [Theory]
    [MemberData(nameof(GpuCheckLaunchStrings))]
    public void The_gpu_check_launch_strings_parse_and_fit_a_GPU(string overrides)
    {
        // The convolution each string is for, as the script pairs them: Mma… with --tf32, Winograd…, GramGemm and
        // Sgemm… with --conv winograd, the rest with the blocked default.
        var conv = overrides.StartsWith("Mma", StringComparison.Ordinal) ? ConvKernel.Tf32
            : overrides.Contains("Winograd") || overrides.Contains("GramGemm") || overrides.Contains("Sgemm") ? ConvKernel.Winograd
            : ConvKernel.Blocked;
        var options = new IlgpuLaunchOptions().WithConv(conv).With(overrides);
        IlgpuBackend.Validate(options, "an H200", maxThreadsPerGroup: 1024);
    }

    [Fact]
    public void The_gpu_check_names_launch_strings() => Assert.True(GpuCheckLaunchStrings().Count() >= 10);

    [Theory]
    [InlineData(ConvKernel.Blocked, "BlockedChunk=64", "blocked convolution")]   // 188 KB of patch and weights
    [InlineData(ConvKernel.Tf32, "MmaChunk=48", "TF32 convolution")]             // 189 KB: patch and weights of 48 channels
    [InlineData(ConvKernel.Tf32, "MmaPrefetch=2,MmaTileHeight=16", "TF32 convolution")]   // 59 KB: two 32×16 patches (39 KB with one)
    [InlineData(ConvKernel.Winograd, "WinogradM=1024,WinogradN=64", "SGEMM")]    // 1 024 threads, 68 KB in two stages
    public void Options_needing_more_shared_memory_than_a_GPU_gives_are_refused(ConvKernel conv, string overrides, string kernel)
    {
        var options = new IlgpuLaunchOptions().WithConv(conv).With(overrides);
        var e = Assert.Throws<ArgumentException>(() => IlgpuBackend.Validate(options, "an H200", maxThreadsPerGroup: 1024));
        Assert.Contains(kernel, e.Message);
        Assert.Contains("shared memory", e.Message);
        IlgpuBackend.Validate(new IlgpuLaunchOptions().WithConv(conv), "an H200", maxThreadsPerGroup: 1024);   // the defaults fit
    }

    [Fact]
    public void An_override_reaches_the_kernels()
    {
        // The blocked convolution with 4-pixel-wide tiles (one thread across) and 2-channel chunks still agrees with
        // the reference: the option is used, not just parsed.
        using var b = IlgpuBackend.Open("ilgpu-cpu", conv: ConvKernel.Blocked, overrides: "BlockedWidth=4,BlockedHeight=2,BlockedChunk=2");
        Assert.Contains("blocked conv 4×2", b.Name);
        var rnd = new TestData(Environment.TickCount);
        var d = new ConvDims(5, 9, 7, 6);
        var xd = rnd.UniformF32(5 * 7 * 6); var wd = rnd.ConvWeights(5, 9); var bd = rnd.UniformF32(9, 0.1);
        using var x = b.Make(new Shape(5, 7, 6), xd);
        using var w = b.Make(new Shape(9, 5, 9), wd);
        using var bias = b.Make(Shape.Vector(9), bd);
        using var y = b.Make(new Shape(9, 7, 6), null);
        b.Conv3x3Forward(x, w, bias, y, relu: true);
        Assertions.Close(Conv3x3.Reference.Forward(xd, wd, bd, d, relu: true), b.Read(y), 1e-4, "blocked 4×2, 2-channel chunks");
    }
}
