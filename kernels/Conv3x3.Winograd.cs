// 3×3 convolution by Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray 2016): the same op as Conv3x3.cs
// (stride 1, zero padding 1, bias, optional ReLU; the backward to the input is the forward with the kernel
// transposed and flipped), computed with 16 multiplications per 2×2 outputs per channel pair instead of 36.
//
// For a 2×2 output tile at (2r, 2t), d is the 4×4 input patch at padded rows 2r..2r+3, columns 2t..2t+3, and
//   V = Bᵀ d B (the input transform, per input channel and tile),   U = G g Gᵀ (per weight pair, made once),
//   M[ξ] = Σ_i U[ξ][o][i] · V[ξ][i][tile]   for each of the 16 positions ξ — 16 GEMMs, Cout × Cin × tiles,
//   y = Aᵀ M A (+ bias, ReLU) (the output transform, per output channel and tile), with
//   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],  Aᵀ = [1 1 1 0; 0 1 −1 −1].
// FLOPs: the GEMMs are 2·16·Cout·Cin·⌈H/2⌉·⌈W/2⌉ (4/9 of the direct 2·9·Cout·Cin·H·W on even maps); the input
// transform adds 32 adds per input channel and tile, the output transform 24 per output channel and tile — small
// against the GEMMs' 16·Cout (or 16·Cin) FMAs once both channel counts are 16 or more.
// F(4×4, 3×3) (36 products per 4×4 outputs, the CPU backend's default and a GPU option) is further down, with its
// matrices.
// Rounding (F(2×2)): V's entries are sums of up to 4 inputs and U's of up to 9 weights/4, so an output's error grows by a
// few units in the last place over the direct sum's — far inside the tests' 1e-4 of the largest output (bench
// --check: the ILGPU and CPU versions agree to 4e-7 of it at VGG's channel counts).
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Runtime;

namespace GpuStyle.Kernels;

/// <summary>Six floats: a line of F(4×4, 3×3)'s 6×6 transforms (<see cref="Conv3x3.IlgpuWinograd"/>).</summary>
public readonly struct Six
{
    public readonly float A, B, C, D, E, F;
    public Six(float a, float b, float c, float d, float e, float f) { A = a; B = b; C = c; D = d; E = e; F = f; }
}

/// <summary>A thread's 8×8 register block in <see cref="Conv3x3.IlgpuWinograd"/>'s GEMM: rows r (4 of A's low
/// quadrant, then 4 of its high one) × 8 columns (a low and a high Float4).</summary>
public struct Block8x8
{
    public Float4 R0L, R0H, R1L, R1H, R2L, R2H, R3L, R3H, R4L, R4H, R5L, R5H, R6L, R6H, R7L, R7H;

    /// <summary>One k: the outer product of A's 8 values (a0: rows 0–3, a1: rows 4–7) and B's 8 (b0, b1): 64 FMAs.</summary>
    public void Step(Float4 a0, Float4 a1, Float4 b0, Float4 b1)
    {
        R0L = Fma(R0L, a0.A, b0); R0H = Fma(R0H, a0.A, b1); R1L = Fma(R1L, a0.B, b0); R1H = Fma(R1H, a0.B, b1);
        R2L = Fma(R2L, a0.C, b0); R2H = Fma(R2H, a0.C, b1); R3L = Fma(R3L, a0.D, b0); R3H = Fma(R3H, a0.D, b1);
        R4L = Fma(R4L, a1.A, b0); R4H = Fma(R4H, a1.A, b1); R5L = Fma(R5L, a1.B, b0); R5H = Fma(R5H, a1.B, b1);
        R6L = Fma(R6L, a1.C, b0); R6H = Fma(R6H, a1.C, b1); R7L = Fma(R7L, a1.D, b0); R7H = Fma(R7H, a1.D, b1);
    }

    static Float4 Fma(Float4 acc, float a, Float4 b)
    {
        acc.A += a * b.A; acc.B += a * b.B; acc.C += a * b.C; acc.D += a * b.D;
        return acc;
    }
}

public static partial class Conv3x3
{
    /// <summary>The weight transform U = G g Gᵀ, in float64, as the 16 values of one (output, input) pair, ξ = 4a + b.</summary>
    public static void WinogradWeight(ReadOnlySpan<float> g9, Span<double> u16)
    {
        Span<double> gg = stackalloc double[12];   // G·g: 4 rows × 3 columns
        for (int kx = 0; kx < 3; kx++)
        {
            double g0 = g9[kx], g1 = g9[3 + kx], g2 = g9[6 + kx];
            gg[kx] = g0; gg[3 + kx] = (g0 + g1 + g2) / 2; gg[6 + kx] = (g0 - g1 + g2) / 2; gg[9 + kx] = g2;
        }
        for (int a = 0; a < 4; a++)
        {
            double h0 = gg[3 * a], h1 = gg[3 * a + 1], h2 = gg[3 * a + 2];
            u16[4 * a] = h0; u16[4 * a + 1] = (h0 + h1 + h2) / 2; u16[4 * a + 2] = (h0 - h1 + h2) / 2; u16[4 * a + 3] = h2;
        }
    }

    /// <summary>F(4×4, 3×3)'s weight transform U = G g Gᵀ in float64: 36 values, ξ = 6a + b (G as in IlgpuWinograd).</summary>
    public static void WinogradWeight4(ReadOnlySpan<float> g9, Span<double> u36)
    {
        static void Line(double g0, double g1, double g2, Span<double> o)
        {
            o[0] = g0 / 4; o[1] = -(g0 + g1 + g2) / 6; o[2] = -(g0 - g1 + g2) / 6;
            o[3] = g0 / 24 + g1 / 12 + g2 / 6; o[4] = g0 / 24 - g1 / 12 + g2 / 6; o[5] = g2;
        }
        Span<double> gg = stackalloc double[18];   // G·g: 6 rows × 3 columns (each column a line)
        Span<double> line = stackalloc double[6];
        for (int kx = 0; kx < 3; kx++)
        {
            Line(g9[kx], g9[3 + kx], g9[6 + kx], line);
            for (int a = 0; a < 6; a++) gg[3 * a + kx] = line[a];
        }
        for (int a = 0; a < 6; a++) Line(gg[3 * a], gg[3 * a + 1], gg[3 * a + 2], u36.Slice(6 * a, 6));
    }

    /// <summary>
    /// The fast CPU backend's Winograd path (AVX2 + FMA; the 128-bit twins in Simd128 below), F(4×4, 3×3) by default
    /// (edge 4; measured 1.15–1.3× faster than F(2×2, 3×3), edge 2, which the same code runs). A work item is a strip of 24 (or 16) tiles — 3 (or 2)
    /// groups of 8 consecutive tiles of a row of tiles, the groups taken row after row — and up to 128 output
    /// channels (64 for F(4×4)): input channels pass in chunks of 64, each chunk transformed into V[P][64][24] and
    /// multiplied into M[channels/4][P][4][24], P = 16 (or 36) — V ≤ 98 KB (221 KB) and M ≤ 196 KB (221 KB) stay in
    /// L2 —, then M is transformed into the outputs. The GEMM micro-kernel is the direct kernel's 4 × 24 register block
    /// (4 broadcast weights × 3 vectors of tiles, 12 FMAs a step) without the taps.
    /// </summary>
    public static class CpuWinograd
    {
        public const int ChannelBlock = 4;
        public const int Strip = 24;
        public const int NarrowStrip = 16;
        public const int InputChunk = 64;
        /// <summary>Output channels per work item: M for them (16 × 128 × 24 floats) stays in L2.</summary>
        public const int OutputGroup = 128;

        /// <summary>Both channel counts at least this: below it the transforms outweigh the saved products (relu1_1's
        /// 3 input channels, the backward to the 3 colour channels), and the direct kernel runs.</summary>
        public const int MinChannels = 16;

        public static bool Applies(int cin, int cout) => cin >= MinChannels && cout >= MinChannels;

        /// <summary>Tiles are taken 8 at a time along a row of tiles (a row's last 8 may run past the map): the
        /// groups of 8 of the whole map, row after row, are what the strips of 24 (or 16) tiles split, so that a
        /// small map (a 16-px map has 8 tiles a row) fills whole strips from several rows. Edge: 2 for F(2×2, 3×3),
        /// 4 for F(4×4, 3×3) (tiles of edge × edge outputs).</summary>
        public static int GroupsPerRow(int w, int edge = 2) => ((w + edge - 1) / edge + 7) / 8;

        /// <summary>The padded input's row stride: a row's last group reads columns up to 8·edge·groups + edge − 1
        /// (two overlapping loads of 8·edge floats, edge apart).</summary>
        public static int PaddedWidth(int w, int edge = 2) => (8 * edge * GroupsPerRow(w, edge) + edge + 7) / 8 * 8;
        /// <summary>Rows of tiles, and one tile row more for a lone 16-tile strip's second group on a map of one group.</summary>
        public static int PaddedRows(int h, int edge = 2) => edge * ((h + edge - 1) / edge) + 2 + edge;
        public static int PaddedSize(int c, int h, int w, int edge = 2) => c * PaddedRows(h, edge) * PaddedWidth(w, edge);

        /// <summary>The tile edge for an h×w map: 4 (F(4×4, 3×3)) unless F(2×2, 3×3) computes fewer products there. A
        /// row's tiles go 8 at a time into the strips (<see cref="GroupsPerRow"/>), so on a narrow map F(4×4) pays for
        /// slots past the edge — a 16-px map is 4 of its tiles a row, half a group, and 12 px is 3. Measured on this
        /// 2-vCPU machine (512→512 channels): F(2×2) 1.6–1.8× faster at 12×12 and 16×16, F(4×4) 1.2–1.4× at 20×20,
        /// 24×24 and 32×32 — as this count says. A function of the shape alone, so results never depend on timing.</summary>
        public static int Edge(int h, int w) => Products(h, w, 2) < Products(h, w, 4) ? 2 : 4;

        /// <summary>The GEMMs' products a channel pair costs on an h×w map: tile slots (whole groups of 8 a row of
        /// tiles) × transformed positions ((edge + 2)²).</summary>
        public static long Products(int h, int w, int edge) =>
            (long)((h + edge - 1) / edge) * 8 * GroupsPerRow(w, edge) * (edge + 2) * (edge + 2);

        /// <summary>w[Cout][Cin][3][3] → U packed [⌈Cout/4⌉][P][Cin][4] (channel blocks of 4, zero past Cout), P = 16
        /// values a pair for F(2×2, 3×3), 36 for F(4×4, 3×3).</summary>
        public static float[] PackForward(ReadOnlySpan<float> w, int cin, int cout, int edge = 2)
        {
            int blocks = (cout + ChannelBlock - 1) / ChannelBlock, positions = (edge + 2) * (edge + 2);
            var packed = new float[blocks * positions * cin * ChannelBlock];
            Span<double> u = stackalloc double[positions];
            for (int o = 0; o < cout; o++)
                for (int i = 0; i < cin; i++)
                {
                    if (edge == 4) WinogradWeight4(w.Slice((o * cin + i) * 9, 9), u);
                    else WinogradWeight(w.Slice((o * cin + i) * 9, 9), u);
                    for (int xi = 0; xi < positions; xi++)
                        packed[(((o / ChannelBlock) * positions + xi) * cin + i) * ChannelBlock + o % ChannelBlock] = (float)u[xi];
                }
            return packed;
        }

        /// <summary>The backward's kernel W'[i][o][t] = w[o][i][8−t], transformed and packed the same way.</summary>
        public static float[] PackBackward(ReadOnlySpan<float> w, int cin, int cout, int edge = 2) =>
            PackForward(Cpu.TransposeFlip(w, cin, cout), cout, cin, edge);

        /// <summary>Copies x (C×H×W) into p (C × PaddedRows × PaddedWidth) one row and column in, zero around; with a
        /// mask, only where mask &gt; 0 (ReLU's backward, fused into the copy).</summary>
        public static void Pad(float[] x, float[]? mask, float[] p, int c, int h, int w, int edge = 2) =>
            Cpu.Pad(x, mask, p, c, h, w, PaddedRows(h, edge), PaddedWidth(w, edge));

        /// <summary>A worker's V and M buffers, reused across calls (a pool, so that no call allocates after the first).</summary>
        static readonly ConcurrentBag<float[]> Scratch = new();
        /// <summary>F(4×4, 3×3)'s work items take 64 output channels: M (36 × 64 × 24 floats) and V stay in L2 together.</summary>
        public const int OutputGroup4 = 64;
        const int VFloats = 36 * (InputChunk * Strip + VPad);

        /// <summary>
        /// Floats between V's positions: a chunk's cn × 24 values, and a cache line more. Unpadded, 64 channels put the 36
        /// positions 6 KB apart, and an input transform's 36 stores fell into 2 of L1's 64 sets (8 ways each): 409
        /// cycles per 8 tiles against 181 with the line of padding (one core, hot, 2026-11-28). 1.5·cn + 1 lines apart,
        /// odd for the even chunk sizes, the positions take distinct sets.
        /// </summary>
        static int VStride(int cn) => cn * Strip + VPad;
        const int VPad = 16;
        static readonly int MFloats = Math.Max(OutputGroup * 16, OutputGroup4 * 36) * Strip;

