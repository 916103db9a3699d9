// The 3×3 convolution on tensor cores (TF32), version 5: the operands staged in the order the mma.sync fragments
// read them, so that a fragment is one vector load from shared memory.
//
// Version 4 (Conv3x3.IlgpuTensorCore) stages the weights as [tap·chunk + channel][output channel] and the input as
// channel planes: a lane's A fragment (rows g, g+8 × columns q, q+4 of a 16×8 block) is 4 scalar loads from 4 rows,
// its B fragment (channels q, q+4 at one pixel) 2 scalar loads from 2 planes. That is 16 loads for a warp-step's
// 8 mma.sync, each behind address arithmetic: in the sm_90 SASS of its 32×8 kernel (with the launch bounds it runs
// with) a chunk's taps are 408 instructions for 72 mma.sync and 144 shared loads, and the H200's profile (relu3_2,
// 260 µs: 74 TFLOP/s) showed a warp issuing once every 14 cycles, 48% occupancy — latency- and issue-bound.
// Here:
//   weights  packed (once a call, by PackWeights) as [group of 64 outputs][chunk of 8 inputs][tap][32 outputs]
//            [m-tile of 16][lane][4]: a lane's 4 A values side by side, the chunk's 18 KB one contiguous copy; an A
//            fragment is one LDS.128, the warp's 32 lanes 512 consecutive bytes (no bank conflict);
//   input    staged as [row][column][8 channels] with the channels ordered 0 4 1 5 2 6 3 7, so that lane (g, q)'s
//            B values, channels q and q+4 of one pixel, sit side by side: one LDS.64, the warp's 32 lanes 256
//            consecutive bytes (no bank conflict). A staging thread reads one pixel's 8 channels (each read
//            coalesced along the row across lanes), 4 at a time without branches, and writes two 16-byte vectors.
// A warp-step is then 2 LDS.128 + 4 LDS.64 for 8 mma.sync, each at a per-thread base plus an immediate (the tile's
// width is a constant). Counted in the sm_90 SASS (32×8, launch bounds for two groups an SM): a chunk's taps 141
// instructions a warp (72 mma.sync, 54 loads) against 408; the whole chunk ≈ 334 (staging included) against 562;
// 63 registers, no spills (64 since the nineteenth session's epilogue, which loads a warp's biases once).
// What it does not change: the bytes read from shared memory an mma. A warp-step reads 16 wavefronts (128 B each)
// for 8 mma.sync, as version 4's 16 conflict-free scalar loads did — with the staging's stores, ≈ 2 600 wavefronts a
// group's chunk for 1 152 mma.sync: at 1 wavefront a clock an SM, a ceiling of 0.44 mma.sync a clock, ≈ 235 TFLOP/s
// on an H200's 132 SMs at 1.98 GHz. Version 4 ran at 74, so the issue and latency it saves are what should show.
// Expected on an H200 (not yet measured): relu3_2's forward from 260 µs to 150–200 µs.
// Wide warps (ForwardWide, MmaFragments 2): a warp owns all 64 of the group's channels, 4 m-tiles × 4 n-tiles, 16
// mma.sync a step from 4 LDS.128 + 4 LDS.64 — 24 wavefronts, 1.5 an mma (the B fragments serve twice the work): the
// ceiling rises to ≈ 0.56 mma.sync a clock (≈ 300 TFLOP/s). Half the threads (256 for 32×8) at 64 accumulators a
// thread: 94 registers (126 under launch bounds for two groups), taps 220 instructions for 144 mma.sync. Which of
// the two wins (more warps to hide latency, or less traffic) is for the GPU to say: MmaTune times both.
// Square warps (ForwardSquare, MmaFragments 4; nineteenth session): a warp owns all 64 channels of two rows — a 64×64
// warp tile, 4 m-tiles × 8 n-tiles, 32 mma.sync a step. The A fragments serve both rows from registers, and the second
// row's B fragments at tap row dy are the first row's at dy+1, which ptxas loads once: a chunk's taps are 36 LDS.128 +
// 48 LDS.64 for 288 mma.sync, 0.83 wavefronts an mma (the group's chunk, staging included, ≈ 1.0), so shared memory no
// longer bounds the tensor cores. In the sm_90 SASS (32×8, bounds for two groups an SM): 224 registers (128 of them
// accumulators), no spills; taps 375 instructions for 288 mma.sync (1.3 an mma, against 1.9 in 32-channel warps). The
// cost: 128 threads a group, two groups (8 warps) an SM to hide latency, and each thread stages 3 pixels and 9 weight
// vectors a chunk — hence staging in batches (StagePatch, StageWeights): 5 round trips a chunk instead of 12.
// Asynchronous weights (ForwardAsync, ForwardWideAsync; MmaFragmentsAsync 1; twenty-fifth session): the packed
// weights need no transform on their way to shared memory, so cp.async copies them (16 bytes a copy, through L2, no
// register held) a chunk ahead into a second buffer — issued before the chunk's patch is staged, waited for
// (cp.async.wait_group 1) before its barrier. In the sm_90 SASS of the 32-channel warps, a chunk's weight staging
// was 3 load-then-store round trips a thread (2.25 vectors, no room in 64 registers to batch them) behind the patch's
// one; with the copies in flight the patch's is the only one. 64 registers still (two groups an SM), no spills; the
// second buffer makes the 32×8 tile's shared memory 46.6 KB (heights up to 9 rows fit 48 KB).
//
// Same arithmetic as version 4: operands TF32-rounded while staging/packing, fp32 accumulation, each output's 72
// products a chunk summed in the same tap order — so both kernels agree to rounding (not bit for bit: version 4's
// 16-channel chunks and tiles other than 8-channel ones order the chunk sums differently; with 8-channel chunks the
// mma sequence is the same). Off CUDA the mmas are emulated exactly as version 4's (IlgpuTensorCore.WarpStep), so
// the CPU-accelerator tests check these layouts against the float64 reference.
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Runtime.Cuda;

namespace GpuStyle.Kernels;

/// <summary>Two consecutive floats, 8-byte aligned: loaded from a view cast to FloatPair, ILGPU emits one vector load
/// (ld.shared.v2.f32, LDS.64).</summary>
public struct FloatPair
{
    public float A, B;
}

