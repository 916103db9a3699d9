// 3×3 convolution, stride 1, zero padding 1, with bias and an optional fused ReLU.
//
// Forward (x: Cin×H×W, w: Cout×Cin×3×3, b: Cout):
//   z[o,y,x] = b[o] + Σ_{i,ky,kx} w[o,i,ky,kx] · x[i, y+ky−1, x+kx−1]     (x outside the map reads as 0)
//   y = ReLU(z) when fused, else y = z.
// Backward to the input (the weights are fixed, so no weight gradient is ever needed):
//   dz = dy ⊙ [y > 0]  (ReLU's backward, fused: y > 0 ⇔ z > 0)
//   dx[i,y,x] = Σ_{o,ky,kx} w[o,i,ky,kx] · dz[o, y−ky+1, x−kx+1]            (a "full" correlation with the
//   kernel flipped, i.e. the transposed convolution)
// FLOPs: 2·Cout·Cin·9·H·W for the forward, the same for the backward.
// The backward is itself a forward convolution: dx = conv(dz, W') with W'[i,o,ky,kx] = w[o,i,2−ky,2−kx] (the kernel
// transposed in its channels and flipped in space), no bias, no ReLU. The CPU version uses that: one fast kernel.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ILGPU;

namespace GpuStyle.Kernels;

/// <summary>The sizes of one convolution, passed to kernels by value.</summary>
public struct ConvDims
{
    public int Cin, Cout, H, W;
    public ConvDims(int cin, int cout, int h, int w) { Cin = cin; Cout = cout; H = h; W = w; }
}

public static class Conv3x3
{
    /// <summary>The float64 reference: four nested loops, obviously right.</summary>
    public static class Reference
    {
        public static double[] Forward(double[] x, double[] w, double[] b, ConvDims d, bool relu)
        {
            var y = new double[d.Cout * d.H * d.W];
            for (int o = 0; o < d.Cout; o++)
                for (int r = 0; r < d.H; r++)
                    for (int c = 0; c < d.W; c++)
                    {
                        double z = b[o];
                        for (int i = 0; i < d.Cin; i++)
                            for (int ky = 0; ky < 3; ky++)
                                for (int kx = 0; kx < 3; kx++)
                                {
                                    int sr = r + ky - 1, sc = c + kx - 1;
                                    if (sr < 0 || sr >= d.H || sc < 0 || sc >= d.W) continue;
                                    z += w[((o * d.Cin + i) * 3 + ky) * 3 + kx] * x[(i * d.H + sr) * d.W + sc];
                                }
                        y[(o * d.H + r) * d.W + c] = relu ? Math.Max(z, 0) : z;
                    }
            return y;
        }

        /// <summary>Scatters each output gradient back along the forward's own index map (so it cannot disagree
        /// with the forward about which input feeds which output).</summary>
        public static double[] BackwardInput(double[] dy, double[]? reluOutput, double[] w, ConvDims d)
        {
            var dx = new double[d.Cin * d.H * d.W];
            for (int o = 0; o < d.Cout; o++)
                for (int r = 0; r < d.H; r++)
                    for (int c = 0; c < d.W; c++)
                    {
                        int yi = (o * d.H + r) * d.W + c;
                        double dz = reluOutput is null || reluOutput[yi] > 0 ? dy[yi] : 0;
                        if (dz == 0) continue;
                        for (int i = 0; i < d.Cin; i++)
                            for (int ky = 0; ky < 3; ky++)
                                for (int kx = 0; kx < 3; kx++)
                                {
                                    int sr = r + ky - 1, sc = c + kx - 1;
                                    if (sr < 0 || sr >= d.H || sc < 0 || sc >= d.W) continue;
                                    dx[(i * d.H + sr) * d.W + sc] += w[((o * d.Cin + i) * 3 + ky) * 3 + kx] * dz;
                                }
                    }
            return dx;
        }
    }

