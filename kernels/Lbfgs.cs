// L-BFGS's direction, vector-free (VL-BFGS: Chen, Wang & Zhou, "Large-scale L-BFGS using MapReduce", NIPS 2014).
//
// The classical two-loop recursion (Nocedal & Wright, Alg. 7.4) over the m newest pairs sᵢ = xᵢ₊₁ − xᵢ,
// yᵢ = gᵢ₊₁ − gᵢ, ρᵢ = 1/(sᵢ·yᵢ):
//   q = g;  newest → oldest: αᵢ = ρᵢ sᵢ·q,  q −= αᵢ yᵢ
//   r = γ q, γ = s·y / y·y of the newest pair;  oldest → newest: βᵢ = ρᵢ yᵢ·r,  r += (αᵢ − βᵢ) sᵢ;   d = −r
// is 2 dot products and 2 axpys a pair: with 100 pairs ≈ 1 000 kernel launches an iteration, each a pass over the
// image (measured on an H200: +7 ms an iteration at 512², as much as the whole TF32 network).
//
// Every vector the recursion makes is a linear combination of the basis b = (s₀…sₘ₋₁, y₀…yₘ₋₁, g), so the same
// recursion runs on the coefficients δ (q = Σⱼ δⱼbⱼ) given the basis's pairwise dot products Dᵢⱼ = bᵢ·bⱼ:
//   sᵢ·q = Σⱼ δⱼ D[sᵢ][j],   q −= αᵢyᵢ  ⇔  δ[yᵢ] −= αᵢ,   and likewise for r.
// An iteration then needs: the new pair's and the new gradient's dot products with every row (one pass over the
// history: RowDots), the O(m²) recursion on scalars (one group: Direction), and d = Σⱼ δⱼbⱼ (one more pass:
// Combine) — 4 launches and two reads of the history instead of ≈ 1 000 launches and ≈ 5 reads.
//
// The basis lives in one "rows" tensor of R = 2m + 1 rows of N floats: row i = sᵢ, row m + i = yᵢ, row 2m = g
// (pairs sit in a ring: slot i holds the pair of some iteration; LbfgsRing says which slots are in use, newest first).
using ILGPU;
using ILGPU.Backends.EntryPoints;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace GpuStyle.Kernels;

/// <summary>
/// Which rows of the history are in use: <see cref="Count"/> pairs, the newest in slot <see cref="Newest"/>, the
/// others in the slots before it (cyclically). <see cref="NewPair"/> 1 when the products handed to
/// <see cref="Lbfgs.Ilgpu.Direction"/> include the newest pair's (it was added since the last direction).
/// </summary>
public struct LbfgsRing
{
    public int History, Count, Newest, NewPair;

    public LbfgsRing(int history, int count, int newest, bool newPair)
    {
        History = history; Count = count; Newest = newest; NewPair = newPair ? 1 : 0;
    }

    /// <summary>Rows of the basis: m s-rows, m y-rows and the gradient.</summary>
    public readonly int Rows => 2 * History + 1;
    /// <summary>The gradient's row.</summary>
    public readonly int Gradient => 2 * History;
    /// <summary>The slot of the k-th newest pair (k = 0: the newest).</summary>
    public readonly int Slot(int k) => ((Newest - k) % History + History) % History;
}

public static class Lbfgs
{
    /// <summary>The classical two-loop recursion in float64 on the vectors themselves: what the vector-free version
    /// must agree with. Pairs are given newest first.</summary>
    public static class Reference
    {
        public static double[] Direction(IReadOnlyList<(double[] S, double[] Y)> newestFirst, double[] g)
        {
            int n = g.Length, m = newestFirst.Count;
            var q = (double[])g.Clone();
            var alpha = new double[m];
            for (int k = 0; k < m; k++)
            {
                var (s, y) = newestFirst[k];
                alpha[k] = VectorOps.Reference.Dot(s, q) / VectorOps.Reference.Dot(s, y);
                for (int i = 0; i < n; i++) q[i] -= alpha[k] * y[i];
            }
            if (m > 0)
            {
                var (s, y) = newestFirst[0];
                double gamma = VectorOps.Reference.Dot(s, y) / VectorOps.Reference.Dot(y, y);
                for (int i = 0; i < n; i++) q[i] *= gamma;
            }
            for (int k = m - 1; k >= 0; k--)
            {
                var (s, y) = newestFirst[k];
                double beta = VectorOps.Reference.Dot(y, q) / VectorOps.Reference.Dot(s, y);
                for (int i = 0; i < n; i++) q[i] += (alpha[k] - beta) * s[i];
            }
            for (int i = 0; i < n; i++) q[i] = -q[i];
            return q;
        }
    }

