// The 3×3 convolution on tensor cores (TF32), version 5: the operands staged in the order the mma.sync fragments
// read them, so that a fragment is one vector load from shared memory.
//
// Version 4 (Conv3x3.IlgpuTensorCore) stages the weights as [tap·chunk + channel][output channel] and the input as
// channel planes: a lane's A fragment (rows g, g+8 × columns q, q+4 of a 16×8 block) is 4 scalar loads from 4 rows,
// its B fragment (channels q, q+4 at one pixel) 2 scalar loads from 2 planes. That is 16 loads for a warp-step's
// 8 mma.sync, each behind address arithmetic: the sm_90 SASS of its 32×8 kernel had 488 instructions a chunk for 72
// mma.sync, and the H200's profile (relu3_2, 260 µs, ≈ 15% of the TF32 rate) a warp issuing once every 14 cycles.
// Here:
//   weights  packed (once a call, by PackWeights) as [group of 64 outputs][chunk of 8 inputs][tap][warp of 32
//            outputs][m-tile of 16][lane][4]: a lane's 4 A values side by side, the chunk's 18 KB one contiguous
//            copy; an A fragment is one LDS.128, the warp's 32 lanes 512 consecutive bytes (no bank conflict);
//   input    staged as [row][column][8 channels] with the channels ordered 0 4 1 5 2 6 3 7, so that lane (g, q)'s
//            B values, channels q and q+4 of one pixel, sit side by side: one LDS.64, the warp's 32 lanes 256
//            consecutive bytes (no bank conflict). The staging thread reads one pixel's 8 channels (each read
//            coalesced along the row across lanes) and writes two 16-byte vectors.
// A warp-step is then 2 LDS.128 + 4 LDS.64 for 8 mma.sync, at a per-thread base plus an immediate (the tile's width
// is a constant). Counted for the 32×8 tile (16 warps, 64 channels × 256 pixels a group), a chunk: 9 × (6 loads +
// 8 mma) = 126 instructions a warp in the tap loop plus ≈ 25 of staging, against 488. Shared-memory wavefronts a
// warp-step: 8 (A) + 8 (B) for 8 mma — the bound it moves to, at ≈ 40–50% of the tensor cores' mma.sync rate.
// Expected on an H200 (not yet measured): relu3_2's forward from 260 µs to 120–150 µs.
//
// Same arithmetic as version 4: operands TF32-rounded while staging/packing, fp32 accumulation, each output's 72
// products a chunk summed in the same tap order — so both kernels agree to rounding (not bit for bit: version 4's
// 16-channel chunks and tiles other than 8-channel ones order the chunk sums differently; with 8-channel chunks the
// mma sequence is the same). Off CUDA the mmas are emulated exactly as version 4's (IlgpuTensorCore.WarpStep), so
// the CPU-accelerator tests check these layouts against the float64 reference.
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
    /// (2 m-tiles × 4 n-tiles, the accumulators of version 4). Grid (⌈W/32⌉, ⌈H/rows⌉, ⌈Cout/64⌉), group
    /// (<see cref="Threads"/>, 1, 1), dynamic shared memory <see cref="SharedFloats"/>. Arguments as
    /// <see cref="IlgpuTiled.Forward"/>, but w is <see cref="PackWeights"/>' output for these dims.
    /// </summary>
    public static class IlgpuMmaFragments
    {
        public const int TileWidth = 32, GroupChannels = 64, Chunk = 8;
        const int PatchWidth = TileWidth + 2;
        /// <summary>The chunk's weights in 16-byte vectors: 9 taps × 8 inputs × 64 outputs / 4.</summary>
        public const int WeightVectors = 9 * Chunk * GroupChannels / 4;

        /// <summary>Two warps along the channels × a warp for each row of the tile.</summary>
        public static int Threads(int rows) => 64 * rows;

        /// <summary>The staged input: (rows+2) × 34 pixels × 8 channels (a multiple of 16 floats).</summary>
        public static int PatchFloats(int rows) => (rows + 2) * PatchWidth * Chunk;

        /// <summary>Dynamic shared memory: the patch, the chunk's weights, and the emulation's scratch where there are no
        /// tensor cores. The 32×8 tile: 29 KB (under the 48 KB a CUDA kernel gets without opting in).</summary>
        public static int SharedFloats(int rows, bool emulate) =>
            PatchFloats(rows) + 4 * WeightVectors + (emulate ? 2 * rows * IlgpuTensorCore.ScratchPerWarp : 0);

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

        [KernelName("conv3x3_tf32_fragments")]
        public static void Forward(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask, int rows)
        {
            int tid = Group.IdxX, threads = Group.DimX, lane = tid & 31, warp = tid >> 5;
            int wm = warp & 1, wn = warp >> 1, g = lane >> 2, q = lane & 3;
            int x0 = Grid.IdxX * TileWidth, y0 = Grid.IdxY * rows, group = Grid.IdxZ;
            int patchFloats = PatchFloats(rows), pixels = (rows + 2) * PatchWidth, chunks = Chunks(d.Cin);
            var shared4 = Float4.SharedDynamic();
            var patch4 = shared4.SubView(0, patchFloats / 4);
            var patch2 = patch4.Cast<FloatPair>();
            var wts4 = shared4.SubView(patchFloats / 4, WeightVectors);
            var shared = shared4.Cast<float>();
            int scratchAt = patchFloats + 4 * WeightVectors;
            var w4 = w.Cast<Float4>();
            // A fragment (tap, m-tile mt): wts4[aBase + (tap·4 + mt)·32]. B fragment (tap, n-tile n): pixel
            // (wn + tap/3, 8n + g + tap%3) of the patch, pair q: patch2[bBase + ((tap/3)·34 + tap%3 + 8n)·4].
            long aBase = wm * 64 + lane, bBase = (wn * PatchWidth + g) * 4 + q;
            var acc = new WarpAccumulators();
            if (CudaAsm.IsSupported) CudaAsm.Emit(IlgpuTensorCore.DeclareAccumulators);
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
                        IlgpuTensorCore.WarpStep(shared, scratchAt, warp, g, q, ref acc, A(wts4[wa]), A(wts4[wa + 32]),
                            B(patch2[pb]), B(patch2[pb + 32]), B(patch2[pb + 64]), B(patch2[pb + 96]));
                    }
                Group.Barrier();
            }
            if (CudaAsm.IsSupported) acc = IlgpuTensorCore.ReadAccumulators();
            // C (16×8): c0 (g, 2q), c1 (g, 2q+1), c2 (g+8, 2q), c3 (g+8, 2q+1); n-tile n is columns 8n … of row wn.
            int o = group * GroupChannels + wm * 32 + g, oy = y0 + wn, ox = x0 + 2 * q;
            Store(y, b, d, o, oy, ox, acc.C00, relu, hasBias); Store(y, b, d, o, oy, ox + 8, acc.C01, relu, hasBias);
            Store(y, b, d, o, oy, ox + 16, acc.C02, relu, hasBias); Store(y, b, d, o, oy, ox + 24, acc.C03, relu, hasBias);
            Store(y, b, d, o + 16, oy, ox, acc.C10, relu, hasBias); Store(y, b, d, o + 16, oy, ox + 8, acc.C11, relu, hasBias);
            Store(y, b, d, o + 16, oy, ox + 16, acc.C12, relu, hasBias); Store(y, b, d, o + 16, oy, ox + 24, acc.C13, relu, hasBias);
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
