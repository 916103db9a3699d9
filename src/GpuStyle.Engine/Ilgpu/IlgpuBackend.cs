using System.Diagnostics;
using System.Reflection;
using ILGPU;
using ILGPU.Runtime;
using GpuStyle.Kernels;
using MmaLauncher = System.Action<ILGPU.KernelConfig, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, GpuStyle.Kernels.ConvDims, int, int, int, GpuStyle.Kernels.MmaTile>;
using MmaAsyncLauncher = System.Action<ILGPU.KernelConfig, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, GpuStyle.Kernels.ConvDims, int, int, int, GpuStyle.Kernels.MmaTile, GpuStyle.Kernels.GlobalAddresses>;
using FragmentsLauncher = System.Action<ILGPU.KernelConfig, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, GpuStyle.Kernels.ConvDims, int, int, int, int, int, long>;
using SgemmLauncher = System.Action<ILGPU.KernelConfig, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, int, int, int, int, int, int, int>;

namespace GpuStyle.Engine.Ilgpu;

/// <summary>The backend that runs the kernels in kernels/ through ILGPU (CUDA, OpenCL or the CPU accelerator).</summary>
public sealed partial class IlgpuBackend : IBackend
{
    readonly Context _context;
    readonly IlgpuLaunchOptions _launch;
    readonly MemoryBuffer1D<float, Stride1D.Dense> _partials, _partials2;

    // Every kernel is loaded (compiled) once, at start: compilation costs 20–300 ms, a launch microseconds.
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int>? _convForward;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int>? _convBackward;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int, int, int>? _convFewOutputs;
    // The split TF32 Gram backward's sum of partials (Gram.IlgpuTensorCore.AddSplits), loaded when first used.
    Action<Index1D, ArrayView<float>, ArrayView<float>, long, int>? _gramAddSplits;
    // Version 5 of the TF32 Gram backward (Gram.IlgpuTensorCore.SymmetricFragments, BackwardFragments), loaded when
    // first tuned.
    Action<Index1D, ArrayView<float>, ArrayView<float>, int, float>? _gramSymmetricFragments;
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>? _gramBackwardFragments;
    // The blocked kernel for at most 4 outputs (Conv3x3.IlgpuBlockedFewOutputs), loaded when first tuned.
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int, int, int, int, int, int>? _convBlockedFewOutputs;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int, int, int> _poolForward;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int> _poolBackward;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int, int>? _gramForward;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>? _gramBackward;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float> _contentPartial;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float> _stylePartial;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, float> _tvPartial;
    readonly Action<Index1D, ArrayView<float>, float> _fill;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>> _copy;
    readonly Action<Index1D, float, ArrayView<float>, ArrayView<float>> _axpy;
    readonly Action<Index1D, ArrayView<float>, float> _scale;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>> _subtract, _multiply;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> _dotPartial;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int> _sumGroups;
    readonly Action<KernelConfig, ArrayView<float>, int, ArrayView<float>, int, float, int> _finish;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int, int> _weightedSum;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamParameters> _adam;
    readonly Action<Index1D, ArrayView<float>, long, ArrayView<float>, ArrayView<float>, int> _setRow;
    readonly Action<KernelConfig, ArrayView<float>, int, int, int, int, int, int, ArrayView<float>> _rowDots;
    readonly Action<KernelConfig, ArrayView<float>, int, ArrayView<float>> _rowDotsFinish;
    readonly Action<Index1D, ArrayView<float>, int, int, ArrayView<float>, ArrayView<float>> _combineRows;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, LbfgsRing> _lbfgsDirection;
    MemoryBuffer1D<float, Stride1D.Dense>? _rowPartials;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int, int, int, int>? _convTiled;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int, int> _transposeFlip;
    // The staged Gram kernels of versions 2–4: version 2's tiled ones (a T-sided tile) or version 3's register-blocked
    // ones (a 4T-sided tile), both launched on T×T groups; null for the direct kernels.
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int>? _gramPartial;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>? _gramBackwardStaged;
    readonly int _gramSide, _gramSharedFloats;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int, int, int>? _gramReduce;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int>? _gramReduceGrouped;
    // The TF32 convolution, one kernel per prefetch level and for the default tile's shape (Conv3x3.IlgpuTensorCore.For),
    // loaded when first needed; none without TF32.
    readonly Dictionary<MethodInfo, (Kernel Kernel, Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int, int, int, MmaTile> Launch)> _convMma = [];
    /// <summary>The TF32 tile: the configured one, or where that cannot launch on this device the one
    /// <see cref="LaunchableTile"/> chose (see <see cref="MmaTileNote"/>).</summary>
    readonly MmaTile _mma;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int, int, int, int, int, int>? _convBlocked;
    MemoryBuffer1D<float, Stride1D.Dense>? _gramPartials;
    MemoryBuffer1D<float, Stride1D.Dense>? _flipped;
    MemoryBuffer1D<float, Stride1D.Dense>? _packed;
    /// <summary>The partial outputs of a convolution split over its input channels (version 5, the blocked kernel).</summary>
    MemoryBuffer1D<float, Stride1D.Dense>? _splitPartials;
    Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int, int, int>? _sumSplits;
    MemoryBuffer1D<float, Stride1D.Dense>? _winogradU, _winogradV, _winogradM;
    /// <summary>Winograd's transforms for F(2×2, 3×3) and F(4×4, 3×3) (Conv3x3.IlgpuWinograd), by tile edge: the
    /// configured one's with --conv winograd, both with --conv tuned.</summary>
    readonly Dictionary<int, WinogradTransforms> _winograd = [];
    sealed record WinogradTransforms(
        Action<Index1D, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int> Weights,
        Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int, int, int, int> Input,
        Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int, int, int, int> Output);
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int>? _winogradMma;
    /// <summary>The fp32 SGEMM kernels (Conv3x3.IlgpuWinograd.GemmFor: one per block shape with constant sides, and
    /// the general one), loaded when first used: Winograd's GEMMs and, with GramGemm, the Gram backward.</summary>
    readonly Dictionary<MethodInfo, Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int, int>> _sgemm = [];
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ConvDims, MmaTile, int>? _packMma;
    // Version 5 of the TF32 convolution (MmaFragments): its weight packing, loaded at start, and the kernel, loaded
    // when first used (a tuning candidate that fails to load is only left out).
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ConvDims, int>? _packFragments;
    readonly Dictionary<(int Shape, bool AsyncWeights), (Kernel Kernel, FragmentsLauncher Launch)> _convFragments = [];
    // Version 4's Gram kernels (MmaGram): forward partials, S = (dG + dGᵀ)/N, backward; null otherwise.
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int, int, int>? _gramMmaForward;
    readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int, float, int>? _gramSymmetric;
    readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int>? _gramMmaBackward;
    // The forward with the next chunk's loads in flight (MmaGramPrefetch), loaded when first used.
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int>? _gramMmaForwardPrefetch;
    MemoryBuffer1D<float, Stride1D.Dense>? _gramS;