    /// <summary>ILGPU kernels, version 1: one thread per output element, direct loops (a gather, no atomics).</summary>
    public static class Ilgpu
    {
        /// <summary>Launch with Cout·H·W threads.</summary>
        public static void Forward(Index1D index, ArrayView<float> x, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu)
        {
            int plane = d.H * d.W;
            int o = index / plane;
            int p = index - o * plane;
            int r = p / d.W;
            int c = p - r * d.W;
            float z = b[o];
            for (int i = 0; i < d.Cin; i++)
            {
                int wBase = (o * d.Cin + i) * 9;
                int xBase = i * plane;
                for (int ky = 0; ky < 3; ky++)
                {
                    int sr = r + ky - 1;
                    if (sr < 0 || sr >= d.H) continue;
                    for (int kx = 0; kx < 3; kx++)
                    {
                        int sc = c + kx - 1;
                        if (sc < 0 || sc >= d.W) continue;
                        z += w[wBase + ky * 3 + kx] * x[xBase + sr * d.W + sc];
                    }
                }
            }
            y[index] = relu != 0 && z < 0f ? 0f : z;
        }

        /// <summary>Launch with Cin·H·W threads. When <paramref name="maskByOutput"/> is 1, dy is masked by
        /// reluOutput &gt; 0 (ReLU's backward fused); otherwise reluOutput is not read.</summary>
        public static void BackwardInput(Index1D index, ArrayView<float> dy, ArrayView<float> reluOutput,
            ArrayView<float> w, ArrayView<float> dx, ConvDims d, int maskByOutput)
        {
            int plane = d.H * d.W;
            int i = index / plane;
            int p = index - i * plane;
            int r = p / d.W;
            int c = p - r * d.W;
            float acc = 0f;
            for (int o = 0; o < d.Cout; o++)
            {
                int wBase = (o * d.Cin + i) * 9;
                int yBase = o * plane;
                for (int ky = 0; ky < 3; ky++)
                {
                    int orow = r - ky + 1;   // the output row whose window put weight row ky on input row r
                    if (orow < 0 || orow >= d.H) continue;
                    for (int kx = 0; kx < 3; kx++)
                    {
                        int ocol = c - kx + 1;
                        if (ocol < 0 || ocol >= d.W) continue;
                        int yi = yBase + orow * d.W + ocol;
                        float g = dy[yi];
                        if (maskByOutput != 0 && reluOutput[yi] <= 0f) g = 0f;
                        acc += w[wBase + ky * 3 + kx] * g;
                    }
                }
            }
            dx[index] = acc;
        }
    }
    /// <summary>
    /// The vectorised CPU version: a register-blocked direct convolution. The input is first copied into a
    /// zero-bordered buffer (so the inner loop has no bounds checks), the weights are packed once per layer as
    /// [Cout/4][Cin][9 taps][4] (so the four weights of a tap are adjacent), and each work item computes 4 output
    /// channels × 24 pixels of one output row in 12 AVX2 registers: per tap, 3 loads + 4 broadcasts feed 12 FMAs.
    /// Work items (channel block, row, 24-pixel strip) are spread over all cores.
    /// </summary>
    public static class Cpu
    {
        public const int ChannelBlock = 4;
        public const int Strip = 24;
        public const int NarrowStrip = 16;

        /// <summary>True when the AVX2+FMA path runs; otherwise the scalar fallback does (same packing, same order).</summary>
        public static bool VectorSupported => Avx2.IsSupported && Fma.IsSupported;

        /// <summary>Row stride of the padded input: room for the border and for the last strip's full loads.</summary>
        public static int PaddedWidth(int w) => (w + 7) / 8 * 8 + Strip;
        public static int PaddedSize(int c, int h, int w) => c * (h + 2) * PaddedWidth(w);

        /// <summary>w[Cout][Cin][3][3] → [⌈Cout/4⌉][Cin][9][4], zero for the padding channels.</summary>
        public static float[] PackForward(ReadOnlySpan<float> w, int cin, int cout)
        {
            int blocks = (cout + ChannelBlock - 1) / ChannelBlock;
            var packed = new float[blocks * cin * 9 * ChannelBlock];
            for (int o = 0; o < cout; o++)
                for (int i = 0; i < cin; i++)
                    for (int t = 0; t < 9; t++)
                        packed[(((o / ChannelBlock) * cin + i) * 9 + t) * ChannelBlock + o % ChannelBlock] = w[(o * cin + i) * 9 + t];
            return packed;
        }