        /// <summary>y = [ReLU](conv(p) + bias) from the padded input (<see cref="Pad"/>) and U (<see cref="PackForward"/>).
        /// Work items run output group by output group, so that a worker's consecutive items share U's rows (≤ 16 MB
        /// for 512 channels each way: from L3, like the direct kernel's weights).</summary>
        public static unsafe void Convolve(float[] p, float[] packed, float[]? bias, float[] y, int cin, int cout,
            int h, int w, bool relu, int edge = 2, CpuSimd simd = CpuSimd.Avx2)
        {
            if (simd == CpuSimd.Scalar) throw new ArgumentException("Winograd's CPU kernels are vector kernels (AVX2 or Vector128)", nameof(simd));
            bool avx = simd == CpuSimd.Avx2;
            int perRow = GroupsPerRow(w, edge), groups = (h + edge - 1) / edge * perRow, positions = (edge + 2) * (edge + 2);
            int outputGroup = edge == 4 ? OutputGroup4 : OutputGroup;
            var (wide, narrow) = Cpu.Strips(8 * groups);
            int strips = wide + narrow, outputGroups = (cout + outputGroup - 1) / outputGroup;
            int wq = PaddedWidth(w, edge), plane = PaddedRows(h, edge) * wq;
            // One worker a core: an item's V and M (≈ 440 KB) are sized for a core's L2.
            Parallel.For(0, strips * outputGroups, CpuParallel.OneWorkerACore,
                () => Scratch.TryTake(out var s) ? s : new float[VFloats + MFloats],
                (item, _, scratch) =>
                {
                    int og = item / strips, strip = item - og * strips;
                    var (first, width) = StripGroups(strip, wide);
                    int o0 = og * outputGroup, blocks = (Math.Min(outputGroup, cout - o0) + ChannelBlock - 1) / ChannelBlock;
                    fixed (float* pp = p, pu = packed, pb = bias, py = y, sv = scratch)
                    {
                        float* v = sv, m = sv + VFloats;
                        for (int c0 = 0; c0 < cin; c0 += InputChunk)
                        {
                            int cn = Math.Min(InputChunk, cin - c0);
                            for (int i = 0; i < cn; i++)
                                for (int k = 0; k < width; k += 8)
                                {
                                    int g = first + k / 8, row = g / perRow, col = g - row * perRow;   // past the last group: rows of zeros
                                    float* src = pp + (long)(c0 + i) * plane + edge * row * wq + 8 * edge * col;
                                    InputTransform(avx, edge, src, wq, v + i * Strip + k, VStride(cn));
                                }
                            // The next chunk's patches (this item's, else the next item's first — a worker's items come in
                            // order), asked for a block at a time while these GEMMs run: the transform reads each channel's
                            // edge + 2 rows, 64 channels' planes 1 MB apart at 512 px — hundreds of short streams that no
                            // hardware prefetcher follows, and the transform waited on them.
                            int nextItem = c0 + InputChunk < cin ? item : item + 1, nextC0 = c0 + InputChunk < cin ? c0 + InputChunk : 0;
                            bool prefetch = Sse.IsSupported && nextItem < strips * outputGroups;
                            var (nextFirst, nextWidth) = StripGroups(nextItem % strips, wide);
                            int nextCn = Math.Min(InputChunk, cin - nextC0);
                            for (int b = 0; b < blocks; b++)
                            {
                                if (prefetch)
                                    PrefetchPatches(pp + (long)nextC0 * plane, plane, wq, perRow, edge, b * nextCn / blocks, (b + 1) * nextCn / blocks,
                                        nextFirst, nextWidth);
                                for (int xi = 0; xi < positions; xi++)
                                {
                                    float* u = pu + (((long)(o0 / ChannelBlock + b) * positions + xi) * cin + c0) * ChannelBlock;
                                    float* tile = m + (b * positions + xi) * ChannelBlock * Strip;
                                    Gemm(avx, width, v + xi * VStride(cn), u, ChannelBlock, tile, cn, first: c0 == 0);
                                }
                            }
                        }
                        for (int b = 0; b < blocks; b++)
                            for (int o = 0; o < ChannelBlock && o0 + b * ChannelBlock + o < cout; o++)
                            {
                                int co = o0 + b * ChannelBlock + o;
                                for (int k = 0; k < width && first + k / 8 < groups; k += 8)
                                {
                                    int g = first + k / 8, row = g / perRow, col = g - row * perRow;
                                    float* mt = m + b * positions * ChannelBlock * Strip + o * Strip + k;
                                    OutputTransform(avx, edge, mt, pb is null ? 0f : pb[co], relu, py + (long)co * h * w, h, w, edge * row, 8 * edge * col);
                                }
                            }
                    }
                    return scratch;
                },
                Scratch.Add);
        }

        /// <summary>Strip s (of <see cref="Cpu.Strips"/>' wide ones first): its first group of 8 tiles, and its width in
        /// tiles (3 groups, or 2).</summary>
        static (int First, int Width) StripGroups(int s, int wide) =>
            s < wide ? (3 * s, Strip) : (3 * wide + 2 * (s - wide), NarrowStrip);

        /// <summary>Prefetches (into L2) the padded rows that channels i0..i1 (from p) of a strip's groups of 8 tiles will
        /// be transformed from: per group and row, 8·edge + edge + 2 floats. A hint: results do not depend on it.</summary>
        static unsafe void PrefetchPatches(float* p, int plane, int wq, int perRow, int edge, int i0, int i1, int first, int width)
        {
            int span = 9 * edge + 2;
            for (int i = i0; i < i1; i++)
                for (int k = 0; k < width; k += 8)
                {
                    int g = first + k / 8, row = g / perRow, col = g - row * perRow;
                    float* src = p + (long)i * plane + edge * row * wq + 8 * edge * col;
                    for (int r = 0; r < edge + 2; r++, src += wq)
                        for (int l = 0; l < span; l += 16) Sse.Prefetch1(src + l);
                }
        }

        /// <summary>8 tiles' input transform: F(4×4) or F(2×2), AVX2 or 128-bit.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static unsafe void InputTransform(bool avx, int edge, float* src, int wq, float* v, int vStride)
        {
            if (avx) { if (edge == 4) InputTransform8x4(src, wq, v, vStride); else InputTransform8(src, wq, v, vStride); }
            else if (edge == 4) Simd128.InputTransform8x4(src, wq, v, vStride);
            else Simd128.InputTransform8(src, wq, v, vStride);
        }

        /// <summary>tile (4 rows × 24 or 16 columns, stride 24) [+]= Σ_i u[i][0..3] ⊗ v[i][0..width), by the AVX2 or the
        /// 128-bit micro-kernel: Winograd's GEMMs (u: 4 output channels' weights) and the CPU Gram forward (u: 4 rows of
        /// the same panel) share it.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        internal static unsafe void Gemm(bool avx, int width, float* v, float* u, int uStride, float* tile, int cn, bool first)
        {
            if (avx) { if (width == Strip) Gemm4x24(v, u, uStride, tile, cn, first); else Gemm4x16(v, u, uStride, tile, cn, first); return; }
            var start = first ? GemmStart.Zero : GemmStart.Load;
            if (width == Strip) Simd128.Gemm4x24(v, Strip, u, uStride, tile, Strip, cn, start);
            else Simd128.Gemm4x16(v, Strip, u, uStride, tile, Strip, cn, start);
        }

        /// <summary>8 tiles' output transform into rows y0…, columns x0… of one channel's plane: F(4×4) or F(2×2), AVX2
        /// or 128-bit.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static unsafe void OutputTransform(bool avx, int edge, float* m, float bias, bool relu, float* plane, int h, int w, int y0, int x0)
        {
            if (avx) { if (edge == 4) OutputTransform8x4(m, bias, relu, plane, h, w, y0, x0); else OutputTransform8(m, bias, relu, plane, h, w, y0, x0); }
            else if (edge == 4) Simd128.OutputTransform8x4(m, bias, relu, plane, h, w, y0, x0);
            else Simd128.OutputTransform8(m, bias, relu, plane, h, w, y0, x0);
        }

        /// <summary>V = Bᵀ d B for 8 tiles side by side: src is the patch's top-left corner in the padded plane (row
        /// stride wq), v[ξ · vStride + k] receives tile k's value ξ = 4a + b. Each padded row's 18 floats are loaded
        /// as two overlapping pairs of vectors and split into even and odd columns (tile k's columns 0/1 and 2/3).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static unsafe void InputTransform8(float* src, int wq, float* v, int vStride)
        {
            // Row stage (d·B): e_j of row i from the row's columns d0..d3 of each tile.
            Row(src, out var e00, out var e01, out var e02, out var e03);
            Row(src + wq, out var e10, out var e11, out var e12, out var e13);
            Row(src + 2 * wq, out var e20, out var e21, out var e22, out var e23);
            Row(src + 3 * wq, out var e30, out var e31, out var e32, out var e33);
            // Column stage (Bᵀ·): rows 0 − 2, 1 + 2, 2 − 1, 1 − 3.
            Avx.Store(v, Avx.Subtract(e00, e20)); Avx.Store(v + vStride, Avx.Subtract(e01, e21));
            Avx.Store(v + 2 * vStride, Avx.Subtract(e02, e22)); Avx.Store(v + 3 * vStride, Avx.Subtract(e03, e23));
            Avx.Store(v + 4 * vStride, Avx.Add(e10, e20)); Avx.Store(v + 5 * vStride, Avx.Add(e11, e21));
            Avx.Store(v + 6 * vStride, Avx.Add(e12, e22)); Avx.Store(v + 7 * vStride, Avx.Add(e13, e23));
            Avx.Store(v + 8 * vStride, Avx.Subtract(e20, e10)); Avx.Store(v + 9 * vStride, Avx.Subtract(e21, e11));
            Avx.Store(v + 10 * vStride, Avx.Subtract(e22, e12)); Avx.Store(v + 11 * vStride, Avx.Subtract(e23, e13));
            Avx.Store(v + 12 * vStride, Avx.Subtract(e10, e30)); Avx.Store(v + 13 * vStride, Avx.Subtract(e11, e31));
            Avx.Store(v + 14 * vStride, Avx.Subtract(e12, e32)); Avx.Store(v + 15 * vStride, Avx.Subtract(e13, e33));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static unsafe void Row(float* r, out Vector256<float> e0, out Vector256<float> e1, out Vector256<float> e2, out Vector256<float> e3)
        {
            var a = Avx.LoadVector256(r); var b = Avx.LoadVector256(r + 8);
            var c = Avx.LoadVector256(r + 2); var d = Avx.LoadVector256(r + 10);
            var d0 = Even(a, b); var d1 = Odd(a, b); var d2 = Even(c, d); var d3 = Odd(c, d);
            e0 = Avx.Subtract(d0, d2); e1 = Avx.Add(d1, d2); e2 = Avx.Subtract(d2, d1); e3 = Avx.Subtract(d1, d3);
        }

        // [a0 a2 b0 b2 | a4 a6 b4 b6], then the 64-bit pairs reordered 0 2 1 3: [a0 a2 a4 a6 b0 b2 b4 b6].
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector256<float> Even(Vector256<float> a, Vector256<float> b) =>
            Avx2.Permute4x64(Avx.Shuffle(a, b, 0x88).AsDouble(), 0xD8).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector256<float> Odd(Vector256<float> a, Vector256<float> b) =>
            Avx2.Permute4x64(Avx.Shuffle(a, b, 0xDD).AsDouble(), 0xD8).AsSingle();

        /// <summary>y = Aᵀ M A (+ bias, ReLU) for 8 tiles of one output channel: m[ξ · 4·24 + k] is tile k's M[ξ];
        /// the 2×2 outputs go to rows y0, y0+1 and columns x0..x0+15 of the channel's plane, clipped to the map.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static unsafe void OutputTransform8(float* m, float bias, bool relu, float* plane, int h, int w, int y0, int x0)
        {
            const int S = ChannelBlock * Strip;
            // Row stage (Aᵀ·): s0 = m0 + m1 + m2, s1 = m1 − m2 − m3, for each column b.
            Vector256<float> s00, s01, s02, s03, s10, s11, s12, s13;
            {
                var m0 = Avx.LoadVector256(m); var m1 = Avx.LoadVector256(m + 4 * S); var m2 = Avx.LoadVector256(m + 8 * S); var m3 = Avx.LoadVector256(m + 12 * S);
                s00 = Avx.Add(Avx.Add(m0, m1), m2); s10 = Avx.Subtract(Avx.Subtract(m1, m2), m3);
            }
            {
                var m0 = Avx.LoadVector256(m + S); var m1 = Avx.LoadVector256(m + 5 * S); var m2 = Avx.LoadVector256(m + 9 * S); var m3 = Avx.LoadVector256(m + 13 * S);
                s01 = Avx.Add(Avx.Add(m0, m1), m2); s11 = Avx.Subtract(Avx.Subtract(m1, m2), m3);
            }
            {
                var m0 = Avx.LoadVector256(m + 2 * S); var m1 = Avx.LoadVector256(m + 6 * S); var m2 = Avx.LoadVector256(m + 10 * S); var m3 = Avx.LoadVector256(m + 14 * S);
                s02 = Avx.Add(Avx.Add(m0, m1), m2); s12 = Avx.Subtract(Avx.Subtract(m1, m2), m3);
            }
            {
                var m0 = Avx.LoadVector256(m + 3 * S); var m1 = Avx.LoadVector256(m + 7 * S); var m2 = Avx.LoadVector256(m + 11 * S); var m3 = Avx.LoadVector256(m + 15 * S);
                s03 = Avx.Add(Avx.Add(m0, m1), m2); s13 = Avx.Subtract(Avx.Subtract(m1, m2), m3);
            }
            var vb = Vector256.Create(bias);
            StoreRow(Avx.Add(Avx.Add(Avx.Add(s00, s01), s02), vb), Avx.Add(Avx.Subtract(Avx.Subtract(s01, s02), s03), vb), relu, plane, h, w, y0, x0);
            StoreRow(Avx.Add(Avx.Add(Avx.Add(s10, s11), s12), vb), Avx.Add(Avx.Subtract(Avx.Subtract(s11, s12), s13), vb), relu, plane, h, w, y0 + 1, x0);
        }

        /// <summary>Interleaves the tiles' left and right outputs into 16 consecutive pixels of row yr, clipped.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining), SkipLocalsInit]
        static unsafe void StoreRow(Vector256<float> left, Vector256<float> right, bool relu, float* plane, int h, int w, int yr, int x0)
        {
            if (yr >= h) return;
            if (relu) { left = Avx.Max(left, Vector256<float>.Zero); right = Avx.Max(right, Vector256<float>.Zero); }
            var lo = Avx.UnpackLow(left, right);    // tiles 0, 1 | 4, 5
            var hi = Avx.UnpackHigh(left, right);   // tiles 2, 3 | 6, 7
            var first = Avx.Permute2x128(lo, hi, 0x20);
            var second = Avx.Permute2x128(lo, hi, 0x31);
            float* dst = plane + (long)yr * w + x0;
            if (x0 + 16 <= w) { Avx.Store(dst, first); Avx.Store(dst + 8, second); return; }
            float* tmp = stackalloc float[16];
            Avx.Store(tmp, first); Avx.Store(tmp + 8, second);
            for (int k = 0; k < w - x0; k++) dst[k] = tmp[k];
        }

        /// <summary>A 4×4 transpose inside each 128-bit lane: out_j lane L [i] = in_i lane L [j]. It is its own inverse.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void TransposeLanes(ref Vector256<float> r0, ref Vector256<float> r1, ref Vector256<float> r2, ref Vector256<float> r3)
        {
            var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
            var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
            r0 = Avx.Shuffle(t0, t2, 0x44); r1 = Avx.Shuffle(t0, t2, 0xEE);
            r2 = Avx.Shuffle(t1, t3, 0x44); r3 = Avx.Shuffle(t1, t3, 0xEE);
        }

        /// <summary>
        /// F(4×4, 3×3)'s V = Bᵀ d B for 8 tiles side by side (tiles 4 columns apart: src is the first patch's corner). A
        /// patch row's columns j = 0…3 of the 8 tiles come from 32 floats by a transpose inside 128-bit lanes, j = 4, 5
        /// from the 32 floats 4 further on; the lanes leave the tiles in the order 0 2 4 6 | 1 3 5 7, which V keeps (the
        /// GEMMs treat tiles alike) and <see cref="OutputTransform8x4"/>'s inverse transpose undoes. The row stage's 36
        /// vectors wait in a stack buffer (L1) for the column stage.
        /// </summary>
        [SkipLocalsInit]   // the stack buffer is written whole before it is read: no zeroing call per 8 tiles
        static unsafe void InputTransform8x4(float* src, int wq, float* v, int vStride)
        {
            var e = stackalloc Vector256<float>[36];   // e[6i + b]: (d B)[i][b]
            for (int i = 0; i < 6; i++, src += wq)
            {
                var d0 = Avx.LoadVector256(src); var d1 = Avx.LoadVector256(src + 8); var d2 = Avx.LoadVector256(src + 16); var d3 = Avx.LoadVector256(src + 24);
                TransposeLanes(ref d0, ref d1, ref d2, ref d3);
                var d4 = Avx.LoadVector256(src + 4); var d5 = Avx.LoadVector256(src + 12); var n2 = Avx.LoadVector256(src + 20); var n3 = Avx.LoadVector256(src + 28);
                TransposeLanes(ref d4, ref d5, ref n2, ref n3);
                var r = e + 6 * i;
                InputLine8(d0, d1, d2, d3, d4, d5, out r[0], out r[1], out r[2], out r[3], out r[4], out r[5]);
            }
            for (int b = 0; b < 6; b++)
            {
                // Column b: V[a][b] for a = 0…5, at ξ = 6a + b.
                InputLine8(e[b], e[6 + b], e[12 + b], e[18 + b], e[24 + b], e[30 + b], out var v0, out var v1, out var v2, out var v3, out var v4, out var v5);
                float* at = v + b * vStride;
                int step = 6 * vStride;
                Avx.Store(at, v0); Avx.Store(at + step, v1); Avx.Store(at + 2 * step, v2);
                Avx.Store(at + 3 * step, v3); Avx.Store(at + 4 * step, v4); Avx.Store(at + 5 * step, v5);
            }
        }

        /// <summary>Bᵀ·(d0…d5): 6 vectors.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void InputLine8(Vector256<float> d0, Vector256<float> d1, Vector256<float> d2, Vector256<float> d3,
            Vector256<float> d4, Vector256<float> d5, out Vector256<float> o0, out Vector256<float> o1, out Vector256<float> o2,
            out Vector256<float> o3, out Vector256<float> o4, out Vector256<float> o5)
        {
            var four = Vector256.Create(4f); var five = Vector256.Create(5f); var two = Vector256.Create(2f);
            o0 = Fma.MultiplyAddNegated(five, d2, Fma.MultiplyAdd(four, d0, d4));                  // 4d0 − 5d2 + d4
            o1 = Fma.MultiplyAddNegated(four, Avx.Add(d1, d2), Avx.Add(d3, d4));                   // −4(d1 + d2) + d3 + d4
            o2 = Avx.Subtract(Fma.MultiplyAdd(four, Avx.Subtract(d1, d2), d4), d3);                // 4(d1 − d2) − d3 + d4
            o3 = Avx.Subtract(Fma.MultiplyAdd(two, Avx.Subtract(d3, d1), d4), d2);                 // 2(d3 − d1) − d2 + d4
            o4 = Avx.Subtract(Fma.MultiplyAdd(two, Avx.Subtract(d1, d3), d4), d2);                 // 2(d1 − d3) − d2 + d4
            o5 = Fma.MultiplyAddNegated(five, d3, Fma.MultiplyAdd(four, d1, d5));                  // 4d1 − 5d3 + d5
        }