public static partial class Conv3x3
{
    /// <summary>
    /// Version 5 of the TF32 convolution (see the file's header): a group computes 64 output channels × a 32-pixel-wide
    /// tile of <c>rows</c> rows; warp (wm, wn) = (warp mod 2, warp / 2) owns output channels wm·32 … +31 of row wn
    /// (2 m-tiles × 4 n-tiles, the accumulators of version 4), or in wide warps (<see cref="ForwardWide"/>) warp wn
    /// owns all 64 channels of row wn (4 m-tiles × 4 n-tiles), or in square warps (<see cref="ForwardSquare"/>) warp w
    /// owns all 64 channels of rows 2w and 2w+1 (4 m-tiles × 8 n-tiles). Grid (⌈W/32⌉, ⌈H/rows⌉, ⌈Cout/64⌉ · splits), group
    /// (<see cref="Threads"/>, 1, 1), dynamic shared memory <see cref="SharedFloats"/>. Arguments as
    /// <see cref="IlgpuTiled.Forward"/>, but w is <see cref="PackWeights"/>' output for these dims.
    /// </summary>
    public static class IlgpuMmaFragments
    {
        public const int TileWidth = 32, GroupChannels = 64, Chunk = 8;
        const int PatchWidth = TileWidth + 2;
        /// <summary>The chunk's weights in 16-byte vectors: 9 taps × 8 inputs × 64 outputs / 4.</summary>
        public const int WeightVectors = 9 * Chunk * GroupChannels / 4;

        /// <summary>Warp shapes — what a warp owns of the group's 64 channels × 32·rows pixels: Narrow, 32 channels of one
        /// row (two warps a row); Wide, all 64 channels of one row; Square, all 64 channels of two rows (a 64×64 warp
        /// tile).</summary>
        public const int Narrow = 0, Wide = 1, Square = 2;

        /// <summary>Two warps a row (narrow), one (wide), or one every two rows (square).</summary>
        public static int Threads(int rows, int shape = Narrow) => shape switch { Narrow => 64 * rows, Wide => 32 * rows, _ => 16 * rows };

        /// <summary>The staged input: (rows+2) × 34 pixels × 8 channels (a multiple of 16 floats).</summary>
        public static int PatchFloats(int rows) => (rows + 2) * PatchWidth * Chunk;

        /// <summary>Dynamic shared memory: the patch, the chunk's weights (two chunks' with asynchronous weights), and
        /// the emulation's scratch where there are no tensor cores. The 32×8 tile: 29 KB, 46.6 KB with asynchronous
        /// weights (under the 48 KB a CUDA kernel gets without opting in).</summary>
        public static int SharedFloats(int rows, bool emulate, int shape = Narrow, bool asyncWeights = false) =>
            PatchFloats(rows) + (asyncWeights ? 2 : 1) * 4 * WeightVectors + (emulate ? Threads(rows, shape) / 32 * IlgpuTensorCore.ScratchPerWarp : 0);

        /// <summary>The shared memory a CUDA kernel gets without opting in to more (ILGPU 1.5.3 cannot opt in).</summary>
        const int CudaSharedBytes = 48 * 1024;

        /// <summary>Why a tile height cannot run, or null.</summary>
        public static string? Problem(int rows, int shape = Narrow, bool asyncWeights = false) =>
            rows is < 1 or > 16 ? $"a fragment-ordered tile of {rows} rows (1 to 16)"
            : shape == Square && rows % 2 != 0 ? $"a fragment-ordered tile of {rows} rows in 64×64 warp tiles (two rows a warp: an even height)"
            : asyncWeights && shape == Square ? "asynchronous weights in 64×64 warp tiles (32- and 64-channel warps only)"
            : asyncWeights && 4 * SharedFloats(rows, emulate: false, shape, asyncWeights) > CudaSharedBytes
                ? $"a fragment-ordered tile of {rows} rows with asynchronous weights ({4 * SharedFloats(rows, false, shape, true) / 1024.0:0.#} KB of shared memory: at most 9 rows fit 48 KB)"
            : null;

        public static int Chunks(int cin) => (cin + Chunk - 1) / Chunk;
        public static int Groups(int cout) => (cout + GroupChannels - 1) / GroupChannels;

        /// <summary>Floats of <see cref="PackWeights"/>' output for a convolution with these dims.</summary>
        public static long PackedLength(ConvDims d) => (long)Groups(d.Cout) * Chunks(d.Cin) * 4 * WeightVectors;

        /// <summary>
        /// The weights in fragment order, TF32-rounded, zero past Cin and Cout (see the file's header): element
        /// (((block·9 + tap)·2 + wm)·2 + mt)·32 + lane)·4 + j, block = group·Chunks + chunk, holds lane (g, q)'s A value j
        /// — rows g (j even) or g+8 (j odd), columns q (j &lt; 2) or q+4 — of the 16×8 block of outputs
        /// group·64 + wm·32 + mt·16 … and inputs chunk·8 …. flip 0 reads w[Cout][Cin][9] for the forward; flip 1 reads
        /// the layer's w[d.Cin][d.Cout][9] as the backward's W′[i][o][t] = w[o][i][8−t]. One thread per element.
        /// </summary>
        [KernelName("conv3x3_tf32_fragments_pack_weights")]
        public static void PackWeights(Index1D index, ArrayView<float> w, ArrayView<float> packed, ConvDims d, int flip)
        {
            int j = index & 3, lane = (index >> 2) & 31, mt = (index >> 7) & 1, wm = (index >> 8) & 1, rest = index >> 9;
            int tap = rest % 9, block = rest / 9, chunks = Chunks(d.Cin), chunk = block % chunks, group = block / chunks;
            int o = group * GroupChannels + wm * 32 + mt * 16 + (lane >> 2) + 8 * (j & 1);
            int i = chunk * Chunk + (lane & 3) + 4 * (j >> 1);
            float v = 0f;
            if (o < d.Cout && i < d.Cin)
                v = flip == 0 ? w[(o * d.Cin + i) * 9 + tap] : w[(i * d.Cout + o) * 9 + 8 - tap];
            packed[index] = IlgpuTensorCore.RoundTf32(v);
        }

        /// <summary>Version 5 with warps of 32 output channels: two warps a row, 8 mma.sync a warp-step
        /// (2 A + 4 B fragment loads: 16 shared-memory wavefronts, 2 an mma).</summary>
        [KernelName("conv3x3_tf32_fragments")]
        public static void Forward(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask, int rows, int splits, long wAddress) =>
            Convolve(x, mask, w, b, y, d, relu, hasBias, useMask, rows, splits, Narrow, asyncWeights: false, wAddress);

        /// <summary><see cref="Forward"/> with the weights copied by cp.async a chunk ahead into a second buffer
        /// (<paramref name="wAddress"/>: w's device address, which a kernel cannot take from a view; see the file's
        /// header).</summary>
        [KernelName("conv3x3_tf32_fragments_async")]
        public static void ForwardAsync(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask, int rows, int splits, long wAddress) =>
            Convolve(x, mask, w, b, y, d, relu, hasBias, useMask, rows, splits, Narrow, asyncWeights: true, wAddress);

        /// <summary>Version 5 with warps of all 64 output channels (one warp a row, half the threads): 16 mma.sync a
        /// warp-step from 4 A + 4 B fragment loads — 24 wavefronts, 1.5 an mma, so a quarter less shared-memory traffic
        /// for the same work, at 64 accumulators a thread (ptxas for sm_90: see SassTests).</summary>
        [KernelName("conv3x3_tf32_fragments_wide")]
        public static void ForwardWide(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask, int rows, int splits, long wAddress) =>
            Convolve(x, mask, w, b, y, d, relu, hasBias, useMask, rows, splits, Wide, asyncWeights: false, wAddress);

