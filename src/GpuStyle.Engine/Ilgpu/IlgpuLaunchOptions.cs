using GpuStyle.Kernels;

namespace GpuStyle.Engine.Ilgpu;

/// <summary>Which kernels run for the convolutions and Gram matrices: version 1 (one thread per output, direct),
/// version 2 (tiled, shared memory, fp32: 8 channels × 1 pixel a thread), version 3 (version 2 with 8 channels × 4
/// pixels a thread) or version 4 (the convolutions on tensor cores in TF32 with fp32 accumulation: faster on a GPU,
/// about 3 decimal digits per product instead of 7), or Winograd's F(2×2, 3×3) (Conv3x3.Winograd.cs: 16 products
/// for every 36 of the direct sum, fp32, or with WinogradMma its GEMMs in TF32). Versions 2–4 and Winograd share the
/// tiled Gram kernels. Tuned times, for each convolution's shape and direction on its first use, the blocked kernel
/// and Winograd's F(2×2) and F(4×4), and runs the fastest of those that agree with the blocked kernel (as
/// `cudnn.benchmark` does; IlgpuBackend.Tuning.cs), and likewise the Gram backward's blocked kernel and SGEMM, and the
/// Gram forward's splits over the positions. The
/// CPU backend runs Direct or Winograd (its default).</summary>
public enum ConvKernel { Direct, Tiled, Blocked, Tf32, Winograd, Tuned }