        /// <summary>Aᵀ·(m0…m5): 4 vectors.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void OutputLine8(Vector256<float> m0, Vector256<float> m1, Vector256<float> m2, Vector256<float> m3,
            Vector256<float> m4, Vector256<float> m5, out Vector256<float> y0, out Vector256<float> y1, out Vector256<float> y2, out Vector256<float> y3)
        {
            var a12 = Avx.Add(m1, m2); var s12 = Avx.Subtract(m1, m2);
            var a34 = Avx.Add(m3, m4); var s34 = Avx.Subtract(m3, m4);
            y0 = Avx.Add(Avx.Add(m0, a12), a34);
            y1 = Fma.MultiplyAdd(Vector256.Create(2f), s34, s12);
            y2 = Fma.MultiplyAdd(Vector256.Create(4f), a34, a12);
            y3 = Avx.Add(Fma.MultiplyAdd(Vector256.Create(8f), s34, s12), m5);
        }

        /// <summary>F(4×4, 3×3)'s y = Aᵀ M A (+ bias, ReLU) for 8 tiles of one output channel (m[ξ · 4·24 + k], tiles
        /// in <see cref="InputTransform8x4"/>'s lane order): rows y0…y0+3, columns x0…x0+31 of the plane, clipped.</summary>
        [SkipLocalsInit]   // as InputTransform8x4: s and tmp are written before they are read
        static unsafe void OutputTransform8x4(float* m, float bias, bool relu, float* plane, int h, int w, int y0, int x0)
        {
            const int S = ChannelBlock * Strip;
            var s = stackalloc Vector256<float>[24];   // s[4b + p]: (Aᵀ M)[p][b]
            for (int b = 0; b < 6; b++)
            {
                OutputLine8(Avx.LoadVector256(m + b * S), Avx.LoadVector256(m + (6 + b) * S), Avx.LoadVector256(m + (12 + b) * S),
                    Avx.LoadVector256(m + (18 + b) * S), Avx.LoadVector256(m + (24 + b) * S), Avx.LoadVector256(m + (30 + b) * S),
                    out s[4 * b], out s[4 * b + 1], out s[4 * b + 2], out s[4 * b + 3]);
            }
            var vb = Vector256.Create(bias);
            float* tmp = stackalloc float[32];
            for (int p = 0; p < 4 && y0 + p < h; p++)
            {
                OutputLine8(s[p], s[4 + p], s[8 + p], s[12 + p], s[16 + p], s[20 + p], out var q0, out var q1, out var q2, out var q3);
                q0 = Avx.Add(q0, vb); q1 = Avx.Add(q1, vb); q2 = Avx.Add(q2, vb); q3 = Avx.Add(q3, vb);
                if (relu)
                {
                    q0 = Avx.Max(q0, Vector256<float>.Zero); q1 = Avx.Max(q1, Vector256<float>.Zero);
                    q2 = Avx.Max(q2, Vector256<float>.Zero); q3 = Avx.Max(q3, Vector256<float>.Zero);
                }
                // Lane order 0 2 4 6 | 1 3 5 7 back to pixels: q0 = tiles 0, 1 (8 pixels), q1 = tiles 2, 3, …
                TransposeLanes(ref q0, ref q1, ref q2, ref q3);
                float* dst = plane + (long)(y0 + p) * w + x0;
                if (x0 + 32 <= w) { Avx.Store(dst, q0); Avx.Store(dst + 8, q1); Avx.Store(dst + 16, q2); Avx.Store(dst + 24, q3); continue; }
                Avx.Store(tmp, q0); Avx.Store(tmp + 8, q1); Avx.Store(tmp + 16, q2); Avx.Store(tmp + 24, q3);
                for (int k = 0; k < w - x0; k++) dst[k] = tmp[k];
            }
        }