    public static class Ilgpu
    {
        /// <summary>rows[row] = x − y, or x when subtract is 0 (y is then not read).</summary>
        [KernelName("lbfgs_set_row")]
        public static void SetRow(Index1D i, ArrayView<float> rows, long offset, ArrayView<float> x, ArrayView<float> y, int subtract) =>
            rows[offset + i] = subtract != 0 ? x[i] - y[i] : x[i];

        /// <summary>
        /// Pass 1 of RowDots: group (chunk, j) — Grid.IdxX = j·chunks + chunk — adds rows[j]·rows[a], ·rows[b] and
        /// ·rows[c] over its chunk of the n columns and writes the three sums to partials[(k·R + j)·chunks + chunk].
        /// Row j is read once for all three (the pass is bound by reading the history). Dynamic shared memory: the
        /// group size, in floats.
        /// </summary>
        [KernelName("lbfgs_row_dots")]
        public static void RowDotsPartial(ArrayView<float> rows, int n, int rowCount, int a, int b, int c, int chunks,
            ArrayView<float> partials)
        {
            int chunk = Grid.IdxX % chunks, j = Grid.IdxX / chunks, per = (n + chunks - 1) / chunks;
            int start = chunk * per, end = Math.Min(n, start + per);
            long rj = (long)j * n, ra = (long)a * n, rb = (long)b * n, rc = (long)c * n;
            float sa = 0f, sb = 0f, sc = 0f;
            int i = start + Group.IdxX, step = Group.DimX;
            // Four elements a step, their 16 loads issued before the first product (one step's 4 loads a round trip
            // in the sm_90 SASS before: ≈ 16 round trips a thread); the sums still add in element order.
            for (; i + 3 * step < end; i += 4 * step)
            {
                long i1 = i + step, i2 = i1 + step, i3 = i2 + step;
                float v0 = rows[rj + i], v1 = rows[rj + i1], v2 = rows[rj + i2], v3 = rows[rj + i3];
                float a0 = rows[ra + i], a1 = rows[ra + i1], a2 = rows[ra + i2], a3 = rows[ra + i3];
                float b0 = rows[rb + i], b1 = rows[rb + i1], b2 = rows[rb + i2], b3 = rows[rb + i3];
                float c0 = rows[rc + i], c1 = rows[rc + i1], c2 = rows[rc + i2], c3 = rows[rc + i3];
                sa += v0 * a0; sa += v1 * a1; sa += v2 * a2; sa += v3 * a3;
                sb += v0 * b0; sb += v1 * b1; sb += v2 * b2; sb += v3 * b3;
                sc += v0 * c0; sc += v1 * c1; sc += v2 * c2; sc += v3 * c3;
            }
            for (; i < end; i += step)
            {
                float v = rows[rj + i];
                sa += v * rows[ra + i];
                sb += v * rows[rb + i];
                sc += v * rows[rc + i];
            }
            var shared = SharedMemory.GetDynamic<float>();
            sa = GroupSum(shared, sa);
            sb = GroupSum(shared, sb);
            sc = GroupSum(shared, sc);
            if (Group.IdxX == 0)
            {
                partials[(0 * rowCount + j) * chunks + chunk] = sa;
                partials[(1 * rowCount + j) * chunks + chunk] = sb;
                partials[(2 * rowCount + j) * chunks + chunk] = sc;
            }
        }

