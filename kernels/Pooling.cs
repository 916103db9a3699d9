// 2×2 pooling with stride 2; an odd size floors (the last row/column of an odd map is dropped, as in Keras "valid").
//
// Forward (x: C×H×W → y: C×⌊H/2⌋×⌊W/2⌋), window Ω(c,r,s) = {x[c, 2r+a, 2s+b] : a,b ∈ {0,1}}:
//   max: y[c,r,s] = max Ω            avg: y[c,r,s] = ¼ Σ Ω
// Backward:
//   max: dx[c,2r+a,2s+b] = dy[c,r,s] if (a,b) is the first maximum of Ω in row-major order, else 0
//   avg: dx[c,2r+a,2s+b] = ¼ dy[c,r,s]
//   inputs in the dropped row/column get 0.
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ILGPU;
using ILGPU.Backends.EntryPoints;

namespace GpuStyle.Kernels;

public static class Pooling
{
    public static class Reference
    {
        public static double[] Forward(bool max, double[] x, int c, int h, int w)
        {
            int ho = h / 2, wo = w / 2;
            var y = new double[c * ho * wo];
            for (int ch = 0; ch < c; ch++)
                for (int r = 0; r < ho; r++)
                    for (int s = 0; s < wo; s++)
                    {
                        double a = x[(ch * h + 2 * r) * w + 2 * s], b = x[(ch * h + 2 * r) * w + 2 * s + 1];
                        double e = x[(ch * h + 2 * r + 1) * w + 2 * s], f = x[(ch * h + 2 * r + 1) * w + 2 * s + 1];
                        y[(ch * ho + r) * wo + s] = max ? Math.Max(Math.Max(a, b), Math.Max(e, f)) : (a + b + e + f) / 4;
                    }
            return y;
        }

        public static double[] Backward(bool max, double[] x, double[] dy, int c, int h, int w)
        {
            int ho = h / 2, wo = w / 2;
            var dx = new double[c * h * w];
            for (int ch = 0; ch < c; ch++)
                for (int r = 0; r < ho; r++)
                    for (int s = 0; s < wo; s++)
                    {
                        double g = dy[(ch * ho + r) * wo + s];
                        if (!max)
                        {
                            for (int a = 0; a < 2; a++)
                                for (int b = 0; b < 2; b++)
                                    dx[(ch * h + 2 * r + a) * w + 2 * s + b] += g / 4;
                            continue;
                        }
                        int best = (ch * h + 2 * r) * w + 2 * s;
                        for (int a = 0; a < 2; a++)
                            for (int b = 0; b < 2; b++)
                            {
                                int k = (ch * h + 2 * r + a) * w + 2 * s + b;
                                if (x[k] > x[best]) best = k;
                            }
                        dx[best] += g;
                    }
            return dx;
        }
    }

    public static class Ilgpu
    {
        /// <summary>Launch with C·⌊H/2⌋·⌊W/2⌋ threads; h, w are the input's sizes; isMax 1 for max, 0 for average.</summary>
        [KernelName("pool2x2_forward")]
        public static void Forward(Index1D index, ArrayView<float> x, ArrayView<float> y, int h, int w, int isMax)
        {
            int ho = h / 2, wo = w / 2;
            int ch = index / (ho * wo);
            int p = index - ch * ho * wo;
            int r = p / wo;
            int s = p - r * wo;
            int top = (ch * h + 2 * r) * w + 2 * s;
            float a = x[top], b = x[top + 1], e = x[top + w], f = x[top + w + 1];
            y[index] = isMax != 0 ? XMax(XMax(a, b), XMax(e, f)) : (a + b + e + f) * 0.25f;
        }