        /// <summary><see cref="ForwardWide"/> with asynchronous weights, as <see cref="ForwardAsync"/>.</summary>
        [KernelName("conv3x3_tf32_fragments_wide_async")]
        public static void ForwardWideAsync(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask, int rows, int splits, long wAddress) =>
            Convolve(x, mask, w, b, y, d, relu, hasBias, useMask, rows, splits, Wide, asyncWeights: true, wAddress);

        /// <summary>Version 5 with 64×64 warp tiles: a warp owns all 64 channels of two rows (a quarter of the narrow
        /// warps' threads), 32 mma.sync a warp-step from 4 A + 8 B fragment loads — 32 wavefronts, 1 an mma: the A
        /// fragments serve both rows from registers. 128 accumulators a thread (see the file's header).</summary>
        [KernelName("conv3x3_tf32_fragments_64x64")]
        public static void ForwardSquare(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask, int rows, int splits, long wAddress) =>
            Convolve(x, mask, w, b, y, d, relu, hasBias, useMask, rows, splits, Square, asyncWeights: false, wAddress);

        /// <summary>The entry point for a warp shape, with or without asynchronous weights: <see cref="Forward"/>,
        /// <see cref="ForwardWide"/>, <see cref="ForwardSquare"/>, <see cref="ForwardAsync"/> or
        /// <see cref="ForwardWideAsync"/>.</summary>
        public static Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int, int, int, int, int, long>
            For(int shape, bool asyncWeights = false) => (shape, asyncWeights) switch
            {
                (Narrow, false) => Forward, (Wide, false) => ForwardWide, (Square, false) => ForwardSquare,
                (Narrow, true) => ForwardAsync, (Wide, true) => ForwardWideAsync,
                _ => throw new ArgumentException(Problem(8, shape, asyncWeights)),
            };

        /// <summary>The kernel's body, inlined into each entry point with its warp shape a constant.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Convolve(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask, int rows, int splits, int shape, bool asyncWeights, long wAddress)
        {
            int tid = Group.IdxX, threads = Group.DimX, lane = tid & 31, warp = tid >> 5;
            // Split over the input channels (splits > 1, see IlgpuTiled.SumSplits): group z = split·Groups + output
            // group; split s sums its share of the chunks into its own partial output, y's s-th Cout·H·W block, without
            // bias or ReLU. VGG's 512→512 64×64 layers at 512² have 128 groups of the 32×8 tile for an H200's 132 SMs,
            // and ran at 135–146% of the fp32 peak where the 128×128 layers' 256 groups ran at 187–211%.
            int groups = Groups(d.Cout), split = Grid.IdxZ / groups;
            var share = IlgpuTiled.SplitShare.Of(Chunks(d.Cin), splits, split);
            y = IlgpuTiled.SplitOutput(y, d, splits, split);
            // The warp's channels (wm: which half, narrow warps) and its first row wn.
            int wm = shape == Narrow ? warp & 1 : 0, wn = shape == Narrow ? warp >> 1 : shape == Wide ? warp : 2 * warp;
            int g = lane >> 2, q = lane & 3;
            int x0 = Grid.IdxX * TileWidth, y0 = Grid.IdxY * rows, group = Grid.IdxZ - split * groups;
            int patchFloats = PatchFloats(rows), pixels = (rows + 2) * PatchWidth, chunks = Chunks(d.Cin);
            var shared4 = Float4.SharedDynamic();
            var patch4 = shared4.SubView(0, patchFloats / 4);
            var patch2 = patch4.Cast<FloatPair>();
            var shared = shared4.Cast<float>();
            int scratchAt = patchFloats + (asyncWeights ? 2 : 1) * 4 * WeightVectors;
            var w4 = w.Cast<Float4>();
            // Asynchronous weights: chunk k's packed weights land in buffer k mod 2 (after the patch) by cp.async,
            // issued while chunk k−1 is staged and computed; off CUDA they are copied when waited for (WaitWeights).
            long weightsShared = 0, weightsGlobal = 0;
            if (asyncWeights && CudaAsm.IsSupported)
            {
                weightsShared = AsyncCopy.DynamicSharedAddress() + 4L * patchFloats;
                weightsGlobal = AsyncCopy.Global(wAddress);
            }
            long firstBlock = (long)group * chunks * WeightVectors;   // the output group's chunk 0, in vectors
            if (asyncWeights && share.First < share.End)
            {
                IssueWeights(weightsShared, weightsGlobal + 16L * (firstBlock + (long)share.First * WeightVectors), tid, threads);
                AsyncCopy.Commit();
            }
            // A fragment (tap, m-tile M = 2·wm + mt): wts4[aBase + tap·128 + M·32] (aBase = lane + wm·64). B fragment
            // (tap, n-tile n): pixel (wn + tap/3, 8n + g + tap%3) of the patch, pair q: patch2[bBase + ((tap/3)·34 +
            // tap%3 + 8n)·4]; the next row's (square warps) 34·4 further on.
            long aBase = wm * 64 + lane, bBase = (wn * PatchWidth + g) * 4 + q;
            var acc = new WarpAccumulators();      // row wn, m-tiles 0 and 1 of the warp's channels (gs_c)
            var upper = new WarpAccumulators();    // row wn, m-tiles 2 and 3 (wide and square: gs_e)
            var acc2 = new WarpAccumulators();     // row wn + 1, m-tiles 0 and 1 (square: gs_f)
            var upper2 = new WarpAccumulators();   // row wn + 1, m-tiles 2 and 3 (square: gs_h)
            if (CudaAsm.IsSupported)
            {
                CudaAsm.Emit(IlgpuTensorCore.DeclareAccumulators);
                if (shape != Narrow) CudaAsm.Emit(DeclareE);
                if (shape == Square)
                {
                    CudaAsm.Emit(DeclareF);
                    CudaAsm.Emit(DeclareH);
                }
            }
            for (int chunk = share.First; chunk < share.End; chunk++)
            {
                int buffer = asyncWeights ? (chunk - share.First) & 1 : 0;
                var wts4 = shared4.SubView(patchFloats / 4 + buffer * WeightVectors, WeightVectors);
                long block = firstBlock + (long)chunk * WeightVectors;
                if (asyncWeights)
                {
                    // The other buffer was last read by chunk k−1's taps, which the barrier ending its iteration closed.
                    if (chunk + 1 < share.End)
                        IssueWeights(weightsShared + 16L * (1 - buffer) * WeightVectors, weightsGlobal + 16L * (block + WeightVectors), tid, threads);
                    AsyncCopy.Commit();   // an empty group after the last chunk: the wait below counts one group a chunk
                }
                StagePatch(x, mask, d, useMask, patch4, chunk * Chunk, x0, y0, tid, threads, pixels, PixelBatch(shape));
                if (asyncWeights)
                    WaitWeights(w4, block, wts4, tid, threads, WeightBatch(shape));
                else
                    StageWeights(w4, block, wts4, tid, threads, WeightBatch(shape));
                Group.Barrier();
                // Taps as rows × columns: a tap/3, tap%3 stayed in the SASS as divisions (uniform, but 10–15
                // instructions a tap).
                for (int dy = 0; dy < 3; dy++)
                    for (int dx = 0; dx < 3; dx++)
                    {
                        long wa = aBase + (dy * 3 + dx) * 128, pb = bBase + (dy * PatchWidth + dx) * 4;
                        var a0 = A(wts4[wa]); var a1 = A(wts4[wa + 32]);
                        var b0 = B(patch2[pb]); var b1 = B(patch2[pb + 32]); var b2 = B(patch2[pb + 64]); var b3 = B(patch2[pb + 96]);
                        IlgpuTensorCore.WarpStep(shared, scratchAt, warp, g, q, ref acc, a0, a1, b0, b1, b2, b3);
                        if (shape != Narrow)
                        {
                            var a2 = A(wts4[wa + 64]); var a3 = A(wts4[wa + 96]);
                            SetWarpStep(SetE, shared, scratchAt, warp, g, q, ref upper, a2, a3, b0, b1, b2, b3);
                            if (shape == Square)
                            {
                                long pc = pb + PatchWidth * 4;
                                var c0 = B(patch2[pc]); var c1 = B(patch2[pc + 32]); var c2 = B(patch2[pc + 64]); var c3 = B(patch2[pc + 96]);
                                SetWarpStep(SetF, shared, scratchAt, warp, g, q, ref acc2, a0, a1, c0, c1, c2, c3);
                                SetWarpStep(SetH, shared, scratchAt, warp, g, q, ref upper2, a2, a3, c0, c1, c2, c3);
                            }
                        }
                    }
                Group.Barrier();
            }
            if (CudaAsm.IsSupported)
            {
                acc = IlgpuTensorCore.ReadAccumulators();
                if (shape != Narrow) upper = ReadSet(SetE);
                if (shape == Square)
                {
                    acc2 = ReadSet(SetF);
                    upper2 = ReadSet(SetH);
                }
            }
            // C (16×8): c0 (g, 2q), c1 (g, 2q+1), c2 (g+8, 2q), c3 (g+8, 2q+1); n-tile n is columns 8n … of row wn.
            int o = group * GroupChannels + wm * 32 + g, oy = y0 + wn, ox = x0 + 2 * q;
            Store(y, b, d, o, oy, ox, acc, relu, hasBias);
            if (shape != Narrow) Store(y, b, d, o + 32, oy, ox, upper, relu, hasBias);
            if (shape == Square)
            {
                Store(y, b, d, o, oy + 1, ox, acc2, relu, hasBias);
                Store(y, b, d, o + 32, oy + 1, ox, upper2, relu, hasBias);
            }
        }

