using System.Diagnostics;
using System.Reflection;
using ILGPU;
using ILGPU.Runtime;
using GpuStyle.Kernels;
using FragmentsLauncher = System.Action<ILGPU.KernelConfig, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, GpuStyle.Kernels.ConvDims, int, int, int, int, int, long>;

namespace GpuStyle.Engine.Ilgpu;

/// <summary>The backend that runs the kernels in kernels/ through ILGPU (CUDA, OpenCL or the CPU accelerator). Here:
/// opening a device, loading the kernels, and every op but the convolutions, which are in
/// IlgpuBackend.Convolutions.cs; how each shape's kernels are chosen is in IlgpuBackend.Tuning.cs.</summary>
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