        /// <summary>Pass 2 of RowDots: group p adds partials[p·chunks …) into products[p].</summary>
        [KernelName("lbfgs_row_dots_finish")]
        public static void RowDotsFinish(ArrayView<float> partials, int chunks, ArrayView<float> products)
        {
            float s = 0f;
            for (int i = Group.IdxX; i < chunks; i += Group.DimX) s += partials[Grid.IdxX * chunks + i];
            s = GroupSum(SharedMemory.GetDynamic<float>(), s);
            if (Group.IdxX == 0) products[Grid.IdxX] = s;
        }

        /// <summary>y = Σⱼ coefficients[j]·rows[j] over rowCount rows, in row order; rows with a zero coefficient are
        /// not added (the unused slots of a history that is not full yet, which may hold anything, NaN included).
        /// Eight rows a step, all eight loaded before the first is added: with each load behind its coefficient's test
        /// the sm_90 SASS waited for every load in turn — 201 round trips a thread with VGG's full 100-pair history, a
        /// pass over 600 MB at 512² that memory serves in ≈ 0.13 ms (the bench's "+ full L-BFGS history": +1.0 ms an
        /// iteration on an H200).</summary>
        [KernelName("lbfgs_combine")]
        public static void Combine(Index1D i, ArrayView<float> rows, int n, int rowCount, ArrayView<float> coefficients, ArrayView<float> y)
        {
            float s = 0f;
            int j = 0;
            for (; j + 8 <= rowCount; j += 8)
            {
                long at = (long)j * n + i;
                float v0 = rows[at], v1 = rows[at + n], v2 = rows[at + 2L * n], v3 = rows[at + 3L * n];
                float v4 = rows[at + 4L * n], v5 = rows[at + 5L * n], v6 = rows[at + 6L * n], v7 = rows[at + 7L * n];
                s = Added(s, coefficients[j], v0); s = Added(s, coefficients[j + 1], v1);
                s = Added(s, coefficients[j + 2], v2); s = Added(s, coefficients[j + 3], v3);
                s = Added(s, coefficients[j + 4], v4); s = Added(s, coefficients[j + 5], v5);
                s = Added(s, coefficients[j + 6], v6); s = Added(s, coefficients[j + 7], v7);
            }
            for (; j < rowCount; j++) s = Added(s, coefficients[j], rows[(long)j * n + i]);
            y[i] = s;
        }

        /// <summary>s + c·v, or s where c is 0 (v then may be anything).</summary>
        static float Added(float s, float c, float v) => c != 0f ? s + c * v : s;

        /// <summary>
        /// One group: merges the new products (products[k·R + j] for k = the newest pair's s, its y, the gradient;
        /// the pair's only when ring.NewPair) into the R×R dot matrix, then runs the two-loop recursion on the
        /// coefficients: coefficients[0 … R) = δ with d = Σⱼ δⱼ·rows[j], coefficients[R + i] = αᵢ. Each thread owns
        /// the coefficients j ≡ thread (mod group size), so only the dot products over them need the group.
        /// Dynamic shared memory: the group size, in floats.
        /// </summary>
        [KernelName("lbfgs_direction")]
        public static void Direction(ArrayView<float> dots, ArrayView<float> products, ArrayView<float> coefficients, LbfgsRing ring)
        {
            int t = Group.IdxX, threads = Group.DimX, m = ring.History, r = ring.Rows, gr = ring.Gradient;
            int ns = ring.Newest, ny = m + ring.Newest;
            bool pair = ring.NewPair != 0;
            // Rows first, then the columns outside those rows: every element written by one thread.
            for (int j = t; j < r; j += threads)
            {
                if (pair) { dots[ns * r + j] = products[j]; dots[ny * r + j] = products[r + j]; }
                dots[gr * r + j] = products[2 * r + j];
            }
            for (int j = t; j < r; j += threads)
            {
                if (j == gr || (pair && (j == ns || j == ny))) continue;
                if (pair) { dots[j * r + ns] = products[j]; dots[j * r + ny] = products[r + j]; }
                dots[j * r + gr] = products[2 * r + j];
            }
            for (int j = t; j < r; j += threads) coefficients[j] = j == gr ? 1f : 0f;
            Group.Barrier();
            var shared = SharedMemory.GetDynamic<float>();
            for (int k = 0; k < ring.Count; k++)
            {
                int i = ring.Slot(k);
                float alpha = GroupSum(shared, Owned(dots, coefficients, i * r, r)) / dots[i * r + m + i];
                if (t == 0) coefficients[r + i] = alpha;
                if ((m + i) % threads == t) coefficients[m + i] -= alpha;
            }
            if (ring.Count > 0)
            {
                float gamma = dots[ns * r + ny] / dots[ny * r + ny];
                for (int j = t; j < r; j += threads) coefficients[j] *= gamma;
            }
            for (int k = ring.Count - 1; k >= 0; k--)
            {
                int i = ring.Slot(k);
                float beta = GroupSum(shared, Owned(dots, coefficients, (m + i) * r, r)) / dots[i * r + m + i];
                if (i % threads == t) coefficients[i] += coefficients[r + i] - beta;
            }
            for (int j = t; j < r; j += threads) coefficients[j] = -coefficients[j];
        }