        /// <summary>A warp's 32 channels × 32 pixels: accumulators (m-tile m, n-tile n) at channels o + 16m, columns
        /// ox + 8n of row oy. The 4 channels' biases are loaded once, before any store and without branches: behind each
        /// output's bounds check, a bias load was waited for in turn (32 round trips a thread's epilogue, 128 in square
        /// warps).</summary>
        static void Store(ArrayView<float> y, ArrayView<float> b, ConvDims d, int o, int oy, int ox, WarpAccumulators acc, int relu, int hasBias)
        {
            float b0 = IlgpuTiled.Bias(b, d, o, hasBias), b8 = IlgpuTiled.Bias(b, d, o + 8, hasBias);
            float b16 = IlgpuTiled.Bias(b, d, o + 16, hasBias), b24 = IlgpuTiled.Bias(b, d, o + 24, hasBias);
            Store(y, d, o, oy, ox, acc.C00, b0, b8, relu, hasBias); Store(y, d, o, oy, ox + 8, acc.C01, b0, b8, relu, hasBias);
            Store(y, d, o, oy, ox + 16, acc.C02, b0, b8, relu, hasBias); Store(y, d, o, oy, ox + 24, acc.C03, b0, b8, relu, hasBias);
            Store(y, d, o + 16, oy, ox, acc.C10, b16, b24, relu, hasBias); Store(y, d, o + 16, oy, ox + 8, acc.C11, b16, b24, relu, hasBias);
            Store(y, d, o + 16, oy, ox + 16, acc.C12, b16, b24, relu, hasBias); Store(y, d, o + 16, oy, ox + 24, acc.C13, b16, b24, relu, hasBias);
        }