        /// <summary>
        /// Launch with <see cref="BackwardThreads"/> = C·⌈H/2⌉·⌈W/2⌉ threads, one per window, each writing its window's four gradients (and, past the
        /// last whole window of an odd height or width, the zeros of the row or column no window covers). Counted at
        /// VGG16's first pooling at 512²: 4.2 M threads instead of 16.8 M, each input read once instead of four times,
        /// dy once a window instead of once an element — the per-element version (<see cref="BackwardByElement"/>)
        /// issued 5 loads and 2 divisions for each value it wrote.
        /// </summary>
        [KernelName("pool2x2_backward_windows")]
        public static void Backward(Index1D index, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx,
            int h, int w, int isMax)
        {
            int ho = h / 2, wo = w / 2, rows = (h + 1) / 2, cols = (w + 1) / 2;
            int ch = index / (rows * cols);
            int p = index - ch * rows * cols;
            int r = p / cols;
            int s = p - r * cols;
            int top = (ch * h + 2 * r) * w + 2 * s;
            bool right = 2 * s + 1 < w, below = 2 * r + 1 < h;
            if (r >= ho || s >= wo)
            {
                // A window cut off by the edge: no gradient reaches it.
                dx[top] = 0f;
                if (right) dx[top + 1] = 0f;
                if (below) dx[top + w] = 0f;
                if (right && below) dx[top + w + 1] = 0f;
                return;
            }
            float g = dy[(ch * ho + r) * wo + s];
            if (isMax == 0)
            {
                float quarter = g * 0.25f;
                dx[top] = quarter;
                dx[top + 1] = quarter;
                dx[top + w] = quarter;
                dx[top + w + 1] = quarter;
                return;
            }
            // The first maximum in row-major order wins, as in the reference.
            float a = x[top], b = x[top + 1], e = x[top + w], f = x[top + w + 1];
            int best = 0;
            float m = a;
            if (b > m) { best = 1; m = b; }
            if (e > m) { best = 2; m = e; }
            if (f > m) best = 3;
            dx[top] = best == 0 ? g : 0f;
            dx[top + 1] = best == 1 ? g : 0f;
            dx[top + w] = best == 2 ? g : 0f;
            dx[top + w + 1] = best == 3 ? g : 0f;
        }

        public static int BackwardThreads(int c, int h, int w) => c * ((h + 1) / 2) * ((w + 1) / 2);

        /// <summary>The first version, kept to compare (`--launch PoolWindows=0`): launch with C·H·W threads, one per
        /// input element (a gather, so no atomics and every dx written).</summary>
        [KernelName("pool2x2_backward")]
        public static void BackwardByElement(Index1D index, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx,
            int h, int w, int isMax)
        {
            int ho = h / 2, wo = w / 2;
            int ch = index / (h * w);
            int p = index - ch * h * w;
            int row = p / w;
            int col = p - row * w;
            int r = row / 2, s = col / 2;
            if (r >= ho || s >= wo) { dx[index] = 0f; return; }
            float g = dy[(ch * ho + r) * wo + s];
            if (isMax == 0) { dx[index] = g * 0.25f; return; }
            // The first maximum in row-major order wins, as in the reference.
            int top = (ch * h + 2 * r) * w + 2 * s;
            int best = top;
            if (x[top + 1] > x[best]) best = top + 1;
            if (x[top + w] > x[best]) best = top + w;
            if (x[top + w + 1] > x[best]) best = top + w + 1;
            dx[index] = best == index ? g : 0f;
        }