        /// <summary>The backward's kernel W'[i][o][t] = w[o][i][8−t] (channels swapped, taps flipped), packed the same way.</summary>
        public static float[] PackBackward(ReadOnlySpan<float> w, int cin, int cout)
        {
            var flipped = new float[w.Length];
            for (int o = 0; o < cout; o++)
                for (int i = 0; i < cin; i++)
                    for (int t = 0; t < 9; t++)
                        flipped[(i * cout + o) * 9 + t] = w[(o * cin + i) * 9 + 8 - t];
            return PackForward(flipped, cout, cin);
        }

        /// <summary>
        /// Copies x (C×H×W) into the zero-bordered buffer p (C×(H+2)×PaddedWidth). With a mask, an element is kept
        /// only where mask &gt; 0: ReLU's backward, fused into this copy.
        /// </summary>
        public static unsafe void Pad(float[] x, float[]? mask, float[] p, int c, int h, int w)
        {
            int wp = PaddedWidth(w);
            Parallel.For(0, c, ch =>
            {
                var plane = p.AsSpan(ch * (h + 2) * wp, (h + 2) * wp);
                plane[..wp].Clear();
                plane[((h + 1) * wp)..].Clear();
                for (int r = 0; r < h; r++)
                {
                    var dst = plane.Slice((r + 1) * wp, wp);
                    dst[0] = 0;
                    dst[(w + 1)..].Clear();
                    var src = x.AsSpan((ch * h + r) * w, w);
                    if (mask is null) { src.CopyTo(dst[1..]); continue; }
                    var m = mask.AsSpan((ch * h + r) * w, w);
                    int k = 0;
                    if (Vector256.IsHardwareAccelerated)
                        for (; k + 8 <= w; k += 8)   // keep src where mask > 0: an AND with the comparison's all-ones lanes
                            Vector256.BitwiseAnd(Vector256.Create(src[k..]), Vector256.GreaterThan(Vector256.Create(m[k..]), Vector256<float>.Zero))
                                .CopyTo(dst[(k + 1)..]);
                    for (; k < w; k++) dst[k + 1] = m[k] > 0f ? src[k] : 0f;
                }
            });
        }

        /// <summary>y = [ReLU](conv(p) + bias) from the padded input and packed weights; bias may be null.</summary>
        public static unsafe void Convolve(float[] p, float[] packed, float[]? bias, float[] y, int cin, int cout,
            int h, int w, bool relu, bool vector)
        {
            int blocks = (cout + ChannelBlock - 1) / ChannelBlock;
            var (wide, narrow) = Strips(w);
            int strips = wide + narrow;
            int items = blocks * h * strips;
            int wp = PaddedWidth(w);
            // Items run row by row, all channel blocks of a row together: the row's input (Cin × 3 padded rows,
            // 200–250 KB for VGG's layer shapes) stays in L2 while every output channel uses it.
            int chunk = Math.Max(1, items / (Environment.ProcessorCount * 8));
            Parallel.For(0, (items + chunk - 1) / chunk, part =>
            {
                fixed (float* pp = p, pw = packed, pb = bias, py = y)
                {
                    int end = Math.Min(items, (part + 1) * chunk);
                    for (int item = part * chunk; item < end; item++)
                    {
                        int row = item / (blocks * strips);
                        int rest = item - row * blocks * strips;
                        int ob = rest / strips;
                        int strip = rest - ob * strips;
                        int x0 = strip < wide ? strip * Strip : wide * Strip + (strip - wide) * NarrowStrip;
                        int width = strip < wide ? Strip : NarrowStrip;
                        if (vector) Block(pp, pw, pb, py, cin, cout, h, w, wp, ob, row, x0, width, relu);
                        else BlockScalar(pp, pw, pb, py, cin, cout, h, w, wp, ob, row, x0, width, relu);
                    }
                }
            });
        }

        /// <summary>
        /// How a row of w pixels splits into 24-pixel strips and 16-pixel ones, wasting as little as possible: the
        /// widths VGG meets (multiples of 8 from 16 up) split exactly — 32 = 16+16, 64 = 24+24+16, 512 = 20·24+2·16.
        /// </summary>
        public static (int Wide, int Narrow) Strips(int w)
        {
            int units = (w + 7) / 8, wide = units / 3, rest = units % 3;
            if (rest == 1 && wide > 0) return (wide - 1, 2);
            return (wide, rest == 0 ? 0 : 1);
        }