        // The wide and square warps' further accumulators, 32 each, as PTX registers laid out as version 4's gs_c
        // (IlgpuTensorCore.DeclareAccumulators): gs_e (row wn, m-tiles 2 and 3), gs_f and gs_h (row wn + 1, m-tiles 0–1
        // and 2–3), each with its own mma.sync strings and reads — ILGPU takes asm only as literals, so a set is chosen by
        // a branch on a constant (SetWarpStep and ReadSet are inlined into the entry points, whose shape is a constant:
        // a kernel names only the sets it declares).
        const int SetE = 1, SetF = 2, SetH = 3;
        const string MmaOp = "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 ";
        const string DeclareE = ".reg .f32 gs_e<32>;\n\t" +
            "mov.f32 gs_e0, 0f00000000; mov.f32 gs_e1, 0f00000000; mov.f32 gs_e2, 0f00000000; mov.f32 gs_e3, 0f00000000;\n\t" +
            "mov.f32 gs_e4, 0f00000000; mov.f32 gs_e5, 0f00000000; mov.f32 gs_e6, 0f00000000; mov.f32 gs_e7, 0f00000000;\n\t" +
            "mov.f32 gs_e8, 0f00000000; mov.f32 gs_e9, 0f00000000; mov.f32 gs_e10, 0f00000000; mov.f32 gs_e11, 0f00000000;\n\t" +
            "mov.f32 gs_e12, 0f00000000; mov.f32 gs_e13, 0f00000000; mov.f32 gs_e14, 0f00000000; mov.f32 gs_e15, 0f00000000;\n\t" +
            "mov.f32 gs_e16, 0f00000000; mov.f32 gs_e17, 0f00000000; mov.f32 gs_e18, 0f00000000; mov.f32 gs_e19, 0f00000000;\n\t" +
            "mov.f32 gs_e20, 0f00000000; mov.f32 gs_e21, 0f00000000; mov.f32 gs_e22, 0f00000000; mov.f32 gs_e23, 0f00000000;\n\t" +
            "mov.f32 gs_e24, 0f00000000; mov.f32 gs_e25, 0f00000000; mov.f32 gs_e26, 0f00000000; mov.f32 gs_e27, 0f00000000;\n\t" +
            "mov.f32 gs_e28, 0f00000000; mov.f32 gs_e29, 0f00000000; mov.f32 gs_e30, 0f00000000; mov.f32 gs_e31, 0f00000000;";
        const string DeclareF = ".reg .f32 gs_f<32>;\n\t" +
            "mov.f32 gs_f0, 0f00000000; mov.f32 gs_f1, 0f00000000; mov.f32 gs_f2, 0f00000000; mov.f32 gs_f3, 0f00000000;\n\t" +
            "mov.f32 gs_f4, 0f00000000; mov.f32 gs_f5, 0f00000000; mov.f32 gs_f6, 0f00000000; mov.f32 gs_f7, 0f00000000;\n\t" +
            "mov.f32 gs_f8, 0f00000000; mov.f32 gs_f9, 0f00000000; mov.f32 gs_f10, 0f00000000; mov.f32 gs_f11, 0f00000000;\n\t" +
            "mov.f32 gs_f12, 0f00000000; mov.f32 gs_f13, 0f00000000; mov.f32 gs_f14, 0f00000000; mov.f32 gs_f15, 0f00000000;\n\t" +
            "mov.f32 gs_f16, 0f00000000; mov.f32 gs_f17, 0f00000000; mov.f32 gs_f18, 0f00000000; mov.f32 gs_f19, 0f00000000;\n\t" +
            "mov.f32 gs_f20, 0f00000000; mov.f32 gs_f21, 0f00000000; mov.f32 gs_f22, 0f00000000; mov.f32 gs_f23, 0f00000000;\n\t" +
            "mov.f32 gs_f24, 0f00000000; mov.f32 gs_f25, 0f00000000; mov.f32 gs_f26, 0f00000000; mov.f32 gs_f27, 0f00000000;\n\t" +
            "mov.f32 gs_f28, 0f00000000; mov.f32 gs_f29, 0f00000000; mov.f32 gs_f30, 0f00000000; mov.f32 gs_f31, 0f00000000;";
        const string DeclareH = ".reg .f32 gs_h<32>;\n\t" +
            "mov.f32 gs_h0, 0f00000000; mov.f32 gs_h1, 0f00000000; mov.f32 gs_h2, 0f00000000; mov.f32 gs_h3, 0f00000000;\n\t" +
            "mov.f32 gs_h4, 0f00000000; mov.f32 gs_h5, 0f00000000; mov.f32 gs_h6, 0f00000000; mov.f32 gs_h7, 0f00000000;\n\t" +
            "mov.f32 gs_h8, 0f00000000; mov.f32 gs_h9, 0f00000000; mov.f32 gs_h10, 0f00000000; mov.f32 gs_h11, 0f00000000;\n\t" +
            "mov.f32 gs_h12, 0f00000000; mov.f32 gs_h13, 0f00000000; mov.f32 gs_h14, 0f00000000; mov.f32 gs_h15, 0f00000000;\n\t" +
            "mov.f32 gs_h16, 0f00000000; mov.f32 gs_h17, 0f00000000; mov.f32 gs_h18, 0f00000000; mov.f32 gs_h19, 0f00000000;\n\t" +
            "mov.f32 gs_h20, 0f00000000; mov.f32 gs_h21, 0f00000000; mov.f32 gs_h22, 0f00000000; mov.f32 gs_h23, 0f00000000;\n\t" +
            "mov.f32 gs_h24, 0f00000000; mov.f32 gs_h25, 0f00000000; mov.f32 gs_h26, 0f00000000; mov.f32 gs_h27, 0f00000000;\n\t" +
            "mov.f32 gs_h28, 0f00000000; mov.f32 gs_h29, 0f00000000; mov.f32 gs_h30, 0f00000000; mov.f32 gs_h31, 0f00000000;";
        const string MmaE00 = MmaOp + "{gs_e0,gs_e1,gs_e2,gs_e3}, {%0,%1,%2,%3}, {%4,%5}, {gs_e0,gs_e1,gs_e2,gs_e3};";
        const string MmaE01 = MmaOp + "{gs_e4,gs_e5,gs_e6,gs_e7}, {%0,%1,%2,%3}, {%4,%5}, {gs_e4,gs_e5,gs_e6,gs_e7};";
        const string MmaE02 = MmaOp + "{gs_e8,gs_e9,gs_e10,gs_e11}, {%0,%1,%2,%3}, {%4,%5}, {gs_e8,gs_e9,gs_e10,gs_e11};";
        const string MmaE03 = MmaOp + "{gs_e12,gs_e13,gs_e14,gs_e15}, {%0,%1,%2,%3}, {%4,%5}, {gs_e12,gs_e13,gs_e14,gs_e15};";
        const string MmaE10 = MmaOp + "{gs_e16,gs_e17,gs_e18,gs_e19}, {%0,%1,%2,%3}, {%4,%5}, {gs_e16,gs_e17,gs_e18,gs_e19};";
        const string MmaE11 = MmaOp + "{gs_e20,gs_e21,gs_e22,gs_e23}, {%0,%1,%2,%3}, {%4,%5}, {gs_e20,gs_e21,gs_e22,gs_e23};";
        const string MmaE12 = MmaOp + "{gs_e24,gs_e25,gs_e26,gs_e27}, {%0,%1,%2,%3}, {%4,%5}, {gs_e24,gs_e25,gs_e26,gs_e27};";
        const string MmaE13 = MmaOp + "{gs_e28,gs_e29,gs_e30,gs_e31}, {%0,%1,%2,%3}, {%4,%5}, {gs_e28,gs_e29,gs_e30,gs_e31};";
        const string MmaF00 = MmaOp + "{gs_f0,gs_f1,gs_f2,gs_f3}, {%0,%1,%2,%3}, {%4,%5}, {gs_f0,gs_f1,gs_f2,gs_f3};";
        const string MmaF01 = MmaOp + "{gs_f4,gs_f5,gs_f6,gs_f7}, {%0,%1,%2,%3}, {%4,%5}, {gs_f4,gs_f5,gs_f6,gs_f7};";
        const string MmaF02 = MmaOp + "{gs_f8,gs_f9,gs_f10,gs_f11}, {%0,%1,%2,%3}, {%4,%5}, {gs_f8,gs_f9,gs_f10,gs_f11};";
        const string MmaF03 = MmaOp + "{gs_f12,gs_f13,gs_f14,gs_f15}, {%0,%1,%2,%3}, {%4,%5}, {gs_f12,gs_f13,gs_f14,gs_f15};";
        const string MmaF10 = MmaOp + "{gs_f16,gs_f17,gs_f18,gs_f19}, {%0,%1,%2,%3}, {%4,%5}, {gs_f16,gs_f17,gs_f18,gs_f19};";
        const string MmaF11 = MmaOp + "{gs_f20,gs_f21,gs_f22,gs_f23}, {%0,%1,%2,%3}, {%4,%5}, {gs_f20,gs_f21,gs_f22,gs_f23};";
        const string MmaF12 = MmaOp + "{gs_f24,gs_f25,gs_f26,gs_f27}, {%0,%1,%2,%3}, {%4,%5}, {gs_f24,gs_f25,gs_f26,gs_f27};";
        const string MmaF13 = MmaOp + "{gs_f28,gs_f29,gs_f30,gs_f31}, {%0,%1,%2,%3}, {%4,%5}, {gs_f28,gs_f29,gs_f30,gs_f31};";
        const string MmaH00 = MmaOp + "{gs_h0,gs_h1,gs_h2,gs_h3}, {%0,%1,%2,%3}, {%4,%5}, {gs_h0,gs_h1,gs_h2,gs_h3};";
        const string MmaH01 = MmaOp + "{gs_h4,gs_h5,gs_h6,gs_h7}, {%0,%1,%2,%3}, {%4,%5}, {gs_h4,gs_h5,gs_h6,gs_h7};";
        const string MmaH02 = MmaOp + "{gs_h8,gs_h9,gs_h10,gs_h11}, {%0,%1,%2,%3}, {%4,%5}, {gs_h8,gs_h9,gs_h10,gs_h11};";
        const string MmaH03 = MmaOp + "{gs_h12,gs_h13,gs_h14,gs_h15}, {%0,%1,%2,%3}, {%4,%5}, {gs_h12,gs_h13,gs_h14,gs_h15};";
        const string MmaH10 = MmaOp + "{gs_h16,gs_h17,gs_h18,gs_h19}, {%0,%1,%2,%3}, {%4,%5}, {gs_h16,gs_h17,gs_h18,gs_h19};";
        const string MmaH11 = MmaOp + "{gs_h20,gs_h21,gs_h22,gs_h23}, {%0,%1,%2,%3}, {%4,%5}, {gs_h20,gs_h21,gs_h22,gs_h23};";
        const string MmaH12 = MmaOp + "{gs_h24,gs_h25,gs_h26,gs_h27}, {%0,%1,%2,%3}, {%4,%5}, {gs_h24,gs_h25,gs_h26,gs_h27};";
        const string MmaH13 = MmaOp + "{gs_h28,gs_h29,gs_h30,gs_h31}, {%0,%1,%2,%3}, {%4,%5}, {gs_h28,gs_h29,gs_h30,gs_h31};";