        /// <summary>This thread's share of Σⱼ δⱼ·dots[row + j].</summary>
        static float Owned(ArrayView<float> dots, ArrayView<float> coefficients, int row, int r)
        {
            float s = 0f;
            for (int j = Group.IdxX; j < r; j += Group.DimX) s += coefficients[j] * dots[row + j];
            return s;
        }

        /// <summary>The group's total, in every thread; the shared scratch may be reused straight after.</summary>
        static float GroupSum(ArrayView<float> shared, float value)
        {
            float total = VectorOps.Ilgpu.GroupTotal(shared, value);
            Group.Barrier();
            return total;
        }
    }

    /// <summary>CPU versions: the same recursion, in float64 on the host; the passes over the history in parallel.</summary>
    public static class Cpu
    {
        /// <summary>products[k·R + j] = rows[j]·rows[w_k] for k = 0, 1, 2; each row's three sums in a fixed order
        /// (float lanes per chunk, chunks added in float64), so results do not depend on the core count.</summary>
        public static void RowDots(float[] rows, int n, int rowCount, int a, int b, int c, float[] products, CpuSimd simd)
        {
            Parallel.For(0, rowCount, CpuParallel.OneWorkerACore, j =>
            {
                var row = rows.AsSpan(j * n, n);
                var (sa, sb, sc) = Dot3(row, rows.AsSpan(a * n, n), rows.AsSpan(b * n, n), rows.AsSpan(c * n, n), simd);
                products[j] = (float)sa;
                products[rowCount + j] = (float)sb;
                products[2 * rowCount + j] = (float)sc;
            });
        }

        static (double, double, double) Dot3(ReadOnlySpan<float> v, ReadOnlySpan<float> a, ReadOnlySpan<float> b, ReadOnlySpan<float> c, CpuSimd simd)
        {
            double sa = 0, sb = 0, sc = 0;
            for (int start = 0; start < v.Length; start += VectorOps.Cpu.Chunk)
            {
                int end = Math.Min(v.Length, start + VectorOps.Cpu.Chunk), i = start;
                float fa = 0f, fb = 0f, fc = 0f;
                if (simd == CpuSimd.Vector128)
                {
                    Vector128<float> va = default, vb = default, vc = default;
                    for (; i + 4 <= end; i += 4)
                    {
                        var x = Vector128.Create(v.Slice(i, 4));
                        va = Lanes128.Fma(x, Vector128.Create(a.Slice(i, 4)), va);
                        vb = Lanes128.Fma(x, Vector128.Create(b.Slice(i, 4)), vb);
                        vc = Lanes128.Fma(x, Vector128.Create(c.Slice(i, 4)), vc);
                    }
                    fa = Vector128.Sum(va); fb = Vector128.Sum(vb); fc = Vector128.Sum(vc);
                }
                else if (simd == CpuSimd.Avx2)
                {
                    Vector256<float> va = default, vb = default, vc = default;
                    for (; i + 8 <= end; i += 8)
                    {
                        var x = Vector256.Create(v.Slice(i, 8));
                        va = Fma.MultiplyAdd(x, Vector256.Create(a.Slice(i, 8)), va);
                        vb = Fma.MultiplyAdd(x, Vector256.Create(b.Slice(i, 8)), vb);
                        vc = Fma.MultiplyAdd(x, Vector256.Create(c.Slice(i, 8)), vc);
                    }
                    fa = Vector256.Sum(va); fb = Vector256.Sum(vb); fc = Vector256.Sum(vc);
                }
                for (; i < end; i++) { fa += v[i] * a[i]; fb += v[i] * b[i]; fc += v[i] * c[i]; }
                sa += fa; sb += fb; sc += fc;
            }
            return (sa, sb, sc);
        }