/// <summary>
/// Launch shapes of the ILGPU backend. GPUs get the tuned convolution: each shape and direction, on first use, times
/// the blocked kernel (64×8-pixel tiles, 8-channel chunks), Winograd F(2×2, 3×3) and F(4×4, 3×3) and keeps the
/// fastest (on an H200, 2026-11-28: a 512² VGG16 iteration 6.8 ms, against 24.5 ms blocked alone and PyTorch's 11.0);
/// with TF32, the tensor-core convolution with its tiles tuned the same way against Winograd (MmaTune 1) and the
/// Gram matrices on tensor cores (MmaGram 1): 4.6 ms since version 5 (6.1 before), against PyTorch's 3.8 (see
/// <see cref="WithTf32"/>). 16×16 tiles for the fp32 Gram kernels and the version-2 convolution.
/// The CPU accelerator, which simulates each barrier with OS threads, defaults to the direct kernels, and tests use
/// tiny tiles so that every variant runs there quickly.
/// GramReduceRows R: the split-K Gram forward's partials are summed by groups of a warp's width of entries × up to R
/// rows of splits (Gram.IlgpuTiled.ReduceSplitsGrouped); 0 runs the first version, one thread an entry
/// (ReduceSplits), for comparison. PoolWindows 1: the pooling's backward a thread a window (Pooling.Ilgpu.Backward);
/// 0 the first version, a thread an input element (BackwardByElement). MmaGemmBatch 2: the TF32 GEMM kernels (the
/// tensor-core Gram forward and backward, the TF32 Winograd GEMMs) stage two vectors of each tile before storing
/// either (Gram.IlgpuTensorCore.StagingBatch: half the round trips a chunk); 1 waits for each load in turn, as they
/// did before the nineteenth session, for comparison (on an H200: 4.77 ms a --tf32 512² iteration against 4.64).
/// WinogradGather 1: Winograd's input transforms issue a tile's loads together, without branches
/// (Conv3x3.IlgpuWinograd's Load); 0, the default, puts each behind its bounds and mask tests — measured faster on an
/// H200 (2026-11-28: 6.59 ms a fp32 512² iteration against 6.71; 78 registers a thread against 68), so opt-in.
/// BlockedBatch 4: the blocked convolution (VGG's first layer, and under the tuning its backward to the colour
/// channels) stages a thread's patch rows and weights four at a time, without branches (Conv3x3.IlgpuTiled's
/// StagePatchInBatches): a quarter of the round trips a chunk; 1 waits for each load in turn, as before the twentieth
/// session, for comparison (on an H200, 2026-11-28: the 64→3 backward 0.29 → 0.25 ms in the tuning's times; the
/// iteration's difference within the noise, 4.36 against 4.38 ms under --tf32). MmaSplits S: under --tf32's tuning, version 5 (32-channel warps) is also tried split over
/// the input channels in 2, 4 … S groups a tile (Conv3x3.IlgpuTiled.SumSplits) where its grid leaves SMs
/// without two groups; 1 offers no split, for comparison (on an H200, 2026-11-28: 19 of 47 shapes chose a split, and a
/// --tf32 512² iteration took 4.21 ms against 4.46 with MmaSplits=1). BlockedSplits S: the few-outputs tuning (at most 4 output
/// channels: the backward to the colour channels) also tries the blocked kernel split in 2, 4 … S over the input
/// channels (a split at least a chunk); 1 none (on an H200: the 64→3 backward at 256² 0.104 → 0.053 ms in 4 splits,
/// at 512² 0.189 → 0.172). MmaGramFragments 1: with MmaTune=0 under --tf32, the Gram backward runs version 5
/// (Gram.IlgpuTensorCore.BackwardFragments: operands in fragment order; where N is a multiple of 4) instead of version
/// 4 — to time it alone; with MmaTune it is a tuning candidate either way. MmaGramPrefetch 1: with MmaTune=0 under
/// --tf32 the Gram forward loads each chunk's operands while the previous chunk's mma.sync run
/// (Gram.IlgpuTensorCore.ForwardPrefetch; 2×2 warps, where N is a multiple of 4) instead of staging, then computing,
/// each chunk in turn; with MmaTune it is a tuning candidate either way, as are the forward's splits over the positions
/// (IlgpuBackend.GramForwardSplitsOffered; GramSplits fixes them). MmaFragmentsAsync 1: version 5 of the TF32
/// convolution (32- and 64-channel warps, heights up to 9 rows) copies each chunk's packed weights by cp.async a chunk
/// ahead into a second buffer (Conv3x3.IlgpuMmaFragments.ForwardAsync) instead of loading and storing them between
/// the chunk's barriers; with MmaTune=0 it runs alone, with MmaTune each version 5 candidate is also tried so.
/// </summary>
public sealed record IlgpuLaunchOptions(int ReductionThreads = 131072, int FinishThreads = 256,
    ConvKernel Conv = ConvKernel.Tuned, int TileWidth = 16, int TileHeight = 16, int InputChunk = 16, int GramSplits = 0,
    int MmaTileWidth = 32, int MmaTileHeight = 8, int MmaWarpsCo = 2, int MmaChunk = 8,
    int BlockedWidth = 64, int BlockedHeight = 8, int BlockedChunk = 8, int MmaMinChannels = 16, int MmaPrefetch = 0,
    int MmaGram = 0, int MmaGramWarps = 2, int MmaMinGroups = 0,
    int WinogradM = 128, int WinogradN = 128, int WinogradScratch = 4 << 20, int WinogradPrefetch = 1, int WinogradMma = 0, int GramGemm = 0, int WinogradTile = 2,
    int SgemmFixedBlocks = 1, int MmaLaunchBounds = 1, int MmaTune = 0, int GramReduceRows = 8, int MmaFragments = 0,
    int PoolWindows = 1, int MmaGemmBatch = Gram.IlgpuTensorCore.StagingBatch, int WinogradGather = 0, int BlockedBatch = 4, int MmaSplits = 8, int BlockedSplits = 8,
    int MmaGramFragments = 0, int MmaGramPrefetch = 0, int MmaFragmentsAsync = 0)
{
    /// <summary>`--conv winograd` (Conv3x3.IlgpuWinograd): GEMM blocks of up to WinogradM output channels (64 for
    /// 64-channel layers) × WinogradN tiles, V and M each at most WinogradScratch floats (16 MB) — a pass takes as many
    /// tiles as fit, and V and M together (32 MB) stay in an H100's or H200's 50 MB L2 between the kernel that
    /// writes them and the one that reads them (counted: 7.2 GB of V and M traffic an iteration at 512², ≈ 2 ms if it
    /// went to DRAM); WinogradPrefetch 1 (0 turns it off, for comparison) double-buffers the GEMM's stages through
    /// registers where both block sides are 64 or more; WinogradMma 1 runs the GEMMs on tensor cores in TF32 instead
    /// (blocks of 32·MmaGramWarps, as the TF32 Gram kernels). GramGemm 1: with the blocked or Winograd convolutions,
    /// the Gram backward dF += S·F runs the same fp32 SGEMM (8×8 a thread, against the blocked Gram's 4×4) where C is a
    /// multiple of its block side and N of WinogradN (VGG at 512 px: every style layer). WinogradTile 4: F(4×4, 3×3)
    /// instead of F(2×2, 3×3) (36 GEMMs, 1.78× fewer products, 0.56× the V and M traffic). Measured on an H200
    /// (2026-11-28, 512² VGG16 iterations): F(2×2) 8.4 ms, F(4×4) 7.6, with GramGemm 7.2; WinogradPrefetch=0 9.8;
    /// SgemmFixedBlocks=0 8.8; WinogradMma=1 9.5 (the TF32 GEMMs lose to the fp32 ones). --conv tuned, the default,
    /// picks each shape's fastest of these (7.0 ms). SgemmFixedBlocks 1: the SGEMM's 128×128 and 64×128 blocks
    /// (with prefetching) run kernels compiled with those sides as constants, their shared loads at immediate offsets
    /// (SASS for sm_90: 79–80% of a stage's instructions FMAs, against ≈ 66% in the general kernel); 0 runs the
    /// general kernel, for comparison.</summary>
    public int WinogradBlockFor(int cout) => Math.Min(WinogradM, Conv3x3.IlgpuWinograd.Pad(cout, 16));

    /// <summary>MmaGram 1: under TF32 the Gram matrices run on tensor cores too (Gram.IlgpuTensorCore, tiles of
    /// 32·MmaGramWarps channels): on an H200 (2026-11-28) relu3_2's Gram forward ran at 29 TFLOP/s against 17 in
    /// fp32, its backward 36 against 14, and a 512² VGG16 iteration took 8.2 ms against 8.8 — on by default under
    /// --tf32 (<see cref="WithTf32"/>); `--launch MmaGram=0` for the fp32 Gram kernels.</summary>
    public bool TensorCoreGram => Conv == ConvKernel.Tf32 && MmaGram != 0;

    /// <summary>The tensor-core convolution's shape: 64 channels × 32×8 pixels a group of 16 warps, 8-channel chunks
    /// (32 KB of shared memory: under the 48 KB a kernel gets without opting in). Chosen on an H200 with bench
    /// --launch: 32×8 ran relu3_2 at 32 TFLOP/s where 32×4 ran 26, 64 channels × 32×2 21 and 32 × 32×4 17.
    /// Convolutions with fewer than MmaMinChannels input or output channels (VGG's first layer, and its backward to
    /// the 3 colour channels) run the blocked fp32 kernel instead: padded to 8 inputs and 64 outputs, they wasted up
    /// to 95% of the tensor work (measured on an H200: 8.0 ms for the 64→3 backward at 512², against 0.47 ms
    /// blocked). Opt-in variants, timed on an H200 on 2026-11-28 (512² VGG16 iteration; the plain kernel 8.8 ms):
    /// MmaPrefetch 1 (8.0 ms) overlaps the loads of the next chunk's input patch with the current chunk's tensor work
    /// (`bench --launch MmaPrefetch=1`: 96 registers a thread, so 512 threads fit
    /// an SM once — a taller tile is lowered, see LaunchableTile); MmaPrefetch 2 copies the next chunk's patch into a
    /// second buffer and the weights in two halves of taps with cp.async (sm_80+; no registers held while the copies
    /// fly, so the 32×8 tile keeps 64 registers and two groups an SM; 43 KB of shared memory a group; emulated with
    /// plain copies elsewhere — Conv3x3.IlgpuTensorCore.ConvolveAsync; 9.8 ms); MmaMinGroups N &gt; 0 makes a
    /// convolution whose grid would have fewer than N groups halve its tile height until it has N, or its tile is
    /// down to two warps of pixels (a lower tile would stage more halo rows than rows it computes) — VGG's 64×64 and
    /// 32×32 layers have 128 and 32 groups of the 32×8 tile for 132 SMs on an H200, which ran them at 16 and 8
    /// TFLOP/s against 32 on the 128×128 layers; `bench --launch MmaMinGroups=132` (a group an SM) lowers those but
    /// not the 128×128 ones', where 256 groups of 32×8 measured faster than 512 of 32×4 (9.9 ms: MmaTune's
    /// measured choice is better).</summary>
    /// <remarks>MmaTune 1 (under TF32; on by default there since the H200 run of 2026-11-28: 6.9 ms a 512² VGG16
    /// iteration against the 32×8 tile's 8.8; `--launch MmaTune=0` for one kernel alone — version 5 where MmaFragments is 1, as
    /// under --tf32, else the configured tile): each
    /// convolution's shape and direction, on first use, times the configured tile and each lower one down to two
    /// warps of pixels, Winograd F(2×2) with TF32 GEMMs (in MmaGramWarps' blocks and in blocks twice their side), and
    /// fp32 Winograd F(2×2) and F(4×4) (no less accurate than TF32), and keeps the fastest (IlgpuBackend.Tuning.cs) —
    /// MmaMinGroups's guess, measured instead.
    /// MmaLaunchBounds 1 (on by default: it changes no arithmetic, only the registers ptxas may use): on CUDA the
    /// TF32 convolution without prefetching is loaded with launch bounds for two groups an SM (LaunchBounds: 64
    /// registers where ptxas otherwise takes 72, so one 512-thread group an SM); 0 loads it as ILGPU does, for
    /// comparison (10.6 ms a 512² VGG16 iteration on an H200, against 8.8 with the bounds).</remarks>
    /// <remarks>MmaFragments (under TF32): version 5 of the TF32 convolution, Conv3x3.IlgpuMmaFragments — the
    /// operands staged in fragment order, a fragment one vector load (kernels/Conv3x3.TensorCoreFragments.cs), 64
    /// channels × 32 pixels × MmaTileHeight rows a group, in warps of 32 channels (MmaFragments 1) or of all 64
    /// (MmaFragments 2: half the threads, a quarter less shared-memory traffic an mma, 64 accumulators a thread) or
    /// of all 64 channels of two rows (MmaFragments 4: 64×64 warp tiles, a quarter of the threads, half the traffic
    /// an mma, 128 accumulators a thread); a sum offers each to the tuning. With MmaTune=0 version 5 runs in place of
    /// version 4 (in the first shape the sum names); with MmaTune=1 (and by default under --tf32 on a GPU,
    /// MmaFragments 3) each shape's heights from MmaTileHeight down to 2 rows (4 for 64×64 warps) are tuning
    /// candidates beside version 4's configured tile, so that each convolution keeps version 5 only where it is faster
    /// and agrees. Counted in the sm_90 SASS (32×8): a chunk's taps take 141 instructions a
    /// 32-channel warp (72 mma.sync, 54 shared loads), 220 a 64-channel one (144 mma.sync, 72 loads), 375 a 64×64
    /// warp tile (288 mma.sync, 84 loads), against version 4's 408 (72 mma.sync, 144 loads); not yet timed on a GPU.</remarks>
    public MmaTile Mma(bool emulate) => new(MmaTileWidth, MmaTileHeight, MmaWarpsCo, MmaChunk, emulate, prefetch: MmaPrefetch);

    /// <summary>The TF32 variant: on a GPU its tiles tuned against Winograd (MmaTune 1) and the Gram matrices on
    /// tensor cores too (MmaGram 1) — on an H200 (2026-11-28, 512² VGG16, one call): 6.09 ms an iteration, against
    /// 6.71 without the tensor-core Gram, 7.90 untuned and 8.8 for the first TF32 default (the 32×8 tile alone).
    /// MmaPrefetch 1 on top measured 5.97 ms, 2% (inside a run's spread), and it refuses the one-warp-wide tiles
    /// (MmaWarpsCo=1) that `--launch` may ask for: left opt-in. MmaFragments 3 (timed on an H200, 2026-11-28: 4.64 ms
    /// a 512² iteration, PyTorch 3.81; the 64×64 warp tiles, MmaFragments 4, were chosen for none of 47 shapes and ran
    /// slower alone — 6.27 ms against 5.03 in 32-channel warps —, so they are left opt-in):
    /// version 5 of the kernel, in 32- and 64-channel warps, among the tuning's candidates — the tuning measures it on the user's card and keeps it
    /// only for the shapes where it is faster and agrees, so that an untimed kernel cannot make --tf32 slower there
    /// (its cost: two kernels compiled on first use — where version 4's general kernel for its lower tiles, ≈ 1 s, no
    /// longer is — and four more trials a shape: six of version 5, two fewer of version 4). On the CPU accelerator
    /// (<paramref name="tiny"/>) the smallest tile, one warp, 32 channels × 8×4 pixels, untuned.</summary>
    public IlgpuLaunchOptions WithTf32(bool tiny = false) => tiny
        ? this with { Conv = ConvKernel.Tf32, TileWidth = 4, TileHeight = 4, MmaTileWidth = 8, MmaTileHeight = 4, MmaWarpsCo = 1, MmaChunk = 8, MmaMinChannels = 1 }
        : this with { Conv = ConvKernel.Tf32, MmaTune = 1, MmaGram = 1, MmaFragments = 3 };

    /// <summary>Odd, small counts: they exercise the strided reductions' edges on the CPU accelerator.</summary>
    public static IlgpuLaunchOptions Tiny { get; } = new(ReductionThreads: 7, FinishThreads: 3, Conv: ConvKernel.Direct,
        TileWidth: 4, TileHeight: 4, InputChunk: 3, GramSplits: 3, BlockedWidth: 8, BlockedHeight: 3, BlockedChunk: 5,
        WinogradM: 16, WinogradN: 16, WinogradScratch: 4096, WinogradPrefetch: 0);

    /// <summary>These options with another convolution; on the CPU accelerator (<paramref name="tiny"/>) the TF32
    /// kernel's smallest shape.</summary>
    public IlgpuLaunchOptions WithConv(ConvKernel conv, bool tiny = false) => conv == ConvKernel.Tf32 ? WithTf32(tiny) : this with { Conv = conv };

    /// <summary>The options that 0 turns off (or, GramSplits, leaves to the backend): `--launch WinogradPrefetch=0`.</summary>
    static readonly string[] Switches = [nameof(GramSplits), nameof(MmaPrefetch), nameof(MmaGram), nameof(MmaMinGroups),
        nameof(WinogradPrefetch), nameof(WinogradMma), nameof(GramGemm), nameof(SgemmFixedBlocks), nameof(MmaLaunchBounds), nameof(MmaTune), nameof(GramReduceRows), nameof(MmaFragments), nameof(PoolWindows), nameof(WinogradGather),
        nameof(MmaGramFragments), nameof(MmaGramPrefetch), nameof(MmaFragmentsAsync)];

    /// <summary>
    /// These options with integer fields overridden by "Name=value,Name=value" (e.g. "BlockedWidth=64,BlockedHeight=8"):
    /// `bench --launch`, so that one device call can try several shapes without a rebuild.
    /// </summary>
    public IlgpuLaunchOptions With(string overrides)
    {
        var ctor = typeof(IlgpuLaunchOptions).GetConstructors().Single(c => c.GetParameters().Length > 1);
        var parameters = ctor.GetParameters();
        var values = parameters.Select(p => typeof(IlgpuLaunchOptions).GetProperty(p.Name!)!.GetValue(this)).ToArray();
        var names = parameters.Where(p => p.ParameterType == typeof(int)).Select(p => p.Name!).ToList();
        foreach (var item in overrides.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = item.Split('=', 2, StringSplitOptions.TrimEntries);
            int at = Array.FindIndex(parameters, p => p.ParameterType == typeof(int) && string.Equals(p.Name, kv[0], StringComparison.OrdinalIgnoreCase));
            if (kv.Length != 2 || at < 0 || !int.TryParse(kv[1], out int v) || v < 0 || (v == 0 && !Switches.Contains(parameters[at].Name!)))
                throw new ArgumentException($"launch option '{item}': use Name=positive integer with Name one of {string.Join(", ", names)}"
                    + $" (0 also for {string.Join(", ", Switches)}: off, or automatic)");
            values[at] = v;
        }
        return (IlgpuLaunchOptions)ctor.Invoke(values);
    }
}