        /// <summary>One warp-step of the accumulator set <paramref name="set"/> (m-tiles a, a′ against the step's 4 B
        /// fragments): as <see cref="IlgpuTensorCore.WarpStep"/> into that set's registers on CUDA, emulated into
        /// <paramref name="acc"/> elsewhere.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void SetWarpStep(int set, ArrayView<float> shared, int scratchAt, int warp, int g, int q, ref WarpAccumulators acc,
            FragmentA a, FragmentA a2, FragmentB b0, FragmentB b1, FragmentB b2, FragmentB b3)
        {
            if (CudaAsm.IsSupported)
            {
                uint u0 = Bits(a.A0), u1 = Bits(a.A1), u2 = Bits(a.A2), u3 = Bits(a.A3);
                uint v0 = Bits(a2.A0), v1 = Bits(a2.A1), v2 = Bits(a2.A2), v3 = Bits(a2.A3);
                if (set == SetE)
                {
                    CudaAsm.Emit(MmaE00, u0, u1, u2, u3, Bits(b0.B0), Bits(b0.B1));
                    CudaAsm.Emit(MmaE01, u0, u1, u2, u3, Bits(b1.B0), Bits(b1.B1));
                    CudaAsm.Emit(MmaE02, u0, u1, u2, u3, Bits(b2.B0), Bits(b2.B1));
                    CudaAsm.Emit(MmaE03, u0, u1, u2, u3, Bits(b3.B0), Bits(b3.B1));
                    CudaAsm.Emit(MmaE10, v0, v1, v2, v3, Bits(b0.B0), Bits(b0.B1));
                    CudaAsm.Emit(MmaE11, v0, v1, v2, v3, Bits(b1.B0), Bits(b1.B1));
                    CudaAsm.Emit(MmaE12, v0, v1, v2, v3, Bits(b2.B0), Bits(b2.B1));
                    CudaAsm.Emit(MmaE13, v0, v1, v2, v3, Bits(b3.B0), Bits(b3.B1));
                }
                else if (set == SetF)
                {
                    CudaAsm.Emit(MmaF00, u0, u1, u2, u3, Bits(b0.B0), Bits(b0.B1));
                    CudaAsm.Emit(MmaF01, u0, u1, u2, u3, Bits(b1.B0), Bits(b1.B1));
                    CudaAsm.Emit(MmaF02, u0, u1, u2, u3, Bits(b2.B0), Bits(b2.B1));
                    CudaAsm.Emit(MmaF03, u0, u1, u2, u3, Bits(b3.B0), Bits(b3.B1));
                    CudaAsm.Emit(MmaF10, v0, v1, v2, v3, Bits(b0.B0), Bits(b0.B1));
                    CudaAsm.Emit(MmaF11, v0, v1, v2, v3, Bits(b1.B0), Bits(b1.B1));
                    CudaAsm.Emit(MmaF12, v0, v1, v2, v3, Bits(b2.B0), Bits(b2.B1));
                    CudaAsm.Emit(MmaF13, v0, v1, v2, v3, Bits(b3.B0), Bits(b3.B1));
                }
                else
                {
                    CudaAsm.Emit(MmaH00, u0, u1, u2, u3, Bits(b0.B0), Bits(b0.B1));
                    CudaAsm.Emit(MmaH01, u0, u1, u2, u3, Bits(b1.B0), Bits(b1.B1));
                    CudaAsm.Emit(MmaH02, u0, u1, u2, u3, Bits(b2.B0), Bits(b2.B1));
                    CudaAsm.Emit(MmaH03, u0, u1, u2, u3, Bits(b3.B0), Bits(b3.B1));
                    CudaAsm.Emit(MmaH10, v0, v1, v2, v3, Bits(b0.B0), Bits(b0.B1));
                    CudaAsm.Emit(MmaH11, v0, v1, v2, v3, Bits(b1.B0), Bits(b1.B1));
                    CudaAsm.Emit(MmaH12, v0, v1, v2, v3, Bits(b2.B0), Bits(b2.B1));
                    CudaAsm.Emit(MmaH13, v0, v1, v2, v3, Bits(b3.B0), Bits(b3.B1));
                }
            }
            else
                IlgpuTensorCore.EmulateWarpStep(shared.SubView(scratchAt + warp * IlgpuTensorCore.ScratchPerWarp, IlgpuTensorCore.ScratchPerWarp),
                    g, q, ref acc, a, a2, b0, b1, b2, b3);
        }

        static uint Bits(float v) => IlgpuTensorCore.Bits(v);