        /// <summary>4 output channels × 24 (or 16) pixels of one output row.</summary>
        static unsafe void Block(float* p, float* pw, float* bias, float* y, int cin, int cout, int h, int w,
            int wp, int ob, int row, int x0, int width, bool relu)
        {
            float* tile = stackalloc float[ChannelBlock * Strip];
            float* r = p + row * wp + x0;
            float* q = pw + (long)ob * cin * 9 * ChannelBlock;
            if (width == Strip) Accumulate4x24(r, q, bias, tile, cin, cout, (h + 2) * wp, wp, ob * ChannelBlock, relu);
            else Accumulate4x16(r, q, bias, tile, cin, cout, (h + 2) * wp, wp, ob * ChannelBlock, relu);
            WriteTile(tile, y, cout, h, w, ob * ChannelBlock, row, x0, width);
        }

        /// <summary>
        /// The micro-kernel. It must contain no calls: on x64 Unix every vector register is caller-saved, so RyuJIT
        /// spills accumulators that live across a call — measured: 16 GFLOP/s with the tile write in here, vs. what
        /// `gpustyle bench` shows without it.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Accumulate4x24(float* r, float* q, float* bias, float* tile, int cin, int cout, int plane,
            int wp, int o0, bool relu)
        {
            var b0 = bias is null || o0 >= cout ? Vector256<float>.Zero : Vector256.Create(bias[o0]);
            var b1 = bias is null || o0 + 1 >= cout ? Vector256<float>.Zero : Vector256.Create(bias[o0 + 1]);
            var b2 = bias is null || o0 + 2 >= cout ? Vector256<float>.Zero : Vector256.Create(bias[o0 + 2]);
            var b3 = bias is null || o0 + 3 >= cout ? Vector256<float>.Zero : Vector256.Create(bias[o0 + 3]);
            Vector256<float> a00 = b0, a01 = b0, a02 = b0, a10 = b1, a11 = b1, a12 = b1;
            Vector256<float> a20 = b2, a21 = b2, a22 = b2, a30 = b3, a31 = b3, a32 = b3;
            for (int i = 0; i < cin; i++, r += plane)      // r: padded row `row` = the output row's upper neighbour
            {
                for (int ky = 0; ky < 3; ky++)
                {
                    float* s = r + ky * wp;
                    for (int kx = 0; kx < 3; kx++, s++, q += ChannelBlock)
                    {
                        var v0 = Avx.LoadVector256(s);
                        var v1 = Avx.LoadVector256(s + 8);
                        var v2 = Avx.LoadVector256(s + 16);
                        var w0 = Vector256.Create(q[0]);
                        a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01); a02 = Fma.MultiplyAdd(w0, v2, a02);
                        var w1 = Vector256.Create(q[1]);
                        a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11); a12 = Fma.MultiplyAdd(w1, v2, a12);
                        var w2 = Vector256.Create(q[2]);
                        a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21); a22 = Fma.MultiplyAdd(w2, v2, a22);
                        var w3 = Vector256.Create(q[3]);
                        a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31); a32 = Fma.MultiplyAdd(w3, v2, a32);
                    }
                }
            }
            if (relu)
            {
                var z = Vector256<float>.Zero;
                a00 = Avx.Max(a00, z); a01 = Avx.Max(a01, z); a02 = Avx.Max(a02, z);
                a10 = Avx.Max(a10, z); a11 = Avx.Max(a11, z); a12 = Avx.Max(a12, z);
                a20 = Avx.Max(a20, z); a21 = Avx.Max(a21, z); a22 = Avx.Max(a22, z);
                a30 = Avx.Max(a30, z); a31 = Avx.Max(a31, z); a32 = Avx.Max(a32, z);
            }
            Avx.Store(tile, a00); Avx.Store(tile + 8, a01); Avx.Store(tile + 16, a02);
            Avx.Store(tile + 24, a10); Avx.Store(tile + 32, a11); Avx.Store(tile + 40, a12);
            Avx.Store(tile + 48, a20); Avx.Store(tile + 56, a21); Avx.Store(tile + 64, a22);
            Avx.Store(tile + 72, a30); Avx.Store(tile + 80, a31); Avx.Store(tile + 88, a32);
        }

        /// <summary>The 16-pixel variant for the ends of rows: 8 accumulators (tile row stride stays 24).</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Accumulate4x16(float* r, float* q, float* bias, float* tile, int cin, int cout, int plane,
            int wp, int o0, bool relu)
        {
            var b0 = bias is null || o0 >= cout ? Vector256<float>.Zero : Vector256.Create(bias[o0]);
            var b1 = bias is null || o0 + 1 >= cout ? Vector256<float>.Zero : Vector256.Create(bias[o0 + 1]);
            var b2 = bias is null || o0 + 2 >= cout ? Vector256<float>.Zero : Vector256.Create(bias[o0 + 2]);
            var b3 = bias is null || o0 + 3 >= cout ? Vector256<float>.Zero : Vector256.Create(bias[o0 + 3]);
            Vector256<float> a00 = b0, a01 = b0, a10 = b1, a11 = b1, a20 = b2, a21 = b2, a30 = b3, a31 = b3;
            for (int i = 0; i < cin; i++, r += plane)
            {
                for (int ky = 0; ky < 3; ky++)
                {
                    float* s = r + ky * wp;
                    for (int kx = 0; kx < 3; kx++, s++, q += ChannelBlock)
                    {
                        var v0 = Avx.LoadVector256(s);
                        var v1 = Avx.LoadVector256(s + 8);
                        var w0 = Vector256.Create(q[0]);
                        a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01);
                        var w1 = Vector256.Create(q[1]);
                        a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11);
                        var w2 = Vector256.Create(q[2]);
                        a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21);
                        var w3 = Vector256.Create(q[3]);
                        a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31);
                    }
                }
            }
            if (relu)
            {
                var z = Vector256<float>.Zero;
                a00 = Avx.Max(a00, z); a01 = Avx.Max(a01, z); a10 = Avx.Max(a10, z); a11 = Avx.Max(a11, z);
                a20 = Avx.Max(a20, z); a21 = Avx.Max(a21, z); a30 = Avx.Max(a30, z); a31 = Avx.Max(a31, z);
            }
            Avx.Store(tile, a00); Avx.Store(tile + 8, a01);
            Avx.Store(tile + 24, a10); Avx.Store(tile + 32, a11);
            Avx.Store(tile + 48, a20); Avx.Store(tile + 56, a21);
            Avx.Store(tile + 72, a30); Avx.Store(tile + 80, a31);
        }

        /// <summary>Copies the valid part of a 4×width tile (channels &lt; cout, pixels &lt; w) into y.</summary>
        static unsafe void WriteTile(float* tile, float* y, int cout, int h, int w, int o0, int row, int x0, int width)
        {
            int valid = Math.Min(width, w - x0);
            for (int o = 0; o < ChannelBlock && o0 + o < cout; o++)
                new ReadOnlySpan<float>(tile + o * Strip, valid).CopyTo(new Span<float>(y + ((long)(o0 + o) * h + row) * w + x0, valid));
        }

        /// <summary>The fallback for CPUs without AVX2/FMA: the same blocking and summation order (unfused multiply-adds).</summary>
        static unsafe void BlockScalar(float* p, float* pw, float* bias, float* y, int cin, int cout, int h, int w,
            int wp, int ob, int row, int x0, int width, bool relu)
        {
            int o0 = ob * ChannelBlock;
            float* tile = stackalloc float[ChannelBlock * Strip];
            for (int o = 0; o < ChannelBlock; o++)
                new Span<float>(tile + o * Strip, Strip).Fill(bias is null || o0 + o >= cout ? 0f : bias[o0 + o]);
            int plane = (h + 2) * wp;
            float* r = p + row * wp + x0;
            float* q = pw + (long)ob * cin * 9 * ChannelBlock;
            for (int i = 0; i < cin; i++, r += plane)
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++, q += ChannelBlock)
                    {
                        float* s = r + ky * wp + kx;
                        for (int o = 0; o < ChannelBlock; o++)
                        {
                            float wt = q[o];
                            float* t = tile + o * Strip;
                            for (int k = 0; k < width; k++) t[k] += wt * s[k];
                        }
                    }
            if (relu)
                for (int k = 0; k < ChannelBlock * Strip; k++) tile[k] = tile[k] > 0f ? tile[k] : 0f;
            WriteTile(tile, y, cout, h, w, o0, row, x0, width);
        }
    }
}
