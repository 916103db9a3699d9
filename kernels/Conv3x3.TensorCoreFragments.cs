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
// 63 registers, no spills.
// What it does not change: the bytes read from shared memory an mma. A warp-step reads 16 wavefronts (128 B each)
// for 8 mma.sync, as version 4's 16 conflict-free scalar loads did — with the staging's stores, ≈ 2 600 wavefronts a
// group's chunk for 1 152 mma.sync: at 1 wavefront a clock an SM, a ceiling of 0.44 mma.sync a clock, ≈ 235 TFLOP/s
// on an H200's 132 SMs at 1.98 GHz. Version 4 ran at 74, so the issue and latency it saves are what should show.
// Expected on an H200 (not yet measured): relu3_2's forward from 260 µs to 150–200 µs.
// Wide warps (ForwardWide, MmaFragments 2): a warp owns all 64 of the group's channels, 4 m-tiles × 4 n-tiles, 16
// mma.sync a step from 4 LDS.128 + 4 LDS.64 — 24 wavefronts, 1.5 an mma (the B fragments serve twice the work): the
// ceiling rises to ≈ 0.56 mma.sync a clock (≈ 300 TFLOP/s). Half the threads (256 for 32×8) at 64 accumulators a
// thread: 94 registers (128 under launch bounds for two groups), taps 220 instructions for 144 mma.sync. Which of
// the two wins (more warps to hide latency, or less traffic) is for the GPU to say: MmaTune times both.
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
    /// owns all 64 channels of row wn (4 m-tiles × 4 n-tiles). Grid (⌈W/32⌉, ⌈H/rows⌉, ⌈Cout/64⌉), group
    /// (<see cref="Threads"/>, 1, 1), dynamic shared memory <see cref="SharedFloats"/>. Arguments as
    /// <see cref="IlgpuTiled.Forward"/>, but w is <see cref="PackWeights"/>' output for these dims.
    /// </summary>
    public static class IlgpuMmaFragments
    {
        public const int TileWidth = 32, GroupChannels = 64, Chunk = 8;
        const int PatchWidth = TileWidth + 2;
        /// <summary>The chunk's weights in 16-byte vectors: 9 taps × 8 inputs × 64 outputs / 4.</summary>
        public const int WeightVectors = 9 * Chunk * GroupChannels / 4;

        /// <summary>A warp for each row of the tile, times 2 where a warp owns 32 of the group's 64 channels (wide 0),
        /// times 1 where it owns all 64 (wide 1).</summary>
        public static int Threads(int rows, int wide = 0) => (wide != 0 ? 32 : 64) * rows;

        /// <summary>The staged input: (rows+2) × 34 pixels × 8 channels (a multiple of 16 floats).</summary>
        public static int PatchFloats(int rows) => (rows + 2) * PatchWidth * Chunk;

        /// <summary>Dynamic shared memory: the patch, the chunk's weights, and the emulation's scratch where there are no
        /// tensor cores. The 32×8 tile: 29 KB (under the 48 KB a CUDA kernel gets without opting in).</summary>
        public static int SharedFloats(int rows, bool emulate, int wide = 0) =>
            PatchFloats(rows) + 4 * WeightVectors + (emulate ? Threads(rows, wide) / 32 * IlgpuTensorCore.ScratchPerWarp : 0);

        /// <summary>Why a tile height cannot run, or null.</summary>
        public static string? Problem(int rows) => rows is < 1 or > 16 ? $"a fragment-ordered tile of {rows} rows (1 to 16)" : null;

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
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask, int rows) =>
            Convolve(x, mask, w, b, y, d, relu, hasBias, useMask, rows, wide: 0);

        /// <summary>Version 5 with warps of all 64 output channels (one warp a row, half the threads): 16 mma.sync a
        /// warp-step from 4 A + 4 B fragment loads — 24 wavefronts, 1.5 an mma, so a quarter less shared-memory traffic
        /// for the same work, at 64 accumulators a thread (ptxas for sm_90: see SassTests).</summary>
        [KernelName("conv3x3_tf32_fragments_wide")]
        public static void ForwardWide(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask, int rows) =>
            Convolve(x, mask, w, b, y, d, relu, hasBias, useMask, rows, wide: 1);

        /// <summary>The entry point for a warp width: <see cref="Forward"/> (32 channels) or <see cref="ForwardWide"/> (64).</summary>
        public static Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int, int, int, int>
            For(int wide) => wide != 0 ? ForwardWide : Forward;

        /// <summary>The kernel's body, inlined into each entry point with its warp width a constant.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Convolve(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask, int rows, int wide)
        {
            int tid = Group.IdxX, threads = Group.DimX, lane = tid & 31, warp = tid >> 5;
            int wm = wide != 0 ? 0 : warp & 1, wn = wide != 0 ? warp : warp >> 1, g = lane >> 2, q = lane & 3;
            int x0 = Grid.IdxX * TileWidth, y0 = Grid.IdxY * rows, group = Grid.IdxZ;
            int patchFloats = PatchFloats(rows), pixels = (rows + 2) * PatchWidth, chunks = Chunks(d.Cin);
            var shared4 = Float4.SharedDynamic();
            var patch4 = shared4.SubView(0, patchFloats / 4);
            var patch2 = patch4.Cast<FloatPair>();
            var wts4 = shared4.SubView(patchFloats / 4, WeightVectors);
            var shared = shared4.Cast<float>();
            int scratchAt = patchFloats + 4 * WeightVectors;
            var w4 = w.Cast<Float4>();
            // A fragment (tap, m-tile M = 2·wm + mt): wts4[aBase + tap·128 + M·32] (aBase = lane + wm·64). B fragment
            // (tap, n-tile n): pixel (wn + tap/3, 8n + g + tap%3) of the patch, pair q: patch2[bBase + ((tap/3)·34 +
            // tap%3 + 8n)·4].
            long aBase = wm * 64 + lane, bBase = (wn * PatchWidth + g) * 4 + q;
            var acc = new WarpAccumulators();     // m-tiles 0 and 1 of the warp's channels
            var upper = new WarpAccumulators();   // m-tiles 2 and 3 (wide)
            if (CudaAsm.IsSupported)
            {
                CudaAsm.Emit(IlgpuTensorCore.DeclareAccumulators);
                if (wide != 0) CudaAsm.Emit(DeclareUpperAccumulators);
            }
            for (int chunk = 0; chunk < chunks; chunk++)
            {
                for (int e = tid; e < pixels; e += threads) StagePixel(x, mask, d, useMask, patch4, e, chunk * Chunk, x0, y0);
                long from = ((long)group * chunks + chunk) * WeightVectors;
                for (int e = tid; e < WeightVectors; e += threads) wts4[e] = w4[from + e];
                Group.Barrier();
                // Taps as rows × columns: a tap/3, tap%3 stayed in the SASS as divisions (uniform, but 10–15
                // instructions a tap).
                for (int dy = 0; dy < 3; dy++)
                    for (int dx = 0; dx < 3; dx++)
                    {
                        long wa = aBase + (dy * 3 + dx) * 128, pb = bBase + (dy * PatchWidth + dx) * 4;
                        var b0 = B(patch2[pb]); var b1 = B(patch2[pb + 32]); var b2 = B(patch2[pb + 64]); var b3 = B(patch2[pb + 96]);
                        IlgpuTensorCore.WarpStep(shared, scratchAt, warp, g, q, ref acc, A(wts4[wa]), A(wts4[wa + 32]), b0, b1, b2, b3);
                        if (wide != 0)
                            UpperWarpStep(shared, scratchAt, warp, g, q, ref upper, A(wts4[wa + 64]), A(wts4[wa + 96]), b0, b1, b2, b3);
                    }
                Group.Barrier();
            }
            if (CudaAsm.IsSupported)
            {
                acc = IlgpuTensorCore.ReadAccumulators();
                if (wide != 0) upper = ReadUpperAccumulators();
            }
            // C (16×8): c0 (g, 2q), c1 (g, 2q+1), c2 (g+8, 2q), c3 (g+8, 2q+1); n-tile n is columns 8n … of row wn.
            int o = group * GroupChannels + wm * 32 + g, oy = y0 + wn, ox = x0 + 2 * q;
            Store(y, b, d, o, oy, ox, acc, relu, hasBias);
            if (wide != 0) Store(y, b, d, o + 32, oy, ox, upper, relu, hasBias);
        }

        /// <summary>A warp's 32 channels × 32 pixels: accumulators (m-tile m, n-tile n) at channels o + 16m, columns
        /// ox + 8n of row oy.</summary>
        static void Store(ArrayView<float> y, ArrayView<float> b, ConvDims d, int o, int oy, int ox, WarpAccumulators acc, int relu, int hasBias)
        {
            Store(y, b, d, o, oy, ox, acc.C00, relu, hasBias); Store(y, b, d, o, oy, ox + 8, acc.C01, relu, hasBias);
            Store(y, b, d, o, oy, ox + 16, acc.C02, relu, hasBias); Store(y, b, d, o, oy, ox + 24, acc.C03, relu, hasBias);
            Store(y, b, d, o + 16, oy, ox, acc.C10, relu, hasBias); Store(y, b, d, o + 16, oy, ox + 8, acc.C11, relu, hasBias);
            Store(y, b, d, o + 16, oy, ox + 16, acc.C12, relu, hasBias); Store(y, b, d, o + 16, oy, ox + 24, acc.C13, relu, hasBias);
        }

        // The wide warp's second 32 accumulators (m-tiles 2 and 3) as PTX registers gs_e0…gs_e31, laid out as version 4's
        // gs_c (IlgpuTensorCore.DeclareAccumulators), with their own mma.sync strings: ILGPU takes asm only as literals.
        const string DeclareUpperAccumulators = ".reg .f32 gs_e<32>;\n\t" +
            "mov.f32 gs_e0, 0f00000000; mov.f32 gs_e1, 0f00000000; mov.f32 gs_e2, 0f00000000; mov.f32 gs_e3, 0f00000000;\n\t" +
            "mov.f32 gs_e4, 0f00000000; mov.f32 gs_e5, 0f00000000; mov.f32 gs_e6, 0f00000000; mov.f32 gs_e7, 0f00000000;\n\t" +
            "mov.f32 gs_e8, 0f00000000; mov.f32 gs_e9, 0f00000000; mov.f32 gs_e10, 0f00000000; mov.f32 gs_e11, 0f00000000;\n\t" +
            "mov.f32 gs_e12, 0f00000000; mov.f32 gs_e13, 0f00000000; mov.f32 gs_e14, 0f00000000; mov.f32 gs_e15, 0f00000000;\n\t" +
            "mov.f32 gs_e16, 0f00000000; mov.f32 gs_e17, 0f00000000; mov.f32 gs_e18, 0f00000000; mov.f32 gs_e19, 0f00000000;\n\t" +
            "mov.f32 gs_e20, 0f00000000; mov.f32 gs_e21, 0f00000000; mov.f32 gs_e22, 0f00000000; mov.f32 gs_e23, 0f00000000;\n\t" +
            "mov.f32 gs_e24, 0f00000000; mov.f32 gs_e25, 0f00000000; mov.f32 gs_e26, 0f00000000; mov.f32 gs_e27, 0f00000000;\n\t" +
            "mov.f32 gs_e28, 0f00000000; mov.f32 gs_e29, 0f00000000; mov.f32 gs_e30, 0f00000000; mov.f32 gs_e31, 0f00000000;";
        const string MmaOp = "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 ";
        const string Mma20 = MmaOp + "{gs_e0,gs_e1,gs_e2,gs_e3}, {%0,%1,%2,%3}, {%4,%5}, {gs_e0,gs_e1,gs_e2,gs_e3};";
        const string Mma21 = MmaOp + "{gs_e4,gs_e5,gs_e6,gs_e7}, {%0,%1,%2,%3}, {%4,%5}, {gs_e4,gs_e5,gs_e6,gs_e7};";
        const string Mma22 = MmaOp + "{gs_e8,gs_e9,gs_e10,gs_e11}, {%0,%1,%2,%3}, {%4,%5}, {gs_e8,gs_e9,gs_e10,gs_e11};";
        const string Mma23 = MmaOp + "{gs_e12,gs_e13,gs_e14,gs_e15}, {%0,%1,%2,%3}, {%4,%5}, {gs_e12,gs_e13,gs_e14,gs_e15};";
        const string Mma30 = MmaOp + "{gs_e16,gs_e17,gs_e18,gs_e19}, {%0,%1,%2,%3}, {%4,%5}, {gs_e16,gs_e17,gs_e18,gs_e19};";
        const string Mma31 = MmaOp + "{gs_e20,gs_e21,gs_e22,gs_e23}, {%0,%1,%2,%3}, {%4,%5}, {gs_e20,gs_e21,gs_e22,gs_e23};";
        const string Mma32 = MmaOp + "{gs_e24,gs_e25,gs_e26,gs_e27}, {%0,%1,%2,%3}, {%4,%5}, {gs_e24,gs_e25,gs_e26,gs_e27};";
        const string Mma33 = MmaOp + "{gs_e28,gs_e29,gs_e30,gs_e31}, {%0,%1,%2,%3}, {%4,%5}, {gs_e28,gs_e29,gs_e30,gs_e31};";

        /// <summary>The wide warp's m-tiles 2 and 3 (a2, a3) against the step's 4 B fragments: as
        /// <see cref="IlgpuTensorCore.WarpStep"/> into the gs_e accumulators on CUDA, emulated into
        /// <paramref name="acc"/> elsewhere.</summary>
        static void UpperWarpStep(ArrayView<float> shared, int scratchAt, int warp, int g, int q, ref WarpAccumulators acc,
            FragmentA a2, FragmentA a3, FragmentB b0, FragmentB b1, FragmentB b2, FragmentB b3)
        {
            if (CudaAsm.IsSupported)
            {
                uint u0 = IlgpuTensorCore.Bits(a2.A0), u1 = IlgpuTensorCore.Bits(a2.A1), u2 = IlgpuTensorCore.Bits(a2.A2), u3 = IlgpuTensorCore.Bits(a2.A3);
                uint v0 = IlgpuTensorCore.Bits(a3.A0), v1 = IlgpuTensorCore.Bits(a3.A1), v2 = IlgpuTensorCore.Bits(a3.A2), v3 = IlgpuTensorCore.Bits(a3.A3);
                CudaAsm.Emit(Mma20, u0, u1, u2, u3, IlgpuTensorCore.Bits(b0.B0), IlgpuTensorCore.Bits(b0.B1));
                CudaAsm.Emit(Mma21, u0, u1, u2, u3, IlgpuTensorCore.Bits(b1.B0), IlgpuTensorCore.Bits(b1.B1));
                CudaAsm.Emit(Mma22, u0, u1, u2, u3, IlgpuTensorCore.Bits(b2.B0), IlgpuTensorCore.Bits(b2.B1));
                CudaAsm.Emit(Mma23, u0, u1, u2, u3, IlgpuTensorCore.Bits(b3.B0), IlgpuTensorCore.Bits(b3.B1));
                CudaAsm.Emit(Mma30, v0, v1, v2, v3, IlgpuTensorCore.Bits(b0.B0), IlgpuTensorCore.Bits(b0.B1));
                CudaAsm.Emit(Mma31, v0, v1, v2, v3, IlgpuTensorCore.Bits(b1.B0), IlgpuTensorCore.Bits(b1.B1));
                CudaAsm.Emit(Mma32, v0, v1, v2, v3, IlgpuTensorCore.Bits(b2.B0), IlgpuTensorCore.Bits(b2.B1));
                CudaAsm.Emit(Mma33, v0, v1, v2, v3, IlgpuTensorCore.Bits(b3.B0), IlgpuTensorCore.Bits(b3.B1));
            }
            else
                IlgpuTensorCore.EmulateWarpStep(shared.SubView(scratchAt + warp * IlgpuTensorCore.ScratchPerWarp, IlgpuTensorCore.ScratchPerWarp),
                    g, q, ref acc, a2, a3, b0, b1, b2, b3);
        }

        /// <summary>Copies the gs_e accumulators out, once, for the epilogue (see IlgpuTensorCore.ReadAccumulators).</summary>
        static WarpAccumulators ReadUpperAccumulators()
        {
            var a = new WarpAccumulators();
            CudaAsm.Emit("mov.f32 %0, gs_e0;", out float c0); CudaAsm.Emit("mov.f32 %0, gs_e1;", out float c1);
            CudaAsm.Emit("mov.f32 %0, gs_e2;", out float c2); CudaAsm.Emit("mov.f32 %0, gs_e3;", out float c3);
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
            return a;
        }

        static FragmentA A(Float4 v) => new(v.A, v.B, v.C, v.D);
        static FragmentB B(FloatPair v) => new(v.A, v.B);

        /// <summary>Stages patch pixel e (row e / 34, column e mod 34) of the chunk at input channel c0: its 8 channels,
        /// zero outside the map and past Cin, masked where asked, TF32-rounded, stored as two vectors in the order
        /// 0 4 1 5 | 2 6 3 7 (lane q's B pair is channels q and q+4).</summary>
        static void StagePixel(ArrayView<float> x, ArrayView<float> mask, ConvDims d, int useMask, ArrayView<Float4> patch4,
            int e, int c0, int x0, int y0)
        {
            int py = e / PatchWidth, iy = y0 + py - 1, ix = x0 + e - py * PatchWidth - 1;
            bool inside = iy >= 0 && iy < d.H && ix >= 0 && ix < d.W;
            int plane = d.H * d.W, at = c0 * plane + iy * d.W + ix;   // 32-bit, as the other kernels' (64-bit: spills)
            int left = inside ? d.Cin - c0 : 0;   // channels of the chunk to read
            patch4[2 * e] = Quad(x, mask, useMask, at, plane, left, 0, 4, 1, 5);
            patch4[2 * e + 1] = Quad(x, mask, useMask, at, plane, left, 2, 6, 3, 7);
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

        /// <summary>Writes one accumulator fragment: rows o and o+8, pixels ox and ox+1 of row oy.</summary>
        static void Store(ArrayView<float> y, ArrayView<float> b, ConvDims d, int o, int oy, int ox, Accumulator c, int relu, int hasBias)
        {
            IlgpuTiled.StoreOutput(y, b, d, o, oy, ox, c.C0, relu, hasBias); IlgpuTiled.StoreOutput(y, b, d, o, oy, ox + 1, c.C1, relu, hasBias);
            IlgpuTiled.StoreOutput(y, b, d, o + 8, oy, ox, c.C2, relu, hasBias); IlgpuTiled.StoreOutput(y, b, d, o + 8, oy, ox + 1, c.C3, relu, hasBias);
        }
    }
}