        /// <summary>Copies an accumulator set's registers out, once, for the epilogue (see IlgpuTensorCore.ReadAccumulators).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static WarpAccumulators ReadSet(int set)
        {
            var a = new WarpAccumulators();
            float c0, c1, c2, c3;
            if (set == SetE)
            {
                CudaAsm.Emit("mov.f32 %0, gs_e0;", out c0); CudaAsm.Emit("mov.f32 %0, gs_e1;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_e2;", out c2); CudaAsm.Emit("mov.f32 %0, gs_e3;", out c3);
                a.C00 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_e4;", out c0); CudaAsm.Emit("mov.f32 %0, gs_e5;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_e6;", out c2); CudaAsm.Emit("mov.f32 %0, gs_e7;", out c3);
                a.C01 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_e8;", out c0); CudaAsm.Emit("mov.f32 %0, gs_e9;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_e10;", out c2); CudaAsm.Emit("mov.f32 %0, gs_e11;", out c3);
                a.C02 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_e12;", out c0); CudaAsm.Emit("mov.f32 %0, gs_e13;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_e14;", out c2); CudaAsm.Emit("mov.f32 %0, gs_e15;", out c3);
                a.C03 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_e16;", out c0); CudaAsm.Emit("mov.f32 %0, gs_e17;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_e18;", out c2); CudaAsm.Emit("mov.f32 %0, gs_e19;", out c3);
                a.C10 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_e20;", out c0); CudaAsm.Emit("mov.f32 %0, gs_e21;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_e22;", out c2); CudaAsm.Emit("mov.f32 %0, gs_e23;", out c3);
                a.C11 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_e24;", out c0); CudaAsm.Emit("mov.f32 %0, gs_e25;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_e26;", out c2); CudaAsm.Emit("mov.f32 %0, gs_e27;", out c3);
                a.C12 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_e28;", out c0); CudaAsm.Emit("mov.f32 %0, gs_e29;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_e30;", out c2); CudaAsm.Emit("mov.f32 %0, gs_e31;", out c3);
                a.C13 = new Accumulator(c0, c1, c2, c3);
            }
            else if (set == SetF)
            {
                CudaAsm.Emit("mov.f32 %0, gs_f0;", out c0); CudaAsm.Emit("mov.f32 %0, gs_f1;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_f2;", out c2); CudaAsm.Emit("mov.f32 %0, gs_f3;", out c3);
                a.C00 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_f4;", out c0); CudaAsm.Emit("mov.f32 %0, gs_f5;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_f6;", out c2); CudaAsm.Emit("mov.f32 %0, gs_f7;", out c3);
                a.C01 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_f8;", out c0); CudaAsm.Emit("mov.f32 %0, gs_f9;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_f10;", out c2); CudaAsm.Emit("mov.f32 %0, gs_f11;", out c3);
                a.C02 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_f12;", out c0); CudaAsm.Emit("mov.f32 %0, gs_f13;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_f14;", out c2); CudaAsm.Emit("mov.f32 %0, gs_f15;", out c3);
                a.C03 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_f16;", out c0); CudaAsm.Emit("mov.f32 %0, gs_f17;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_f18;", out c2); CudaAsm.Emit("mov.f32 %0, gs_f19;", out c3);
                a.C10 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_f20;", out c0); CudaAsm.Emit("mov.f32 %0, gs_f21;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_f22;", out c2); CudaAsm.Emit("mov.f32 %0, gs_f23;", out c3);
                a.C11 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_f24;", out c0); CudaAsm.Emit("mov.f32 %0, gs_f25;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_f26;", out c2); CudaAsm.Emit("mov.f32 %0, gs_f27;", out c3);
                a.C12 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_f28;", out c0); CudaAsm.Emit("mov.f32 %0, gs_f29;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_f30;", out c2); CudaAsm.Emit("mov.f32 %0, gs_f31;", out c3);
                a.C13 = new Accumulator(c0, c1, c2, c3);
            }
            else
            {
                CudaAsm.Emit("mov.f32 %0, gs_h0;", out c0); CudaAsm.Emit("mov.f32 %0, gs_h1;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_h2;", out c2); CudaAsm.Emit("mov.f32 %0, gs_h3;", out c3);
                a.C00 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_h4;", out c0); CudaAsm.Emit("mov.f32 %0, gs_h5;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_h6;", out c2); CudaAsm.Emit("mov.f32 %0, gs_h7;", out c3);
                a.C01 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_h8;", out c0); CudaAsm.Emit("mov.f32 %0, gs_h9;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_h10;", out c2); CudaAsm.Emit("mov.f32 %0, gs_h11;", out c3);
                a.C02 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_h12;", out c0); CudaAsm.Emit("mov.f32 %0, gs_h13;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_h14;", out c2); CudaAsm.Emit("mov.f32 %0, gs_h15;", out c3);
                a.C03 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_h16;", out c0); CudaAsm.Emit("mov.f32 %0, gs_h17;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_h18;", out c2); CudaAsm.Emit("mov.f32 %0, gs_h19;", out c3);
                a.C10 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_h20;", out c0); CudaAsm.Emit("mov.f32 %0, gs_h21;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_h22;", out c2); CudaAsm.Emit("mov.f32 %0, gs_h23;", out c3);
                a.C11 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_h24;", out c0); CudaAsm.Emit("mov.f32 %0, gs_h25;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_h26;", out c2); CudaAsm.Emit("mov.f32 %0, gs_h27;", out c3);
                a.C12 = new Accumulator(c0, c1, c2, c3);
                CudaAsm.Emit("mov.f32 %0, gs_h28;", out c0); CudaAsm.Emit("mov.f32 %0, gs_h29;", out c1);
                CudaAsm.Emit("mov.f32 %0, gs_h30;", out c2); CudaAsm.Emit("mov.f32 %0, gs_h31;", out c3);
                a.C13 = new Accumulator(c0, c1, c2, c3);
            }
            return a;
        }

        /// <summary>A fragment-ordered A vector (a lane's 4 values) or B pair as the mma's operands (also the TF32 Gram
        /// backward's version 5).</summary>
        internal static FragmentA A(Float4 v) => new(v.A, v.B, v.C, v.D);
        internal static FragmentB B(FloatPair v) => new(v.A, v.B);

        // Staging in batches. A loop whose body loads, then stores, waits for each load in turn: a round trip to L2 or
        // memory an iteration. With fewer threads a group (the wide and square shapes) each thread stages more, so
        // its loads are issued a batch at a time — every load of a batch before any of its stores, no load behind a
        // branch — and the batch's round trips overlap. In the sm_90 SASS of the square shape's 128 threads: 12 round
        // trips a chunk (3 pixels, 9 weight vectors) become 5 (2 batches of pixels, 3 of weights). The batch is a
        // constant a shape (the narrow kernel's 64 registers under launch bounds leave no room for more).
        static int PixelBatch(int shape) => shape == Narrow ? 1 : 2;
        static int WeightBatch(int shape) => shape == Narrow ? 1 : 4;

