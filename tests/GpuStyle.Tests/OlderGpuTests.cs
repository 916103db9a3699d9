using System.Collections.Concurrent;
using System.Reflection;
using GpuStyle.Engine;
using GpuStyle.Engine.Ilgpu;
using GpuStyle.Engine.Pipelines;
using GpuStyle.Tests.Support;
using ILGPU.Runtime.Cuda;

namespace GpuStyle.Tests;

/// <summary>
/// NVIDIA GPUs before Ampere (compute capability below 8.0: Maxwell, Pascal, Volta, Turing — a GTX 1080, a T4, an RTX
/// 2080) have no TF32 tensor cores: ptxas refuses `mma.sync` on TF32 operands and `cp.async` for them (SassTests shows
/// it for every such kernel). The fp32 path must load none of those kernels; `--tf32` there is refused by name before
/// the device opens, not by CUDA's error code as the kernels load.
/// </summary>
public sealed class OlderGpuTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("gpustyle-older-gpu-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static readonly ConcurrentDictionary<MethodInfo, string> Sm50Ptx = new();

    /// <summary>A kernel's PTX for sm_50, compiled once (the test of it and the SASS test both read it).</summary>
    internal static string PtxForSm50(MethodInfo kernel) => Sm50Ptx.GetOrAdd(kernel, k => PtxCompileTests.Ptx(k, CudaArchitecture.SM_50));

    /// <summary>A kernel that needs compute capability 8.0: its PTX (for sm_50, where nothing else would) has a TF32
    /// mma.sync or a cp.async.</summary>
    internal static bool NeedsTf32TensorCores(MethodInfo kernel) => PtxForSm50(kernel) is var ptx && (ptx.Contains("mma.sync") || ptx.Contains("cp.async"));

    static IlgpuDeviceInfo Cuda(string name, int major, int minor) =>
        new("cuda:0", "cuda", name, 16L << 30, 32, 1024, 49152, ComputeCapability: new Version(major, minor));

    [Fact]
    public void Tf32_is_refused_by_name_on_a_GPU_before_compute_capability_8()
    {
        var tf32 = new IlgpuLaunchOptions().WithTf32();
        var fp32 = new IlgpuLaunchOptions();
        var t4 = Cuda("Tesla T4", 7, 5);
        string refusal = IlgpuBackend.Tf32Refusal(tf32, t4)!;
        Assert.NotNull(refusal);
        foreach (string part in new[] { "--tf32", "compute capability 8.0", "cuda:0 (Tesla T4) is 7.5", "leave out --tf32" })
            Assert.Contains(part, refusal);
        // The TF32 Winograd GEMMs under fp32's Winograd are tensor-core kernels too.
        Assert.Contains("WinogradMma=1", IlgpuBackend.Tf32Refusal(fp32 with { Conv = ConvKernel.Winograd, WinogradMma = 1 }, t4));
        // fp32 runs on every CUDA GPU; TF32 from 8.0 on (an A100, an RTX 3090, an H100, an RTX 5090).
        foreach (var gpu in new[] { Cuda("GeForce GTX 980", 5, 2), Cuda("GeForce GTX 1080", 6, 1), t4 })
            foreach (var conv in Enum.GetValues<ConvKernel>().Where(c => c != ConvKernel.Tf32))
                Assert.Null(IlgpuBackend.Tf32Refusal(fp32 with { Conv = conv }, gpu));
        foreach (var (major, minor) in new[] { (8, 0), (8, 6), (8, 9), (9, 0), (12, 0) })
            Assert.Null(IlgpuBackend.Tf32Refusal(tf32, Cuda("newer", major, minor)));
        // Off CUDA, TF32 is emulated: nothing to refuse there.
        Assert.Null(IlgpuBackend.Tf32Refusal(tf32, new IlgpuDeviceInfo("opencl:0", "opencl", "gfx1100", 1L << 34, 32, 1024, 65536)));
    }

    [Fact]
    public void Devices_say_each_CUDA_GPUs_compute_capability_and_whether_it_runs_tf32()
    {
        Assert.Contains(", compute capability 7.5 (no TF32 tensor cores: fp32 only, no --tf32)", Cuda("Tesla T4", 7, 5).ToString());
        string h200 = Cuda("NVIDIA H200", 9, 0).ToString();
        Assert.Contains(", compute capability 9.0", h200);
        Assert.DoesNotContain("no TF32", h200);
        Assert.DoesNotContain("compute capability", new IlgpuDeviceInfo("ilgpu-cpu", "ilgpu-cpu", "CPUAccelerator", 1L << 32, 4, 16).ToString());
        // The CPU accelerator has none, and so nothing to refuse.
        Assert.All(DeviceCatalog.List(kinds: DeviceKinds.Cpu), d => Assert.Null(d.ComputeCapability));
    }

    /// <summary>A small transfer (L-BFGS, then Adam) through a fixture VGG16: every kernel a style run loads.</summary>
    void RunSmallTransfers(IBackend b)
    {
        var spec = PipelineTests.SmallVgg16(_dir);
        foreach (var optimizer in new[] { OptimizerKind.Lbfgs, OptimizerKind.Adam })
        {
            var settings = new RunSettings
            {
                ContentLayers = ["relu2_2"], StyleLayers = ["relu1_1", "relu2_1", "relu3_1"], Optimizer = optimizer, Iterations = 2,
            };
            using var run = new StyleRun(b, spec, settings, Picture.Noise(18, 22, seed: 1), [(Picture.Noise(20, 16, seed: 2), 1f)], Picture.Noise(18, 22, seed: 3));
            var first = run.Start();
            var last = run.Step();
            // L-BFGS never accepts a step that raises the loss; Adam's first step may.
            Assert.True(float.IsFinite(last.Total) && (optimizer == OptimizerKind.Adam || last.Total <= first.Total), $"{b.Name}, {optimizer}: {first.Total} → {last.Total}");
        }
    }

    [Theory]
    [InlineData(ConvKernel.Tuned)]      // the GPU's default
    [InlineData(ConvKernel.Winograd)]
    [InlineData(ConvKernel.Blocked)]
    [InlineData(ConvKernel.Tiled)]
    [InlineData(ConvKernel.Direct)]
    public void A_fp32_style_run_loads_no_kernel_that_needs_TF32_tensor_cores(ConvKernel conv)
    {
        using var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny with { Conv = conv }, CpuSimulation.Small);
        RunSmallTransfers(b);
        var loaded = b.Kernels.Methods;
        Assert.True(loaded.Count >= 10, $"only {loaded.Count} kernels loaded: {string.Join(", ", loaded.Select(PtxCompileTests.Name))}");
        var tf32 = loaded.Where(NeedsTf32TensorCores).Select(PtxCompileTests.Name).ToList();
        Assert.True(tf32.Count == 0, $"--conv {conv} loads kernels an older GPU cannot: {string.Join(", ", tf32)}");
    }

    [Fact]
    public void The_tf32_path_does_load_such_kernels()
    {
        // The check above sees them: a TF32 convolution loads its tensor-core kernel.
        using var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny.WithTf32(tiny: true), CpuSimulation.Warp32);
        ConvChecks.ForwardAndBackwardMatch(b, 4, Environment.TickCount, 2e-3, "TF32, older-GPU check", 5, 3, 3);
        Assert.Contains(b.Kernels.Methods, NeedsTf32TensorCores);
    }
}