        static float XMax(float a, float b) => a > b ? a : b;
    }
    /// <summary>
    /// The CPU versions, a thread per channel. With AVX2 a row of 8 windows at a time (4 with the 128-bit kernels): the
    /// top and bottom rows' 16 inputs are split into even and odd columns (a, b | e, f: the windows' four corners, 8
    /// windows a vector), and the backward picks the first maximum with the reference's comparisons as lane masks — no
    /// branches (the scalar loop's data-dependent branches, mispredicted about half the time, made the max-pool
    /// backward ≈ 3 ns an input element, 4% of a 256² iteration: `bench --profile`). Columns past the last 8 windows
    /// take the scalar path.
    /// </summary>
    public static class Cpu
    {
        public static void Forward(bool max, float[] x, float[] y, int c, int h, int w, CpuSimd simd)
        {
            int ho = h / 2, wo = w / 2;
            bool avx = simd == CpuSimd.Avx2, v128 = simd == CpuSimd.Vector128;
            Parallel.For(0, c, CpuParallel.OneWorkerACore, ch =>
            {
                for (int r = 0; r < ho; r++)
                {
                    int top = (ch * h + 2 * r) * w, o = (ch * ho + r) * wo, s = 0;
                    if (avx)
                        for (; s + 8 <= wo; s += 8)
                        {
                            var (a, b) = EvenOdd(x, top + 2 * s);
                            var (e, f) = EvenOdd(x, top + w + 2 * s);
                            // vmaxps returns its second operand where either is NaN; MathF.Max (the scalar path and
                            // the reference) returns NaN: a window with a NaN is set to all ones bits, a NaN.
                            var v = max
                                ? Avx.Or(Avx.Max(Avx.Max(a, b), Avx.Max(e, f)), Avx.Or(Avx.CompareUnordered(a, b), Avx.CompareUnordered(e, f)))
                                : Avx.Multiply(Avx.Add(Avx.Add(a, b), Avx.Add(e, f)), Vector256.Create(0.25f));
                            v.CopyTo(y, o + s);
                        }
                    else if (v128)   // the same, 4 windows a vector (NEON), up to the AVX2 kernel's scalar tail
                        for (; s < wo / 8 * 8; s += 4)
                        {
                            var (a, b) = EvenOdd128(x, top + 2 * s);
                            var (e, f) = EvenOdd128(x, top + w + 2 * s);
                            // Vector128.Max's NaN rule is the platform's; the unordered lanes made all ones as above.
                            var unordered = ~(Vector128.Equals(a, a) & Vector128.Equals(b, b) & Vector128.Equals(e, e) & Vector128.Equals(f, f));
                            var v = max
                                ? Vector128.Max(Vector128.Max(a, b), Vector128.Max(e, f)) | unordered
                                : (a + b + (e + f)) * Vector128.Create(0.25f);
                            v.CopyTo(y, o + s);
                        }
                    for (; s < wo; s++)
                    {
                        float a = x[top + 2 * s], b = x[top + 2 * s + 1], e = x[top + w + 2 * s], f = x[top + w + 2 * s + 1];
                        y[o + s] = max ? MathF.Max(MathF.Max(a, b), MathF.Max(e, f)) : (a + b + e + f) * 0.25f;
                    }
                }
            });
        }

        public static void Backward(bool max, float[] x, float[] dy, float[] dx, int c, int h, int w, CpuSimd simd)
        {
            int ho = h / 2, wo = w / 2;
            bool avx = simd == CpuSimd.Avx2, v128 = simd == CpuSimd.Vector128;
            Parallel.For(0, c, CpuParallel.OneWorkerACore, ch =>
            {
                // Every window's four gradients are written below, zeros included: only what no window covers (the
                // last row and column of odd sizes) is cleared. (Clearing whole planes first was a second pass over
                // dx — 67 MB at VGG's first pooling at 512 px, the larger part of this op's memory traffic.)
                if (h % 2 != 0) Array.Clear(dx, (ch * h + h - 1) * w, w);
                if (w % 2 != 0) for (int r = 0; r < 2 * ho; r++) dx[(ch * h + r) * w + w - 1] = 0f;
                for (int r = 0; r < ho; r++)
                {
                    int top = (ch * h + 2 * r) * w, o = (ch * ho + r) * wo, s = 0;
                    if (avx)
                        for (; s + 8 <= wo; s += 8)
                        {
                            var g = Vector256.Create(dy, o + s);
                            Vector256<float> da, db, de, df;
                            if (max)
                            {
                                var (a, b) = EvenOdd(x, top + 2 * s);
                                var (e, f) = EvenOdd(x, top + w + 2 * s);
                                // The reference's walk: best = a; b if b > best; e if e > best; f if f > best (ordered
                                // comparisons: a NaN never wins, as there).
                                var isB = Avx.CompareGreaterThan(b, a);
                                var best = Avx.BlendVariable(a, b, isB);
                                var isE = Avx.CompareGreaterThan(e, best);
                                best = Avx.BlendVariable(best, e, isE);
                                var isF = Avx.CompareGreaterThan(f, best);
                                var notF = Avx.AndNot(isF, Vector256<float>.AllBitsSet);
                                var isE1 = Avx.And(isE, notF);
                                var isB1 = Avx.AndNot(isE, Avx.And(isB, notF));
                                var isA1 = Avx.AndNot(Avx.Or(Avx.Or(isB, isE), isF), Vector256<float>.AllBitsSet);
                                da = Avx.And(g, isA1); db = Avx.And(g, isB1); de = Avx.And(g, isE1); df = Avx.And(g, isF);
                            }
                            else
                                da = db = de = df = Avx.Multiply(g, Vector256.Create(0.25f));
                            Interleave(da, db, dx, top + 2 * s);
                            Interleave(de, df, dx, top + w + 2 * s);
                        }
                    else if (v128)   // the same lane masks, 4 windows a vector, up to the AVX2 kernel's scalar tail
                        for (; s < wo / 8 * 8; s += 4)
                        {
                            var g = Vector128.Create(dy, o + s);
                            Vector128<float> da, db, de, df;
                            if (max)
                            {
                                var (a, b) = EvenOdd128(x, top + 2 * s);
                                var (e, f) = EvenOdd128(x, top + w + 2 * s);
                                var isB = Vector128.GreaterThan(b, a);
                                var best = Vector128.ConditionalSelect(isB, b, a);
                                var isE = Vector128.GreaterThan(e, best);
                                best = Vector128.ConditionalSelect(isE, e, best);
                                var isF = Vector128.GreaterThan(f, best);
                                da = g & ~(isB | isE | isF); db = g & isB & ~isE & ~isF; de = g & isE & ~isF; df = g & isF;
                            }
                            else
                                da = db = de = df = g * Vector128.Create(0.25f);
                            Interleave128(da, db, dx, top + 2 * s);
                            Interleave128(de, df, dx, top + w + 2 * s);
                        }
                    for (; s < wo; s++)
                    {
                        float g = dy[o + s];
                        int k = top + 2 * s;
                        if (!max) { dx[k] = dx[k + 1] = dx[k + w] = dx[k + w + 1] = g * 0.25f; continue; }
                        int best = k;                       // the first maximum in row-major order, as the reference
                        if (x[k + 1] > x[best]) best = k + 1;
                        if (x[k + w] > x[best]) best = k + w;
                        if (x[k + w + 1] > x[best]) best = k + w + 1;
                        dx[k] = dx[k + 1] = dx[k + w] = dx[k + w + 1] = 0f;
                        dx[best] = g;
                    }
                }
            });
        }