        /// <summary>This thread's pixels of the chunk's patch (e = tid + k·threads), <paramref name="batch"/> (1 or 2)
        /// at a time.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void StagePatch(ArrayView<float> x, ArrayView<float> mask, ConvDims d, int useMask, ArrayView<Float4> patch4,
            int c0, int x0, int y0, int tid, int threads, int pixels, int batch)
        {
            for (int e = tid; e < pixels; e += batch * threads)
            {
                int e1 = e + threads;
                bool has1 = batch > 1 && e1 < pixels;
                var p0 = LoadPixel(x, mask, d, useMask, e, c0, x0, y0);
                var p1 = p0;
                if (batch > 1) p1 = LoadPixel(x, mask, d, useMask, has1 ? e1 : e, c0, x0, y0);
                patch4[2 * e] = p0.Lo;
                patch4[2 * e + 1] = p0.Hi;
                if (has1)
                {
                    patch4[2 * e1] = p1.Lo;
                    patch4[2 * e1 + 1] = p1.Hi;
                }
            }
        }

        /// <summary>This thread's vectors of the chunk's packed weights (e = tid + k·threads, the chunk at
        /// <paramref name="from"/>), <paramref name="batch"/> (1, 2 or 4) at a time; a vector past the chunk is not read
        /// (its slot loads vector e again) nor stored.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void StageWeights(ArrayView<Float4> w4, long from, ArrayView<Float4> wts4, int tid, int threads, int batch)
        {
            for (int e = tid; e < WeightVectors; e += batch * threads)
            {
                int e1 = e + threads, e2 = e + 2 * threads, e3 = e + 3 * threads;
                bool has1 = batch > 1 && e1 < WeightVectors, has2 = batch > 2 && e2 < WeightVectors, has3 = batch > 3 && e3 < WeightVectors;
                var v0 = w4[from + e];
                Float4 v1 = v0, v2 = v0, v3 = v0;
                if (batch > 1) v1 = w4[from + (has1 ? e1 : e)];
                if (batch > 2)
                {
                    v2 = w4[from + (has2 ? e2 : e)];
                    v3 = w4[from + (has3 ? e3 : e)];
                }
                wts4[e] = v0;
                if (has1) wts4[e1] = v1;
                if (has2) wts4[e2] = v2;
                if (has3) wts4[e3] = v3;
            }
        }

        /// <summary>Issues this thread's cp.async copies of a chunk's packed weights (16-byte vectors e = tid +
        /// k·threads, through L2 only: every group of the output group reads them) to <paramref name="sharedAt"/> from
        /// <paramref name="globalAt"/>. Nothing off CUDA (<see cref="WaitWeights"/> copies there).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void IssueWeights(long sharedAt, long globalAt, int tid, int threads)
        {
            if (!CudaAsm.IsSupported) return;
            for (int e = tid; e < WeightVectors; e += threads)
                AsyncCopy.Copy16(sharedAt + 16L * e, globalAt + 16L * e);
        }

        /// <summary>Waits for this thread's copies of the current chunk's weights (all but the group committed since,
        /// the next chunk's); off CUDA, copies them now — the latest moment the wait allows, so that a missing wait or a
        /// wrong buffer shows in the tests.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void WaitWeights(ArrayView<Float4> w4, long from, ArrayView<Float4> wts4, int tid, int threads, int batch)
        {
            if (CudaAsm.IsSupported) AsyncCopy.WaitAllButOne();
            else StageWeights(w4, from, wts4, tid, threads, batch);
        }

        /// <summary>A staged pixel: its 8 channels in the order 0 4 1 5 | 2 6 3 7.</summary>
        struct PixelChannels
        {
            public Float4 Lo, Hi;
        }

        /// <summary>Patch pixel e (row e / 34, column e mod 34) of the chunk at input channel c0: its 8 channels, zero
        /// outside the map and past Cin, masked where asked, TF32-rounded, as two vectors in the order 0 4 1 5 | 2 6 3 7
        /// (lane q's B pair is channels q and q+4).</summary>
        static PixelChannels LoadPixel(ArrayView<float> x, ArrayView<float> mask, ConvDims d, int useMask, int e, int c0, int x0, int y0)
        {
            int py = e / PatchWidth, iy = y0 + py - 1, ix = x0 + e - py * PatchWidth - 1;
            bool inside = iy >= 0 && iy < d.H && ix >= 0 && ix < d.W;
            int plane = d.H * d.W, at = c0 * plane + iy * d.W + ix;   // 32-bit, as the other kernels' (64-bit: spills)
            int left = inside ? d.Cin - c0 : 0;   // channels of the chunk to read
            return new PixelChannels
            {
                Lo = Quad(x, mask, useMask, at, plane, left, 0, 4, 1, 5),
                Hi = Quad(x, mask, useMask, at, plane, left, 2, 6, 3, 7),
            };
        }

        /// <summary>Channels k0 … k3 of the chunk at one pixel (at: channel 0's index), read, masked and rounded where
        /// k &lt; left, else 0. Without branches: a channel not read loads element 0 and is zeroed, so that the 4 loads
        /// are in flight together (each behind its own branch, the SASS waited for them one by one); 4 at a time, not
        /// 8: with 8 in flight ptxas spilled an accumulator fragment at the launch bounds' 64 registers.</summary>
        static Float4 Quad(ArrayView<float> x, ArrayView<float> mask, int useMask, int at, int plane, int left, int k0, int k1, int k2, int k3)
        {
            int i0 = left > k0 ? at + k0 * plane : 0, i1 = left > k1 ? at + k1 * plane : 0;
            int i2 = left > k2 ? at + k2 * plane : 0, i3 = left > k3 ? at + k3 * plane : 0;
            float v0 = x[i0], v1 = x[i1], v2 = x[i2], v3 = x[i3];
            if (useMask != 0)
            {
                if (mask[i0] <= 0f) v0 = 0f; if (mask[i1] <= 0f) v1 = 0f;
                if (mask[i2] <= 0f) v2 = 0f; if (mask[i3] <= 0f) v3 = 0f;
            }
            return new Float4 { A = Rounded(v0, left > k0), B = Rounded(v1, left > k1), C = Rounded(v2, left > k2), D = Rounded(v3, left > k3) };
        }

        static float Rounded(float v, bool read) => read ? IlgpuTensorCore.RoundTf32(v) : 0f;

        /// <summary>Writes one accumulator fragment: rows o and o+8 (biases <paramref name="bias"/> and
        /// <paramref name="bias8"/>), pixels ox and ox+1 of row oy.</summary>
        static void Store(ArrayView<float> y, ConvDims d, int o, int oy, int ox, Accumulator c, float bias, float bias8, int relu, int hasBias)
        {
            IlgpuTiled.StoreOutput(y, d, o, oy, ox, c.C0, bias, relu, hasBias); IlgpuTiled.StoreOutput(y, d, o, oy, ox + 1, c.C1, bias, relu, hasBias);
            IlgpuTiled.StoreOutput(y, d, o + 8, oy, ox, c.C2, bias8, relu, hasBias); IlgpuTiled.StoreOutput(y, d, o + 8, oy, ox + 1, c.C3, bias8, relu, hasBias);
        }
    }
}