        /// <summary>tile (4 rows × 24, row stride 24) = [tile +] Σ_i u[i][0..3] ⊗ v[i][0..23], u's rows uStride floats apart
        /// and v's 24: the GEMM micro-kernel, 12 accumulators, call-free (see Cpu.Accumulate4x24 on why). Winograd's
        /// GEMMs (u: 4 output channels' weights, v: 24 tiles) and the CPU Gram forward (both from one panel) share it.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        internal static unsafe void Gemm4x24(float* v, float* u, int uStride, float* tile, int cn, bool first)
        {
            Vector256<float> a00, a01, a02, a10, a11, a12, a20, a21, a22, a30, a31, a32;
            if (first)
                a00 = a01 = a02 = a10 = a11 = a12 = a20 = a21 = a22 = a30 = a31 = a32 = Vector256<float>.Zero;
            else
            {
                a00 = Avx.LoadVector256(tile); a01 = Avx.LoadVector256(tile + 8); a02 = Avx.LoadVector256(tile + 16);
                a10 = Avx.LoadVector256(tile + 24); a11 = Avx.LoadVector256(tile + 32); a12 = Avx.LoadVector256(tile + 40);
                a20 = Avx.LoadVector256(tile + 48); a21 = Avx.LoadVector256(tile + 56); a22 = Avx.LoadVector256(tile + 64);
                a30 = Avx.LoadVector256(tile + 72); a31 = Avx.LoadVector256(tile + 80); a32 = Avx.LoadVector256(tile + 88);
            }
            for (int i = 0; i < cn; i++, v += Strip, u += uStride)
            {
                var v0 = Avx.LoadVector256(v); var v1 = Avx.LoadVector256(v + 8); var v2 = Avx.LoadVector256(v + 16);
                var w0 = Vector256.Create(u[0]); a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01); a02 = Fma.MultiplyAdd(w0, v2, a02);
                var w1 = Vector256.Create(u[1]); a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11); a12 = Fma.MultiplyAdd(w1, v2, a12);
                var w2 = Vector256.Create(u[2]); a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21); a22 = Fma.MultiplyAdd(w2, v2, a22);
                var w3 = Vector256.Create(u[3]); a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31); a32 = Fma.MultiplyAdd(w3, v2, a32);
            }
            Avx.Store(tile, a00); Avx.Store(tile + 8, a01); Avx.Store(tile + 16, a02);
            Avx.Store(tile + 24, a10); Avx.Store(tile + 32, a11); Avx.Store(tile + 40, a12);
            Avx.Store(tile + 48, a20); Avx.Store(tile + 56, a21); Avx.Store(tile + 64, a22);
            Avx.Store(tile + 72, a30); Avx.Store(tile + 80, a31); Avx.Store(tile + 88, a32);
        }

        /// <summary>The 16-column variant for the ends of rows (8 accumulators; v's and the tile's strides stay 24).</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        internal static unsafe void Gemm4x16(float* v, float* u, int uStride, float* tile, int cn, bool first)
        {
            Vector256<float> a00, a01, a10, a11, a20, a21, a30, a31;
            if (first)
                a00 = a01 = a10 = a11 = a20 = a21 = a30 = a31 = Vector256<float>.Zero;
            else
            {
                a00 = Avx.LoadVector256(tile); a01 = Avx.LoadVector256(tile + 8);
                a10 = Avx.LoadVector256(tile + 24); a11 = Avx.LoadVector256(tile + 32);
                a20 = Avx.LoadVector256(tile + 48); a21 = Avx.LoadVector256(tile + 56);
                a30 = Avx.LoadVector256(tile + 72); a31 = Avx.LoadVector256(tile + 80);
            }
            for (int i = 0; i < cn; i++, v += Strip, u += uStride)
            {
                var v0 = Avx.LoadVector256(v); var v1 = Avx.LoadVector256(v + 8);
                var w0 = Vector256.Create(u[0]); a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01);
                var w1 = Vector256.Create(u[1]); a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11);
                var w2 = Vector256.Create(u[2]); a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21);
                var w3 = Vector256.Create(u[3]); a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31);
            }
            Avx.Store(tile, a00); Avx.Store(tile + 8, a01);
            Avx.Store(tile + 24, a10); Avx.Store(tile + 32, a11);
            Avx.Store(tile + 48, a20); Avx.Store(tile + 56, a21);
            Avx.Store(tile + 72, a30); Avx.Store(tile + 80, a31);
        }

        /// <summary>How a <see cref="Simd128"/> GEMM starts and ends: from zero, written (Zero); from the tile's values,
        /// written (Load); from zero, added to the tile at the end (Add — the Gram backward's dF += S·F).</summary>
        internal enum GemmStart { Zero, Load, Add }

        /// <summary>
        /// The kernels above on 128-bit vectors (<see cref="CpuSimd.Vector128"/>: NEON on ARM64, SSE+FMA where x86 tests
        /// run them). Each AVX2 vector of 8 tiles is two halves of 4, each half put through the same operations in the
        /// same order, so every output equals the AVX2 kernels' to the bit (the tests check it). The halves: F(2×2)'s
        /// 8 tiles are two groups of 4 consecutive tiles, 8 columns apart; F(4×4)'s AVX2 lanes hold tiles 0 2 4 6 | 1 3
        /// 5 7, so its halves are the even tiles and the odd ones (4 columns apart), each its own 4×4 transpose.
        /// </summary>
        internal static class Simd128
        {
            /// <summary>F(2×2): <see cref="CpuWinograd.InputTransform8"/>, as two groups of 4 tiles.</summary>
            internal static unsafe void InputTransform8(float* src, int wq, float* v, int vStride)
            {
                InputTransform4(src, wq, v, vStride);
                InputTransform4(src + 8, wq, v + 4, vStride);
            }

            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            static unsafe void InputTransform4(float* src, int wq, float* v, int vStride)
            {
                Row(src, out var e00, out var e01, out var e02, out var e03);
                Row(src + wq, out var e10, out var e11, out var e12, out var e13);
                Row(src + 2 * wq, out var e20, out var e21, out var e22, out var e23);
                Row(src + 3 * wq, out var e30, out var e31, out var e32, out var e33);
                (e00 - e20).Store(v); (e01 - e21).Store(v + vStride); (e02 - e22).Store(v + 2 * vStride); (e03 - e23).Store(v + 3 * vStride);
                (e10 + e20).Store(v + 4 * vStride); (e11 + e21).Store(v + 5 * vStride); (e12 + e22).Store(v + 6 * vStride); (e13 + e23).Store(v + 7 * vStride);
                (e20 - e10).Store(v + 8 * vStride); (e21 - e11).Store(v + 9 * vStride); (e22 - e12).Store(v + 10 * vStride); (e23 - e13).Store(v + 11 * vStride);
                (e10 - e30).Store(v + 12 * vStride); (e11 - e31).Store(v + 13 * vStride); (e12 - e32).Store(v + 14 * vStride); (e13 - e33).Store(v + 15 * vStride);
            }

            /// <summary>4 tiles' columns 0…3 (tile t at columns 2t…2t+3) from 10 floats, and the row stage d·B.</summary>
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            static unsafe void Row(float* r, out Vector128<float> e0, out Vector128<float> e1, out Vector128<float> e2, out Vector128<float> e3)
            {
                var a = Vector128.Load(r); var b = Vector128.Load(r + 4); var c = Vector128.Load(r + 2); var d = Vector128.Load(r + 6);
                var d0 = Lanes128.UnzipEven(a, b); var d1 = Lanes128.UnzipOdd(a, b); var d2 = Lanes128.UnzipEven(c, d); var d3 = Lanes128.UnzipOdd(c, d);
                e0 = d0 - d2; e1 = d1 + d2; e2 = d2 - d1; e3 = d1 - d3;
            }

            /// <summary>F(2×2): <see cref="CpuWinograd.OutputTransform8"/>, as two groups of 4 tiles (8 pixels each).</summary>
            internal static unsafe void OutputTransform8(float* m, float bias, bool relu, float* plane, int h, int w, int y0, int x0)
            {
                OutputTransform4(m, bias, relu, plane, h, w, y0, x0);
                if (x0 + 8 < w) OutputTransform4(m + 4, bias, relu, plane, h, w, y0, x0 + 8);
            }

            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            static unsafe void OutputTransform4(float* m, float bias, bool relu, float* plane, int h, int w, int y0, int x0)
            {
                const int S = ChannelBlock * Strip;
                Vector128<float> s00, s01, s02, s03, s10, s11, s12, s13;
                {
                    var m0 = Vector128.Load(m); var m1 = Vector128.Load(m + 4 * S); var m2 = Vector128.Load(m + 8 * S); var m3 = Vector128.Load(m + 12 * S);
                    s00 = m0 + m1 + m2; s10 = m1 - m2 - m3;
                }
                {
                    var m0 = Vector128.Load(m + S); var m1 = Vector128.Load(m + 5 * S); var m2 = Vector128.Load(m + 9 * S); var m3 = Vector128.Load(m + 13 * S);
                    s01 = m0 + m1 + m2; s11 = m1 - m2 - m3;
                }
                {
                    var m0 = Vector128.Load(m + 2 * S); var m1 = Vector128.Load(m + 6 * S); var m2 = Vector128.Load(m + 10 * S); var m3 = Vector128.Load(m + 14 * S);
                    s02 = m0 + m1 + m2; s12 = m1 - m2 - m3;
                }
                {
                    var m0 = Vector128.Load(m + 3 * S); var m1 = Vector128.Load(m + 7 * S); var m2 = Vector128.Load(m + 11 * S); var m3 = Vector128.Load(m + 15 * S);
                    s03 = m0 + m1 + m2; s13 = m1 - m2 - m3;
                }
                var vb = Vector128.Create(bias);
                StoreRow(s00 + s01 + s02 + vb, s01 - s02 - s03 + vb, relu, plane, h, w, y0, x0);
                StoreRow(s10 + s11 + s12 + vb, s11 - s12 - s13 + vb, relu, plane, h, w, y0 + 1, x0);
            }

            /// <summary>4 tiles' left and right outputs interleaved into 8 pixels of row yr, clipped to the map.</summary>
            [MethodImpl(MethodImplOptions.AggressiveInlining), SkipLocalsInit]
            static unsafe void StoreRow(Vector128<float> left, Vector128<float> right, bool relu, float* plane, int h, int w, int yr, int x0)
            {
                if (yr >= h) return;
                if (relu) { left = Vector128.Max(left, Vector128<float>.Zero); right = Vector128.Max(right, Vector128<float>.Zero); }
                var first = Lanes128.ZipLow(left, right);    // tiles 0, 1
                var second = Lanes128.ZipHigh(left, right);  // tiles 2, 3
                float* dst = plane + (long)yr * w + x0;
                if (x0 + 8 <= w) { first.Store(dst); second.Store(dst + 4); return; }
                float* tmp = stackalloc float[8];
                first.Store(tmp); second.Store(tmp + 4);
                for (int k = 0; k < w - x0; k++) dst[k] = tmp[k];
            }

            /// <summary>F(4×4): <see cref="CpuWinograd.InputTransform8x4"/> as its two lane groups — the even tiles into
            /// v[…0…3], the odd ones into v[…4…7], where the AVX2 kernel's low and high lanes put them.</summary>
            internal static unsafe void InputTransform8x4(float* src, int wq, float* v, int vStride)
            {
                InputTransform4x4(src, wq, v, vStride);
                InputTransform4x4(src + 4, wq, v + 4, vStride);
            }

            /// <summary>4 tiles 8 columns apart (src the first patch's corner): a patch row's columns 0…3 of the 4 tiles
            /// by a 4×4 transpose of the 16 floats at 0, 8, 16, 24; columns 4, 5 from those 4 further on.</summary>
            [SkipLocalsInit]
            static unsafe void InputTransform4x4(float* src, int wq, float* v, int vStride)
            {
                var e = stackalloc Vector128<float>[36];   // e[6i + b]: (d B)[i][b]
                for (int i = 0; i < 6; i++, src += wq)
                {
                    var d0 = Vector128.Load(src); var d1 = Vector128.Load(src + 8); var d2 = Vector128.Load(src + 16); var d3 = Vector128.Load(src + 24);
                    Lanes128.Transpose(ref d0, ref d1, ref d2, ref d3);
                    var d4 = Vector128.Load(src + 4); var d5 = Vector128.Load(src + 12); var n2 = Vector128.Load(src + 20); var n3 = Vector128.Load(src + 28);
                    Lanes128.Transpose(ref d4, ref d5, ref n2, ref n3);
                    var r = e + 6 * i;
                    InputLine(d0, d1, d2, d3, d4, d5, out r[0], out r[1], out r[2], out r[3], out r[4], out r[5]);
                }
                for (int b = 0; b < 6; b++)
                {
                    InputLine(e[b], e[6 + b], e[12 + b], e[18 + b], e[24 + b], e[30 + b], out var v0, out var v1, out var v2, out var v3, out var v4, out var v5);
                    float* at = v + b * vStride;
                    int step = 6 * vStride;
                    v0.Store(at); v1.Store(at + step); v2.Store(at + 2 * step);
                    v3.Store(at + 3 * step); v4.Store(at + 4 * step); v5.Store(at + 5 * step);
                }
            }

            /// <summary>Bᵀ·(d0…d5), as <see cref="CpuWinograd.InputLine8"/> (−a·b + c is fma(−a, b, c): negation is exact).</summary>
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            static void InputLine(Vector128<float> d0, Vector128<float> d1, Vector128<float> d2, Vector128<float> d3,
                Vector128<float> d4, Vector128<float> d5, out Vector128<float> o0, out Vector128<float> o1, out Vector128<float> o2,
                out Vector128<float> o3, out Vector128<float> o4, out Vector128<float> o5)
            {
                var four = Vector128.Create(4f); var two = Vector128.Create(2f);
                var minusFour = Vector128.Create(-4f); var minusFive = Vector128.Create(-5f);
                o0 = Lanes128.Fma(minusFive, d2, Lanes128.Fma(four, d0, d4));        // 4d0 − 5d2 + d4
                o1 = Lanes128.Fma(minusFour, d1 + d2, d3 + d4);                      // −4(d1 + d2) + d3 + d4
                o2 = Lanes128.Fma(four, d1 - d2, d4) - d3;                           // 4(d1 − d2) − d3 + d4
                o3 = Lanes128.Fma(two, d3 - d1, d4) - d2;                            // 2(d3 − d1) − d2 + d4
                o4 = Lanes128.Fma(two, d1 - d3, d4) - d2;                            // 2(d1 − d3) − d2 + d4
                o5 = Lanes128.Fma(minusFive, d3, Lanes128.Fma(four, d1, d5));        // 4d1 − 5d3 + d5
            }

            /// <summary>Aᵀ·(m0…m5), as <see cref="CpuWinograd.OutputLine8"/>.</summary>
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            static void OutputLine(Vector128<float> m0, Vector128<float> m1, Vector128<float> m2, Vector128<float> m3,
                Vector128<float> m4, Vector128<float> m5, out Vector128<float> y0, out Vector128<float> y1, out Vector128<float> y2, out Vector128<float> y3)
            {
                var a12 = m1 + m2; var s12 = m1 - m2;
                var a34 = m3 + m4; var s34 = m3 - m4;
                y0 = m0 + a12 + a34;
                y1 = Lanes128.Fma(Vector128.Create(2f), s34, s12);
                y2 = Lanes128.Fma(Vector128.Create(4f), a34, a12);
                y3 = Lanes128.Fma(Vector128.Create(8f), s34, s12) + m5;
            }

            /// <summary>F(4×4): <see cref="CpuWinograd.OutputTransform8x4"/>. The even tiles' M at m, the odd ones' at m + 4;
            /// after the transposes tile 2k's 4 pixels are even[k] and tile 2k+1's odd[k], stored in pixel order.</summary>
            [SkipLocalsInit]
            internal static unsafe void OutputTransform8x4(float* m, float bias, bool relu, float* plane, int h, int w, int y0, int x0)
            {
                const int S = ChannelBlock * Strip;
                var se = stackalloc Vector128<float>[24];   // s[4b + p]: (Aᵀ M)[p][b], even tiles
                var so = stackalloc Vector128<float>[24];   // odd tiles
                for (int b = 0; b < 6; b++)
                {
                    float* mb = m + b * S;
                    OutputLine(Vector128.Load(mb), Vector128.Load(mb + 6 * S), Vector128.Load(mb + 12 * S),
                        Vector128.Load(mb + 18 * S), Vector128.Load(mb + 24 * S), Vector128.Load(mb + 30 * S),
                        out se[4 * b], out se[4 * b + 1], out se[4 * b + 2], out se[4 * b + 3]);
                    OutputLine(Vector128.Load(mb + 4), Vector128.Load(mb + 4 + 6 * S), Vector128.Load(mb + 4 + 12 * S),
                        Vector128.Load(mb + 4 + 18 * S), Vector128.Load(mb + 4 + 24 * S), Vector128.Load(mb + 4 + 30 * S),
                        out so[4 * b], out so[4 * b + 1], out so[4 * b + 2], out so[4 * b + 3]);
                }
                var vb = Vector128.Create(bias);
                float* tmp = stackalloc float[32];
                for (int p = 0; p < 4 && y0 + p < h; p++)
                {
                    OutputLine(se[p], se[4 + p], se[8 + p], se[12 + p], se[16 + p], se[20 + p], out var e0, out var e1, out var e2, out var e3);
                    OutputLine(so[p], so[4 + p], so[8 + p], so[12 + p], so[16 + p], so[20 + p], out var o0, out var o1, out var o2, out var o3);
                    e0 += vb; e1 += vb; e2 += vb; e3 += vb; o0 += vb; o1 += vb; o2 += vb; o3 += vb;
                    if (relu)
                    {
                        var z = Vector128<float>.Zero;
                        e0 = Vector128.Max(e0, z); e1 = Vector128.Max(e1, z); e2 = Vector128.Max(e2, z); e3 = Vector128.Max(e3, z);
                        o0 = Vector128.Max(o0, z); o1 = Vector128.Max(o1, z); o2 = Vector128.Max(o2, z); o3 = Vector128.Max(o3, z);
                    }
                    Lanes128.Transpose(ref e0, ref e1, ref e2, ref e3);
                    Lanes128.Transpose(ref o0, ref o1, ref o2, ref o3);
                    float* dst = plane + (long)(y0 + p) * w + x0;
                    float* to = x0 + 32 <= w ? dst : tmp;
                    e0.Store(to); o0.Store(to + 4); e1.Store(to + 8); o1.Store(to + 12);
                    e2.Store(to + 16); o2.Store(to + 20); e3.Store(to + 24); o3.Store(to + 28);
                    if (to == tmp) for (int k = 0; k < w - x0; k++) dst[k] = tmp[k];
                }
            }

            // The GEMM micro-kernels: tile[r][0…cols) (+)= Σ_i u[i·uStride + r] · v[i·vStride + 0…cols), r = 0…3, the
            // tile's rows tileStride floats apart. Winograd's GEMMs, the Gram forward (both from one panel) and the Gram
            // backward (dF += S·F) share them; the AVX2 code has a kernel for each.
            /// <summary>4 × 24: 24 accumulators (4 rows × 6 vectors), 6 loads and 4 broadcasts a step: 31 of NEON's 32 registers.</summary>
            [MethodImpl(MethodImplOptions.AggressiveOptimization)]
            internal static unsafe void Gemm4x24(float* v, int vStride, float* u, int uStride, float* tile, int tileStride, int cn, GemmStart start)
            {
                float* t1 = tile + tileStride, t2 = t1 + tileStride, t3 = t2 + tileStride;
                Vector128<float> a00, a01, a02, a03, a04, a05, a10, a11, a12, a13, a14, a15, a20, a21, a22, a23, a24, a25, a30, a31, a32, a33, a34, a35;
                if (start == GemmStart.Load)
                {
                    a00 = Vector128.Load(tile); a01 = Vector128.Load(tile + 4); a02 = Vector128.Load(tile + 8); a03 = Vector128.Load(tile + 12); a04 = Vector128.Load(tile + 16); a05 = Vector128.Load(tile + 20);
                    a10 = Vector128.Load(t1); a11 = Vector128.Load(t1 + 4); a12 = Vector128.Load(t1 + 8); a13 = Vector128.Load(t1 + 12); a14 = Vector128.Load(t1 + 16); a15 = Vector128.Load(t1 + 20);
                    a20 = Vector128.Load(t2); a21 = Vector128.Load(t2 + 4); a22 = Vector128.Load(t2 + 8); a23 = Vector128.Load(t2 + 12); a24 = Vector128.Load(t2 + 16); a25 = Vector128.Load(t2 + 20);
                    a30 = Vector128.Load(t3); a31 = Vector128.Load(t3 + 4); a32 = Vector128.Load(t3 + 8); a33 = Vector128.Load(t3 + 12); a34 = Vector128.Load(t3 + 16); a35 = Vector128.Load(t3 + 20);
                }
                else a00 = a01 = a02 = a03 = a04 = a05 = a10 = a11 = a12 = a13 = a14 = a15 = a20 = a21 = a22 = a23 = a24 = a25 = a30 = a31 = a32 = a33 = a34 = a35 = Vector128<float>.Zero;
                for (int i = 0; i < cn; i++, v += vStride, u += uStride)
                {
                    var v0 = Vector128.Load(v); var v1 = Vector128.Load(v + 4); var v2 = Vector128.Load(v + 8); var v3 = Vector128.Load(v + 12); var v4 = Vector128.Load(v + 16); var v5 = Vector128.Load(v + 20);
                    var w0 = Vector128.Create(u[0]);
                    a00 = Lanes128.Fma(w0, v0, a00); a01 = Lanes128.Fma(w0, v1, a01); a02 = Lanes128.Fma(w0, v2, a02); a03 = Lanes128.Fma(w0, v3, a03); a04 = Lanes128.Fma(w0, v4, a04); a05 = Lanes128.Fma(w0, v5, a05);
                    var w1 = Vector128.Create(u[1]);
                    a10 = Lanes128.Fma(w1, v0, a10); a11 = Lanes128.Fma(w1, v1, a11); a12 = Lanes128.Fma(w1, v2, a12); a13 = Lanes128.Fma(w1, v3, a13); a14 = Lanes128.Fma(w1, v4, a14); a15 = Lanes128.Fma(w1, v5, a15);
                    var w2 = Vector128.Create(u[2]);
                    a20 = Lanes128.Fma(w2, v0, a20); a21 = Lanes128.Fma(w2, v1, a21); a22 = Lanes128.Fma(w2, v2, a22); a23 = Lanes128.Fma(w2, v3, a23); a24 = Lanes128.Fma(w2, v4, a24); a25 = Lanes128.Fma(w2, v5, a25);
                    var w3 = Vector128.Create(u[3]);
                    a30 = Lanes128.Fma(w3, v0, a30); a31 = Lanes128.Fma(w3, v1, a31); a32 = Lanes128.Fma(w3, v2, a32); a33 = Lanes128.Fma(w3, v3, a33); a34 = Lanes128.Fma(w3, v4, a34); a35 = Lanes128.Fma(w3, v5, a35);
                }
                if (start == GemmStart.Add)
                {
                    (Vector128.Load(tile) + a00).Store(tile); (Vector128.Load(tile + 4) + a01).Store(tile + 4); (Vector128.Load(tile + 8) + a02).Store(tile + 8);
                    (Vector128.Load(tile + 12) + a03).Store(tile + 12); (Vector128.Load(tile + 16) + a04).Store(tile + 16); (Vector128.Load(tile + 20) + a05).Store(tile + 20);
                    (Vector128.Load(t1) + a10).Store(t1); (Vector128.Load(t1 + 4) + a11).Store(t1 + 4); (Vector128.Load(t1 + 8) + a12).Store(t1 + 8);
                    (Vector128.Load(t1 + 12) + a13).Store(t1 + 12); (Vector128.Load(t1 + 16) + a14).Store(t1 + 16); (Vector128.Load(t1 + 20) + a15).Store(t1 + 20);
                    (Vector128.Load(t2) + a20).Store(t2); (Vector128.Load(t2 + 4) + a21).Store(t2 + 4); (Vector128.Load(t2 + 8) + a22).Store(t2 + 8);
                    (Vector128.Load(t2 + 12) + a23).Store(t2 + 12); (Vector128.Load(t2 + 16) + a24).Store(t2 + 16); (Vector128.Load(t2 + 20) + a25).Store(t2 + 20);
                    (Vector128.Load(t3) + a30).Store(t3); (Vector128.Load(t3 + 4) + a31).Store(t3 + 4); (Vector128.Load(t3 + 8) + a32).Store(t3 + 8);
                    (Vector128.Load(t3 + 12) + a33).Store(t3 + 12); (Vector128.Load(t3 + 16) + a34).Store(t3 + 16); (Vector128.Load(t3 + 20) + a35).Store(t3 + 20);
                    return;
                }
                a00.Store(tile); a01.Store(tile + 4); a02.Store(tile + 8); a03.Store(tile + 12); a04.Store(tile + 16); a05.Store(tile + 20);
                a10.Store(t1); a11.Store(t1 + 4); a12.Store(t1 + 8); a13.Store(t1 + 12); a14.Store(t1 + 16); a15.Store(t1 + 20);
                a20.Store(t2); a21.Store(t2 + 4); a22.Store(t2 + 8); a23.Store(t2 + 12); a24.Store(t2 + 16); a25.Store(t2 + 20);
                a30.Store(t3); a31.Store(t3 + 4); a32.Store(t3 + 8); a33.Store(t3 + 12); a34.Store(t3 + 16); a35.Store(t3 + 20);
            }

            /// <summary>4 × 16: 16 accumulators, for the 16-wide strips at the ends of rows.</summary>
            [MethodImpl(MethodImplOptions.AggressiveOptimization)]
            internal static unsafe void Gemm4x16(float* v, int vStride, float* u, int uStride, float* tile, int tileStride, int cn, GemmStart start)
            {
                float* t1 = tile + tileStride, t2 = t1 + tileStride, t3 = t2 + tileStride;
                Vector128<float> a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33;
                if (start == GemmStart.Load)
                {
                    a00 = Vector128.Load(tile); a01 = Vector128.Load(tile + 4); a02 = Vector128.Load(tile + 8); a03 = Vector128.Load(tile + 12);
                    a10 = Vector128.Load(t1); a11 = Vector128.Load(t1 + 4); a12 = Vector128.Load(t1 + 8); a13 = Vector128.Load(t1 + 12);
                    a20 = Vector128.Load(t2); a21 = Vector128.Load(t2 + 4); a22 = Vector128.Load(t2 + 8); a23 = Vector128.Load(t2 + 12);
                    a30 = Vector128.Load(t3); a31 = Vector128.Load(t3 + 4); a32 = Vector128.Load(t3 + 8); a33 = Vector128.Load(t3 + 12);
                }
                else a00 = a01 = a02 = a03 = a10 = a11 = a12 = a13 = a20 = a21 = a22 = a23 = a30 = a31 = a32 = a33 = Vector128<float>.Zero;
                for (int i = 0; i < cn; i++, v += vStride, u += uStride)
                {
                    var v0 = Vector128.Load(v); var v1 = Vector128.Load(v + 4); var v2 = Vector128.Load(v + 8); var v3 = Vector128.Load(v + 12);
                    var w0 = Vector128.Create(u[0]);
                    a00 = Lanes128.Fma(w0, v0, a00); a01 = Lanes128.Fma(w0, v1, a01); a02 = Lanes128.Fma(w0, v2, a02); a03 = Lanes128.Fma(w0, v3, a03);
                    var w1 = Vector128.Create(u[1]);
                    a10 = Lanes128.Fma(w1, v0, a10); a11 = Lanes128.Fma(w1, v1, a11); a12 = Lanes128.Fma(w1, v2, a12); a13 = Lanes128.Fma(w1, v3, a13);
                    var w2 = Vector128.Create(u[2]);
                    a20 = Lanes128.Fma(w2, v0, a20); a21 = Lanes128.Fma(w2, v1, a21); a22 = Lanes128.Fma(w2, v2, a22); a23 = Lanes128.Fma(w2, v3, a23);
                    var w3 = Vector128.Create(u[3]);
                    a30 = Lanes128.Fma(w3, v0, a30); a31 = Lanes128.Fma(w3, v1, a31); a32 = Lanes128.Fma(w3, v2, a32); a33 = Lanes128.Fma(w3, v3, a33);
                }
                if (start == GemmStart.Add)
                {
                    (Vector128.Load(tile) + a00).Store(tile); (Vector128.Load(tile + 4) + a01).Store(tile + 4); (Vector128.Load(tile + 8) + a02).Store(tile + 8);
                    (Vector128.Load(tile + 12) + a03).Store(tile + 12);
                    (Vector128.Load(t1) + a10).Store(t1); (Vector128.Load(t1 + 4) + a11).Store(t1 + 4); (Vector128.Load(t1 + 8) + a12).Store(t1 + 8);
                    (Vector128.Load(t1 + 12) + a13).Store(t1 + 12);
                    (Vector128.Load(t2) + a20).Store(t2); (Vector128.Load(t2 + 4) + a21).Store(t2 + 4); (Vector128.Load(t2 + 8) + a22).Store(t2 + 8);
                    (Vector128.Load(t2 + 12) + a23).Store(t2 + 12);
                    (Vector128.Load(t3) + a30).Store(t3); (Vector128.Load(t3 + 4) + a31).Store(t3 + 4); (Vector128.Load(t3 + 8) + a32).Store(t3 + 8);
                    (Vector128.Load(t3 + 12) + a33).Store(t3 + 12);
                    return;
                }
                a00.Store(tile); a01.Store(tile + 4); a02.Store(tile + 8); a03.Store(tile + 12);
                a10.Store(t1); a11.Store(t1 + 4); a12.Store(t1 + 8); a13.Store(t1 + 12);
                a20.Store(t2); a21.Store(t2 + 4); a22.Store(t2 + 8); a23.Store(t2 + 12);
                a30.Store(t3); a31.Store(t3 + 4); a32.Store(t3 + 8); a33.Store(t3 + 12);
            }

            /// <summary>4 × 8: 8 accumulators, for the Gram backward's last columns of a chunk.</summary>
            [MethodImpl(MethodImplOptions.AggressiveOptimization)]
            internal static unsafe void Gemm4x8(float* v, int vStride, float* u, int uStride, float* tile, int tileStride, int cn, GemmStart start)
            {
                float* t1 = tile + tileStride, t2 = t1 + tileStride, t3 = t2 + tileStride;
                Vector128<float> a00, a01, a10, a11, a20, a21, a30, a31;
                if (start == GemmStart.Load)
                {
                    a00 = Vector128.Load(tile); a01 = Vector128.Load(tile + 4);
                    a10 = Vector128.Load(t1); a11 = Vector128.Load(t1 + 4);
                    a20 = Vector128.Load(t2); a21 = Vector128.Load(t2 + 4);
                    a30 = Vector128.Load(t3); a31 = Vector128.Load(t3 + 4);
                }
                else a00 = a01 = a10 = a11 = a20 = a21 = a30 = a31 = Vector128<float>.Zero;
                for (int i = 0; i < cn; i++, v += vStride, u += uStride)
                {
                    var v0 = Vector128.Load(v); var v1 = Vector128.Load(v + 4);
                    var w0 = Vector128.Create(u[0]);
                    a00 = Lanes128.Fma(w0, v0, a00); a01 = Lanes128.Fma(w0, v1, a01);
                    var w1 = Vector128.Create(u[1]);
                    a10 = Lanes128.Fma(w1, v0, a10); a11 = Lanes128.Fma(w1, v1, a11);
                    var w2 = Vector128.Create(u[2]);
                    a20 = Lanes128.Fma(w2, v0, a20); a21 = Lanes128.Fma(w2, v1, a21);
                    var w3 = Vector128.Create(u[3]);
                    a30 = Lanes128.Fma(w3, v0, a30); a31 = Lanes128.Fma(w3, v1, a31);
                }
                if (start == GemmStart.Add)
                {
                    (Vector128.Load(tile) + a00).Store(tile); (Vector128.Load(tile + 4) + a01).Store(tile + 4);
                    (Vector128.Load(t1) + a10).Store(t1); (Vector128.Load(t1 + 4) + a11).Store(t1 + 4);
                    (Vector128.Load(t2) + a20).Store(t2); (Vector128.Load(t2 + 4) + a21).Store(t2 + 4);
                    (Vector128.Load(t3) + a30).Store(t3); (Vector128.Load(t3 + 4) + a31).Store(t3 + 4);
                    return;
                }
                a00.Store(tile); a01.Store(tile + 4);
                a10.Store(t1); a11.Store(t1 + 4);
                a20.Store(t2); a21.Store(t2 + 4);
                a30.Store(t3); a31.Store(t3 + 4);
            }        }
    }

    /// <summary>
    /// Winograd F(2×2, 3×3) on ILGPU, fp32 (`--conv winograd`): three kernels a pass — the input transform, 16 GEMMs
    /// as one launch, the output transform — over as many tiles as the scratch allows (V and M each ≤
    /// WinogradScratch floats: 16 MB by default, so memory stays bounded at any size and V and M stay in L2).
    ///   U[ξ][ci][co]  (16 × CinPad × CoutPad: the weights, transformed by one launch a call, zero past Cin/Cout)
    ///   V[ξ][ci][t]   (16 × CinPad × TilesPad: zero past Cin and past the pass's tiles)
    ///   M[ξ][co][t] = Σ_ci U[ξ][ci][co] · V[ξ][ci][t]
    /// The GEMM is the classic shared-memory SGEMM: a group computes a BM × BN block of M (output channels × tiles)
    /// with BM·BN/64 threads, 8×8 a thread as two 4-row quadrants BM/2 apart × two 4-column quadrants BN/2 apart,
    /// so that each k is 4 conflict-free 128-bit shared loads for 64 FMAs (the blocked convolution: 8 for 96);
    /// k advances 8 input channels a stage (A: 8 × BM, B: 8 × BN floats, one Float4 a thread each at 128 × 128).
    /// Counted at 512² VGG16 against the blocked kernel (measured 12–15 TFLOP/s on an H200): 4/9 of the products,
    /// and the GEMM has no halo, taps or edges. V and M are written once and read once (the GEMM's blocks re-read
    /// them from L2): 7.2 GB an iteration at 512², ≈ 2 ms were it all DRAM traffic — hence passes small enough for
    /// L2. Expected at 512² VGG16: 133 GFLOP of GEMMs (301 direct), ≈ 4.5–6.5 ms at 20–30 TFLOP/s plus ≈ 1 ms of
    /// transforms, against ≈ 20–24 ms of blocked convolutions measured.
    /// </summary>
    public static class IlgpuWinograd
    {
        public const int KChunk = 8;

        public static int Pad(int n, int multiple) => (n + multiple - 1) / multiple * multiple;

        /// <summary>Tiles a pass takes: as many as V and M (<paramref name="positions"/> = 16, or 36 for F(4×4, 3×3),
        /// values a tile and channel) fit in <paramref name="scratchFloats"/> each, in whole BN-wide column blocks, at
        /// most all of them.</summary>
        public static int TilesPerPass(int cinPad, int coutPad, int tiles, int bn, long scratchFloats, int positions = 16)
        {
            long fit = scratchFloats / ((long)positions * Math.Max(cinPad, coutPad)) / bn * bn;
            return (int)Math.Max(bn, Math.Min(fit, Pad(tiles, bn)));
        }

        /// <summary>One thread a (ci, co) pair of the padded U: its 16 values (zero past Cin or Cout). With flip, the
        /// backward's kernel W′[co][ci][t] = w[ci][co][8−t] (cin, cout are then the backward's: w is cout × cin × 9
        /// read as [ci][co]). With mma, for <see cref="GemmTensorCore"/>: U[ξ][co][ci] (A row-major), TF32-rounded.</summary>
        [KernelName("winograd_weights")]
        public static void TransformWeights(Index1D index, ArrayView<float> w, ArrayView<float> u, int cin, int cout,
            int cinPad, int coutPad, int flip, int mma)
        {
            int co = index % coutPad, ci = index / coutPad;
            ReadKernel(w, ci, co, cin, cout, flip, out float g0, out float g1, out float g2, out float g3, out float g4,
                out float g5, out float g6, out float g7, out float g8);
            // G·g (rows a = 0..3 of three columns), then (G·g)·Gᵀ: U[a][b].
            long plane = (long)cinPad * coutPad, at = mma != 0 ? (long)co * cinPad + ci : (long)ci * coutPad + co;
            WeightRow(u, at, plane, 0, g0, g1, g2, mma);
            WeightRow(u, at, plane, 1, (g0 + g3 + g6) * 0.5f, (g1 + g4 + g7) * 0.5f, (g2 + g5 + g8) * 0.5f, mma);
            WeightRow(u, at, plane, 2, (g0 - g3 + g6) * 0.5f, (g1 - g4 + g7) * 0.5f, (g2 - g5 + g8) * 0.5f, mma);
            WeightRow(u, at, plane, 3, g6, g7, g8, mma);
        }

        /// <summary>The 3×3 kernel from input ci to output co (zero past Cin or Cout), row-major; with flip the
        /// backward's W′[co][ci][t] = w[ci][co][8−t] (w is then read as [ci][co]).</summary>
        static void ReadKernel(ArrayView<float> w, int ci, int co, int cin, int cout, int flip, out float g0, out float g1, out float g2,
            out float g3, out float g4, out float g5, out float g6, out float g7, out float g8)
        {
            g0 = g1 = g2 = g3 = g4 = g5 = g6 = g7 = g8 = 0f;
            if (ci >= cin || co >= cout) return;
            if (flip == 0)
            {
                long b = ((long)co * cin + ci) * 9;
                g0 = w[b]; g1 = w[b + 1]; g2 = w[b + 2]; g3 = w[b + 3]; g4 = w[b + 4]; g5 = w[b + 5]; g6 = w[b + 6]; g7 = w[b + 7]; g8 = w[b + 8];
            }
            else
            {
                long b = ((long)ci * cout + co) * 9;
                g0 = w[b + 8]; g1 = w[b + 7]; g2 = w[b + 6]; g3 = w[b + 5]; g4 = w[b + 4]; g5 = w[b + 3]; g6 = w[b + 2]; g7 = w[b + 1]; g8 = w[b];
            }
        }

        static void WeightRow(ArrayView<float> u, long at, long plane, int a, float h0, float h1, float h2, int round)
        {
            u[at + (4 * a) * plane] = Tf32If(round, h0);
            u[at + (4 * a + 1) * plane] = Tf32If(round, (h0 + h1 + h2) * 0.5f);
            u[at + (4 * a + 2) * plane] = Tf32If(round, (h0 - h1 + h2) * 0.5f);
            u[at + (4 * a + 3) * plane] = Tf32If(round, h2);
        }

        static float Tf32If(int round, float v) => round != 0 ? IlgpuTensorCore.RoundTf32(v) : v;

        /// <summary>One thread a (ci, tile) of the pass (tiles t0 … t0+tiles−1 of the map's ⌈H/2⌉·⌈W/2⌉, row by row):
        /// V = Bᵀ d B of the 4×4 patch at rows 2r−1…2r+2, columns 2c−1…2c+2 (zero outside the map; with useMask, x
        /// only where mask &gt; 0: ReLU's backward). Padding rows and columns of V get zeros. Consecutive threads take
        /// consecutive tiles, so V's stores are coalesced. gather: how the patch is loaded (WinogradGather, see Load).</summary>
        [KernelName("winograd_input")]
        public static void TransformInput(Index1D index, ArrayView<float> x, ArrayView<float> mask, ArrayView<float> v,
            int c, int h, int w, int cinPad, int tilesPad, int t0, int tiles, int useMask, int gather)
        {
            int t = index % tilesPad, ci = index / tilesPad;
            long plane = (long)cinPad * tilesPad, at = (long)ci * tilesPad + t;
            float d00 = 0, d01 = 0, d02 = 0, d03 = 0, d10 = 0, d11 = 0, d12 = 0, d13 = 0;
            float d20 = 0, d21 = 0, d22 = 0, d23 = 0, d30 = 0, d31 = 0, d32 = 0, d33 = 0;
            if (ci < c && t < tiles)
            {
                int tw = (w + 1) / 2, tile = t0 + t, r = tile / tw, col = tile - r * tw;
                int y0 = 2 * r - 1, x0 = 2 * col - 1;
                long basePlane = (long)ci * h * w;
                // The gather choice made once, for the whole patch (see Load): inside, each Load's is a constant.
                Float4 r0, r1, r2, r3;
                if (gather != 0)
                {
                    r0 = PatchRow4(x, mask, useMask, 1, basePlane, h, w, y0, x0); r1 = PatchRow4(x, mask, useMask, 1, basePlane, h, w, y0 + 1, x0);
                    r2 = PatchRow4(x, mask, useMask, 1, basePlane, h, w, y0 + 2, x0); r3 = PatchRow4(x, mask, useMask, 1, basePlane, h, w, y0 + 3, x0);
                }
                else
                {
                    r0 = PatchRow4(x, mask, useMask, 0, basePlane, h, w, y0, x0); r1 = PatchRow4(x, mask, useMask, 0, basePlane, h, w, y0 + 1, x0);
                    r2 = PatchRow4(x, mask, useMask, 0, basePlane, h, w, y0 + 2, x0); r3 = PatchRow4(x, mask, useMask, 0, basePlane, h, w, y0 + 3, x0);
                }
                d00 = r0.A; d01 = r0.B; d02 = r0.C; d03 = r0.D; d10 = r1.A; d11 = r1.B; d12 = r1.C; d13 = r1.D;
                d20 = r2.A; d21 = r2.B; d22 = r2.C; d23 = r2.D; d30 = r3.A; d31 = r3.B; d32 = r3.C; d33 = r3.D;
            }
            // Bᵀ·d: rows 0 − 2, 1 + 2, 2 − 1, 1 − 3; then ·B on each row: columns 0 − 2, 1 + 2, 2 − 1, 1 − 3.
            InputRow(v, at, plane, 0, d00 - d20, d01 - d21, d02 - d22, d03 - d23);
            InputRow(v, at, plane, 1, d10 + d20, d11 + d21, d12 + d22, d13 + d23);
            InputRow(v, at, plane, 2, d20 - d10, d21 - d11, d22 - d12, d23 - d13);
            InputRow(v, at, plane, 3, d10 - d30, d11 - d31, d12 - d32, d13 - d33);
        }

        /// <summary>x at (yy, xx) of the plane, zero outside the map, and with useMask zero where mask ≤ 0. With
        /// <paramref name="gather"/> 0 (WinogradGather, the default) each load behind its branches (the bounds, then the
        /// mask's test): the sm_90 SASS waits for every load before issuing the next — 16 round trips a thread in
        /// F(2×2)'s transform, 36 in F(4×4)'s. With 1 without branches: a pixel outside reads element 0 and is zeroed
        /// after, so that a tile's loads are all in flight together. Expected faster; measured slower on an H200
        /// (2026-11-28: 6.71 ms a fp32 512² iteration against 6.59 — 78 registers a thread against 68: fewer warps, and
        /// they and L1 hid the round trips already), so opt-in.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static float Load(ArrayView<float> x, ArrayView<float> mask, int useMask, int gather, long basePlane, int h, int w, int yy, int xx)
        {
            bool inside = yy >= 0 && yy < h && xx >= 0 && xx < w;
            if (gather == 0)
            {
                if (!inside) return 0f;
                long at = basePlane + (long)yy * w + xx;
                float v = x[at];
                return useMask != 0 && mask[at] <= 0f ? 0f : v;
            }
            return IlgpuTiled.LoadMasked(x, mask, useMask, inside, basePlane + (long)yy * w + xx);
        }

        /// <summary>Row yy of F(2×2)'s 4×4 patch, columns x0 … x0+3 (see <see cref="Load"/>).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Float4 PatchRow4(ArrayView<float> x, ArrayView<float> mask, int useMask, int gather, long basePlane, int h, int w, int yy, int x0) => new()
        {
            A = Load(x, mask, useMask, gather, basePlane, h, w, yy, x0), B = Load(x, mask, useMask, gather, basePlane, h, w, yy, x0 + 1),
            C = Load(x, mask, useMask, gather, basePlane, h, w, yy, x0 + 2), D = Load(x, mask, useMask, gather, basePlane, h, w, yy, x0 + 3),
        };

        static void InputRow(ArrayView<float> v, long at, long plane, int a, float e0, float e1, float e2, float e3)
        {
            v[at + (4 * a) * plane] = e0 - e2;
            v[at + (4 * a + 1) * plane] = e1 + e2;
            v[at + (4 * a + 2) * plane] = e2 - e1;
            v[at + (4 * a + 3) * plane] = e1 - e3;
        }

        /// <summary>Threads a GEMM group needs, and its shared floats (A's and B's 8-row stages).</summary>
        public static int Threads(int bm, int bn) => bm * bn / 64;
        public static int SharedFloats(int bm, int bn) => 2 * KChunk * (bm + bn);   // two stages (one without prefetch)

        /// <summary>Grid (TilesPad/BN, CoutPad/BM, batches), group BM·BN/64 threads (BM and BN multiples of 16): the
        /// SGEMM C[z] (=, or += with accumulate) A[z]ᵀ·B[z] with A[z] CinPad × CoutPad, B[z] CinPad × TilesPad and C[z]
        /// CoutPad × TilesPad, all row-major and back to back, z = grid z. For Winograd M[ξ] = U[ξ]ᵀ · V[ξ] (16
        /// batches); for the fp32 Gram backward (GramGemm) dF += S·F in one batch (S symmetric, so Sᵀ = S). Every size
        /// is a multiple of its block (CinPad of 8, CoutPad of BM, TilesPad of BN), so nothing is bounds-checked. With prefetch (and BM, BN ≥ 64, so that a thread stages at most 2 Float4s of each
        /// operand) the next stage's loads are issued into registers before the current stage's 512 FMAs and stored
        /// into the other of two shared stages after them: the loads' latency hides behind the arithmetic, and one
        /// barrier a stage instead of two.</summary>
        [KernelName("sgemm_8x8")]
        public static void Gemm(ArrayView<float> u, ArrayView<float> v, ArrayView<float> m, int cinPad, int coutPad,
            int tilesPad, int bm, int bn, int prefetch, int accumulate) =>
            GemmBlocks(u, v, m, cinPad, coutPad, tilesPad, bm, bn, prefetch, accumulate);

        /// <summary><see cref="Gemm"/> for 128 × 128 blocks, prefetching (bm, bn and prefetch are ignored): the block
        /// sides are constants, so that every shared-memory offset of a stage's 8 steps is an immediate of its load
        /// (ptxas for sm_90: FMAs 79–80% of a stage's instructions here, 512 of 638–645, the rest mostly register
        /// moves at the loop's end; ≈ 66% in the general kernel, whose loads need their own address arithmetic).</summary>
        [KernelName("sgemm_8x8_128x128")]
        public static void Gemm128x128(ArrayView<float> u, ArrayView<float> v, ArrayView<float> m, int cinPad, int coutPad,
            int tilesPad, int bm, int bn, int prefetch, int accumulate) =>
            GemmBlocks(u, v, m, cinPad, coutPad, tilesPad, 128, 128, 1, 0);

        /// <summary><see cref="Gemm"/> for 64 × 128 blocks (64-channel layers), prefetching, its sides constants.</summary>
        [KernelName("sgemm_8x8_64x128")]
        public static void Gemm64x128(ArrayView<float> u, ArrayView<float> v, ArrayView<float> m, int cinPad, int coutPad,
            int tilesPad, int bm, int bn, int prefetch, int accumulate) =>
            GemmBlocks(u, v, m, cinPad, coutPad, tilesPad, 64, 128, 1, 0);

        // The accumulating GEMM (the fp32 Gram backward, dF += S·F) has entry points of its own: its epilogue holds
        // the 16 old vectors in registers (147 registers a thread for sm_90 at 128×128, against 128), which, in the
        // kernels Winograd runs (accumulate 0), would have halved their groups an SM.

        /// <summary><see cref="Gemm128x128"/> adding to C (accumulate and the block arguments are ignored).</summary>
        [KernelName("sgemm_8x8_128x128_accumulate")]
        public static void Gemm128x128Accumulate(ArrayView<float> u, ArrayView<float> v, ArrayView<float> m, int cinPad, int coutPad,
            int tilesPad, int bm, int bn, int prefetch, int accumulate) =>
            GemmBlocks(u, v, m, cinPad, coutPad, tilesPad, 128, 128, 1, 1);

        /// <summary><see cref="Gemm64x128"/> adding to C.</summary>
        [KernelName("sgemm_8x8_64x128_accumulate")]
        public static void Gemm64x128Accumulate(ArrayView<float> u, ArrayView<float> v, ArrayView<float> m, int cinPad, int coutPad,
            int tilesPad, int bm, int bn, int prefetch, int accumulate) =>
            GemmBlocks(u, v, m, cinPad, coutPad, tilesPad, 64, 128, 1, 1);

        /// <summary>The SGEMM kernel for a block shape, prefetch setting and whether it adds to C: one with the sides
        /// (and the accumulation) as constants where there is one, else the general <see cref="Gemm"/>.</summary>
        public static Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int, int>
            GemmFor(int bm, int bn, int prefetch, int accumulate) => (bm, bn, prefetch, accumulate) switch
            {
                (128, 128, not 0, 0) => Gemm128x128,
                (64, 128, not 0, 0) => Gemm64x128,
                (128, 128, not 0, _) => Gemm128x128Accumulate,
                (64, 128, not 0, _) => Gemm64x128Accumulate,
                _ => Gemm,
            };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void GemmBlocks(ArrayView<float> u, ArrayView<float> v, ArrayView<float> m, int cinPad, int coutPad,
            int tilesPad, int bm, int bn, int prefetch, int accumulate)
        {
            int tid = Group.IdxX;
            int bm4 = bm / 4, bn4 = bn / 4, cols = bn / 8;   // Float4s a stage row; threads along a row of the block
            int tx = tid % cols, ty = tid / cols;
            int xi = Grid.IdxZ, m0 = Grid.IdxY * bm, n0 = Grid.IdxX * bn;
            int aStage = KChunk * bm4, bStage = KChunk * bn4;
            var shared4 = Float4.SharedDynamic();
            var a4 = shared4.SubView(0, 2 * aStage);
            var b4 = shared4.SubView(2 * aStage, 2 * bStage);
            var u4 = u.Cast<Float4>();
            var v4 = v.Cast<Float4>();
            int coutPad4 = coutPad / 4, tilesPad4 = tilesPad / 4;
            long uBase = (long)xi * cinPad * coutPad4 + m0 / 4, vBase = (long)xi * cinPad * tilesPad4 + n0 / 4;
            var acc = new Block8x8();
            // Staging: a thread copies Float4 q of stage rows k, k + BN/16, … of A (BM·BN/64 threads are BN/16 rows of
            // BM/4) and likewise of B — its row and column divided out once, not per element.
            int aRow = tid / bm4, aCol = tid - aRow * bm4, aStep = bn / 16;
            int bRow = tid / bn4, bCol = tid - bRow * bn4, bStep = bm / 16;
            bool pre = prefetch != 0 && aStep >= KChunk / 2 && bStep >= KChunk / 2;
            bool aTwo = aRow + aStep < KChunk, bTwo = bRow + bStep < KChunk;
            long aAt0 = uBase + (long)aRow * coutPad4 + aCol, aAt1 = aAt0 + (long)aStep * coutPad4;
            long bAt0 = vBase + (long)bRow * tilesPad4 + bCol, bAt1 = bAt0 + (long)bStep * tilesPad4;
            int aTo0 = aRow * bm4 + aCol, aTo1 = aTo0 + aStep * bm4, bTo0 = bRow * bn4 + bCol, bTo1 = bTo0 + bStep * bn4;
            Float4 pa0 = default, pa1 = default, pb0 = default, pb1 = default;
            if (pre)
            {
                a4[aTo0] = u4[aAt0]; if (aTwo) a4[aTo1] = u4[aAt1];
                b4[bTo0] = v4[bAt0]; if (bTwo) b4[bTo1] = v4[bAt1];
                Group.Barrier();
            }
            int stage = 0;
            for (int k0 = 0; k0 < cinPad; k0 += KChunk)
            {
                bool more = k0 + KChunk < cinPad;
                if (!pre)
                {
                    for (int k = aRow; k < KChunk; k += aStep)
                        a4[k * bm4 + aCol] = u4[uBase + (long)(k0 + k) * coutPad4 + aCol];
                    for (int k = bRow; k < KChunk; k += bStep)
                        b4[k * bn4 + bCol] = v4[vBase + (long)(k0 + k) * tilesPad4 + bCol];
                    Group.Barrier();
                }
                else if (more)
                {
                    long ua = (long)(k0 + KChunk) * coutPad4, vb = (long)(k0 + KChunk) * tilesPad4;
                    pa0 = u4[aAt0 + ua]; if (aTwo) pa1 = u4[aAt1 + ua];
                    pb0 = v4[bAt0 + vb]; if (bTwo) pb1 = v4[bAt1 + vb];
                }
                // The stage's 8 steps written out (KChunk = 8), so that with constant block sides each load's offset
                // is an immediate and ptxas can issue a step's loads during the previous step's FMAs.
                long aS = (long)stage * aStage + ty, bS = (long)stage * bStage + tx;
                StepAt(ref acc, a4, b4, aS, bS, 0, bm4, bn4); StepAt(ref acc, a4, b4, aS, bS, 1, bm4, bn4);
                StepAt(ref acc, a4, b4, aS, bS, 2, bm4, bn4); StepAt(ref acc, a4, b4, aS, bS, 3, bm4, bn4);
                StepAt(ref acc, a4, b4, aS, bS, 4, bm4, bn4); StepAt(ref acc, a4, b4, aS, bS, 5, bm4, bn4);
                StepAt(ref acc, a4, b4, aS, bS, 6, bm4, bn4); StepAt(ref acc, a4, b4, aS, bS, 7, bm4, bn4);
                if (pre && more)
                {
                    int aN = (stage ^ 1) * aStage, bN = (stage ^ 1) * bStage;
                    a4[aN + aTo0] = pa0; if (aTwo) a4[aN + aTo1] = pa1;
                    b4[bN + bTo0] = pb0; if (bTwo) b4[bN + bTo1] = pb1;
                }
                Group.Barrier();
                if (pre) stage ^= 1;
            }
            var m4 = m.Cast<Float4>();
            long row0 = (long)xi * coutPad + m0 + ty * 4, row4 = row0 + bm / 2;
            long c0 = n0 / 4 + tx, c1 = c0 + bn4 / 2;
            if (accumulate != 0)
            {
                // The 16 old vectors loaded before the first store (Put after Put, each load waited behind the previous
                // store: 16 round trips a thread in the fp32 Gram backward, the one caller that accumulates; see Gram.Old).
                acc.R0L = Plus(acc.R0L, m4[row0 * tilesPad4 + c0]); acc.R0H = Plus(acc.R0H, m4[row0 * tilesPad4 + c1]);
                acc.R1L = Plus(acc.R1L, m4[(row0 + 1) * tilesPad4 + c0]); acc.R1H = Plus(acc.R1H, m4[(row0 + 1) * tilesPad4 + c1]);
                acc.R2L = Plus(acc.R2L, m4[(row0 + 2) * tilesPad4 + c0]); acc.R2H = Plus(acc.R2H, m4[(row0 + 2) * tilesPad4 + c1]);
                acc.R3L = Plus(acc.R3L, m4[(row0 + 3) * tilesPad4 + c0]); acc.R3H = Plus(acc.R3H, m4[(row0 + 3) * tilesPad4 + c1]);
                acc.R4L = Plus(acc.R4L, m4[row4 * tilesPad4 + c0]); acc.R4H = Plus(acc.R4H, m4[row4 * tilesPad4 + c1]);
                acc.R5L = Plus(acc.R5L, m4[(row4 + 1) * tilesPad4 + c0]); acc.R5H = Plus(acc.R5H, m4[(row4 + 1) * tilesPad4 + c1]);
                acc.R6L = Plus(acc.R6L, m4[(row4 + 2) * tilesPad4 + c0]); acc.R6H = Plus(acc.R6H, m4[(row4 + 2) * tilesPad4 + c1]);
                acc.R7L = Plus(acc.R7L, m4[(row4 + 3) * tilesPad4 + c0]); acc.R7H = Plus(acc.R7H, m4[(row4 + 3) * tilesPad4 + c1]);
            }
            Put(m4, row0 * tilesPad4 + c0, acc.R0L); Put(m4, row0 * tilesPad4 + c1, acc.R0H);
            Put(m4, (row0 + 1) * tilesPad4 + c0, acc.R1L); Put(m4, (row0 + 1) * tilesPad4 + c1, acc.R1H);
            Put(m4, (row0 + 2) * tilesPad4 + c0, acc.R2L); Put(m4, (row0 + 2) * tilesPad4 + c1, acc.R2H);
            Put(m4, (row0 + 3) * tilesPad4 + c0, acc.R3L); Put(m4, (row0 + 3) * tilesPad4 + c1, acc.R3H);
            Put(m4, row4 * tilesPad4 + c0, acc.R4L); Put(m4, row4 * tilesPad4 + c1, acc.R4H);
            Put(m4, (row4 + 1) * tilesPad4 + c0, acc.R5L); Put(m4, (row4 + 1) * tilesPad4 + c1, acc.R5H);
            Put(m4, (row4 + 2) * tilesPad4 + c0, acc.R6L); Put(m4, (row4 + 2) * tilesPad4 + c1, acc.R6H);
            Put(m4, (row4 + 3) * tilesPad4 + c0, acc.R7L); Put(m4, (row4 + 3) * tilesPad4 + c1, acc.R7H);
        }

        /// <summary>Step k of a stage: A's 8 values of row k (two Float4s half a block apart), B's likewise.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void StepAt(ref Block8x8 acc, ArrayView<Float4> a4, ArrayView<Float4> b4, long aS, long bS, long k, int bm4, int bn4)
        {
            long ak = aS + k * bm4, bk = bS + k * bn4;
            acc.Step(a4[ak], a4[ak + bm4 / 2], b4[bk], b4[bk + bn4 / 2]);
        }

        /// <summary>C's 4 floats at <paramref name="at"/> = the block's.</summary>
        static void Put(ArrayView<Float4> c, long at, Float4 v) => c[at] = v;

        /// <summary>The block's 4 floats plus the old ones.</summary>
        static Float4 Plus(Float4 v, Float4 old) => new() { A = v.A + old.A, B = v.B + old.B, C = v.C + old.C, D = v.D + old.D };

        // F(4×4, 3×3) (WinogradTile=4): 36 products per 4×4 outputs and channel pair instead of 144 — 1.78× fewer than
        // F(2×2, 3×3)'s 16 per 4 — and V and M 36/16 of the map's size instead of 16/4: less traffic too. The
        // interpolation points 0, ±1, ±2, ∞ (Lavin & Gray):
        //   Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]
        //   G  = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1/24 1/12 ⅙; 1/24 −1/12 ⅙; 0 0 1]
        //   Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
        // Their entries reach 5 and 8, so rounding grows more than F(2×2)'s (still ~1e-6 of the outputs in fp32).
        // Each 2-D transform is the 1-D one down the columns, then along the rows (the 6×6 transposes are register
        // names, no data movement).

        /// <summary>Bᵀ·d for one line of 6 inputs.</summary>
        public static Six InputLine(Six d) => new(4 * d.A - 5 * d.C + d.E, d.D + d.E - 4 * (d.B + d.C), 4 * (d.B - d.C) - d.D + d.E,
            2 * (d.D - d.B) - d.C + d.E, 2 * (d.B - d.D) - d.C + d.E, 4 * d.B - 5 * d.D + d.F);

        /// <summary>G·g for one line of 3 weights.</summary>
        public static Six WeightLine(float g0, float g1, float g2) => new(g0 * 0.25f, -(g0 + g1 + g2) / 6f, -(g0 - g1 + g2) / 6f,
            g0 / 24f + g1 / 12f + g2 / 6f, g0 / 24f - g1 / 12f + g2 / 6f, g2);

        /// <summary>Aᵀ·m for one line of 6 products: 4 outputs.</summary>
        public static Float4 OutputLine(Six m) => new()
        {
            A = m.A + m.B + m.C + m.D + m.E,
            B = m.B - m.C + 2 * (m.D - m.E),
            C = m.B + m.C + 4 * (m.D + m.E),
            D = m.B - m.C + 8 * (m.D - m.E) + m.F,
        };

        /// <summary>U = G g Gᵀ (36 values, ξ = 6a + b) of one 3×3 kernel g (row-major k0…k8).</summary>
        public static void WeightTile4(float k0, float k1, float k2, float k3, float k4, float k5, float k6, float k7, float k8,
            out Six u0, out Six u1, out Six u2, out Six u3, out Six u4, out Six u5)
        {
            Six c0 = WeightLine(k0, k3, k6), c1 = WeightLine(k1, k4, k7), c2 = WeightLine(k2, k5, k8);   // columns: (G g)[a][kx]
            u0 = WeightLine(c0.A, c1.A, c2.A); u1 = WeightLine(c0.B, c1.B, c2.B); u2 = WeightLine(c0.C, c1.C, c2.C);
            u3 = WeightLine(c0.D, c1.D, c2.D); u4 = WeightLine(c0.E, c1.E, c2.E); u5 = WeightLine(c0.F, c1.F, c2.F);
        }

        /// <summary>V = Bᵀ d B of a 6×6 patch given as its rows.</summary>
        public static void InputTile4(Six r0, Six r1, Six r2, Six r3, Six r4, Six r5,
            out Six v0, out Six v1, out Six v2, out Six v3, out Six v4, out Six v5)
        {
            Six c0 = InputLine(new(r0.A, r1.A, r2.A, r3.A, r4.A, r5.A)), c1 = InputLine(new(r0.B, r1.B, r2.B, r3.B, r4.B, r5.B));
            Six c2 = InputLine(new(r0.C, r1.C, r2.C, r3.C, r4.C, r5.C)), c3 = InputLine(new(r0.D, r1.D, r2.D, r3.D, r4.D, r5.D));
            Six c4 = InputLine(new(r0.E, r1.E, r2.E, r3.E, r4.E, r5.E)), c5 = InputLine(new(r0.F, r1.F, r2.F, r3.F, r4.F, r5.F));
            v0 = InputLine(new(c0.A, c1.A, c2.A, c3.A, c4.A, c5.A)); v1 = InputLine(new(c0.B, c1.B, c2.B, c3.B, c4.B, c5.B));
            v2 = InputLine(new(c0.C, c1.C, c2.C, c3.C, c4.C, c5.C)); v3 = InputLine(new(c0.D, c1.D, c2.D, c3.D, c4.D, c5.D));
            v4 = InputLine(new(c0.E, c1.E, c2.E, c3.E, c4.E, c5.E)); v5 = InputLine(new(c0.F, c1.F, c2.F, c3.F, c4.F, c5.F));
        }

        /// <summary>Y = Aᵀ M A (4×4) of a tile's 36 products given as rows of M.</summary>
        public static void OutputTile4(Six m0, Six m1, Six m2, Six m3, Six m4, Six m5,
            out Float4 y0, out Float4 y1, out Float4 y2, out Float4 y3)
        {
            Float4 c0 = OutputLine(new(m0.A, m1.A, m2.A, m3.A, m4.A, m5.A)), c1 = OutputLine(new(m0.B, m1.B, m2.B, m3.B, m4.B, m5.B));
            Float4 c2 = OutputLine(new(m0.C, m1.C, m2.C, m3.C, m4.C, m5.C)), c3 = OutputLine(new(m0.D, m1.D, m2.D, m3.D, m4.D, m5.D));
            Float4 c4 = OutputLine(new(m0.E, m1.E, m2.E, m3.E, m4.E, m5.E)), c5 = OutputLine(new(m0.F, m1.F, m2.F, m3.F, m4.F, m5.F));
            y0 = OutputLine(new(c0.A, c1.A, c2.A, c3.A, c4.A, c5.A)); y1 = OutputLine(new(c0.B, c1.B, c2.B, c3.B, c4.B, c5.B));
            y2 = OutputLine(new(c0.C, c1.C, c2.C, c3.C, c4.C, c5.C)); y3 = OutputLine(new(c0.D, c1.D, c2.D, c3.D, c4.D, c5.D));
        }

        /// <summary>As <see cref="TransformWeights"/>, for F(4×4, 3×3): U's 36 values of a (ci, co) pair.</summary>
        [KernelName("winograd4_weights")]
        public static void TransformWeights4(Index1D index, ArrayView<float> w, ArrayView<float> u, int cin, int cout,
            int cinPad, int coutPad, int flip, int mma)
        {
            int co = index % coutPad, ci = index / coutPad;
            ReadKernel(w, ci, co, cin, cout, flip, out float g0, out float g1, out float g2, out float g3, out float g4,
                out float g5, out float g6, out float g7, out float g8);
            WeightTile4(g0, g1, g2, g3, g4, g5, g6, g7, g8, out var u0, out var u1, out var u2, out var u3, out var u4, out var u5);
            long plane = (long)cinPad * coutPad, at = mma != 0 ? (long)co * cinPad + ci : (long)ci * coutPad + co;
            StoreLine(u, at, plane, 0, u0, mma); StoreLine(u, at, plane, 1, u1, mma); StoreLine(u, at, plane, 2, u2, mma);
            StoreLine(u, at, plane, 3, u3, mma); StoreLine(u, at, plane, 4, u4, mma); StoreLine(u, at, plane, 5, u5, mma);
        }

        static void StoreLine(ArrayView<float> t, long at, long plane, int a, Six line, int round)
        {
            long row = at + 6L * a * plane;
            t[row] = Tf32If(round, line.A); t[row + plane] = Tf32If(round, line.B); t[row + 2 * plane] = Tf32If(round, line.C);
            t[row + 3 * plane] = Tf32If(round, line.D); t[row + 4 * plane] = Tf32If(round, line.E); t[row + 5 * plane] = Tf32If(round, line.F);
        }

        /// <summary>As <see cref="TransformInput"/>, for F(4×4, 3×3): the 6×6 patch at rows 4r−1…4r+4, columns
        /// 4c−1…4c+4 of tile (r, c) of the ⌈H/4⌉·⌈W/4⌉.</summary>
        [KernelName("winograd4_input")]
        public static void TransformInput4(Index1D index, ArrayView<float> x, ArrayView<float> mask, ArrayView<float> v,
            int c, int h, int w, int cinPad, int tilesPad, int t0, int tiles, int useMask, int gather)
        {
            int t = index % tilesPad, ci = index / tilesPad;
            long plane = (long)cinPad * tilesPad, at = (long)ci * tilesPad + t;
            Six r0 = default, r1 = default, r2 = default, r3 = default, r4 = default, r5 = default;
            if (ci < c && t < tiles)
            {
                int tw = (w + 3) / 4, tile = t0 + t, r = tile / tw, col = tile - r * tw;
                int y0 = 4 * r - 1, x0 = 4 * col - 1;
                long basePlane = (long)ci * h * w;
                // The gather choice made once, for the whole patch (see Load): inside, each Load's is a constant.
                if (gather != 0)
                {
                    r0 = PatchRow(x, mask, useMask, 1, basePlane, h, w, y0, x0); r1 = PatchRow(x, mask, useMask, 1, basePlane, h, w, y0 + 1, x0);
                    r2 = PatchRow(x, mask, useMask, 1, basePlane, h, w, y0 + 2, x0); r3 = PatchRow(x, mask, useMask, 1, basePlane, h, w, y0 + 3, x0);
                    r4 = PatchRow(x, mask, useMask, 1, basePlane, h, w, y0 + 4, x0); r5 = PatchRow(x, mask, useMask, 1, basePlane, h, w, y0 + 5, x0);
                }
                else
                {
                    r0 = PatchRow(x, mask, useMask, 0, basePlane, h, w, y0, x0); r1 = PatchRow(x, mask, useMask, 0, basePlane, h, w, y0 + 1, x0);
                    r2 = PatchRow(x, mask, useMask, 0, basePlane, h, w, y0 + 2, x0); r3 = PatchRow(x, mask, useMask, 0, basePlane, h, w, y0 + 3, x0);
                    r4 = PatchRow(x, mask, useMask, 0, basePlane, h, w, y0 + 4, x0); r5 = PatchRow(x, mask, useMask, 0, basePlane, h, w, y0 + 5, x0);
                }
            }
            InputTile4(r0, r1, r2, r3, r4, r5, out var v0, out var v1, out var v2, out var v3, out var v4, out var v5);
            StoreLine(v, at, plane, 0, v0, 0); StoreLine(v, at, plane, 1, v1, 0); StoreLine(v, at, plane, 2, v2, 0);
            StoreLine(v, at, plane, 3, v3, 0); StoreLine(v, at, plane, 4, v4, 0); StoreLine(v, at, plane, 5, v5, 0);
        }

        /// <summary>Row yy of F(4×4)'s 6×6 patch, columns x0 … x0+5 (see <see cref="Load"/>).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Six PatchRow(ArrayView<float> x, ArrayView<float> mask, int useMask, int gather, long basePlane, int h, int w, int yy, int x0) => new(
            Load(x, mask, useMask, gather, basePlane, h, w, yy, x0), Load(x, mask, useMask, gather, basePlane, h, w, yy, x0 + 1),
            Load(x, mask, useMask, gather, basePlane, h, w, yy, x0 + 2), Load(x, mask, useMask, gather, basePlane, h, w, yy, x0 + 3),
            Load(x, mask, useMask, gather, basePlane, h, w, yy, x0 + 4), Load(x, mask, useMask, gather, basePlane, h, w, yy, x0 + 5));

        /// <summary>As <see cref="TransformOutput"/>, for F(4×4, 3×3): the 4×4 outputs of a tile that lie in the map.</summary>
        [KernelName("winograd4_output")]
        public static void TransformOutput4(Index1D index, ArrayView<float> m, ArrayView<float> b, ArrayView<float> y,
            int cout, int h, int w, int coutPad, int tilesPad, int t0, int tiles, int relu, int hasBias)
        {
            int t = index % tiles, co = index / tiles;
            long plane = (long)coutPad * tilesPad, at = (long)co * tilesPad + t;
            OutputTile4(MRow(m, at, plane, 0), MRow(m, at, plane, 1), MRow(m, at, plane, 2), MRow(m, at, plane, 3),
                MRow(m, at, plane, 4), MRow(m, at, plane, 5), out var y0, out var y1, out var y2, out var y3);
            float bias = hasBias != 0 ? b[co] : 0f;
            int tw = (w + 3) / 4, tile = t0 + t, r = tile / tw, col = tile - r * tw, oy = 4 * r, ox = 4 * col;
            long o = ((long)co * h + oy) * w + ox;
            StoreRow4(y, o, y0, bias, relu, w - ox);
            if (oy + 1 < h) StoreRow4(y, o + w, y1, bias, relu, w - ox);
            if (oy + 2 < h) StoreRow4(y, o + 2 * w, y2, bias, relu, w - ox);
            if (oy + 3 < h) StoreRow4(y, o + 3 * w, y3, bias, relu, w - ox);
        }

        static Six MRow(ArrayView<float> m, long at, long plane, int a)
        {
            long row = at + 6L * a * plane;
            return new(m[row], m[row + plane], m[row + 2 * plane], m[row + 3 * plane], m[row + 4 * plane], m[row + 5 * plane]);
        }

        static void StoreRow4(ArrayView<float> y, long o, Float4 v, float bias, int relu, int room)
        {
            StoreOutput(y, o, v.A + bias, relu);
            if (room > 1) StoreOutput(y, o + 1, v.B + bias, relu);
            if (room > 2) StoreOutput(y, o + 2, v.C + bias, relu);
            if (room > 3) StoreOutput(y, o + 3, v.D + bias, relu);
        }

        /// <summary>
        /// The GEMMs on tensor cores (WinogradMma=1: TF32 products, fp32 sums): grid (TilesPad/side, CoutPad/side, 16),
        /// group and shared memory as the TF32 Gram backward (<see cref="Gram.IlgpuTensorCore"/>, side = 32·warpsSide),
        /// whose block it shares (<c>NnBlock</c>: mma.sync m16n8k8 from row-major A and B tiles, the convolution's
        /// fragment layout and emulation). U from <see cref="TransformWeights"/> with mma (A = U[ξ], CoutPad × CinPad),
        /// V as for <see cref="Gemm"/> (rounded to TF32 while staged). Both TF32 roundings apply to transformed values,
        /// up to ≈ 4× the inputs and 2.25× the weights: expect errors a few times the TF32 convolution's.
        /// </summary>
        [KernelName("winograd_gemm_tf32_mma")]
        public static void GemmTensorCore(ArrayView<float> u, ArrayView<float> v, ArrayView<float> m, int cinPad, int coutPad,
            int tilesPad, int warpsSide, int batch)
        {
            int side = Gram.IlgpuTensorCore.Side(warpsSide), xi = Grid.IdxZ, i0 = Grid.IdxY * side;
            long j0 = (long)Grid.IdxX * side;
            var acc = Gram.IlgpuTensorCore.NnBlock(u, (long)xi * coutPad * cinPad, cinPad, coutPad,
                v, (long)xi * cinPad * tilesPad, tilesPad, tilesPad, cinPad, i0, j0, warpsSide, batch);
            int warp = Group.IdxX >> 5, lane = Group.IdxX & 31, wm = warp / warpsSide, wn = warp - wm * warpsSide;
            Gram.IlgpuTensorCore.Store(m, (long)xi * coutPad, coutPad, tilesPad, i0 + wm * 32 + (lane >> 2), j0 + wn * 32 + 2 * (lane & 3),
                acc, 1f, accumulate: 0);
        }

        /// <summary>One thread a (co, tile) of the pass: y = Aᵀ M A (+ bias, ReLU) into the 2×2 outputs that lie in the map.</summary>
        [KernelName("winograd_output")]
        public static void TransformOutput(Index1D index, ArrayView<float> m, ArrayView<float> b, ArrayView<float> y,
            int cout, int h, int w, int coutPad, int tilesPad, int t0, int tiles, int relu, int hasBias)
        {
            int t = index % tiles, co = index / tiles;
            long plane = (long)coutPad * tilesPad, at = (long)co * tilesPad + t;
            // Aᵀ·M: s0 = m0 + m1 + m2, s1 = m1 − m2 − m3 down each column b.
            float s00 = m[at] + m[at + 4 * plane] + m[at + 8 * plane], s10 = m[at + 4 * plane] - m[at + 8 * plane] - m[at + 12 * plane];
            float s01 = m[at + plane] + m[at + 5 * plane] + m[at + 9 * plane], s11 = m[at + 5 * plane] - m[at + 9 * plane] - m[at + 13 * plane];
            float s02 = m[at + 2 * plane] + m[at + 6 * plane] + m[at + 10 * plane], s12 = m[at + 6 * plane] - m[at + 10 * plane] - m[at + 14 * plane];
            float s03 = m[at + 3 * plane] + m[at + 7 * plane] + m[at + 11 * plane], s13 = m[at + 7 * plane] - m[at + 11 * plane] - m[at + 15 * plane];
            float bias = hasBias != 0 ? b[co] : 0f;
            int tw = (w + 1) / 2, tile = t0 + t, r = tile / tw, col = tile - r * tw;
            int oy = 2 * r, ox = 2 * col;
            long o = ((long)co * h + oy) * w + ox;
            StoreOutput(y, o, s00 + s01 + s02 + bias, relu);
            if (ox + 1 < w) StoreOutput(y, o + 1, s01 - s02 - s03 + bias, relu);
            if (oy + 1 < h)
            {
                StoreOutput(y, o + w, s10 + s11 + s12 + bias, relu);
                if (ox + 1 < w) StoreOutput(y, o + w + 1, s11 - s12 - s13 + bias, relu);
            }
        }

        static void StoreOutput(ArrayView<float> y, long i, float z, int relu) => y[i] = relu != 0 && z < 0f ? 0f : z;
    }
}