    public Accelerator Accelerator { get; }
    public IlgpuDeviceInfo Device { get; }
    /// <summary>Compiles and loads the kernels (on CUDA through the kernel cache, where one was given): what that cost
    /// this backend so far.</summary>
    public KernelLoader Kernels => _loader;
    readonly KernelLoader _loader;
    public string Name => $"ilgpu/{Device.Id} ({Device.Name}, {_launch.Conv switch
    {
        ConvKernel.Tiled => $"tiled conv {_launch.TileWidth}×{_launch.TileHeight}",
        ConvKernel.Blocked => $"blocked conv {_launch.BlockedWidth}×{_launch.BlockedHeight}",
        ConvKernel.Winograd => $"Winograd F({_launch.WinogradTile}×{_launch.WinogradTile},3×3) conv, " + (_launch.WinogradMma != 0
            ? $"TF32 tensor-core GEMMs{(_mma.Emulate != 0 ? ", emulated" : "")}" : $"GEMM {_launch.WinogradM}×{_launch.WinogradN}"),
        ConvKernel.Tuned => $"tuned conv: each shape's fastest of blocked {_launch.BlockedWidth}×{_launch.BlockedHeight}, Winograd F(2×2,3×3) and F(4×4,3×3) (GEMM {_launch.WinogradM}×{_launch.WinogradN}); Gram backward blocked or by the SGEMM",
        ConvKernel.Tf32 => $"TF32 tensor-core conv {Tf32Kernels()}{(_launch.MmaTune != 0 ? " (each shape's tile height, or Winograd with TF32 or fp32 GEMMs, tuned)" : "")}{(_launch.TensorCoreGram ? " and Gram" : "")}{(_mma.Emulate != 0 ? ", emulated" : "")}{(MmaTileNote is { } note ? $"; {note}" : "")}{(LaunchBoundsNote is { } bounds ? $"; {bounds}" : "")}{(TuningNote is { } tuning ? $"; {tuning}" : "")}",
        _ => "direct conv",
    }})";

    /// <summary>The TF32 convolution kernels in the backend's name: version 4's tile and, with MmaFragments, version 5's
    /// warp widths — version 5 alone where it replaces version 4 (MmaTune=0).</summary>
    string Tf32Kernels()
    {
        string version4 = $"{_mma.TileWidth}×{_mma.TileHeight}{_mma.Prefetch switch { 0 => "", 1 => " prefetch 1 (registers)", _ => " prefetch 2 (asynchronous copies)" }}";
        if (_launch.MmaFragments == 0) return version4;
        static string Shapes(int set) => string.Join(", ", new[] { "32-channel warps", "64-channel warps", "64×64 warp tiles" }.Where((_, shape) => (set & (1 << shape)) != 0));
        return _launch.MmaTune == 0
            ? $"version 5 32×{_launch.MmaTileHeight} (fragment-ordered, {Shapes(1 << UntunedShape(_launch))}{AsyncWeights})"
            : $"{version4}, version 5 (fragment-ordered, {Shapes(_launch.MmaFragments)}{AsyncWeights})";
    }

    string AsyncWeights => _launch.MmaFragmentsAsync != 0 ? (_launch.MmaTune == 0 ? "; weights by cp.async" : "; with and without weights by cp.async") : "";

    /// <summary>Opens a device by id (see <see cref="DeviceCatalog"/>). Without <paramref name="launch"/>, the
    /// device's default shapes, with the <paramref name="conv"/> kernel when given (TF32 on the CPU accelerator: its
    /// smallest shape, in simulated groups of 32 threads), then <paramref name="overrides"/> ("Name=value,…").
    /// <paramref name="rememberTunings"/>: on CUDA, with a kernel cache, the tuning's choices are kept beside it and
    /// read back by later runs (<see cref="Ilgpu.TuningCache.For"/>).</summary>
    public static IlgpuBackend Open(string deviceId, IlgpuLaunchOptions? launch = null, CpuSimulation? cpu = null,
        bool profiling = false, ConvKernel? conv = null, string? overrides = null, KernelCache? kernelCache = null, bool rememberTunings = false)
    {
        long started = Stopwatch.GetTimestamp();
        var context = DeviceCatalog.CreateContext(cpu ?? (conv == ConvKernel.Tf32 ? CpuSimulation.Warp32 : CpuSimulation.Small), profiling,
            DeviceCatalog.KindsOf(deviceId));
        try
        {
            var (info, device) = DeviceCatalog.Find(context, deviceId);
            if (DeviceCatalog.OpenClCpuRefusal(info, device) is { } refusal) throw new DeviceNotFoundException(refusal);
            bool simulated = info.Kind == "ilgpu-cpu";
            var defaults = simulated ? IlgpuLaunchOptions.Tiny : new IlgpuLaunchOptions();
            var chosen = launch ?? (conv is { } c ? defaults.WithConv(c, tiny: simulated) : defaults);
            if (!string.IsNullOrWhiteSpace(overrides)) chosen = chosen.With(overrides);
            if (Tf32Refusal(chosen, info) is { } older) throw new DeviceNotFoundException(older);
            Validate(chosen, info.Id, info.MaxThreadsPerGroup, info.MaxSharedBytesPerGroup);
            var accelerator = device.CreateAccelerator(context);
            double opening = Stopwatch.GetElapsedTime(started).TotalSeconds;
            return new IlgpuBackend(context, accelerator, info, chosen, kernelCache)
            {
                Profiling = profiling, OpenSeconds = opening,
                Multiprocessors = simulated && cpu is { SplitsForMultiprocessors: > 0 } sim ? sim.SplitsForMultiprocessors : Math.Max(1, accelerator.NumMultiprocessors),
                TuningCache = rememberTunings ? TuningCache.For(kernelCache, accelerator, chosen) : null,
            };
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>Throws ArgumentException, saying why, where these options cannot run on a device with groups of at most
    /// maxThreadsPerGroup threads (1 024 on NVIDIA GPUs) and maxSharedBytes of shared memory (48 KB on NVIDIA GPUs for
    /// a kernel that does not opt in to more: a launch asking for more fails).</summary>
    public static void Validate(IlgpuLaunchOptions chosen, string deviceId, int maxThreadsPerGroup, long maxSharedBytes = 48 * 1024)
    {
        foreach (var (kernel, floats) in SharedMemoryNeeds(chosen))
            if (floats * (long)sizeof(float) > maxSharedBytes)
                throw new ArgumentException($"the {kernel} needs {floats * sizeof(float) / 1024.0:0.#} KB of shared memory a group; {deviceId} gives a kernel {maxSharedBytes / 1024.0:0.#} KB");
        if (UsesBlockedConv(chosen) && (chosen.BlockedWidth % Conv3x3.IlgpuBlocked.PixelsPerThread != 0
            || chosen.BlockedWidth / Conv3x3.IlgpuBlocked.PixelsPerThread * chosen.BlockedHeight > maxThreadsPerGroup))
            throw new ArgumentException($"a {chosen.BlockedWidth}×{chosen.BlockedHeight} blocked tile needs a width that is a multiple of 4 and at most {maxThreadsPerGroup} threads");
        if (UsesBlockedGram(chosen) && chosen.TileWidth % Gram.IlgpuBlocked.Block != 0)
            throw new ArgumentException($"the blocked Gram kernels need a tile width that is a multiple of 4, not {chosen.TileWidth}");
        if (chosen.FinishThreads > maxThreadsPerGroup || chosen.FinishThreads < 1)
            throw new ArgumentException($"the reductions' {chosen.FinishThreads}-thread groups do not fit {deviceId} (at most {maxThreadsPerGroup})");
        if (chosen.Conv != ConvKernel.Direct && chosen.TileWidth * chosen.TileHeight > maxThreadsPerGroup)
            throw new ArgumentException($"a {chosen.TileWidth}×{chosen.TileHeight} tile needs more threads than {deviceId} has per group ({maxThreadsPerGroup})");
        if (chosen.MmaGemmBatch is not (1 or 2))
            throw new ArgumentException($"MmaGemmBatch is 1 (each staging load waited for in turn) or 2 (two vectors a tile before the stores), not {chosen.MmaGemmBatch}");
        if (chosen.BlockedBatch is not (1 or 4))
            throw new ArgumentException($"BlockedBatch is 1 (each staging load waited for in turn) or 4 (four rows' loads before their stores), not {chosen.BlockedBatch}");
        if (chosen.TensorCoreGram && (chosen.MmaGramWarps < 1 || Gram.IlgpuTensorCore.Threads(chosen.MmaGramWarps) > maxThreadsPerGroup))
            throw new ArgumentException($"the TF32 Gram kernels' {chosen.MmaGramWarps}×{chosen.MmaGramWarps} warps do not fit {deviceId} (at most {maxThreadsPerGroup} threads a group)");
        if (chosen.MmaGramFragments is not (0 or 1))
            throw new ArgumentException($"MmaGramFragments is 0 (the TF32 Gram backward's version 4 untuned) or 1 (its version 5), not {chosen.MmaGramFragments}");
        if (chosen.MmaGramPrefetch is not (0 or 1))
            throw new ArgumentException($"MmaGramPrefetch is 0 (the TF32 Gram forward stages, then computes, each chunk) or 1 (the next chunk's loads in flight), not {chosen.MmaGramPrefetch}");
        if (chosen.TensorCoreGram && chosen.MmaGramPrefetch != 0 && chosen.MmaGramWarps != 2)
            throw new ArgumentException($"MmaGramPrefetch=1 runs the TF32 Gram forward in 2×2 warps (MmaGramWarps=2), not {chosen.MmaGramWarps}×{chosen.MmaGramWarps}");
        if (chosen.TensorCoreGram && chosen.MmaTune == 0 && chosen.MmaGramFragments != 0 && Gram.IlgpuTensorCore.FragmentsThreads > maxThreadsPerGroup)
            throw new ArgumentException($"version 5 of the TF32 Gram backward (MmaGramFragments=1) needs {Gram.IlgpuTensorCore.FragmentsThreads} threads a group; {deviceId} allows {maxThreadsPerGroup}");
        if (UsesWinograd(chosen) && (chosen.WinogradM % 16 != 0 || chosen.WinogradN % 16 != 0
            || Conv3x3.IlgpuWinograd.Threads(chosen.WinogradM, chosen.WinogradN) > maxThreadsPerGroup))
            throw new ArgumentException($"a Winograd GEMM block of {chosen.WinogradM}×{chosen.WinogradN} needs WinogradM and WinogradN multiples of 16, and at most {maxThreadsPerGroup} threads (M·N/64)");
        if (UsesWinograd(chosen) && chosen.WinogradTile is not (2 or 4))
            throw new ArgumentException($"WinogradTile is 2 (F(2×2, 3×3)) or 4 (F(4×4, 3×3)), not {chosen.WinogradTile}");
        if (chosen.MmaTune != 0 && chosen.Conv != ConvKernel.Tf32)
            throw new ArgumentException("MmaTune=1 tunes the TF32 convolution's tiles: use it with --tf32 (--conv tuned tunes the fp32 ones)");
        if (chosen.Conv == ConvKernel.Tuned && chosen.WinogradMma != 0)
            throw new ArgumentException("--conv tuned chooses among the fp32 convolutions; the TF32 Winograd GEMMs (WinogradMma=1) run with --conv winograd");
        if (chosen.Conv == ConvKernel.Winograd && chosen.WinogradMma != 0 && chosen.WinogradTile != 2)
            throw new ArgumentException("the TF32 Winograd GEMMs (WinogradMma=1) need WinogradTile=2: F(4×4, 3×3)'s larger transforms put TF32's rounding 6–9e-3 off");
        if (UsesTf32WinogradGemm(chosen)
            && (chosen.MmaGramWarps < 1 || Gram.IlgpuTensorCore.Threads(chosen.MmaGramWarps) > maxThreadsPerGroup))
            throw new ArgumentException($"the TF32 Winograd GEMM's {chosen.MmaGramWarps}×{chosen.MmaGramWarps} warps (MmaGramWarps) do not fit {deviceId} (at most {maxThreadsPerGroup} threads a group)");
        if (chosen.Conv == ConvKernel.Tf32)
        {
            var mma = chosen.Mma(emulate: false);
            if (mma.Problem() is { } problem) throw new ArgumentException($"TF32 convolution: {problem}");
            if (Conv3x3.IlgpuTensorCore.Threads(mma) > maxThreadsPerGroup)
                throw new ArgumentException($"the TF32 convolution's {Conv3x3.IlgpuTensorCore.Threads(mma)}-thread groups are more than {deviceId} allows ({maxThreadsPerGroup})");
            if (chosen.MmaFragments is < 0 or > 7)
                throw new ArgumentException($"MmaFragments is a sum of 1 (version 5 with 32-channel warps), 2 (64-channel warps) and 4 (64×64 warp tiles), several tuned, or 0, not {chosen.MmaFragments}");
            // The untuned shape must run at the configured height; tuned, each shape takes the heights it can.
            int untuned = UntunedShape(chosen);
            if (chosen.MmaFragmentsAsync is not (0 or 1))
                throw new ArgumentException($"MmaFragmentsAsync is 0 (version 5 stages each chunk's weights between its barriers) or 1 (copied by cp.async a chunk ahead), not {chosen.MmaFragmentsAsync}");
            if (chosen.MmaFragments != 0 && Conv3x3.IlgpuMmaFragments.Problem(chosen.MmaTileHeight, chosen.MmaTune == 0 ? untuned : Conv3x3.IlgpuMmaFragments.Narrow,
                    asyncWeights: chosen.MmaTune == 0 && chosen.MmaFragmentsAsync != 0) is { } rows)
                throw new ArgumentException($"TF32 convolution (MmaFragments={chosen.MmaFragments}): {rows}");
            int fragmentThreads = Conv3x3.IlgpuMmaFragments.Threads(chosen.MmaTileHeight, untuned);
            if (chosen.MmaFragments != 0 && fragmentThreads > maxThreadsPerGroup)
                throw new ArgumentException($"the fragment-ordered TF32 convolution's {fragmentThreads}-thread groups (MmaTileHeight {chosen.MmaTileHeight}) are more than {deviceId} allows ({maxThreadsPerGroup})");
        }
    }

    /// <summary>Why these options' TF32 kernels cannot run on this device (null where they can): a CUDA GPU older
    /// than compute capability 8.0 has no TF32 tensor cores, and the driver would refuse those kernels' PTX as they
    /// load (ptxas: "Feature '.tf32' requires .target sm_80 or higher") — after the device had opened, with CUDA's
    /// error code for a message. Elsewhere (OpenCL, the CPU accelerator) TF32 is emulated.</summary>
    public static string? Tf32Refusal(IlgpuLaunchOptions chosen, IlgpuDeviceInfo info)
    {
        if (!info.LacksTf32) return null;
        var (what, instead) = chosen.Conv == ConvKernel.Tf32 ? ("--tf32 runs the convolutions", "leave out --tf32 (the fp32 kernels run there)")
            : UsesTf32WinogradGemm(chosen) ? ("WinogradMma=1 runs Winograd's GEMMs", "leave out WinogradMma=1")
            : (null, null);
        return what is null ? null
            : $"{what} on TF32 tensor cores, which NVIDIA GPUs have from compute capability {IlgpuDeviceInfo.Tf32TensorCores} (Ampere) on; " +
              $"{info.Id} ({info.Name}) is {info.ComputeCapability}: {instead}";
    }

    /// <summary>The dynamic shared memory (floats) of each explicitly grouped kernel these options launch, at its
    /// largest (emulation scratch aside: it exists only off CUDA).</summary>
    static IEnumerable<(string Kernel, int Floats)> SharedMemoryNeeds(IlgpuLaunchOptions o)
    {
        if (o.Conv == ConvKernel.Tiled)
        {
            yield return ("tiled convolution", Conv3x3.IlgpuTiled.SharedFloats(o.TileWidth, o.TileHeight, o.InputChunk));
            yield return ("tiled Gram kernels", Gram.IlgpuTiled.SharedFloats(o.TileWidth));
        }
        if (UsesBlockedConv(o)) yield return ("blocked convolution", Conv3x3.IlgpuBlocked.SharedFloats(o.BlockedWidth, o.BlockedHeight, o.BlockedChunk));
        if (TunesFewOutputs(o))
            yield return ("blocked few-outputs convolution", Conv3x3.IlgpuBlockedFewOutputs.SharedFloats(BlockedFewOutputsWidth(o), o.BlockedHeight, o.BlockedChunk));
        if (UsesBlockedGram(o)) yield return ("blocked Gram kernels", Gram.IlgpuBlocked.SharedFloats(o.TileWidth));
        if (o.Conv == ConvKernel.Tf32) yield return ("TF32 convolution", Conv3x3.IlgpuTensorCore.SharedFloats(o.Mma(emulate: false)));
        if (o.Conv == ConvKernel.Tf32 && o.MmaFragments != 0)
            yield return ("fragment-ordered TF32 convolution", Conv3x3.IlgpuMmaFragments.SharedFloats(o.MmaTileHeight, emulate: false,
                asyncWeights: o.MmaTune == 0 && o.MmaFragmentsAsync != 0));
        if (o.TensorCoreGram || UsesTf32WinogradGemm(o))
            yield return ("TF32 GEMM block", Math.Max(Gram.IlgpuTensorCore.ForwardSharedFloats(o.MmaGramWarps, 0), Gram.IlgpuTensorCore.BackwardSharedFloats(o.MmaGramWarps, 0)));
        if (o.TensorCoreGram && o.MmaTune == 0 && o.MmaGramFragments != 0)
            yield return ("TF32 Gram backward's version 5", Gram.IlgpuTensorCore.FragmentsSharedFloats(0));
        if (UsesWinograd(o) || UsesGramGemm(o))
            yield return ("SGEMM", Conv3x3.IlgpuWinograd.SharedFloats(o.WinogradM, o.WinogradN));
    }

    IlgpuBackend(Context context, Accelerator accelerator, IlgpuDeviceInfo info, IlgpuLaunchOptions launch, KernelCache? kernelCache)
    {
        _context = context;
        Accelerator = accelerator;
        _loader = new KernelLoader(accelerator, kernelCache);
        Device = info;
        _launch = launch;
        _partials = accelerator.Allocate1D<float>(launch.ReductionThreads);
        _partials2 = accelerator.Allocate1D<float>(Math.Max(1, (launch.ReductionThreads + FoldedPerGroup - 1) / FoldedPerGroup));
        Memory.Allocated(4L * (_partials.Length + _partials2.Length));

        // The direct kernels (version 1) only where they run: compiling the convolution's takes ≈ 0.2 s of ILGPU's
        // time (PTX for sm_90, measured here) that every GPU run paid at start.
        if (launch.Conv == ConvKernel.Direct)
        {
            _convForward = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int>>(Conv3x3.Ilgpu.Forward);
            _convBackward = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int>>(Conv3x3.Ilgpu.BackwardInput);
            _gramForward = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, int, int>>(Gram.Ilgpu.Forward);
            _gramBackward = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>>(Gram.Ilgpu.BackwardAccumulate);
        }
        _poolForward = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, int, int, int>>(Pooling.Ilgpu.Forward);
        _poolBackward = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>>(
            launch.PoolWindows != 0 ? Pooling.Ilgpu.Backward : Pooling.Ilgpu.BackwardByElement);
        _contentPartial = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>>(Losses.Ilgpu.ContentPartial);
        _stylePartial = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>>(Losses.Ilgpu.StylePartial);
        _tvPartial = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, float>>(Losses.Ilgpu.TotalVariationPartial);
        _fill = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, float>>(VectorOps.Ilgpu.Fill);
        _copy = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>>>(VectorOps.Ilgpu.Copy);
        _axpy = _loader.AutoGrouped<Action<Index1D, float, ArrayView<float>, ArrayView<float>>>(VectorOps.Ilgpu.Axpy);
        _scale = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, float>>(VectorOps.Ilgpu.Scale);
        _subtract = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(VectorOps.Ilgpu.Subtract);
        _multiply = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(VectorOps.Ilgpu.Multiply);
        _dotPartial = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>>(VectorOps.Ilgpu.DotPartial);
        _sumGroups = _loader.Grouped<Action<KernelConfig, ArrayView<float>, ArrayView<float>, int>>(VectorOps.Ilgpu.SumGroups);
        _finish = _loader.Grouped<Action<KernelConfig, ArrayView<float>, int, ArrayView<float>, int, float, int>>(VectorOps.Ilgpu.Finish);
        _weightedSum = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, int, int>>(VectorOps.Ilgpu.WeightedSum);
        _adam = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamParameters>>(VectorOps.Ilgpu.AdamStep);
        _setRow = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, long, ArrayView<float>, ArrayView<float>, int>>(Lbfgs.Ilgpu.SetRow);
        _rowDots = _loader.Grouped<Action<KernelConfig, ArrayView<float>, int, int, int, int, int, int, ArrayView<float>>>(Lbfgs.Ilgpu.RowDotsPartial);
        _rowDotsFinish = _loader.Grouped<Action<KernelConfig, ArrayView<float>, int, ArrayView<float>>>(Lbfgs.Ilgpu.RowDotsFinish);
        _combineRows = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, int, int, ArrayView<float>, ArrayView<float>>>(Lbfgs.Ilgpu.Combine);
        _lbfgsDirection = _loader.Grouped<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, LbfgsRing>>(Lbfgs.Ilgpu.Direction);
        _transposeFlip = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, int, int>>(Conv3x3.IlgpuTiled.TransposeFlip);
        // The split-K Gram forward's reduction: the one GramReduceRows asks for.
        if (launch.GramReduceRows == 0)
            _gramReduce = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, int, int, int>>(Gram.IlgpuTiled.ReduceSplits);
        else
            _gramReduceGrouped = _loader.Grouped<Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int>>(Gram.IlgpuTiled.ReduceSplitsGrouped);
        if (TunesFewOutputs(launch))
            _convFewOutputs = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int, int, int>>(
                Conv3x3.IlgpuFewOutputs.Forward);
        // mma.sync exists only on CUDA; elsewhere the kernel emulates each warp-step in shared scratch.
        _mma = launch.Mma(emulate: accelerator.AcceleratorType != AcceleratorType.Cuda);
        // Only the chosen tiled convolution is compiled and loaded: a variant the driver cannot JIT (inline PTX, say)
        // must not take the others down with it.
        if (launch.Conv == ConvKernel.Tiled)
            _convTiled = _loader.Grouped<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int, int, int, int>>(Conv3x3.IlgpuTiled.Forward);
        if (UsesBlockedConv(launch))
            _convBlocked = _loader.Grouped<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int, int, int, int, int, int>>(Conv3x3.IlgpuBlocked.Forward);
        if (UsesWinograd(launch))
        {
            foreach (int edge in launch.Conv == ConvKernel.Tuned || TunesTf32Winograd(launch) ? [2, 4] : new[] { launch.WinogradTile })
            {
                bool four = edge == 4;
                _winograd[edge] = new(
                    _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int>>(
                        four ? Conv3x3.IlgpuWinograd.TransformWeights4 : Conv3x3.IlgpuWinograd.TransformWeights),
                    _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int, int, int, int>>(
                        four ? Conv3x3.IlgpuWinograd.TransformInput4 : Conv3x3.IlgpuWinograd.TransformInput),
                    _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int, int, int, int>>(
                        four ? Conv3x3.IlgpuWinograd.TransformOutput4 : Conv3x3.IlgpuWinograd.TransformOutput));
            }
            // The TF32 GEMM: asked for (WinogradMma), where failing to load is an error, or a tuning candidate (MmaTune),
            // where it only leaves the candidate out.
            if (UsesTf32WinogradGemm(launch))
                try
                {
                    _winogradMma = _loader.Grouped<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int>>(Conv3x3.IlgpuWinograd.GemmTensorCore);
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    if (launch.WinogradMma != 0)
                        throw new InvalidOperationException($"the TF32 Winograd GEMM did not load on {info.Name} ({e.Message}); run without WinogradMma=1", e);
                    TuningNote = $"Winograd with TF32 GEMMs left out of the tuning: its GEMM did not load ({e.Message})";
                }
        }
        if (UsesGramGemm(launch))
            _gramSymmetric = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, int, float, int>>(Gram.IlgpuTensorCore.SymmetricScaled);
        if (launch.Conv == ConvKernel.Tf32)
        {
            try
            {
                // Version 4 runs unless version 5 replaces it (MmaFragments without MmaTune): then it is not compiled.
                if (launch.MmaFragments == 0 || launch.MmaTune != 0)
                {
                    var configured = _mma;
                    _mma = LaunchableTile(configured, Launches);
                    if (!_mma.Equals(configured))
                        MmaTileNote = $"the configured {configured.TileWidth}×{configured.TileHeight} tile with prefetch {configured.Prefetch} needs more registers or shared memory than an SM of {info.Name} has";
                    ConvMma(_mma);   // compiled now, so that a kernel the driver cannot load fails here, explained
                    _packMma = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, ConvDims, MmaTile, int>>(Conv3x3.IlgpuTensorCore.PackWeights);
                }
                if (launch.MmaFragments != 0)
                {
                    _packFragments = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, ConvDims, int>>(Conv3x3.IlgpuMmaFragments.PackWeights);
                    if (launch.MmaTune == 0) ConvFragments(UntunedShape(launch), launch.MmaFragmentsAsync != 0);   // the configured kernel: compiled now, failing here, explained
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new InvalidOperationException($"the TF32 tensor-core kernel did not load on {info.Name} ({e.Message}); run without --tf32"
                    + (launch.MmaFragments != 0 && launch.MmaTune == 0 ? ", or with --launch MmaTune=0,MmaFragments=0 (version 4)" : ""), e);
            }
        }
        if (launch.TensorCoreGram)
        {
            try
            {
                _gramMmaForward = _loader.Grouped<Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int, int, int>>(Gram.IlgpuTensorCore.ForwardPartial);
                _gramSymmetric = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, int, float, int>>(Gram.IlgpuTensorCore.SymmetricScaled);
                _gramMmaBackward = _loader.Grouped<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int>>(Gram.IlgpuTensorCore.BackwardAccumulate);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new InvalidOperationException($"the TF32 Gram kernels did not load on {info.Name} ({e.Message}); run without MmaGram=1", e);
            }
        }
        // Likewise only the Gram kernels in use: version 2's with the tiled convolution, version 3's with the blocked
        // and TF32 ones.
        int t = launch.TileWidth;
        if (launch.Conv == ConvKernel.Tiled)
        {
            _gramPartial = _loader.Grouped<Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int>>(Gram.IlgpuTiled.ForwardPartial);
            _gramBackwardStaged = _loader.Grouped<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>>(Gram.IlgpuTiled.BackwardAccumulate);
            (_gramSide, _gramSharedFloats) = (t, Gram.IlgpuTiled.SharedFloats(t));
        }
        else if (launch.Conv != ConvKernel.Direct)
        {
            // 16×16 groups (the GPU's default) have kernels with T a constant.
            _gramPartial = _loader.Grouped<Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int>>(
                t == 16 ? Gram.IlgpuBlocked.ForwardPartial16 : Gram.IlgpuBlocked.ForwardPartial);
            _gramBackwardStaged = _loader.Grouped<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>>(
                t == 16 ? Gram.IlgpuBlocked.BackwardAccumulate16 : Gram.IlgpuBlocked.BackwardAccumulate);
            (_gramSide, _gramSharedFloats) = (Gram.IlgpuBlocked.Block * t, Gram.IlgpuBlocked.SharedFloats(t));
        }
    }

    public MemoryMeter Memory { get; } = new();

    public Tensor Allocate(Shape shape)
    {
        var t = new IlgpuTensor(this, shape);
        Memory.Allocated(4L * shape.Size);
        return t;
    }

    public void Upload(Tensor dst, ReadOnlySpan<float> src)
    {
        Check.Length(src.Length, dst, "upload source");
        V(dst).CopyFromCPU(Accelerator.DefaultStream, src);
    }

    public void Download(Tensor src, Span<float> dst)
    {
        Check.Length(dst.Length, src, "download destination");
        V(src).CopyToCPU(Accelerator.DefaultStream, dst);
        Accelerator.Synchronize();
    }

    public void Synchronize() => Accelerator.Synchronize();

    public ConvKernel ConvVariant => _launch.Conv;
    /// <summary>True when the TF32 Winograd GEMM is loaded: asked for (WinogradMma), or a tuning candidate (MmaTune).</summary>
    public bool Tf32Winograd => _winogradMma is not null;
    /// <summary>True when the Gram matrices run on tensor cores in TF32 (MmaGram).</summary>
    public bool TensorCoreGram => _launch.TensorCoreGram;

    /// <summary>Seconds the device took to open: ILGPU's context (the runtime's devices listed) and the accelerator
    /// (on CUDA, the driver's context), the kernels aside.</summary>
    public double OpenSeconds { get; private init; }

    /// <summary>Opened with ILGPU's profiling on: <see cref="Mark"/> works.</summary>
    public bool Profiling { get; private init; }

    /// <summary>
    /// The device's fp32 FMA peak in GFLOP/s (<see cref="Peak"/>): enough threads to fill every multiprocessor
    /// twice over, iterations doubled until a launch lasts <paramref name="seconds"/>; the best of three launches.
    /// </summary>
    public double MeasureFmaPeak(double seconds = 0.2, int? threads = null)
    {
        var kernel = _loader.AutoGrouped<Action<Index1D, ArrayView<float>, int, float, float>>(Peak.Ilgpu.FmaChains);
        int n = threads ?? Math.Max(1, Accelerator.NumMultiprocessors) * Math.Max(1, Accelerator.MaxNumThreadsPerMultiprocessor) * 2;
        using var sink = Accelerator.Allocate1D<float>(n);
        int iterations = 64;
        double best = 0;
        for (int round = 0; round < 40 && best == 0; round++)
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            kernel(n, sink.View, iterations, 0.999999f, 1e-7f);
            Accelerator.Synchronize();
            double t = sw.Elapsed.TotalSeconds;
            if (t < seconds && iterations < 1 << 28) { iterations *= 2; continue; }
            for (int k = 0; k < 3; k++)
            {
                sw.Restart();
                kernel(n, sink.View, iterations, 0.999999f, 1e-7f);
                Accelerator.Synchronize();
                best = Math.Max(best, (double)n * iterations * Peak.FlopsPerIteration / sw.Elapsed.TotalSeconds / 1e9);
            }
        }
        return best;
    }

    /// <summary>A profiling marker (a CUDA event on a GPU) recorded in the stream after everything queued so far.</summary>
    public ProfilingMarker Mark() => Accelerator.DefaultStream.AddProfilingMarker();

    public void Conv3x3Forward(Tensor x, Tensor w, Tensor b, Tensor y, bool relu)
    {
        var d = Check.Conv(x, w, b, y);
        if (_launch.Conv == ConvKernel.Direct)
        {
            _convForward!(y.Length, V(x), V(w), V(b), V(y), d, relu ? 1 : 0);
            return;
        }
        void Run(ConvPlan plan)
        {
            int r = relu ? 1 : 0;
            switch (plan.Algorithm)
            {
                case ConvAlgorithm.Tf32:
                    ConvMma(plan.Tile)(MmaConfig(plan.Tile, d.Cout, d.H, d.W), V(x), V(x), PackMma(V(w), d, flip: 0), V(b), V(y), d, r, 1, 0, plan.Tile);
                    break;
                case ConvAlgorithm.Tf32Fragments:
                    RunFragments(plan, V(x), V(x), PackFragments(V(w), d, flip: 0), V(b), V(y), d, r, 1, 0);
                    break;
                case ConvAlgorithm.Staged when plan.Splits > 1:
                    ConvBlockedSplit(V(x), V(x), V(w), V(b), V(y), d, r, hasBias: 1, useMask: 0, plan.Splits);
                    break;
                case ConvAlgorithm.Staged:
                    ConvStaged(V(x), V(x), V(w), V(b), V(y), d, r, hasBias: 1, useMask: 0);
                    break;
                case ConvAlgorithm.FewOutputs:
                    _convFewOutputs!(Conv3x3.IlgpuFewOutputs.Threads(d), V(x), V(x), V(w), V(b), V(y), d, r, 1, 0);
                    break;
                case ConvAlgorithm.BlockedFewOutputs:
                    ConvBlockedFewOutputs(V(x), V(x), V(w), V(b), V(y), d, r, hasBias: 1, useMask: 0, plan.Splits);
                    break;
                default:
                    ConvWinograd(plan, V(x), V(x), V(w), flip: 0, V(b), V(y), d, r, hasBias: 1, useMask: 0);
                    break;
            }
        }
        Run(PlanFor(d, backward: false, y, Run));
    }

    /// <summary>Whether this convolution runs the TF32 kernel: chosen, and enough channels both ways.</summary>
    bool OnTensorCores(ConvDims d) => _launch.Conv == ConvKernel.Tf32 && Math.Min(d.Cin, d.Cout) >= _launch.MmaMinChannels;

    /// <summary>Why the TF32 tile differs from the configured one, or null.</summary>
    public string? MmaTileNote { get; }

    /// <summary>The TF32 kernel for a tile (its prefetch level, its shape), loaded (compiled) on first use.</summary>
    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int, int, int, MmaTile> ConvMma(MmaTile t) => ConvMmaKernel(t).Launch;

    /// <summary>Loads the TF32 kernel for a tile. On CUDA, with MmaLaunchBounds, with launch bounds for two groups an
    /// SM of the configured tile's threads — every tile used is that one or a lower one (LaunchableTile, MmaTileFor) —
    /// so that ptxas fits it in 64 registers (LaunchBounds): without prefetching, and with asynchronous copies in the
    /// 32×8 tile's own kernel (the general asynchronous kernel spills at 64; register prefetching cannot fit two groups).
    /// Where that load fails, as usual, saying so in the backend's name. The asynchronous kernels take x's and the
    /// packed weights' device addresses, read here from the views (a kernel cannot take them in ILGPU).</summary>
    (Kernel Kernel, Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int, int, int, MmaTile> Launch) ConvMmaKernel(MmaTile t)
    {
        bool asynchronous = t.Prefetch == 2;
        var method = asynchronous ? Conv3x3.IlgpuTensorCore.ForAsync(t).Method : Conv3x3.IlgpuTensorCore.For(t).Method;
        if (_convMma.TryGetValue(method, out var loaded)) return loaded;
        int maxThreads = Conv3x3.IlgpuTensorCore.Threads(_launch.Mma(emulate: false));
        bool bounded = t.Prefetch == 0 || asynchronous && Conv3x3.IlgpuTensorCore.IsDefaultShape(t);
        var cuda = Accelerator as ILGPU.Runtime.Cuda.CudaAccelerator;
        // Two groups of at most 512 threads leave a thread 64 registers, which these kernels fit without spilling.
        if (cuda is not null && _launch.MmaLaunchBounds != 0 && bounded && maxThreads <= 512)
            try
            {
                Kernel kernel;
                Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int, int, int, MmaTile> run;
                if (asynchronous)
                {
                    (kernel, var launch) = _loader.Bounded<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                        ArrayView<float>, ArrayView<float>, ConvDims, int, int, int, MmaTile, GlobalAddresses>>(method, maxThreads, minGroups: 2);
                    run = (config, x, mask, w, b, y, d, relu, hasBias, useMask, tile) =>
                        launch(cuda.DefaultStream, config, x, mask, w, b, y, d, relu, hasBias, useMask, tile, Addresses(x, w));
                }
                else
                {
                    (kernel, var launch) = _loader.Bounded<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                        ArrayView<float>, ArrayView<float>, ConvDims, int, int, int, MmaTile>>(method, maxThreads, minGroups: 2);
                    run = (config, x, mask, w, b, y, d, relu, hasBias, useMask, tile) =>
                        launch(cuda.DefaultStream, config, x, mask, w, b, y, d, relu, hasBias, useMask, tile);
                }
                LaunchBoundsNote = $"launch bounds: ≤ {maxThreads} threads, 2 groups an SM";
                return _convMma[method] = (kernel, run);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                LaunchBoundsNote = $"launch bounds not applied ({e.GetType().Name}: {e.Message})";
            }
        if (asynchronous)
        {
            var (asyncKernel, plainAsync) = _loader.GroupedKernel<MmaAsyncLauncher>(Conv3x3.IlgpuTensorCore.ForAsync(t));
            return _convMma[method] = (asyncKernel, (config, x, mask, w, b, y, d, relu, hasBias, useMask, tile) =>
                plainAsync(config, x, mask, w, b, y, d, relu, hasBias, useMask, tile, cuda is null ? default : Addresses(x, w)));
        }
        return _convMma[method] = _loader.GroupedKernel<MmaLauncher>(Conv3x3.IlgpuTensorCore.For(t));
    }

    /// <summary>The device addresses of a CUDA convolution's input and packed weights, for cp.async.</summary>
    static GlobalAddresses Addresses(ArrayView<float> x, ArrayView<float> w) => new(Address(x), Address(w));

    /// <summary>A view's device address, for cp.async's sources.</summary>
    static long Address(ArrayView<float> v) => v.LoadEffectiveAddressAsPtr().ToInt64();

    /// <summary>Whether the TF32 kernels were loaded with launch bounds (CUDA), and if not why; null elsewhere.</summary>
    public string? LaunchBoundsNote { get; private set; }

    /// <summary>Whether a group of this tile can be resident on an SM at all: its shared memory within what a group may
    /// ask for (ILGPU refuses more: 48 KB on CUDA, which it cannot opt past), and CUDA's occupancy calculator, which
    /// knows the kernel's registers (ptxas for sm_90, the 32×8 tile: 64 with launch bounds, 72 without, 96
    /// prefetching). A launch that cannot fit fails outright (CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES). Elsewhere every
    /// tile that passes <see cref="MmaTile.Problem"/> and the shared-memory limit launches.</summary>
    bool Launches(MmaTile t) => 4L * Conv3x3.IlgpuTensorCore.SharedFloats(t) <= Accelerator.MaxSharedMemoryPerGroup
        && (Accelerator.AcceleratorType != AcceleratorType.Cuda
            || Accelerator.EstimateMaxActiveGroupsPerMultiprocessor(ConvMmaKernel(t).Kernel, Conv3x3.IlgpuTensorCore.Threads(t),
                Conv3x3.IlgpuTensorCore.SharedFloats(t) * sizeof(float)) > 0);

    /// <summary>The configured TF32 tile if it launches, else the nearest that does: the configured height without
    /// prefetching (the 32×8 tile measured fastest; prefetching adds 24–49 registers a thread), then each halved height
    /// (down to one warp of pixels) with the configured prefetch where its threads can hold it, else without. Throws
    /// where nothing launches.</summary>
    public static MmaTile LaunchableTile(MmaTile configured, Func<MmaTile, bool> launches)
    {
        for (var tile = configured; ; tile.TileHeight /= 2)
        {
            for (var candidate = tile with { Prefetch = configured.Prefetch }; candidate.Prefetch >= 0; candidate.Prefetch--)
                if (candidate.Problem() is null && launches(candidate)) return candidate;
            if (tile.TileHeight % 2 != 0 || tile.TileWidth * tile.TileHeight / 2 % Conv3x3.IlgpuTensorCore.WarpPixels != 0)
                throw new InvalidOperationException(
                    $"no TF32 tile from {configured.TileWidth}×{configured.TileHeight} down to {tile.TileWidth}×{tile.TileHeight} can launch on this device; run without --tf32");
        }
    }

    /// <summary>The weights packed for the TF32 kernel, in scratch: one pass over them per call, ≈ 20 MB at most per
    /// VGG layer — microseconds on a GPU.</summary>
    ArrayView<float> PackMma(ArrayView<float> w, ConvDims d, int flip)
    {
        int length = Conv3x3.IlgpuTensorCore.PackedLength(d, _mma);
        var packed = Scratch(ref _packed, length);
        _packMma!(length, w, packed, d, _mma, flip);
        return packed;
    }

    /// <summary>Version 5 of the TF32 convolution (MmaFragments) for a warp shape (Conv3x3.IlgpuMmaFragments.Narrow,
    /// Wide or Square),
    /// loaded on first use: on CUDA, with MmaLaunchBounds, with launch bounds for two groups an SM of the configured
    /// height's threads (ptxas for sm_90, 32×8: 63 registers with the bounds, 56 without; 64-channel warps, see
    /// SassTests), as version 4's.</summary>
    FragmentsLauncher ConvFragments(int shape, bool asyncWeights) => ConvFragmentsKernel(shape, asyncWeights).Launch;

    (Kernel Kernel, FragmentsLauncher Launch) ConvFragmentsKernel(int shape, bool asyncWeights)
    {
        if (_convFragments.TryGetValue((shape, asyncWeights), out var loaded)) return loaded;
        int maxThreads = Conv3x3.IlgpuMmaFragments.Threads(_launch.MmaTileHeight, shape);
        if (Accelerator is ILGPU.Runtime.Cuda.CudaAccelerator cuda && _launch.MmaLaunchBounds != 0 && maxThreads <= 512)
            try
            {
                var (kernel, launch) = _loader.Bounded<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                    ArrayView<float>, ArrayView<float>, ConvDims, int, int, int, int, int, long>>(Conv3x3.IlgpuMmaFragments.For(shape, asyncWeights).Method, maxThreads, minGroups: 2);
                return _convFragments[(shape, asyncWeights)] = (kernel, (config, x, mask, w, b, y, d, relu, hasBias, useMask, rows, splits, wAddress) =>
                    launch(cuda.DefaultStream, config, x, mask, w, b, y, d, relu, hasBias, useMask, rows, splits, wAddress));
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                LaunchBoundsNote = $"launch bounds not applied to the fragment-ordered kernel ({e.GetType().Name}: {e.Message})";
            }
        return _convFragments[(shape, asyncWeights)] = _loader.GroupedKernel<FragmentsLauncher>(Conv3x3.IlgpuMmaFragments.For(shape, asyncWeights));
    }

    /// <summary>The warp shape version 5 runs with when untuned (MmaTune=0): the first MmaFragments names (bit 1:
    /// 32-channel warps, 2: 64-channel ones, 4: 64×64 warp tiles).</summary>
    static int UntunedShape(IlgpuLaunchOptions launch) =>
        (launch.MmaFragments & 1) != 0 ? Conv3x3.IlgpuMmaFragments.Narrow
        : (launch.MmaFragments & 2) != 0 ? Conv3x3.IlgpuMmaFragments.Wide : Conv3x3.IlgpuMmaFragments.Square;

    /// <summary>Version 5's grid for a plan's tile: (⌈W/32⌉, ⌈H/rows⌉, ⌈Cout/64⌉ · splits).</summary>
    KernelConfig FragmentsConfig(ConvPlan plan, ConvDims d)
    {
        int rows = plan.Tile.TileHeight, shape = plan.WarpShape;
        return new(FragmentsGrid(plan, d), new Index3D(Conv3x3.IlgpuMmaFragments.Threads(rows, shape), 1, 1),
            SharedMemoryConfig.RequestDynamic<float>(Conv3x3.IlgpuMmaFragments.SharedFloats(rows, _mma.Emulate != 0, shape, plan.AsyncWeights)));
    }

    static Index3D FragmentsGrid(ConvPlan plan, ConvDims d) =>
        new((d.W + Conv3x3.IlgpuMmaFragments.TileWidth - 1) / Conv3x3.IlgpuMmaFragments.TileWidth, (d.H + plan.Tile.TileHeight - 1) / plan.Tile.TileHeight,
            Conv3x3.IlgpuMmaFragments.Groups(d.Cout) * Math.Max(1, plan.Splits));

    /// <summary>Runs version 5 for a plan: in one kernel, or split over the input channels (plan.Splits &gt; 1) into
    /// partial outputs that <see cref="Conv3x3.IlgpuTiled.SumSplits"/> adds, with the bias and ReLU.</summary>
    void RunFragments(ConvPlan plan, ArrayView<float> x, ArrayView<float> mask, ArrayView<float> packed, ArrayView<float> b, ArrayView<float> y,
        ConvDims d, int relu, int hasBias, int useMask)
    {
        var kernel = ConvFragments(plan.WarpShape, plan.AsyncWeights);
        int splits = Math.Max(1, plan.Splits);
        // cp.async reads from a device address, which a kernel cannot take from a view (as version 4's Addresses).
        long wAddress = plan.AsyncWeights && Accelerator is ILGPU.Runtime.Cuda.CudaAccelerator ? Address(packed) : 0;
        RunSplit(d, splits, b, y, relu, hasBias, (output, r, h) =>
            kernel(FragmentsConfig(plan, d), x, mask, packed, b, output, d, r, h, useMask, plan.Tile.TileHeight, splits, wAddress));
    }

    /// <summary>Version 5's plans (<see cref="FragmentPlans"/>), then the splits of its 32-channel-warp plans that
    /// MmaSplits allows (<see cref="SplitPlans"/>).</summary>
    IEnumerable<ConvPlan> FragmentPlansWithSplits(ConvDims d)
    {
        var plans = FragmentPlans().ToList();
        return plans.Concat(SplitPlans(d, plans));
    }

    /// <summary>The SMs the splits over the input channels are offered for: the device's, or on the CPU accelerator
    /// what <see cref="CpuSimulation.SplitsForMultiprocessors"/> says.</summary>
    int Multiprocessors { get; init; } = 1;

    /// <summary>Splits over the input channels offered to the tuning: for a 32-channel-warp plan whose grid has fewer
    /// groups than two an SM, 2, 4 … MmaSplits splits while the split grid stays within four groups an SM and each
    /// split keeps at least 4 chunks (32 input channels) — on an H200 at 512², VGG's 64×64 and 32×32 layers.</summary>
    IEnumerable<ConvPlan> SplitPlans(ConvDims d, IEnumerable<ConvPlan> plans) =>
        from plan in plans.Where(p => p.WarpShape == Conv3x3.IlgpuMmaFragments.Narrow)
        from s in SplitsOffered(FragmentsGrid(plan, d).Size, Conv3x3.IlgpuMmaFragments.Chunks(d.Cin), Multiprocessors, _launch.MmaSplits)
        select plan with { Splits = s };

    /// <summary>The splits offered for a grid of <paramref name="groups"/> groups and <paramref name="chunks"/> input
    /// chunks on <paramref name="sms"/> SMs: none where the grid already gives each SM two groups; else 2, 4 … up to
    /// <paramref name="maxSplits"/>, while the split grid has at most four groups an SM and each split 4 chunks.</summary>
    public static IEnumerable<int> SplitsOffered(long groups, int chunks, long sms, int maxSplits)
    {
        if (groups >= 2 * sms) yield break;
        for (int s = 2; s <= maxSplits; s *= 2)
            if (groups * s <= 4 * sms && chunks >= 4 * s)
                yield return s;
    }

    /// <summary>The splits the TF32 Gram backward of C channels and N positions is tuned with (SplitsOffered on its
    /// grid of tiles <paramref name="side"/> channels and positions a side, and its KChunk-deep chunks of channels, up
    /// to MmaSplits).</summary>
    IEnumerable<int> Tf32GramSplitsOffered(int c, int n, int side)
    {
        long groups = (long)((n + side - 1) / side) * ((c + side - 1) / side);
        return SplitsOffered(groups, Gram.IlgpuTensorCore.Chunks(c), Multiprocessors, _launch.MmaSplits);
    }

    /// <summary>The weights in version 5's fragment order, in the same scratch as version 4's packing.</summary>
    ArrayView<float> PackFragments(ArrayView<float> w, ConvDims d, int flip)
    {
        long length = Conv3x3.IlgpuMmaFragments.PackedLength(d);
        var packed = Scratch(ref _packed, length);
        _packFragments!((int)length, w, packed, d, flip);
        return packed;
    }

    /// <summary>Version 5's plans MmaTune tries: for each warp shape MmaFragments asks for (32-channel warps, 64-channel
    /// ones, 64×64 warp tiles), the configured height and each half down to 2 rows — to 4 in 64×64 warp tiles (2 rows
    /// would be one warp a group) —, where the shape can take the height and a group fits the device (threads, shared
    /// memory, and on CUDA the occupancy calculator, which knows its registers).</summary>
    IEnumerable<ConvPlan> FragmentPlans()
    {
        foreach (int shape in new[] { 0, 1, 2 }.Where(shape => (_launch.MmaFragments & (1 << shape)) != 0))
            for (int rows = _launch.MmaTileHeight; rows >= 1; rows = rows % 2 == 0 && rows > 2 ? rows / 2 : 0)
                foreach (bool asyncWeights in _launch.MmaFragmentsAsync != 0 ? [false, true] : new[] { false })
                    if ((shape != Conv3x3.IlgpuMmaFragments.Square || rows >= 4) && Conv3x3.IlgpuMmaFragments.Problem(rows, shape, asyncWeights) is null
                        && FragmentsLaunch(rows, shape, asyncWeights))
                        yield return FragmentsPlan(rows, shape, asyncWeights);
    }

    bool FragmentsLaunch(int rows, int shape, bool asyncWeights)
    {
        int threads = Conv3x3.IlgpuMmaFragments.Threads(rows, shape);
        int floats = Conv3x3.IlgpuMmaFragments.SharedFloats(rows, _mma.Emulate != 0, shape, asyncWeights);
        if (threads > Device.MaxThreadsPerGroup || 4L * floats > Accelerator.MaxSharedMemoryPerGroup) return false;
        if (Accelerator.AcceleratorType != AcceleratorType.Cuda) return true;
        try
        {
            return Accelerator.EstimateMaxActiveGroupsPerMultiprocessor(ConvFragmentsKernel(shape, asyncWeights).Kernel, threads, floats * sizeof(float)) > 0;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            TuningNote = $"{FragmentsPlan(rows, shape, asyncWeights)} left out of the tuning: it did not load ({e.Message})";
            return false;
        }
    }

    public void Conv3x3BackwardInput(Tensor dy, Tensor? reluOutput, Tensor w, Tensor dx)
    {
        var d = Check.ConvBackward(dy, reluOutput, w, dx);
        int mask = reluOutput is null ? 0 : 1;
        if (_launch.Conv == ConvKernel.Direct)
        {
            _convBackward!(dx.Length, V(dy), V(reluOutput ?? dy), V(w), V(dx), d, mask);
            return;
        }
        // dx = conv(dy ⊙ [y > 0], W′): the forward kernel on the transposed, flipped weights.
        var back = new ConvDims(d.Cout, d.Cin, d.H, d.W);
        void Run(ConvPlan plan)
        {
            switch (plan.Algorithm)
            {
                case ConvAlgorithm.Tf32:
                    ConvMma(plan.Tile)(MmaConfig(plan.Tile, back.Cout, back.H, back.W), V(dy), V(reluOutput ?? dy), PackMma(V(w), back, flip: 1), V(dy), V(dx), back, 0, 0, mask, plan.Tile);
                    break;
                case ConvAlgorithm.Tf32Fragments:
                    RunFragments(plan, V(dy), V(reluOutput ?? dy), PackFragments(V(w), back, flip: 1), V(dy), V(dx), back, 0, 0, mask);
                    break;
                case ConvAlgorithm.Staged or ConvAlgorithm.FewOutputs or ConvAlgorithm.BlockedFewOutputs:
                    var flipped = Scratch(ref _flipped, w.Length);
                    _transposeFlip(w.Length, V(w), flipped, d.Cin, d.Cout);
                    if (plan.Algorithm == ConvAlgorithm.BlockedFewOutputs)
                        ConvBlockedFewOutputs(V(dy), V(reluOutput ?? dy), flipped, V(dy), V(dx), back, relu: 0, hasBias: 0, useMask: mask, plan.Splits);
                    else if (plan.Algorithm == ConvAlgorithm.Staged && plan.Splits > 1)
                        ConvBlockedSplit(V(dy), V(reluOutput ?? dy), flipped, V(dy), V(dx), back, relu: 0, hasBias: 0, useMask: mask, plan.Splits);
                    else if (plan.Algorithm == ConvAlgorithm.Staged)
                        ConvStaged(V(dy), V(reluOutput ?? dy), flipped, V(dy), V(dx), back, relu: 0, hasBias: 0, useMask: mask);
                    else
                        _convFewOutputs!(Conv3x3.IlgpuFewOutputs.Threads(back), V(dy), V(reluOutput ?? dy), flipped, V(dy), V(dx), back, 0, 0, mask);
                    break;
                default:
                    ConvWinograd(plan, V(dy), V(reluOutput ?? dy), V(w), flip: 1, V(dy), V(dx), back, relu: 0, hasBias: 0, useMask: mask);
                    break;
            }
        }
        Run(PlanFor(back, backward: true, dx, Run));
    }

    /// <summary>The blocked kernel runs: chosen, tuned, or under TF32 and Winograd for the few-channel layers.</summary>
    static bool UsesBlockedConv(IlgpuLaunchOptions launch) =>
        launch.Conv is ConvKernel.Blocked or ConvKernel.Winograd or ConvKernel.Tuned || (launch.Conv == ConvKernel.Tf32 && launch.MmaMinChannels > 1);

    /// <summary>The few-outputs kernel is a tuning candidate, for convolutions with at most 4 output channels: with
    /// --conv tuned, and with --tf32 and MmaTune (those convolutions run in fp32 there too).</summary>
    static bool TunesFewOutputs(IlgpuLaunchOptions launch) => launch.Conv == ConvKernel.Tuned || TunesTf32Winograd(launch);

    /// <summary>Winograd's kernels run: chosen, or among the tuned convolutions' candidates (with --conv tuned; with
    /// --tf32 and MmaTune, F(2×2) with TF32 GEMMs and fp32 F(2×2) and F(4×4)).</summary>
    static bool UsesWinograd(IlgpuLaunchOptions launch) => launch.Conv is ConvKernel.Winograd or ConvKernel.Tuned || TunesTf32Winograd(launch);

    /// <summary>--tf32 with MmaTune: Winograd (F(2×2) with TF32 GEMMs, fp32 F(2×2) and F(4×4)) is a candidate beside
    /// the TF32 tiles.</summary>
    static bool TunesTf32Winograd(IlgpuLaunchOptions launch) => launch.Conv == ConvKernel.Tf32 && launch.MmaTune != 0;

    /// <summary>The TF32 Winograd GEMM runs: asked for (--conv winograd with WinogradMma), or a tuning candidate.</summary>
    static bool UsesTf32WinogradGemm(IlgpuLaunchOptions launch) =>
        (launch.Conv == ConvKernel.Winograd && launch.WinogradMma != 0) || TunesTf32Winograd(launch);

    /// <summary>Version 3's blocked Gram kernels run: with every convolution but the direct and tiled ones.</summary>
    static bool UsesBlockedGram(IlgpuLaunchOptions launch) => launch.Conv is not (ConvKernel.Direct or ConvKernel.Tiled);

    /// <summary>The Gram backward may run by the SGEMM: with GramGemm, under the fp32 staged Gram kernels' convolutions
    /// (blocked, Winograd), or as a candidate under --conv tuned.</summary>
    static bool UsesGramGemm(IlgpuLaunchOptions launch) =>
        (launch.GramGemm != 0 && launch.Conv is ConvKernel.Blocked or ConvKernel.Winograd) || launch.Conv == ConvKernel.Tuned;

    /// <summary>One convolution by Winograd F(edge×edge, 3×3) (Conv3x3.IlgpuWinograd) — F(2×2) or F(4×4) with fp32
    /// GEMMs, or F(2×2) with TF32 GEMMs in blocks of the plan's warps (<paramref name="plan"/>): the weights transformed
    /// (flipped for the backward, whose d is the forward it stands for), then per pass of tiles the input transform
    /// (ReLU's mask applied), the (edge+2)² GEMMs, and the output transform (bias, ReLU).</summary>
    void ConvWinograd(ConvPlan plan, ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, int flip, ArrayView<float> b,
        ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask)
    {
        int edge = plan.Algorithm == ConvAlgorithm.Winograd4 ? 4 : 2;
        var tf32Gemm = plan.Algorithm == ConvAlgorithm.Winograd2Tf32 ? _winogradMma ?? throw new InvalidOperationException("the TF32 Winograd GEMM is not loaded") : null;
        var transforms = _winograd[edge];
        int warps = plan.GemmWarps, side = Gram.IlgpuTensorCore.Side(warps);
        int bm = tf32Gemm is null ? _launch.WinogradBlockFor(d.Cout) : side, bn = tf32Gemm is null ? _launch.WinogradN : side;
        int cinPad = Conv3x3.IlgpuWinograd.Pad(d.Cin, Conv3x3.IlgpuWinograd.KChunk), coutPad = Conv3x3.IlgpuWinograd.Pad(d.Cout, bm);
        // F(2×2, 3×3): 16 values a tile and channel, 2×2 outputs a tile; F(4×4, 3×3) (WinogradTile=4): 36, 4×4.
        int positions = (edge + 2) * (edge + 2);
        var u = Scratch(ref _winogradU, (long)positions * cinPad * coutPad);
        transforms.Weights(cinPad * coutPad, w, u, d.Cin, d.Cout, cinPad, coutPad, flip, tf32Gemm is null ? 0 : 1);
        int tiles = (d.H + edge - 1) / edge * ((d.W + edge - 1) / edge);
        int perPass = Conv3x3.IlgpuWinograd.TilesPerPass(cinPad, coutPad, tiles, bn, _launch.WinogradScratch, positions);
        var v = Scratch(ref _winogradV, (long)positions * cinPad * perPass);
        var m = Scratch(ref _winogradM, (long)positions * coutPad * perPass);
        for (int t0 = 0; t0 < tiles; t0 += perPass)
        {
            int n = Math.Min(perPass, tiles - t0), nPad = Conv3x3.IlgpuWinograd.Pad(n, bn);
            transforms.Input(cinPad * nPad, x, mask, v, d.Cin, d.H, d.W, cinPad, nPad, t0, n, useMask, _launch.WinogradGather);
            if (tf32Gemm is not null)
                tf32Gemm(new KernelConfig(new Index3D(nPad / side, coutPad / side, positions), new Index3D(Gram.IlgpuTensorCore.Threads(warps), 1, 1),
                    SharedMemoryConfig.RequestDynamic<float>(Gram.IlgpuTensorCore.BackwardSharedFloats(warps, _mma.Emulate))), u, v, m, cinPad, coutPad, nPad, warps,
                    _launch.MmaGemmBatch);
            else
                Sgemm(u, v, m, cinPad, coutPad, nPad, bm, bn, batches: positions, accumulate: 0);
            transforms.Output(d.Cout * n, m, b, y, d.Cout, d.H, d.W, coutPad, nPad, t0, n, relu, hasBias);
        }
    }

    /// <summary>C[z] (+)= A[z]ᵀ·B[z] for z &lt; batches by the fp32 SGEMM (sizes multiples of its blocks).</summary>
    void Sgemm(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, int k, int m, int n, int bm, int bn, int batches, int accumulate) =>
        SgemmKernel(bm, bn, accumulate)(new KernelConfig(new Index3D(n / bn, m / bm, batches), new Index3D(Conv3x3.IlgpuWinograd.Threads(bm, bn), 1, 1),
            SharedMemoryConfig.RequestDynamic<float>(Conv3x3.IlgpuWinograd.SharedFloats(bm, bn))), a, b, c, k, m, n, bm, bn, _launch.WinogradPrefetch, accumulate);

    Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int, int> SgemmKernel(int bm, int bn, int accumulate)
    {
        var kernel = _launch.SgemmFixedBlocks != 0 ? Conv3x3.IlgpuWinograd.GemmFor(bm, bn, _launch.WinogradPrefetch, accumulate) : Conv3x3.IlgpuWinograd.Gemm;
        if (!_sgemm.TryGetValue(kernel.Method, out var launcher))
            _sgemm[kernel.Method] = launcher = _loader.Grouped<SgemmLauncher>(kernel);
        return launcher;
    }

    /// <summary>One convolution by the fp32 staged kernel (version 2, or version 3 — also the TF32 variant's kernel for
    /// few-channel layers): the forward, or the backward as a forward on the flipped weights with the ReLU mask applied
    /// while staging.</summary>
    void ConvStaged(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b, ArrayView<float> y,
        ConvDims d, int relu, int hasBias, int useMask)
    {
        if (_launch.Conv == ConvKernel.Tiled) _convTiled!(TiledConfig(d.Cout, d.H, d.W), x, mask, w, b, y, d, relu, hasBias, useMask, _launch.InputChunk);
        else _convBlocked!(BlockedConfig(d.Cout, d.H, d.W), x, mask, w, b, y, d, relu, hasBias, useMask, _launch.BlockedChunk, _launch.BlockedBatch, 1);
    }

    /// <summary>The blocked kernel split over the input channels (splits &gt; 1): partial outputs, then their sum with
    /// the bias and ReLU (Conv3x3.IlgpuTiled.SumSplits).</summary>
    void ConvBlockedSplit(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b, ArrayView<float> y,
        ConvDims d, int relu, int hasBias, int useMask, int splits)
        => RunSplit(d, splits, b, y, relu, hasBias, (output, r, h) =>
            _convBlocked!(BlockedConfig(d.Cout, d.H, d.W, splits), x, mask, w, b, output, d, r, h, useMask, _launch.BlockedChunk, _launch.BlockedBatch, splits));

    /// <summary>A convolution with at most 4 outputs by Conv3x3.IlgpuBlockedFewOutputs (4 channels × 8 pixels a
    /// thread), split over the input channels where <paramref name="splits"/> &gt; 1 (partials, then SumSplits).</summary>
    void ConvBlockedFewOutputs(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b, ArrayView<float> y,
        ConvDims d, int relu, int hasBias, int useMask, int splits)
    {
        _convBlockedFewOutputs ??= _loader.Grouped<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int, int, int, int, int, int>>(
            Conv3x3.IlgpuBlockedFewOutputs.Forward);
        int tw = BlockedFewOutputsWidth(_launch), th = _launch.BlockedHeight;
        var config = new KernelConfig(new Index3D((d.W + tw - 1) / tw, (d.H + th - 1) / th, splits),
            new Index3D(tw / Conv3x3.IlgpuBlockedFewOutputs.PixelsPerThread, th, 1),
            SharedMemoryConfig.RequestDynamic<float>(Conv3x3.IlgpuBlockedFewOutputs.SharedFloats(tw, th, _launch.BlockedChunk)));
        var kernel = _convBlockedFewOutputs;
        RunSplit(d, splits, b, y, relu, hasBias, (output, r, h) =>
            kernel(config, x, mask, w, b, output, d, r, h, useMask, _launch.BlockedChunk, _launch.BlockedBatch, splits));
    }

    /// <summary>The few-outputs blocked kernel's tile width: twice the blocked kernel's, so that its groups have the
    /// blocked kernel's threads (8 pixels a thread against 4).</summary>
    static int BlockedFewOutputsWidth(IlgpuLaunchOptions o) => o.BlockedWidth / Conv3x3.IlgpuBlocked.PixelsPerThread * Conv3x3.IlgpuBlockedFewOutputs.PixelsPerThread;

    /// <summary>A convolution that may be split over its input channels: <paramref name="launch"/>(output, relu,
    /// hasBias) runs its kernel — unsplit into y with the bias and ReLU; split, into the partial outputs without them,
    /// which SumSplits then adds, with the bias and ReLU, into y.</summary>
    void RunSplit(ConvDims d, int splits, ArrayView<float> b, ArrayView<float> y, int relu, int hasBias, Action<ArrayView<float>, int, int> launch)
    {
        if (splits <= 1)
        {
            launch(y, relu, hasBias);
            return;
        }
        var partials = Scratch(ref _splitPartials, splits * (long)d.Cout * d.H * d.W);
        launch(partials, 0, 0);
        SumSplits(partials, b, y, d, splits, relu, hasBias);
    }

    void SumSplits(ArrayView<float> partials, ArrayView<float> b, ArrayView<float> y, ConvDims d, int splits, int relu, int hasBias)
    {
        _sumSplits ??= _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int, int, int>>(
            Conv3x3.IlgpuTiled.SumSplits);
        _sumSplits(d.Cout * d.H * d.W, partials, b, y, d, splits, relu, hasBias);
    }

    KernelConfig BlockedConfig(int cout, int h, int w, int splits = 1)
    {
        int tw = _launch.BlockedWidth, th = _launch.BlockedHeight;
        var grid = new Index3D((w + tw - 1) / tw, (h + th - 1) / th, (cout + Conv3x3.IlgpuTiled.ChannelsPerGroup - 1) / Conv3x3.IlgpuTiled.ChannelsPerGroup * splits);
        return new KernelConfig(grid, new Index3D(tw / Conv3x3.IlgpuBlocked.PixelsPerThread, th, 1),
            SharedMemoryConfig.RequestDynamic<float>(Conv3x3.IlgpuBlocked.SharedFloats(tw, th, _launch.BlockedChunk)));
    }

    /// <summary>The TF32 convolution's grid for this tile: (⌈W/TW⌉, ⌈H/TH⌉, ⌈Cout/(32·WarpsCo)⌉).</summary>
    static Index3D MmaGrid(MmaTile t, int cout, int h, int w)
    {
        int channels = Conv3x3.IlgpuTensorCore.WarpChannels * t.WarpsCo;
        return new Index3D((w + t.TileWidth - 1) / t.TileWidth, (h + t.TileHeight - 1) / t.TileHeight, (cout + channels - 1) / channels);
    }

    MmaTile TileFor(ConvDims d) => MmaTileFor(_mma, _launch.MmaMinGroups, d);

    /// <summary>The TF32 tile for one convolution: the configured one, or with minGroups &gt; 0 (MmaMinGroups) a lower
    /// one for small maps. The packed weights do not depend on the tile's height, so the halving costs nothing else.</summary>
    public static MmaTile MmaTileFor(MmaTile configured, int minGroups, ConvDims d)
    {
        var tile = configured;
        while (minGroups > 0 && MmaGrid(tile, d.Cout, d.H, d.W).Size < minGroups && Lower(tile) is { } lower) tile = lower;
        return tile;
    }

    /// <summary>The tile of half the height, if it still has two warps of pixels (a lower one would stage more halo
    /// rows than rows it computes), prefetching less if its threads cannot hold the configured prefetch.</summary>
    static MmaTile? Lower(MmaTile tile)
    {
        if (tile.TileHeight % 2 != 0 || tile.TileWidth * tile.TileHeight < 4 * Conv3x3.IlgpuTensorCore.WarpPixels) return null;
        var lower = tile;
        lower.TileHeight /= 2;
        while (lower.Problem() is not null && lower.Prefetch > 0) lower.Prefetch--;
        return lower.Problem() is null ? lower : null;
    }

    /// <summary>MmaTune's candidates: the configured tile, then each lower one that launches.</summary>
    public static IEnumerable<MmaTile> MmaTileCandidates(MmaTile configured, Func<MmaTile, bool> launches)
    {
        yield return configured;
        for (var tile = Lower(configured); tile is { } t && launches(t); tile = Lower(t)) yield return t;
    }

    static KernelConfig MmaConfig(MmaTile tile, int cout, int h, int w) =>
        new(MmaGrid(tile, cout, h, w), new Index3D(Conv3x3.IlgpuTensorCore.Threads(tile), 1, 1),
            SharedMemoryConfig.RequestDynamic<float>(Conv3x3.IlgpuTensorCore.SharedFloats(tile)));

    KernelConfig TiledConfig(int cout, int h, int w)
    {
        int tw = _launch.TileWidth, th = _launch.TileHeight;
        var grid = new Index3D((w + tw - 1) / tw, (h + th - 1) / th, (cout + Conv3x3.IlgpuTiled.ChannelsPerGroup - 1) / Conv3x3.IlgpuTiled.ChannelsPerGroup);
        return new KernelConfig(grid, new Index3D(tw, th, 1),
            SharedMemoryConfig.RequestDynamic<float>(Conv3x3.IlgpuTiled.SharedFloats(tw, th, _launch.InputChunk)));
    }

    public void PoolForward(PoolKind kind, Tensor x, Tensor y)
    {
        Check.Pool(x, y);
        _poolForward(y.Length, V(x), V(y), x.Shape.H, x.Shape.W, kind == PoolKind.Max ? 1 : 0);
    }

    public void PoolBackward(PoolKind kind, Tensor x, Tensor dy, Tensor dx)
    {
        Check.PoolBackward(x, dy, dx);
        int h = x.Shape.H, w = x.Shape.W;
        _poolBackward(_launch.PoolWindows != 0 ? Pooling.Ilgpu.BackwardThreads(x.Shape.C, h, w) : dx.Length, V(x), V(dy), V(dx), h, w, kind == PoolKind.Max ? 1 : 0);
    }

    public void GramForward(Tensor f, Tensor g)
    {
        Check.Gram(f, g);
        int c = f.Shape.C, n = f.Shape.Plane;
        if (_launch.Conv == ConvKernel.Direct)
        {
            _gramForward!(g.Length, V(f), V(g), c, n);
            return;
        }
        int side = GramForwardSide;
        int tiles = (c + side - 1) / side;
        void Run(GramForwardPlan plan)
        {
            var partials = Scratch(ref _gramPartials, (long)plan.Splits * c * c);
            if (plan.Algorithm == GramForwardAlgorithm.Staged)
            {
                int t = _launch.TileWidth;
                _gramPartial!(new KernelConfig(new Index3D(tiles, tiles, plan.Splits), new Index3D(t, t, 1),
                    SharedMemoryConfig.RequestDynamic<float>(_gramSharedFloats)), V(f), partials, c, n, plan.Splits);
            }
            else
            {
                int w = _launch.MmaGramWarps;
                var config = new KernelConfig(new Index3D(tiles, tiles, plan.Splits), new Index3D(Gram.IlgpuTensorCore.Threads(w), 1, 1),
                    SharedMemoryConfig.RequestDynamic<float>(Gram.IlgpuTensorCore.ForwardSharedFloats(w, _mma.Emulate)));
                if (plan.Algorithm == GramForwardAlgorithm.Tf32Prefetch)
                {
                    _gramMmaForwardPrefetch ??= _loader.Grouped<Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int>>(Gram.IlgpuTensorCore.ForwardPrefetch);
                    _gramMmaForwardPrefetch(config, V(f), partials, c, n, plan.Splits);
                }
                else
                    _gramMmaForward!(config, V(f), partials, c, n, plan.Splits, w, _launch.MmaGemmBatch);
            }
            GramReduce(partials, g, c, n, plan.Splits);
        }
        Run(GramForwardPlanFor(c, n, g, Run));
    }

    /// <summary>The Gram forward's tiles, channels a side: the TF32 kernels' (32 a warp) or the fp32 staged kernel's.</summary>
    int GramForwardSide => _gramMmaForward is not null ? Gram.IlgpuTensorCore.Side(_launch.MmaGramWarps) : _gramSide;

    /// <summary>Whether the TF32 Gram forward with the next chunk's loads in flight can run C×N: its kernel's 2×2 warps,
    /// F's rows read as 16-byte vectors.</summary>
    bool GramPrefetchFits(int n) => _gramMmaForward is not null && _launch.MmaGramWarps == 2 && n % 4 == 0
        && Accelerator.MaxNumThreadsPerGroup >= Gram.IlgpuTensorCore.Threads(2);

    /// <summary>G = the sum of a split-K Gram forward's partials / N, mirrored from the upper triangle.</summary>
    void GramReduce(ArrayView<float> partials, Tensor g, int c, int n, int splits)
    {
        if (_launch.GramReduceRows == 0)
        {
            _gramReduce!(c * c, partials, V(g), c, n, splits);
            return;
        }
        int width = Math.Max(1, Math.Min(Accelerator.WarpSize, Accelerator.MaxNumThreadsPerGroup));
        int rows = Math.Clamp(Math.Min(splits, _launch.GramReduceRows), 1, Math.Max(1, Accelerator.MaxNumThreadsPerGroup / width));
        int groups = (int)(((long)c * c + width - 1) / width);
        _gramReduceGrouped!(new KernelConfig(new Index2D(groups, 1), new Index2D(width, rows), SharedMemoryConfig.RequestDynamic<float>(width * rows)),
            partials, V(g), c, n, splits);
    }

    /// <summary>A staged Gram forward's tiles a side (of <paramref name="side"/> channels) and position slices: enough
    /// groups to fill the device, about 1024 in all (or what the CPU accelerator's tests ask for), each slice at least
    /// a few tiles long. The tuning (GramForwardPlanFor) tries other splits around this default.</summary>
    (int Tiles, int Splits) GramGrid(int c, int n, int side)
    {
        int tiles = (c + side - 1) / side;
        return (tiles, Math.Clamp(_launch.GramSplits > 0 ? _launch.GramSplits : 1024 / (tiles * tiles), 1, Math.Max(1, n / (4 * side))));
    }

    public void GramBackwardAccumulate(Tensor f, Tensor dg, Tensor df)
    {
        Check.GramBackward(f, dg, df);
        int c = f.Shape.C, n = f.Shape.Plane;
        if (_launch.Conv == ConvKernel.Direct)
        {
            _gramBackward!(df.Length, V(f), V(dg), V(df), c, n);
            return;
        }
        int gbm = _launch.WinogradBlockFor(c), gbn = _launch.WinogradN;
        bool sgemmFits = _gramSymmetric is not null && c % gbm == 0 && c % Conv3x3.IlgpuWinograd.KChunk == 0 && n % gbn == 0;
        void Run(GramPlan plan)
        {
            if (plan.Algorithm is GramAlgorithm.Tf32 or GramAlgorithm.Tf32Fragments)
            {
                int splits = plan.Splits;
                long count = (long)c * n;
                var output = splits > 1 ? Scratch(ref _splitPartials, splits * count) : V(df);
                if (plan.Algorithm == GramAlgorithm.Tf32Fragments)
                {
                    const int fside = Gram.IlgpuTensorCore.FragmentsSide;
                    _gramSymmetricFragments ??= _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, int, float>>(Gram.IlgpuTensorCore.SymmetricFragments);
                    _gramBackwardFragments ??= _loader.Grouped<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>>(Gram.IlgpuTensorCore.BackwardFragments);
                    long length = Gram.IlgpuTensorCore.SymmetricFragmentsLength(c);
                    var packed = Scratch(ref _gramS, length);
                    _gramSymmetricFragments((int)length, V(dg), packed, c, 1f / n);
                    _gramBackwardFragments(new KernelConfig(new Index3D((n + fside - 1) / fside, (c + fside - 1) / fside, splits), new Index3D(Gram.IlgpuTensorCore.FragmentsThreads, 1, 1),
                        SharedMemoryConfig.RequestDynamic<float>(Gram.IlgpuTensorCore.FragmentsSharedFloats(_mma.Emulate))), V(f), packed, output, c, n, splits);
                }
                else
                {
                    int w = _launch.MmaGramWarps, mside = Gram.IlgpuTensorCore.Side(w);
                    var rounded = Scratch(ref _gramS, (long)c * c);
                    _gramSymmetric!(c * c, V(dg), rounded, c, 1f / n, 1);
                    _gramMmaBackward!(new KernelConfig(new Index3D((n + mside - 1) / mside, (c + mside - 1) / mside, splits), new Index3D(Gram.IlgpuTensorCore.Threads(w), 1, 1),
                        SharedMemoryConfig.RequestDynamic<float>(Gram.IlgpuTensorCore.BackwardSharedFloats(w, _mma.Emulate))), V(f), rounded, output, c, n, w,
                        _launch.MmaGemmBatch, splits);
                }
                if (splits > 1)
                {
                    _gramAddSplits ??= _loader.AutoGrouped<Action<Index1D, ArrayView<float>, ArrayView<float>, long, int>>(Gram.IlgpuTensorCore.AddSplits);
                    _gramAddSplits((int)count, output, V(df), count, splits);
                }
                return;
            }
            if (plan.Algorithm == GramAlgorithm.Sgemm)
            {
                // dF += S·F with S = (dG + dGᵀ)/N symmetric: as the SGEMM's Aᵀ·B with A = S, B = F, one batch.
                var sym = Scratch(ref _gramS, (long)c * c);
                _gramSymmetric!(c * c, V(dg), sym, c, 1f / n, 0);
                Sgemm(sym, V(f), V(df), c, c, n, gbm, gbn, batches: 1, accumulate: 1);
                return;
            }
            int t = _launch.TileWidth, side = _gramSide;
            _gramBackwardStaged!(new KernelConfig(new Index2D((n + side - 1) / side, (c + side - 1) / side), new Index2D(t, t),
                SharedMemoryConfig.RequestDynamic<float>(_gramSharedFloats)), V(f), V(dg), V(df), c, n);
        }
        Run(GramPlanFor(c, n, sgemmFits, df, Run));
    }

    public void ContentLoss(Tensor f, Tensor p, float weight, Tensor grad, Tensor scalars, int slot)
    {
        Check.ContentLoss(f, p, grad, scalars, slot);
        int n = f.Length, t = Threads(n);
        _contentPartial(t, V(f), V(p), V(grad), _partials.View, n, t, weight * 2f / n);
        Reduce(t, scalars, slot, 1f / n, sqrt: false);
    }

    public void StyleLoss(Tensor g, Tensor a, float weight, Tensor dg, Tensor scalars, int slot)
    {
        Check.StyleLoss(g, a, dg, scalars, slot);
        int n = g.Length, t = Threads(n);
        float c2 = (float)g.Shape.C * g.Shape.C;
        _stylePartial(t, V(g), V(a), V(dg), _partials.View, n, t, weight * 2f / c2);
        Reduce(t, scalars, slot, 1f / c2, sqrt: false);
    }

    public void TotalVariationLoss(Tensor x, float weight, Tensor grad, Tensor scalars, int slot)
    {
        Check.TotalVariation(x, grad, scalars, slot);
        int n = x.Length, t = Threads(n);
        var s = x.Shape;
        _tvPartial(t, V(x), V(grad), _partials.View, s.C, s.H, s.W, t, weight / n);
        Reduce(t, scalars, slot, 1f / n, sqrt: false);
    }

    public void Fill(Tensor x, float value) => _fill(x.Length, V(x), value);

    public void Copy(Tensor src, Tensor dst)
    {
        Check.Length(src.Length, dst, "copy destination");
        _copy(src.Length, V(src), V(dst));
    }

    public void Dot(Tensor x, Tensor y, Tensor scalars, int slot)
    {
        Check.Length(x.Length, y, "dot operand");
        Check.Slot(scalars, slot);
        int n = x.Length, t = Threads(n);
        _dotPartial(t, V(x), V(y), _partials.View, n, t);
        Reduce(t, scalars, slot, 1f, sqrt: false);
    }

    public void Norm(Tensor x, Tensor scalars, int slot)
    {
        Check.Slot(scalars, slot);
        int n = x.Length, t = Threads(n);
        _dotPartial(t, V(x), V(x), _partials.View, n, t);
        Reduce(t, scalars, slot, 1f, sqrt: true);
    }

    public void Axpy(float a, Tensor x, Tensor y)
    {
        Check.Length(x.Length, y, "axpy y");
        _axpy(x.Length, a, V(x), V(y));
    }

    public void Scale(Tensor x, float a) => _scale(x.Length, V(x), a);

    public void Subtract(Tensor x, Tensor y, Tensor z)
    {
        Check.Elementwise(x, y, z, "subtract");
        _subtract(x.Length, V(x), V(y), V(z));
    }

    public void Multiply(Tensor x, Tensor y, Tensor z)
    {
        Check.Elementwise(x, y, z, "multiply");
        _multiply(x.Length, V(x), V(y), V(z));
    }

    public void WeightedSum(Tensor scalars, Tensor coefficients, int dst)
    {
        Check.WeightedSum(scalars, coefficients, dst);
        _weightedSum(1, V(scalars), V(coefficients), coefficients.Length, dst);
    }

    public void AdamStep(Tensor x, Tensor g, Tensor m, Tensor v, AdamParameters parameters)
    {
        Check.Adam(x, g, m, v);
        _adam(x.Length, V(x), V(g), V(m), V(v), parameters);
    }

    public float ReadScalar(Tensor src, int index)
    {
        Check.Slot(src, index);
        var value = new float[1];
        V(src).SubView(index, 1).CopyToCPU(Accelerator.DefaultStream, value);
        return value[0];
    }

    public void SetRow(Tensor rows, int row, Tensor x, Tensor? y)
    {
        Check.Row(rows, row, x, "set row");
        if (y is not null) Check.Same(x, y, "set row y");
        _setRow(x.Length, V(rows), (long)row * x.Length, V(x), V(y ?? x), y is null ? 0 : 1);
    }

    public void RowDots(Tensor rows, int a, int b, int c, Tensor products)
    {
        Check.RowDots(rows, a, b, c, products);
        int r = rows.Shape.C, n = rows.Shape.Plane;
        // Chunks of ≈ 16 elements a thread: enough groups to fill a GPU (a 512² image's 201 rows: 192 × 201 groups).
        int threads = _launch.FinishThreads, chunks = Math.Clamp(n / (threads * 16), 1, 4096);
        var partials = Scratch(ref _rowPartials, 3L * r * chunks);
        var shared = SharedMemoryConfig.RequestDynamic<float>(threads);
        _rowDots(new KernelConfig(new Index1D(r * chunks), new Index1D(threads), shared), V(rows), n, r, a, b, c, chunks, partials);
        _rowDotsFinish(new KernelConfig(new Index1D(3 * r), new Index1D(threads), shared), partials, chunks, V(products));
    }

    public void CombineRows(Tensor rows, Tensor coefficients, Tensor y)
    {
        Check.CombineRows(rows, coefficients, y);
        _combineRows(y.Length, V(rows), y.Length, rows.Shape.C, V(coefficients), V(y));
    }

    public void LbfgsDirection(Tensor dots, Tensor products, Tensor coefficients, LbfgsRing ring)
    {
        Check.LbfgsDirection(dots, products, coefficients, ring);
        int threads = _launch.FinishThreads;
        _lbfgsDirection(new KernelConfig(new Index1D(1), new Index1D(threads), SharedMemoryConfig.RequestDynamic<float>(threads)),
            V(dots), V(products), V(coefficients), ring);
    }

    int Threads(int n) => Math.Min(n, _launch.ReductionThreads);

    /// <summary>Completes a reduction whose pass 1 left <paramref name="count"/> partials in _partials.</summary>
    void Reduce(int count, Tensor scalars, int slot, float factor, bool sqrt)
    {
        // Fold group by group (each pass divides the count by FinishThreads·PerThread: the default 131072 partials
        // become 128 in one pass), ping-ponging between the two buffers, then one group finishes. Pass 1's 131072
        // threads keep its chains short too: 6 elements a thread for a 512² image's dot product.
        var (src, dst) = (_partials.View, _partials2.View);
        var group = new Index1D(_launch.FinishThreads);
        var shared = SharedMemoryConfig.RequestDynamic<float>(_launch.FinishThreads);
        while (count > _launch.FinishThreads)
        {
            int groups = (count + FoldedPerGroup - 1) / FoldedPerGroup;
            _sumGroups(new KernelConfig(new Index1D(groups), group, shared), src, dst, count);
            (src, dst, count) = (dst, src, groups);
        }
        _finish(new KernelConfig(new Index1D(1), group, shared), src, count, V(scalars), slot, factor, sqrt ? 1 : 0);
    }

    /// <summary>The first <paramref name="length"/> floats of a scratch buffer that grows to the largest request and
    /// is reused, so iterations allocate nothing. Growing waits for the stream first: a kernel still queued may read
    /// the old buffer.</summary>
    ArrayView<float> Scratch(ref MemoryBuffer1D<float, Stride1D.Dense>? buffer, long length)
    {
        if (buffer is null || buffer.Length < length)
        {
            Accelerator.Synchronize();
            if (buffer is not null)
            {
                Memory.Released(4L * buffer.Length);
                buffer.Dispose();
            }
            buffer = Accelerator.Allocate1D<float>(length);
            Memory.Allocated(4L * length);
        }
        return buffer.View.SubView(0, length);
    }

    int FoldedPerGroup => _launch.FinishThreads * VectorOps.Ilgpu.PerThread;

    static ArrayView<float> V(Tensor t) => t is IlgpuTensor it
        ? it.View
        : throw new ArgumentException($"{t} does not belong to an ILGPU backend");

    public void Dispose()
    {
        _partials.Dispose();
        _partials2.Dispose();
        _flipped?.Dispose();
        _packed?.Dispose();
        _splitPartials?.Dispose();
        _winogradU?.Dispose();
        _winogradV?.Dispose();
        _winogradM?.Dispose();
        _gramPartials?.Dispose();
        _rowPartials?.Dispose();
        _gramS?.Dispose();
        Accelerator.Dispose();
        _context.Dispose();
    }
}