        /// <summary>y = Σⱼ coefficients[j]·rows[j], zero coefficients skipped; in column chunks, rows in order.</summary>
        public static void Combine(float[] rows, int n, int rowCount, float[] coefficients, float[] y, CpuSimd simd)
        {
            VectorOps.Cpu.For(n, (s, e) =>
            {
                Array.Clear(y, s, e - s);
                for (int j = 0; j < rowCount; j++)
                {
                    float c = coefficients[j];
                    if (c == 0f) continue;
                    int i = s, off = j * n;
                    if (simd == CpuSimd.Vector128)
                    {
                        var vc = Vector128.Create(c);
                        for (; i + 4 <= e; i += 4)
                            Lanes128.Fma(vc, Vector128.Create(rows, off + i), Vector128.Create(y, i)).CopyTo(y, i);
                    }
                    else if (simd == CpuSimd.Avx2)
                    {
                        var vc = Vector256.Create(c);
                        for (; i + 8 <= e; i += 8)
                            Fma.MultiplyAdd(vc, Vector256.Create(rows, off + i), Vector256.Create(y, i)).CopyTo(y, i);
                    }
                    for (; i < e; i++) y[i] += c * rows[off + i];
                }
            });
        }

        /// <summary>The ILGPU kernel's merge and recursion, sequentially and in float64.</summary>
        public static void Direction(float[] dots, float[] products, float[] coefficients, LbfgsRing ring)
        {
            int m = ring.History, r = ring.Rows, gr = ring.Gradient, ns = ring.Newest, ny = m + ring.Newest;
            for (int j = 0; j < r; j++)
            {
                if (ring.NewPair != 0)
                {
                    dots[ns * r + j] = dots[j * r + ns] = products[j];
                    dots[ny * r + j] = dots[j * r + ny] = products[r + j];
                }
                dots[gr * r + j] = dots[j * r + gr] = products[2 * r + j];
            }
            var delta = new double[r];
            var alpha = new double[m];
            delta[gr] = 1;
            double Dot(int row) { double s = 0; for (int j = 0; j < r; j++) s += delta[j] * dots[row * r + j]; return s; }
            for (int k = 0; k < ring.Count; k++)
            {
                int i = ring.Slot(k);
                alpha[i] = Dot(i) / dots[i * r + m + i];
                delta[m + i] -= alpha[i];
            }
            if (ring.Count > 0)
            {
                double gamma = (double)dots[ns * r + ny] / dots[ny * r + ny];
                for (int j = 0; j < r; j++) delta[j] *= gamma;
            }
            for (int k = ring.Count - 1; k >= 0; k--)
            {
                int i = ring.Slot(k);
                delta[i] += alpha[i] - Dot(m + i) / dots[i * r + m + i];
            }
            for (int j = 0; j < r; j++) coefficients[j] = (float)-delta[j];
            for (int i = 0; i < m; i++) coefficients[r + i] = (float)alpha[i];
        }
    }
}
