using ILGPU;
using ILGPU.Runtime;
using GpuStyle.Kernels;
using MmaLauncher = System.Action<ILGPU.KernelConfig, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, GpuStyle.Kernels.ConvDims, int, int, int, GpuStyle.Kernels.MmaTile>;
using MmaAsyncLauncher = System.Action<ILGPU.KernelConfig, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, GpuStyle.Kernels.ConvDims, int, int, int, GpuStyle.Kernels.MmaTile, GpuStyle.Kernels.GlobalAddresses>;
using FragmentsLauncher = System.Action<ILGPU.KernelConfig, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, GpuStyle.Kernels.ConvDims, int, int, int, int, int, long>;
using SgemmLauncher = System.Action<ILGPU.KernelConfig, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, int, int, int, int, int, int, int>;

namespace GpuStyle.Engine.Ilgpu;

/// <summary>The ILGPU backend's convolutions: the forward and the backward to the input, each by the plan chosen for its
/// shape (IlgpuBackend.Tuning.cs) — version 4 or 5 of the TF32 kernel, Winograd, the staged kernels, the few-outputs
/// kernels — and the pieces they share (packed weights, splits over the input channels, tiles and grids).</summary>
public sealed partial class IlgpuBackend
{
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
}
