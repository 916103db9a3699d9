using GpuStyle.Engine;
using GpuStyle.Engine.Cpu;
using GpuStyle.Engine.Ilgpu;
using GpuStyle.Kernels;

namespace GpuStyle.Tests.Support;

/// <summary>
/// The backends every agreement test runs on, shared by the suite (ILGPU kernels compile once per process):
/// ILGPU's CPU accelerator with small simulated groups and odd reduction sizes, the fast CPU backend's AVX2/FMA path
/// (where this CPU has it), its 128-bit path (ARM64's; SSE+FMA here) and its scalar fallback.
/// </summary>
public sealed class IlgpuCpuFixture : IDisposable
{
    public IlgpuBackend Backend { get; } = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny, CpuSimulation.Small);
    /// <summary>The tiled (shared-memory) convolution on 4×4 tiles with 3-channel chunks: odd edges everywhere; and the
    /// pooling's first backward kernel, a thread an input element (PoolWindows=0), beside Backend's a thread a window.</summary>
    public IlgpuBackend Tiled { get; } = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny with { Conv = ConvKernel.Tiled, PoolWindows = 0 }, CpuSimulation.Small);
    /// <summary>The register-blocked convolution (8 channels × 4 pixels a thread) on 8×3 tiles with 5-channel chunks, and
    /// the register-blocked Gram kernels (4×4 a thread, 16-sided tiles from 4×4 groups).</summary>
    public IlgpuBackend Blocked { get; } = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny with { Conv = ConvKernel.Blocked }, CpuSimulation.Small);
    /// <summary>Winograd F(2×2, 3×3) on ILGPU with 16×16 GEMM blocks (4 threads) and 4096-float V and M scratch: several
    /// passes of 16 tiles on any map past 4×8 pixels; the few-channel convolutions run the blocked kernel.</summary>
    public IlgpuBackend Winograd { get; } = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny with { Conv = ConvKernel.Winograd, BlockedWidth = 8, BlockedHeight = 3, BlockedChunk = 5 }, CpuSimulation.Small);
    /// <summary>The CPU backend as it runs by default: AVX2/FMA, and Winograd for 16+ channels each way — F(4×4, 3×3),
    /// or F(2×2, 3×3) on the small maps where it costs fewer products (most of the tests' maps).</summary>
    public CpuBackend CpuVector { get; } = new(CpuSimd.Avx2);
    /// <summary>The CPU backend with Winograd's F(2×2, 3×3) on every map.</summary>
    public CpuBackend CpuWinograd2 { get; } = new(CpuSimd.Avx2, winogradEdge: 2);
    /// <summary>The CPU backend with Winograd's F(4×4, 3×3) on every map.</summary>
    public CpuBackend CpuWinograd4 { get; } = new(CpuSimd.Avx2, winogradEdge: 4);
    /// <summary>The CPU backend's direct AVX2/FMA convolution for every shape.</summary>
    public CpuBackend CpuDirect { get; } = new(CpuSimd.Avx2, winograd: false);
    public CpuBackend CpuScalar { get; } = new(CpuSimd.Scalar);
    /// <summary>The CPU backend's 128-bit kernels, as an ARM64 machine runs them by default (Winograd per map).</summary>
    public CpuBackend CpuV128 { get; } = new(CpuSimd.Vector128);
    /// <summary>The 128-bit kernels with Winograd's F(4×4, 3×3) on every map.</summary>
    public CpuBackend CpuV128Winograd4 { get; } = new(CpuSimd.Vector128, winogradEdge: 4);
    /// <summary>The 128-bit direct convolution for every shape.</summary>
    public CpuBackend CpuV128Direct { get; } = new(CpuSimd.Vector128, winograd: false);

    /// <summary>ILGPU first: the others are also compared with it.</summary>
    public IReadOnlyList<IBackend> All => [Backend, Tiled, CpuVector, CpuV128, CpuScalar];

    /// <summary>All, and the blocked kernels too (convolution and Gram): for the convolution and Gram tests and the
    /// whole-network objective (its other kernels are the tiled backend's, tested already).</summary>
    public IReadOnlyList<IBackend> AllVariants => [Backend, Tiled, Blocked, Winograd, CpuVector, CpuWinograd2, CpuWinograd4, CpuDirect,
        CpuV128, CpuV128Winograd4, CpuV128Direct, CpuScalar];

    public float[] Read(Tensor t) => t.Backend.Read(t);

    public Tensor Make(Shape shape, double[] values) => Make(Backend, shape, values);

    public Tensor Make(IBackend backend, Shape shape, double[] values) => backend.Make(shape, values);

    /// <summary>An output tensor full of NaN: any element a kernel fails to write stays NaN and fails the test.</summary>
    public Tensor Poisoned(Shape shape) => Poisoned(Backend, shape);

    public Tensor Poisoned(IBackend backend, Shape shape) => backend.Make(shape, null);

    public void Dispose()
    {
        Backend.Dispose();
        Tiled.Dispose();
        Blocked.Dispose();
        Winograd.Dispose();
        CpuVector.Dispose();
        CpuDirect.Dispose();
        CpuWinograd2.Dispose();
        CpuWinograd4.Dispose();
        CpuScalar.Dispose();
        CpuV128.Dispose();
        CpuV128Winograd4.Dispose();
        CpuV128Direct.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class IlgpuCpuCollection : ICollectionFixture<IlgpuCpuFixture>
{
    public const string Name = "Backends";
}