        /// <summary>x[at … at+16) split into its even and odd elements, in order: 8 windows' left and right corners.</summary>
        static (Vector256<float> Even, Vector256<float> Odd) EvenOdd(float[] x, int at)
        {
            var lo = Vector256.Create(x, at);
            var hi = Vector256.Create(x, at + 8);
            // Within 128-bit lanes: [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6]; the 64-bit permute puts the lanes in order.
            var even = Avx2.Permute4x64(Avx.Shuffle(lo, hi, 0b10_00_10_00).AsDouble(), 0b11_01_10_00).AsSingle();
            var odd = Avx2.Permute4x64(Avx.Shuffle(lo, hi, 0b11_01_11_01).AsDouble(), 0b11_01_10_00).AsSingle();
            return (even, odd);
        }

        /// <summary>x[at … at+8) split into its even and odd elements: 4 windows' left and right corners.</summary>
        static (Vector128<float> Even, Vector128<float> Odd) EvenOdd128(float[] x, int at)
        {
            var lo = Vector128.Create(x, at);
            var hi = Vector128.Create(x, at + 4);
            return (Lanes128.UnzipEven(lo, hi), Lanes128.UnzipOdd(lo, hi));
        }

        /// <summary>Writes even0 odd0 … even3 odd3 (8 floats) at dst[at…]: the inverse of <see cref="EvenOdd128"/>.</summary>
        static void Interleave128(Vector128<float> even, Vector128<float> odd, float[] dst, int at)
        {
            Lanes128.ZipLow(even, odd).CopyTo(dst, at);
            Lanes128.ZipHigh(even, odd).CopyTo(dst, at + 4);
        }

        /// <summary>Writes even0 odd0 even1 odd1 … (16 floats) at dst[at…]: the inverse of <see cref="EvenOdd"/>.</summary>
        static void Interleave(Vector256<float> even, Vector256<float> odd, float[] dst, int at)
        {
            var lo = Avx.UnpackLow(even, odd);    // e0 o0 e1 o1 | e4 o4 e5 o5
            var hi = Avx.UnpackHigh(even, odd);   // e2 o2 e3 o3 | e6 o6 e7 o7
            Avx.Permute2x128(lo, hi, 0x20).CopyTo(dst, at);       // e0 o0 e1 o1 e2 o2 e3 o3
            Avx.Permute2x128(lo, hi, 0x31).CopyTo(dst, at + 8);   // e4 o4 … e7 o7
        }
    }
}
