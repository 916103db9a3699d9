// The Gram matrix of a feature map: its channel correlations, with the positions summed out.
//
// Forward (F: C×N with N = H·W):   G = F·Fᵀ / N,   G[i,j] = Σ_k F[i,k]·F[j,k] / N
// Backward:                          dF = (dG + dGᵀ)·F / N,   dF[i,k] = Σ_j (dG[i,j] + dG[j,i])·F[j,k] / N
// FLOPs: 2·C²·N forward (C·(C+1)·N exploiting symmetry), 2·C²·N backward.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Runtime.Cuda;

namespace GpuStyle.Kernels;

/// <summary>A thread's 4×4 register block in the blocked Gram kernels: 4 consecutive rows × 4 consecutive columns.</summary>
public struct Block4x4
{
    public Pixels4 R0, R1, R2, R3;

    /// <summary>acc[r][s] += a[r] · b[s]: the 4 rows' and 4 columns' values, one vector load each, 16 FMAs.</summary>
    public void Add(Float4 a, Float4 b)
    {
        R0 = R0.Add(a.A, b.A, b.B, b.C, b.D); R1 = R1.Add(a.B, b.A, b.B, b.C, b.D);
        R2 = R2.Add(a.C, b.A, b.B, b.C, b.D); R3 = R3.Add(a.D, b.A, b.B, b.C, b.D);
    }

    /// <summary>Writes (or adds, scaled) the block to rows i…i+3, columns j…j+3 of a rows×cols matrix at
    /// offset + row·cols + col, skipping what lies outside.</summary>
    public readonly void Store(ArrayView<float> m, long offset, int rows, long cols, int i, long j, float scale, int accumulate)
    {
        var v = this;
        if (accumulate != 0)
        {
            // Every old value loaded before the first store (see Gram.Old), then stored as is.
            v.R0 = PlusOld(m, offset, rows, cols, i, j, R0, scale); v.R1 = PlusOld(m, offset, rows, cols, i + 1, j, R1, scale);
            v.R2 = PlusOld(m, offset, rows, cols, i + 2, j, R2, scale); v.R3 = PlusOld(m, offset, rows, cols, i + 3, j, R3, scale);
            scale = 1f;
        }
        StoreRow(m, offset, rows, cols, i, j, v.R0, scale, 0); StoreRow(m, offset, rows, cols, i + 1, j, v.R1, scale, 0);
        StoreRow(m, offset, rows, cols, i + 2, j, v.R2, scale, 0); StoreRow(m, offset, rows, cols, i + 3, j, v.R3, scale, 0);
    }

    /// <summary>Row i's 4 old values from column j plus the block's, scaled.</summary>
    static Pixels4 PlusOld(ArrayView<float> m, long offset, int rows, long cols, int i, long j, Pixels4 v, float scale) => new(
        Gram.Old(m, offset, rows, cols, i, j) + v.P0 * scale, Gram.Old(m, offset, rows, cols, i, j + 1) + v.P1 * scale,
        Gram.Old(m, offset, rows, cols, i, j + 2) + v.P2 * scale, Gram.Old(m, offset, rows, cols, i, j + 3) + v.P3 * scale);

    static void StoreRow(ArrayView<float> m, long offset, int rows, long cols, int i, long j, Pixels4 v, float scale, int accumulate)
    {
        Gram.StoreOne(m, offset, rows, cols, i, j, v.P0, scale, accumulate); Gram.StoreOne(m, offset, rows, cols, i, j + 1, v.P1, scale, accumulate);
        Gram.StoreOne(m, offset, rows, cols, i, j + 2, v.P2, scale, accumulate); Gram.StoreOne(m, offset, rows, cols, i, j + 3, v.P3, scale, accumulate);
    }
}

public static class Gram
{
    /// <summary>The staged kernels' epilogue, one element: m[(offset + i)·cols + j] = (or +=) v·scale, skipped outside
    /// the rows×cols matrix (edge tiles).</summary>
    internal static void StoreOne(ArrayView<float> m, long offset, int rows, long cols, int i, long j, float v, float scale, int accumulate)
    {
        if (i >= rows || j >= cols) return;
        long at = (offset + i) * cols + j;
        if (accumulate != 0) m[at] += v * scale;
        else m[at] = v * scale;
    }

    /// <summary>
    /// m[(offset + i)·cols + j], or element 0's value outside the rows×cols matrix: a load without a branch, for the
    /// accumulating epilogues (the Gram backward's dF += S·F), which load every old value of a thread's block before
    /// storing any, and skip the stores outside. Element by element, m[at] += v, each load waited behind the previous
    /// store (which might write the same address): the sm_90 SASS of the TF32 Gram backward was 32 LD → FADD → ST
    /// round trips to memory a thread, the fp32 SGEMM's 16. At relu1_1 (C = 64, N = 512², one 32-deep chunk of K a
    /// group twice) that chain, not the tensor work, set the kernel's time: 0.16 ms on an H200 (2026-11-28) for a
    /// pass over 200 MB (≈ 0.05 ms at the memory's rate).
    /// </summary>
    internal static float Old(ArrayView<float> m, long offset, int rows, long cols, int i, long j) =>
        m[i < rows && j < cols ? (offset + i) * cols + j : 0];

    public static class Reference
    {
        public static double[] Forward(double[] f, int c, int n)
        {
            var g = new double[c * c];
            for (int i = 0; i < c; i++)
                for (int j = 0; j < c; j++)
                {
                    double s = 0;
                    for (int k = 0; k < n; k++) s += f[i * n + k] * f[j * n + k];
                    g[i * c + j] = s / n;
                }
            return g;
        }

        public static double[] Backward(double[] f, double[] dg, int c, int n)
        {
            var df = new double[c * n];
            for (int i = 0; i < c; i++)
                for (int k = 0; k < n; k++)
                {
                    double s = 0;
                    for (int j = 0; j < c; j++) s += (dg[i * c + j] + dg[j * c + i]) * f[j * n + k];
                    df[i * n + k] = s / n;
                }
            return df;
        }
    }

    public static class Ilgpu
    {
        /// <summary>Launch with C·C threads.</summary>
        [KernelName("gram_forward_direct")]
        public static void Forward(Index1D index, ArrayView<float> f, ArrayView<float> g, int c, int n)
        {
            int i = index / c;
            int j = index - i * c;
            float s = 0f;
            for (int k = 0; k < n; k++) s += f[i * n + k] * f[j * n + k];
            g[index] = s / n;
        }

        /// <summary>Launch with C·N threads; adds into df (the losses of one layer meet there).</summary>
        [KernelName("gram_backward_direct")]
        public static void BackwardAccumulate(Index1D index, ArrayView<float> f, ArrayView<float> dg,
            ArrayView<float> df, int c, int n)
        {
            int i = index / n;
            int k = index - i * n;
            float s = 0f;
            for (int j = 0; j < c; j++) s += (dg[i * c + j] + dg[j * c + i]) * f[j * n + k];
            df[index] += s / n;
        }
    }
    /// <summary>
    /// ILGPU kernels, version 2: tiled GEMMs for GPUs. Forward: a group computes a T×T tile of G from T×T tiles of
    /// F staged in shared memory, over one of `splits` slices of the positions (split-K: a 64-channel layer has only
    /// 16 tiles of 16×16, far too few groups for a GPU on their own); the slices' partial Grams are then added in a
    /// fixed order by <see cref="ReduceSplits"/> — deterministic, no atomics. Tiles below the diagonal are skipped
    /// and mirrored (G is symmetric). Backward: dF = S·F with S = (dG + dGᵀ)/N, one T×T tile of dF per group.
    /// T is the group's side: 16 on a GPU, 4 in tests.
    /// </summary>
    public static class IlgpuTiled
    {
        public static int SharedFloats(int t) => 2 * t * t;

        /// <summary>Grid (⌈C/T⌉, ⌈C/T⌉, splits), group (T, T). partials: splits × C × C.</summary>
        [KernelName("gram_forward_tiled")]
        public static void ForwardPartial(ArrayView<float> f, ArrayView<float> partials, int c, int n, int splits)
        {
            int t = Group.DimX, tx = Group.IdxX, ty = Group.IdxY;
            int bi = Grid.IdxY, bj = Grid.IdxX, split = Grid.IdxZ;
            if (bj < bi) return;   // the whole group leaves together: no barrier is left waiting
            var shared = SharedMemory.GetDynamic<float>();
            var a = shared.SubView(0, t * t);
            var b = shared.SubView(t * t, t * t);
            int i = bi * t + ty, j = bj * t + tx;
            long k0 = (long)n * split / splits, k1 = (long)n * (split + 1) / splits;
            float acc = 0f;
            for (long k = k0; k < k1; k += t)
            {
                long ka = k + tx;   // thread (tx, ty) loads F[bi·t + ty, k + tx] and F[bj·t + ty, k + tx]
                int ri = bi * t + ty, rj = bj * t + ty;
                a[ty * t + tx] = ri < c && ka < k1 ? f[ri * (long)n + ka] : 0f;
                b[ty * t + tx] = rj < c && ka < k1 ? f[rj * (long)n + ka] : 0f;
                Group.Barrier();
                for (int kk = 0; kk < t; kk++) acc += a[ty * t + kk] * b[tx * t + kk];
                Group.Barrier();
            }
            if (i < c && j < c) partials[((long)split * c + i) * c + j] = acc;
        }

        /// <summary>Launch with C·C threads: G[i,j] = Σ_splits partials / N, taking the upper triangle (i ≤ j) for both
        /// halves: the partials hold it whole (the forward kernels compute the tiles on or above the diagonal), and
        /// nothing below it is read (the TF32 forward leaves a diagonal tile's lower warp blocks out).</summary>
        [KernelName("gram_reduce_splits")]
        public static void ReduceSplits(Index1D index, ArrayView<float> partials, ArrayView<float> g, int c, int n, int splits)
        {
            int i = index / c, j = index - i * c;
            int si = i <= j ? i : j, sj = i <= j ? j : i;
            float s = 0f;
            for (int k = 0; k < splits; k++) s += partials[((long)k * c + si) * c + sj];
            g[index] = s / n;
        }

        /// <summary>
        /// <see cref="ReduceSplits"/> with the splits spread over a group's rows, for the GPU: groups of (X, Y) threads,
        /// ⌈C·C / X⌉ of them; thread (x, y) adds splits y, y + Y, … of entry e = group·X + x (X consecutive entries of a
        /// row: coalesced loads), then row 0 adds the Y sums in order (the same sum every run) and writes G[i,j] — and
        /// G[j,i] for an entry above the diagonal (the upper triangle: see <see cref="ReduceSplits"/>).
        /// Why: ReduceSplits gives each of the C² entries one thread and a chain of `splits` loads; at 64 channels and
        /// 512² that is 4 096 threads (≈ one warp an SM on an H200) each 1 024 loads long — ≈ 0.1–0.5 ms of latency for
        /// 16 MB, where the bytes take ≈ 5 µs. Here: 32 768 threads, 128 loads each. Dynamic shared memory: X·Y floats.
        /// </summary>
        [KernelName("gram_reduce_splits_grouped")]
        public static void ReduceSplitsGrouped(ArrayView<float> partials, ArrayView<float> g, int c, int n, int splits)
        {
            int x = Group.IdxX, y = Group.IdxY, width = Group.DimX, rows = Group.DimY;
            long e = (long)Grid.IdxX * width + x;
            int i = (int)(e / c), j = (int)(e - (long)i * c);
            bool mine = e < (long)c * c && i <= j;
            // Four splits' loads in flight at a time, into four sums: summed one by one, each load waited for the add
            // before it (in-order issue), and at relu1_1 (64 channels, 1 024 splits at 512²) each thread's 128 loads took
            // 52 µs on an H200 (Nsight Compute: 12% occupancy, 7% of DRAM's throughput) for 16 MB.
            float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
            if (mine)
            {
                long plane = (long)c * c, at = (long)i * c + j;
                int k = y;
                for (; k + 3 * rows < splits; k += 4 * rows)
                {
                    s0 += partials[k * plane + at];
                    s1 += partials[(k + rows) * plane + at];
                    s2 += partials[(k + 2 * rows) * plane + at];
                    s3 += partials[(k + 3 * rows) * plane + at];
                }
                for (; k < splits; k += rows) s0 += partials[k * plane + at];
            }
            float s = (s0 + s1) + (s2 + s3);
            var sums = SharedMemory.GetDynamic<float>();
            sums[y * width + x] = s;
            Group.Barrier();   // every thread reaches it: none returned early
            if (y != 0 || !mine) return;
            float total = 0f;
            for (int r = 0; r < rows; r++) total += sums[r * width + x];
            float v = total / n;
            g[(long)i * c + j] = v;
            if (i != j) g[(long)j * c + i] = v;
        }

        /// <summary>Grid (⌈N/T⌉, ⌈C/T⌉), group (T, T). df[i,k] += Σ_j (dG[i,j] + dG[j,i])·F[j,k] / N.</summary>
        [KernelName("gram_backward_tiled")]
        public static void BackwardAccumulate(ArrayView<float> f, ArrayView<float> dg, ArrayView<float> df, int c, int n)
        {
            int t = Group.DimX, tx = Group.IdxX, ty = Group.IdxY;
            int i = Grid.IdxY * t + ty;
            long k = (long)Grid.IdxX * t + tx;
            var shared = SharedMemory.GetDynamic<float>();
            var sTile = shared.SubView(0, t * t);
            var fTile = shared.SubView(t * t, t * t);
            float acc = 0f;
            for (int j0 = 0; j0 < c; j0 += t)
            {
                int sj = j0 + tx, fj = j0 + ty;
                sTile[ty * t + tx] = i < c && sj < c ? dg[i * c + sj] + dg[sj * c + i] : 0f;
                fTile[ty * t + tx] = fj < c && k < n ? f[fj * (long)n + k] : 0f;
                Group.Barrier();
                for (int jj = 0; jj < t; jj++) acc += sTile[ty * t + jj] * fTile[jj * t + tx];
                Group.Barrier();
            }
            if (i < c && k < n) df[i * (long)n + k] += acc / n;
        }
    }

    /// <summary>
    /// ILGPU kernels, version 3: version 2's GEMMs with a 4×4 register block a thread. Version 2 computes one
    /// element a thread from two shared loads per FMA (and its B reads, 16 floats apart, conflict 8-way); here a
    /// thread owns rows 4ty…4ty+3 and columns 4tx…4tx+3 of a (4T)×(4T) tile. Tiles are staged transposed, [k][row],
    /// 16 positions (or channels) deep, so a thread's 4 rows (and 4 columns) at one k are 16 contiguous bytes: one
    /// 128-bit load (<see cref="Float4"/>) each, 2 loads for 16 FMAs (4 + 4 scalar loads before: the fp32 Gram ran
    /// at 7–11 TFLOP/s on an H200; counted, the loop's FFMAs go from ≈ 50% to ≈ 80% of its instructions). A 128-bit
    /// load is served 8 lanes at a time: 8 lanes of a row read 128 contiguous bytes of B (no conflict) and one
    /// broadcast address of A. Forward keeps version 2's split-K and symmetry (tiles
    /// below the diagonal skipped, <see cref="IlgpuTiled.ReduceSplits"/> mirrors the upper triangle).
    /// </summary>
    public static class IlgpuBlocked
    {
        public const int Block = 4, Depth = 16;

        /// <summary>Two (4T)×16 tiles.</summary>
        public static int SharedFloats(int t) => 2 * Block * t * Depth;

        /// <summary>Grid (⌈C/4T⌉, ⌈C/4T⌉, splits), group (T, T). partials: splits × C × C (tiles on or above the diagonal).</summary>
        [KernelName("gram_forward_blocked")]
        public static void ForwardPartial(ArrayView<float> f, ArrayView<float> partials, int c, int n, int splits) =>
            Forward(f, partials, c, n, splits, Group.DimX);

        /// <summary><see cref="ForwardPartial"/> for the GPU's 16×16 groups, T a constant: the k loop's shared loads at
        /// immediate offsets (ptxas for sm_90, the general kernel: 128 FFMAs in 186 instructions, the rest the loads'
        /// address arithmetic).</summary>
        [KernelName("gram_forward_blocked_16")]
        public static void ForwardPartial16(ArrayView<float> f, ArrayView<float> partials, int c, int n, int splits) =>
            Forward(f, partials, c, n, splits, 16);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Forward(ArrayView<float> f, ArrayView<float> partials, int c, int n, int splits, int t)
        {
            int tx = Group.IdxX, ty = Group.IdxY, side = Block * t;
            int bi = Grid.IdxY, bj = Grid.IdxX, split = Grid.IdxZ;
            if (bj < bi) return;   // the whole group leaves together: no barrier is left waiting
            int tid = ty * t + tx, threads = t * t;
            // Cut in Float4 units so that ILGPU knows the vector loads are aligned (side = 4T floats).
            var shared4 = Float4.SharedDynamic();
            var a4 = shared4.SubView(0, Depth * t);
            var b4 = shared4.SubView(Depth * t, Depth * t);
            var a = a4.Cast<float>();
            var b = b4.Cast<float>();
            long k0 = (long)n * split / splits, k1 = (long)n * (split + 1) / splits;
            var acc = new Block4x4();
            int total = Depth * side;
            for (long k = k0; k < k1; k += Depth)
            {
                // Rows of F along the positions: 16 consecutive floats a row, lanes along k (coalesced). Four elements
                // of each tile a pass, their 8 loads issued before the first store: ILGPU's loads are generic (LD.E),
                // which may not pass a shared store, so load-store-load waited for each load in turn — 4 round trips a
                // thread a k-step at the GPU's 16×16 groups, 64 over a split's 256 positions (the fp32 Gram forward ran
                // at 12–20 TFLOP/s on an H200, 0.8 ms of the fp32 512² iteration).
                for (int e = tid; e < total; e += 4 * threads)
                {
                    int e1 = e + threads, e2 = e1 + threads, e3 = e2 + threads;
                    float a0 = TileValue(f, c, n, k, k1, bi * side, e, total), b0 = TileValue(f, c, n, k, k1, bj * side, e, total);
                    float a1 = TileValue(f, c, n, k, k1, bi * side, e1, total), b1 = TileValue(f, c, n, k, k1, bj * side, e1, total);
                    float a2 = TileValue(f, c, n, k, k1, bi * side, e2, total), b2 = TileValue(f, c, n, k, k1, bj * side, e2, total);
                    float a3 = TileValue(f, c, n, k, k1, bi * side, e3, total), b3 = TileValue(f, c, n, k, k1, bj * side, e3, total);
                    a[TileSlot(e, side)] = a0; b[TileSlot(e, side)] = b0;
                    if (e1 < total) { a[TileSlot(e1, side)] = a1; b[TileSlot(e1, side)] = b1; }
                    if (e2 < total) { a[TileSlot(e2, side)] = a2; b[TileSlot(e2, side)] = b2; }
                    if (e3 < total) { a[TileSlot(e3, side)] = a3; b[TileSlot(e3, side)] = b3; }
                }
                Group.Barrier();
                // 64-bit indices: with T a constant, each load is a register plus an immediate.
                for (int kk = 0; kk < Depth; kk++)
                    acc.Add(a4[(long)kk * t + ty], b4[(long)kk * t + tx]);
                Group.Barrier();
            }
            int i = bi * side + Block * ty, j = bj * side + Block * tx;
            long slab = (long)split * c;
            acc.Store(partials, slab, c, c, i, j, 1f, accumulate: 0);
        }

        /// <summary>Element e of a forward k-step's tile of rows from <paramref name="row0"/> (row e / Depth, position
        /// k + e mod Depth): F's value, zero past C, past the split's end k1 or past the tile's <paramref name="total"/>
        /// elements — a load without a branch (element 0 where outside).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static float TileValue(ArrayView<float> f, int c, int n, long k, long k1, int row0, int e, int total)
        {
            int row = e / Depth, kk = e - row * Depth, r = row0 + row;
            long at = k + kk;
            bool inside = e < total && r < c && at < k1;
            float v = f[inside ? r * (long)n + at : 0];
            return inside ? v : 0f;
        }

        /// <summary>The backward's S = dG + dGᵀ at (i, j), zero outside C×C or past the chunk's Depth rows (jj) —
        /// branch-free loads (element 0 where outside).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static float SValue(ArrayView<float> dg, int c, int i, int j, int jj)
        {
            bool inside = jj < Depth && i < c && j < c;
            float a = dg[inside ? i * c + j : 0], b = dg[inside ? j * c + i : 0];
            return inside ? a + b : 0f;
        }

        /// <summary>The backward's F at (j, k), zero outside C×N or past the chunk's Depth rows (jj), branch-free.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static float FValue(ArrayView<float> f, int c, int n, int j, long k, int jj)
        {
            bool inside = jj < Depth && j < c && k < n;
            float v = f[inside ? j * (long)n + k : 0];
            return inside ? v : 0f;
        }

        /// <summary>Where element e (row e / Depth, position e mod Depth) goes in a [position][row] tile.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static int TileSlot(int e, int side)
        {
            int row = e / Depth;
            return (e - row * Depth) * side + row;
        }

        /// <summary>Grid (⌈N/4T⌉, ⌈C/4T⌉), group (T, T), T a multiple of 4. df[i,k] += Σ_j (dG[i,j] + dG[j,i])·F[j,k] / N.</summary>
        [KernelName("gram_backward_blocked")]
        public static void BackwardAccumulate(ArrayView<float> f, ArrayView<float> dg, ArrayView<float> df, int c, int n) =>
            Backward(f, dg, df, c, n, Group.DimX);

        /// <summary><see cref="BackwardAccumulate"/> for the GPU's 16×16 groups, T a constant.</summary>
        [KernelName("gram_backward_blocked_16")]
        public static void BackwardAccumulate16(ArrayView<float> f, ArrayView<float> dg, ArrayView<float> df, int c, int n) =>
            Backward(f, dg, df, c, n, 16);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Backward(ArrayView<float> f, ArrayView<float> dg, ArrayView<float> df, int c, int n, int t)
        {
            int tx = Group.IdxX, ty = Group.IdxY, side = Block * t;
            int i0 = Grid.IdxY * side;
            long k0 = (long)Grid.IdxX * side;
            int tid = ty * t + tx, threads = t * t;
            var shared4 = Float4.SharedDynamic();
            var s4 = shared4.SubView(0, Depth * t);          // [j][i]: S = dG + dGᵀ
            var f4 = shared4.SubView(Depth * t, Depth * t);  // [j][k]
            var sTile = s4.Cast<float>();
            var fTile = f4.Cast<float>();
            var acc = new Block4x4();
            // Each thread stages one column of both tiles, every (threads / side)-th row: T a multiple of 4 makes
            // threads (T²) a multiple of side (4T), so the one division is here, outside the loops.
            int col = tid % side, rowStep = threads / side;
            for (int j0 = 0; j0 < c; j0 += Depth)
            {
                // Four rows of both tiles a pass, their loads issued before the first store (as the forward's staging:
                // generic loads may not pass a shared store) — the fp32 Gram backward wherever the SGEMM's blocks do
                // not fit (C or N off its 128-sided blocks: most image sizes that are not multiples of 16 px).
                for (int jj = tid / side; jj < Depth; jj += 4 * rowStep)
                {
                    int jj1 = jj + rowStep, jj2 = jj1 + rowStep, jj3 = jj2 + rowStep;
                    float s0 = SValue(dg, c, i0 + col, j0 + jj, jj), f0 = FValue(f, c, n, j0 + jj, k0 + col, jj);
                    float s1 = SValue(dg, c, i0 + col, j0 + jj1, jj1), f1 = FValue(f, c, n, j0 + jj1, k0 + col, jj1);
                    float s2 = SValue(dg, c, i0 + col, j0 + jj2, jj2), f2 = FValue(f, c, n, j0 + jj2, k0 + col, jj2);
                    float s3 = SValue(dg, c, i0 + col, j0 + jj3, jj3), f3 = FValue(f, c, n, j0 + jj3, k0 + col, jj3);
                    sTile[jj * side + col] = s0; fTile[jj * side + col] = f0;
                    if (jj1 < Depth) { sTile[jj1 * side + col] = s1; fTile[jj1 * side + col] = f1; }
                    if (jj2 < Depth) { sTile[jj2 * side + col] = s2; fTile[jj2 * side + col] = f2; }
                    if (jj3 < Depth) { sTile[jj3 * side + col] = s3; fTile[jj3 * side + col] = f3; }
                }
                Group.Barrier();
                for (int jj = 0; jj < Depth; jj++)
                    acc.Add(s4[(long)jj * t + ty], f4[(long)jj * t + tx]);
                Group.Barrier();
            }
            acc.Store(df, 0, c, n, i0 + Block * ty, k0 + Block * tx, 1f / n, accumulate: 1);
        }
    }

    /// <summary>
    /// Version 4: the Gram kernels on tensor cores in TF32 (mma.sync.m16n8k8, fp32 accumulation), with the TF32
    /// convolution. A group of W×W warps computes a (32W)-sided tile, each warp a 32×32 block as 2 × 4 m16n8 tiles —
    /// the convolution's fragment layout, accumulator registers and CPU emulation (Conv3x3.IlgpuTensorCore).
    /// Forward: G = F·Fᵀ with A = F's row tile [i][k] and B = another row tile read as [k][j]; split-K over the
    /// positions with the same partials and <see cref="IlgpuTiled.ReduceSplits"/> as versions 2–3, tiles on or above
    /// the diagonal only. Backward: dF += S·F, S = (dG + dGᵀ)/N made once by <see cref="SymmetricScaled"/> (so that
    /// its rows are read coalesced), A = S's tile [i][j], B = F's tile [j][k].
    /// Counted at 512², VGG16's five style layers: 9 GFLOP forward (half of it skipped by symmetry) and 18 backward,
    /// ≈ 2.5 ms an iteration in fp32 version 3 on an H200 (7–11 TFLOP/s). At the TF32 convolution's 30 TFLOP/s:
    /// ≈ 0.8 ms expected. Shared rows are padded so that fragment loads are conflict-free: A and forward-B rows 36
    /// floats apart (lanes g·36 + q: 32 banks), backward-B rows 32W + 8 apart (lanes q·(32W + 8) + g).
    /// </summary>
    public static class IlgpuTensorCore
    {
        public const int KChunk = 32, RowStride = KChunk + 4;

        public static int Threads(int warpsSide) => 32 * warpsSide * warpsSide;
        public static int Side(int warpsSide) => 32 * warpsSide;
        static int Scratch(int warpsSide, int emulate) => emulate != 0 ? warpsSide * warpsSide * Conv3x3.IlgpuTensorCore.ScratchPerWarp : 0;

        public static int ForwardSharedFloats(int warpsSide, int emulate) => 2 * Side(warpsSide) * RowStride + Scratch(warpsSide, emulate);
        public static int BackwardSharedFloats(int warpsSide, int emulate) =>
            Side(warpsSide) * RowStride + KChunk * (Side(warpsSide) + 8) + Scratch(warpsSide, emulate);

        /// <summary>
        /// Grid (⌈C/side⌉, ⌈C/side⌉, splits), group (<see cref="Threads"/>), dynamic shared memory
        /// <see cref="ForwardSharedFloats"/>. partials: splits × C × C, as <see cref="IlgpuTiled.ForwardPartial"/>.
        /// </summary>
        [KernelName("gram_forward_tf32_mma")]
        public static void ForwardPartial(ArrayView<float> f, ArrayView<float> partials, int c, int n, int splits, int warpsSide, int batch)
        {
            int bi = Grid.IdxY, bj = Grid.IdxX, split = Grid.IdxZ;
            if (bj < bi) return;   // the whole group leaves together
            int tid = Group.IdxX, threads = Group.DimX, lane = tid & 31, warp = tid >> 5;
            int wm = warp / warpsSide, wn = warp - wm * warpsSide, g = lane >> 2, q = lane & 3, side = Side(warpsSide);
            var shared4 = Float4.SharedDynamic();
            var shared = shared4.Cast<float>();
            bool diagonal = bi == bj;   // B is A, loaded once (DiagonalTiles)
            var a4 = ForwardTile(shared4, side, 0);
            var b4 = ForwardTile(shared4, side, 1);
            var a = a4.Cast<float>();
            var b = b4.Cast<float>();
            int bRowsEnd = diagonal ? 0 : c;
            var f4 = f.Cast<Float4>();
            // With N a multiple of 4, as in VGG, F's rows are staged as 128-bit vectors, 8 loads of each tile a thread a
            // chunk (2×2 warps) instead of 32 scalar ones.
            var (k0, k1) = ForwardSlice(n, split, splits);
            bool vectors = n % 4 == 0;
            // Each lane's fragment positions as 64-bit bases made once (see NnBlock): a k-step adds a constant.
            long aFragment = (long)(wm * 32 + g) * RowStride + q, bFragment = (long)(wn * 32 + g) * RowStride + q;
            var acc = new WarpAccumulators();
            if (CudaAsm.IsSupported) CudaAsm.Emit(Conv3x3.IlgpuTensorCore.DeclareAccumulators);
            for (long k = k0; k < k1; k += KChunk)
            {
                // Rows of F along the positions, 32 consecutive floats a row (a warp reads whole rows: coalesced).
                if (vectors)
                    // A pass's loads (batch × 2 vectors) before its stores: see StagingBatch.
                    for (int e = tid; e < side * (KChunk / 4); e += batch * threads)
                    {
                        int e1 = e + threads;
                        bool has1 = batch > 1 && e1 < side * (KChunk / 4);
                        var (va, vb) = ForwardVectors(f4, c, bRowsEnd, n, bi, bj, side, k, k1, e);
                        Float4 va1 = default, vb1 = default;
                        if (batch > 1) (va1, vb1) = ForwardVectors(f4, c, bRowsEnd, n, bi, bj, side, k, k1, has1 ? e1 : e);
                        a4[RowSlot(e)] = va;
                        b4[RowSlot(e)] = diagonal ? va : vb;
                        if (has1)
                        {
                            a4[RowSlot(e1)] = va1;
                            b4[RowSlot(e1)] = diagonal ? va1 : vb1;
                        }
                    }
                else
                    for (int e = tid; e < side * KChunk; e += threads)
                    {
                        int row = e / KChunk, kk = e - row * KChunk;
                        long at = k + kk;
                        int ri = bi * side + row, rj = bj * side + row;
                        float va = Conv3x3.IlgpuTensorCore.RoundTf32(ri < c && at < k1 ? f[ri * (long)n + at] : 0f);
                        a[row * RowStride + kk] = va;
                        b[row * RowStride + kk] = diagonal ? va : Conv3x3.IlgpuTensorCore.RoundTf32(rj < bRowsEnd && at < k1 ? f[rj * (long)n + at] : 0f);
                    }
                Group.Barrier();
                ForwardChunk(a, b, shared, 2 * side * RowStride, aFragment, bFragment, warp, g, q, ref acc);
                Group.Barrier();
            }
            if (CudaAsm.IsSupported) acc = Conv3x3.IlgpuTensorCore.ReadAccumulators();
            long slab = (long)split * c;
            int i = bi * side + wm * 32 + g, j = bj * side + wn * 32 + 2 * q;
            if (wm <= wn || !diagonal) Store(partials, slab, c, c, i, j, acc, 1f, accumulate: 0);
        }

        // Diagonal tiles (bi = bj). Tile B then holds tile A's rows: the kernels load and round A's alone and store them
        // into both tiles — half the global loads and TF32 rounding of a chunk, at relu1_1 (one 64-channel tile) for
        // every group. And a warp block below the diagonal (wm > wn) stores no partial sums: the reductions read G's
        // upper triangle alone (at relu1_1, 512², a quarter of the 16 MB of partials). Counted in the sm_90 SASS, two
        // ways that cost more than they save: reading B's fragments from tile A (its base chosen at run time: 70 and 128
        // registers against 63 and 106, where constant offsets from one base serve both tiles), and that warp skipping
        // its mma.sync (the same registers again).

        /// <summary>The forward's tile <paramref name="index"/> (0: A, rows of F at bi's channels; 1: B, at bj's) in
        /// dynamic shared memory: side rows RowStride apart, cut in Float4 units (RowStride is a multiple of 4), so that
        /// ILGPU knows the vector stores are aligned.</summary>
        static ArrayView<Float4> ForwardTile(ArrayView<Float4> shared4, int side, int index) =>
            shared4.SubView(index * side * RowStride / 4, side * RowStride / 4);

        /// <summary>Slice <paramref name="split"/>'s positions k0 … k1 − 1: whole chunks, so that every chunk starts on a
        /// multiple of 4 (the partials are summed whatever the slices).</summary>
        static (long K0, long K1) ForwardSlice(int n, int split, int splits)
        {
            long chunks = (n + KChunk - 1) / KChunk;
            return (chunks * split / splits * KChunk, Math.Min(n, chunks * (split + 1) / splits * KChunk));
        }

        /// <summary>A warp's mma.sync on a staged forward chunk: its 32×32 block of the tiles' product, k-steps of 8, the
        /// fragments read as scalars from the row-major tiles (conflict-free: RowStride 36 puts lane (g, q) in bank 4g + q)
        /// at the lane's 64-bit bases (a k-step adds a constant, which ptxas folds into the loads' offsets).</summary>
        static void ForwardChunk(ArrayView<float> a, ArrayView<float> b, ArrayView<float> shared, int scratchAt, long aFragment, long bFragment,
            int warp, int g, int q, ref WarpAccumulators acc)
        {
            for (int k8 = 0; k8 < KChunk; k8 += 8)
            {
                long ra = aFragment + k8;
                FragmentA a0 = RowMajorA(a, ra), a1 = RowMajorA(a, ra + 16 * RowStride);
                // B (column-major 8×8): (k = q, n = g), (k = q+4, n = g); B[k][j] = F[j][k], j the row of tile b.
                long rb = bFragment + k8;
                var b0 = new FragmentB(b[rb], b[rb + 4]);
                var b1 = new FragmentB(b[rb + 8 * RowStride], b[rb + 8 * RowStride + 4]);
                var b2 = new FragmentB(b[rb + 16 * RowStride], b[rb + 16 * RowStride + 4]);
                var b3 = new FragmentB(b[rb + 24 * RowStride], b[rb + 24 * RowStride + 4]);
                Conv3x3.IlgpuTensorCore.WarpStep(shared, scratchAt, warp, g, q, ref acc, a0, a1, b0, b1, b2, b3);
            }
        }

        // The forward with the next chunk in flight (ForwardPrefetch; --launch MmaGramPrefetch=1, for 2×2 warps where N
        // is a multiple of 4). ForwardPartial's staging, even in batches (StagingBatch), waits for its loads before the
        // chunk's mma.sync can start: ILGPU loads global views with generic ld, which ptxas does not move past a shared
        // store, so a chunk costs 2 round trips to L2 or memory and then 32 mma.sync a warp, in turn. Here a thread loads
        // the next chunk's 8 vectors (4 rows of each tile) into registers before this chunk's mma.sync, as version 5 of
        // the backward does (FragmentsChunk), and stores them after: the round trip overlaps the tensor work. 32 more
        // registers a thread hold the vectors. Same tiles, slices, chunks, rounding and k-order as ForwardPartial: the
        // two agree bit for bit (tested).

        /// <summary>
        /// As <see cref="ForwardPartial"/> with 2×2 warps (<see cref="Threads"/>(2) threads, <see cref="ForwardSharedFloats"/>
        /// (2, emulate)), N a multiple of 4 (F's rows read as 16-byte vectors): grid (⌈C/64⌉, ⌈C/64⌉, splits), partials splits × C × C.
        /// </summary>
        [KernelName("gram_forward_tf32_prefetch")]
        public static void ForwardPrefetch(ArrayView<float> f, ArrayView<float> partials, int c, int n, int splits)
        {
            int bi = Grid.IdxY, bj = Grid.IdxX, split = Grid.IdxZ;
            if (bj < bi) return;   // the whole group leaves together
            const int side = 64;
            int tid = Group.IdxX, lane = tid & 31, warp = tid >> 5, wm = warp >> 1, wn = warp & 1, g = lane >> 2, q = lane & 3;
            var shared4 = Float4.SharedDynamic();
            var shared = shared4.Cast<float>();
            bool diagonal = bi == bj;   // B is A, loaded once (DiagonalTiles)
            var a4 = ForwardTile(shared4, side, 0);
            var b4 = ForwardTile(shared4, side, 1);
            var a = a4.Cast<float>();
            var b = b4.Cast<float>();
            var f4 = f.Cast<Float4>();
            var (k0, k1) = ForwardSlice(n, split, splits);
            // Thread tid stages vectors tid + 128·v (v = 0…3) of each tile: row tid/8 + 16v, positions 4·(tid mod 8)….
            int row = tid >> 3, kv = tid & 7;
            long n4 = n / 4, at = k0 + 4 * kv;
            long aAt = ((bi * side + row) * (long)n + at) / 4, bAt = ((bj * side + row) * (long)n + at) / 4, rowStep = 16 * n4;
            // Rows of F left at and below this thread's first of each tile (none of B's loaded on a diagonal tile).
            int aRows = c - (bi * side + row), bRows = diagonal ? 0 : c - (bj * side + row);
            int slot = (row * RowStride + 4 * kv) / 4;
            long aFragment = (long)(wm * 32 + g) * RowStride + q, bFragment = (long)(wn * 32 + g) * RowStride + q;
            var acc = new WarpAccumulators();
            if (CudaAsm.IsSupported) CudaAsm.Emit(Conv3x3.IlgpuTensorCore.DeclareAccumulators);
            var loads = ForwardChunkLoads.Load(f4, aAt, bAt, rowStep, at < k1, aRows, bRows);
            for (long k = k0; k < k1; k += KChunk)
            {
                loads.Store(a4, b4, slot, diagonal);
                Group.Barrier();
                aAt += KChunk / 4;
                bAt += KChunk / 4;
                at += KChunk;
                loads = ForwardChunkLoads.Load(f4, aAt, bAt, rowStep, at < k1, aRows, bRows);
                ForwardChunk(a, b, shared, 2 * side * RowStride, aFragment, bFragment, warp, g, q, ref acc);
                Group.Barrier();
            }
            if (CudaAsm.IsSupported) acc = Conv3x3.IlgpuTensorCore.ReadAccumulators();
            if (wm <= wn || !diagonal) Store(partials, (long)split * c, c, c, bi * side + wm * 32 + g, bj * side + wn * 32 + 2 * q, acc, 1f, accumulate: 0);
        }

        /// <summary>A thread's share of one chunk of <see cref="ForwardPrefetch"/>'s two tiles, held in registers between
        /// its loads and its stores: rows r, r + 16, r + 32, r + 48 of each (4 positions of each), TF32-rounded.</summary>
        struct ForwardChunkLoads
        {
            Float4 _a0, _a1, _a2, _a3, _b0, _b1, _b2, _b3;

            /// <summary>The vectors at aAt and bAt and 1–3 row steps on; zeros past the slice (<paramref name="inside"/>
            /// false) and past C (aRows, bRows: the rows of F left at and below the thread's first row of each tile).</summary>
            public static ForwardChunkLoads Load(ArrayView<Float4> f4, long aAt, long bAt, long rowStep, bool inside, int aRows, int bRows) => new()
            {
                _a0 = RoundedRow(f4, aAt, inside && aRows > 0), _a1 = RoundedRow(f4, aAt + rowStep, inside && aRows > 16),
                _a2 = RoundedRow(f4, aAt + 2 * rowStep, inside && aRows > 32), _a3 = RoundedRow(f4, aAt + 3 * rowStep, inside && aRows > 48),
                _b0 = RoundedRow(f4, bAt, inside && bRows > 0), _b1 = RoundedRow(f4, bAt + rowStep, inside && bRows > 16),
                _b2 = RoundedRow(f4, bAt + 2 * rowStep, inside && bRows > 32), _b3 = RoundedRow(f4, bAt + 3 * rowStep, inside && bRows > 48),
            };

            /// <summary>Into the tiles (row-major, RowStride apart) at vector slot and 16 rows on, each; on a
            /// <paramref name="diagonal"/> tile A's vectors into both.</summary>
            public readonly void Store(ArrayView<Float4> a4, ArrayView<Float4> b4, int slot, bool diagonal)
            {
                const int rows16 = 16 * RowStride / 4;
                a4[slot] = _a0; a4[slot + rows16] = _a1; a4[slot + 2 * rows16] = _a2; a4[slot + 3 * rows16] = _a3;
                if (diagonal)
                {
                    b4[slot] = _a0; b4[slot + rows16] = _a1; b4[slot + 2 * rows16] = _a2; b4[slot + 3 * rows16] = _a3;
                }
                else
                {
                    b4[slot] = _b0; b4[slot + rows16] = _b1; b4[slot + 2 * rows16] = _b2; b4[slot + 3 * rows16] = _b3;
                }
            }
        }

        /// <summary>F's 16-byte vector at, TF32-rounded, or zeros where it lies outside (the staging of both
        /// ForwardPrefetch and BackwardFragments).</summary>
        static Float4 RoundedRow(ArrayView<Float4> f4, long at, bool inside) => RoundTf32(inside ? f4[at] : default);

        /// <summary>Staging a batch at a time (the kernels' <c>batch</c>, 1 or 2: MmaGemmBatch). A loop whose body loads
        /// a vector and then stores it waits for each load in turn — a round trip to L2 or memory an iteration (the sm_90
        /// SASS of all three kernels here): with 2×2 warps, 4 a chunk for the forward and 8 for the NN GEMM's two tiles,
        /// for 32 mma.sync a warp. With batch 2 a thread issues 2 vectors of each tile (both tiles together in the
        /// forward) before any store: 2 round trips a chunk in the forward, 4 in the NN GEMM, at 63–68 registers (54–64).
        /// </summary>
        public const int StagingBatch = 2;

        /// <summary>Vector e of a forward chunk's two tiles (rows of F at bi's and bj's channels, positions k…),
        /// TF32-rounded, zero past C (B's: past <paramref name="bRowsEnd"/>, 0 on a diagonal tile, which loads none) or
        /// the slice's end k1.</summary>
        static (Float4 A, Float4 B) ForwardVectors(ArrayView<Float4> f4, int c, int bRowsEnd, int n, int bi, int bj, int side, long k, long k1, int e)
        {
            int row = e / (KChunk / 4), kv = e - row * (KChunk / 4);
            long at = k + 4 * kv;
            int ri = bi * side + row, rj = bj * side + row;
            return (RoundTf32(ri < c && at < k1 ? f4[(ri * (long)n + at) / 4] : default),
                RoundTf32(rj < bRowsEnd && at < k1 ? f4[(rj * (long)n + at) / 4] : default));
        }

        /// <summary>Where vector e of a chunk's row-major tile (the forward's two, the NN block's A) goes: row e / 8,
        /// columns 4·(e mod 8)…, rows RowStride apart.</summary>
        static int RowSlot(int e)
        {
            int row = e / (KChunk / 4), kv = e - row * (KChunk / 4);
            return (row * RowStride + 4 * kv) / 4;
        }

        /// <summary>Each of a vector's floats rounded to TF32.</summary>
        static Float4 RoundTf32(Float4 v)
        {
            v.A = Conv3x3.IlgpuTensorCore.RoundTf32(v.A); v.B = Conv3x3.IlgpuTensorCore.RoundTf32(v.B);
            v.C = Conv3x3.IlgpuTensorCore.RoundTf32(v.C); v.D = Conv3x3.IlgpuTensorCore.RoundTf32(v.D);
            return v;
        }

        /// <summary>Launch with C·C threads: s[i,j] = (dG[i,j] + dG[j,i]) / N, TF32-rounded with round (the backward's
        /// A; unrounded for the fp32 SGEMM backward, GramGemm).</summary>
        [KernelName("gram_symmetric_scaled")]
        public static void SymmetricScaled(Index1D index, ArrayView<float> dg, ArrayView<float> s, int c, float scale, int round)
        {
            int i = index / c, j = index - i * c;
            float v = (dg[index] + dg[j * c + i]) * scale;
            s[index] = round != 0 ? Conv3x3.IlgpuTensorCore.RoundTf32(v) : v;
        }

        /// <summary>
        /// Grid (⌈N/side⌉, ⌈C/side⌉, splits), group (<see cref="Threads"/>), dynamic shared memory
        /// <see cref="BackwardSharedFloats"/>. df[i,k] += Σ_j s[i,j]·F[j,k], s from <see cref="SymmetricScaled"/>.
        /// With splits &gt; 1 the sum over j is split into shares of KChunk-deep chunks (Conv3x3.IlgpuTiled.SplitShare),
        /// split z writing its partial product to the z-th C×N block of <paramref name="df"/> (then a partials buffer),
        /// which <see cref="AddSplits"/> adds to dF: relu5_1's backward at 512² (C 512, N 32²) is a grid of 128 groups
        /// of 64×64 for 132 SMs, each walking 16 chunks — one group an SM, its staging waited for chunk by chunk.
        /// </summary>
        [KernelName("gram_backward_tf32_mma")]
        public static void BackwardAccumulate(ArrayView<float> f, ArrayView<float> s, ArrayView<float> df, int c, int n, int warpsSide, int batch, int splits)
        {
            int i0 = Grid.IdxY * Side(warpsSide), split = Grid.IdxZ;
            long k0 = (long)Grid.IdxX * Side(warpsSide);
            var share = Conv3x3.IlgpuTiled.SplitShare.OfChannels(c, KChunk, splits, split);
            // S's columns and F's rows First … End−1 (none in an empty split: its partial is zeros).
            var acc = NnBlock(s, share.First, c, c, f, (long)share.First * n, n, n, share.End - share.First, i0, k0, warpsSide, batch);
            int warp = Group.IdxX >> 5, lane = Group.IdxX & 31, wm = warp / warpsSide, wn = warp - wm * warpsSide;
            Store(df, (long)split * c, c, n, i0 + wm * 32 + (lane >> 2), k0 + wn * 32 + 2 * (lane & 3), acc, 1f, accumulate: splits > 1 ? 0 : 1);
        }

        /// <summary>Launch with C·N threads: df[e] += Σ_z partials[z·count + e], the splits of a split
        /// <see cref="BackwardAccumulate"/> added in split order.</summary>
        [KernelName("gram_backward_add_splits")]
        public static void AddSplits(Index1D index, ArrayView<float> partials, ArrayView<float> df, long count, int splits)
        {
            float z = df[index];
            for (int split = 0; split < splits; split++) z += partials[split * count + index];
            df[index] = z;
        }

        // Version 5 of the TF32 Gram backward: its operands staged in the order the mma.sync fragments read them, as
        // version 5 of the convolution stages its weights and patches (Conv3x3.TensorCoreFragments.cs). The GEMM block
        // above (NnBlock) reads a warp-step's fragments as 16 scalar loads from row-major tiles (A: 4 a fragment from 4
        // rows; B: 2 from 2 rows), each behind its address arithmetic — version 4's pattern, which ran the convolution
        // at 74 TFLOP/s where fragment order ran it at 123. On an H200 this block ran the Gram backward at 21–27 TFLOP/s
        // at relu3_1 and relu4_1 (0.10 and 0.08 ms for ≈ 2.1 GFLOP each; twentieth session), below the fp32 SGEMM.
        //   S        packed once a call (SymmetricFragments, which also makes it: (dG + dGᵀ)/N, TF32-rounded) as
        //            [64-row block][32-channel chunk][m-tile of 16][k-step of 8][lane][4]: lane (g, q)'s four A values
        //            side by side, a chunk's 8 KB one contiguous copy; an A fragment is one LDS.128, a warp's 32 lanes
        //            512 consecutive bytes.
        //   F        staged as [k-step][column][8 channels ordered 0 4 1 5 2 6 3 7], so that lane (g, q)'s B values,
        //            channels q and q+4 of one column, sit side by side: one LDS.64, each half-warp's lanes 128
        //            consecutive bytes. A staging thread reads 16 bytes of a row of F (4 columns of one channel) and
        //            writes them as 4 scalars 8 floats apart. Every 4 columns (32 floats) are followed by 8 floats of
        //            padding, so that the 4 lanes storing the same column element of neighbouring vectors land 8 banks
        //            apart: each store instruction's 32 addresses fall in 32 different banks (without it, 8 banks: 4-way
        //            conflicts; choosing per lane which element to store first instead took a divergent branch a store).
        // A warp-step is then 2 LDS.128 + 4 LDS.64 for 8 mma.sync (16 wavefronts), against 16 scalar loads. Staging a
        // chunk is 8 LDG.128 a thread, issued for the next chunk as soon as this one is stored, so that they fly while
        // this chunk's mma.sync run (the registers they hold cost no occupancy: 128 a thread with them, 108 without,
        // either way four 128-thread groups an SM). In the sm_90 SASS (ptxas 11.8) a chunk is 223 instructions a warp —
        // 32 HMMA, 24 LDS, 4 STS.128 + 16 STS, 8 LDG.128 — where version 4 executes ≈ 450 (its two staging loops run
        // two passes each; 64 LDS), each chunk's loads waited for before its mma.sync.
        // Same tile (64×64, 2×2 warps of 32×32), the same 32-deep chunks in the same order, the same S and the same
        // rounding of F as BackwardAccumulate: the two agree bit for bit (tested). F's rows are read as 16-byte vectors,
        // so N must be a multiple of 4 (VGG's maps at even sizes); elsewhere the tuning does not offer it.

        /// <summary>A fragments group's side (rows of dF by columns) and its threads: 2×2 warps of 32×32.</summary>
        public const int FragmentsSide = 64, FragmentsThreads = 128;

        /// <summary>Float4s a 64-row block of packed S holds for one 32-channel chunk.</summary>
        const int FragmentsChunkVectors = FragmentsSide * KChunk / 4;

        /// <summary>Floats of a k-step of F's staged tile: 16 groups of 4 columns × 8 channels, each group padded by 8
        /// floats (see above).</summary>
        const int FragmentsStepFloats = FragmentsSide / 4 * 40;

        /// <summary>KChunk-deep chunks of C channels (versions 4 and 5 of the backward alike).</summary>
        public static int Chunks(int c) => (c + KChunk - 1) / KChunk;

        /// <summary>Floats of <see cref="SymmetricFragments"/>' output for C channels.</summary>
        public static long SymmetricFragmentsLength(int c) => (long)(c + FragmentsSide - 1) / FragmentsSide * Chunks(c) * FragmentsChunkVectors * 4;

        /// <summary>Dynamic shared memory of <see cref="BackwardFragments"/>: a chunk of S and one of F (18 KB), and the
        /// emulation's scratch off CUDA.</summary>
        public static int FragmentsSharedFloats(int emulate) =>
            FragmentsChunkVectors * 4 + 4 * FragmentsStepFloats + (emulate != 0 ? FragmentsThreads / 32 * Conv3x3.IlgpuTensorCore.ScratchPerWarp : 0);

        /// <summary>Whether <see cref="BackwardFragments"/> can run N positions (F's rows read as 16-byte vectors).</summary>
        public static bool FragmentsFit(long n) => n % 4 == 0;

        /// <summary>
        /// S = (dG + dGᵀ)·scale, TF32-rounded as <see cref="SymmetricScaled"/> rounds it, in fragment order (see above):
        /// element ((((block·chunks + chunk)·4 + m)·4 + k8)·32 + lane)·4 + e holds lane (g, q)'s A value e — row g (e
        /// even) or g+8 (e odd), column q (e &lt; 2) or q+4 — of the 16×8 block at rows 64·block + 16m, channels
        /// 32·chunk + 8·k8; zero past C. One thread per element (<see cref="SymmetricFragmentsLength"/>).
        /// </summary>
        [KernelName("gram_symmetric_fragments")]
        public static void SymmetricFragments(Index1D index, ArrayView<float> dg, ArrayView<float> packed, int c, float scale)
        {
            int e = index & 3, lane = (index >> 2) & 31, k8 = (index >> 7) & 3, m = (index >> 9) & 3, rest = index >> 11;
            int chunks = Chunks(c), chunk = rest % chunks, block = rest / chunks;
            int i = block * FragmentsSide + m * 16 + (lane >> 2) + 8 * (e & 1), j = chunk * KChunk + k8 * 8 + (lane & 3) + 4 * (e >> 1);
            float v = 0f;
            if (i < c && j < c) v = Conv3x3.IlgpuTensorCore.RoundTf32((dg[i * c + j] + dg[j * c + i]) * scale);
            packed[index] = v;
        }

        /// <summary>
        /// Grid (⌈N/64⌉, ⌈C/64⌉, splits), group (<see cref="FragmentsThreads"/>), dynamic shared memory
        /// <see cref="FragmentsSharedFloats"/>; N a multiple of 4 (<see cref="FragmentsFit"/>). df[i,k] += Σ_j s[i,j]·F[j,k]
        /// with s from <see cref="SymmetricFragments"/>: <see cref="BackwardAccumulate"/> with fragment-ordered operands
        /// (see above), and split the same way (splits &gt; 1: split z writes its partial product to the z-th C×N block
        /// of <paramref name="df"/>, then a partials buffer for <see cref="AddSplits"/>).
        /// </summary>
        [KernelName("gram_backward_tf32_fragments")]
        public static void BackwardFragments(ArrayView<float> f, ArrayView<float> packed, ArrayView<float> df, int c, int n, int splits)
        {
            int tid = Group.IdxX, lane = tid & 31, warp = tid >> 5, wm = warp >> 1, wn = warp & 1, g = lane >> 2, q = lane & 3;
            int block = Grid.IdxY, split = Grid.IdxZ, chunks = Chunks(c);
            long k0 = (long)Grid.IdxX * FragmentsSide;
            var share = Conv3x3.IlgpuTiled.SplitShare.Of(chunks, splits, split);
            var shared4 = Float4.SharedDynamic();
            var shared = shared4.Cast<float>();
            var sTile4 = shared4.SubView(0, FragmentsChunkVectors);                       // [m][k8][lane] × 4
            var fTile4 = shared4.SubView(FragmentsChunkVectors, 4 * FragmentsStepFloats / 4);   // [k8][column / 4][column mod 4][8 channels], padded
            var fTile = fTile4.Cast<float>();
            var fTile2 = fTile4.Cast<FloatPair>();
            int scratchAt = FragmentsChunkVectors * 4 + 4 * FragmentsStepFloats;
            var s4 = packed.Cast<Float4>();
            var f4 = f.Cast<Float4>();
            // F's staging: lane (r, u) = (lane / 4, lane mod 4) of warp w reads columns 4·(4w + u)… of channel r of each
            // 8-channel k-step — 4 steps a chunk, 4 vectors a thread — and stores them into the channel's slot of the
            // 0 4 1 5 2 6 3 7 order in column group 4w + u.
            // Positions as 64-bit values made once, to which the loop adds constants (ptxas folds those into the loads'
            // and stores' offsets; 32-bit sums widened at each access it recomputed).
            int r = lane >> 2, u = lane & 3, columns = 4 * warp + u;
            long fColumn = k0 + 4 * columns, n4 = n / 4;
            bool columnIn = fColumn < n;
            long fRow = (r * (long)n + fColumn) / 4, fStep = 8 * n4, fChunk = KChunk * n4;   // in vectors
            long fSlot = columns * 40 + 2 * (r & 3) + (r >> 2);
            long sAt = ((long)block * chunks + share.First) * FragmentsChunkVectors + tid, fAt = fRow + share.First * fChunk;
            // Fragment positions: A (m-tile 2wm + mt, k-step k8) at sTile4[(2wm + mt)·128 + k8·32 + lane]; B (n-tile nt,
            // k-step k8) at column 32wn + 8nt + g: fTile2[(k8·FragmentsStepFloats + (8wn + 2nt + g/4)·40 + (g mod 4)·8 + 2q) / 2].
            long aAt = 2 * wm * 128 + lane, bAt = ((8 * wn + (g >> 2)) * 40 + (g & 3) * 8 + 2 * q) / 2;
            var acc = new WarpAccumulators();
            if (CudaAsm.IsSupported) CudaAsm.Emit(Conv3x3.IlgpuTensorCore.DeclareAccumulators);
            // The first chunk's loads (4 vectors of S, 4 of F a thread), then in each chunk: its vectors stored, the
            // next chunk's loads issued, and the mma.sync run on the stored chunk while those loads are in flight.
            int j = share.First * KChunk + r;
            var loads = FragmentsChunk.Load(s4, sAt, f4, fAt, fStep, share.First < share.End, c - j, columnIn);
            for (int chunk = share.First; chunk < share.End; chunk++)
            {
                loads.Store(sTile4, tid, fTile, fSlot);
                Group.Barrier();
                sAt += FragmentsChunkVectors;
                fAt += fChunk;
                j += KChunk;
                loads = FragmentsChunk.Load(s4, sAt, f4, fAt, fStep, chunk + 1 < share.End, c - j, columnIn);
                for (int k8 = 0; k8 < 4; k8++)
                {
                    var a0 = Conv3x3.IlgpuMmaFragments.A(sTile4[aAt + k8 * 32]); var a1 = Conv3x3.IlgpuMmaFragments.A(sTile4[aAt + 128 + k8 * 32]);
                    long b = bAt + k8 * (FragmentsStepFloats / 2);
                    var b0 = Conv3x3.IlgpuMmaFragments.B(fTile2[b]); var b1 = Conv3x3.IlgpuMmaFragments.B(fTile2[b + 40]);
                    var b2 = Conv3x3.IlgpuMmaFragments.B(fTile2[b + 80]); var b3 = Conv3x3.IlgpuMmaFragments.B(fTile2[b + 120]);
                    Conv3x3.IlgpuTensorCore.WarpStep(shared, scratchAt, warp, g, q, ref acc, a0, a1, b0, b1, b2, b3);
                }
                Group.Barrier();
            }
            if (CudaAsm.IsSupported) acc = Conv3x3.IlgpuTensorCore.ReadAccumulators();
            Store(df, (long)split * c, c, n, block * FragmentsSide + wm * 32 + g, k0 + wn * 32 + 2 * q, acc, 1f, accumulate: splits > 1 ? 0 : 1);
        }

        /// <summary>A thread's share of one chunk of <see cref="BackwardFragments"/>' operands, loaded from global
        /// memory before it is stored to shared memory (so that the loads fly while the previous chunk's mma.sync run):
        /// 4 vectors of packed S, 128 vectors apart, and 4 of F, one from each of the chunk's 8-channel k-steps.</summary>
        struct FragmentsChunk
        {
            Float4 _s0, _s1, _s2, _s3, _f0, _f1, _f2, _f3;

            /// <summary>The vectors at sAt (S) and fAt (F, k-steps fStep apart); zeros where <paramref name="inside"/>
            /// is false (past the split's last chunk), and F's zeros past C (channelsLeft: C less the thread's first
            /// channel in the chunk) or N (columnIn). F is TF32-rounded.</summary>
            public static FragmentsChunk Load(ArrayView<Float4> s4, long sAt, ArrayView<Float4> f4, long fAt, long fStep, bool inside,
                int channelsLeft, bool columnIn)
            {
                bool f = inside && columnIn;
                return new FragmentsChunk
                {
                    _s0 = S(s4, sAt, inside), _s1 = S(s4, sAt + 128, inside), _s2 = S(s4, sAt + 256, inside), _s3 = S(s4, sAt + 384, inside),
                    _f0 = RoundedRow(f4, fAt, f && channelsLeft > 0), _f1 = RoundedRow(f4, fAt + fStep, f && channelsLeft > 8),
                    _f2 = RoundedRow(f4, fAt + 2 * fStep, f && channelsLeft > 16), _f3 = RoundedRow(f4, fAt + 3 * fStep, f && channelsLeft > 24),
                };
            }

            /// <summary>Into the chunk's tiles: S's vectors at tid, tid + 128 …; F's rows as 4 columns each into their
            /// channel's slots, 8 floats apart, k-steps FragmentsStepFloats apart (see above).</summary>
            public readonly void Store(ArrayView<Float4> sTile4, int tid, ArrayView<float> fTile, long fSlot)
            {
                sTile4[tid] = _s0; sTile4[tid + 128] = _s1; sTile4[tid + 256] = _s2; sTile4[tid + 384] = _s3;
                Columns(fTile, fSlot, _f0); Columns(fTile, fSlot + FragmentsStepFloats, _f1);
                Columns(fTile, fSlot + 2 * FragmentsStepFloats, _f2); Columns(fTile, fSlot + 3 * FragmentsStepFloats, _f3);
            }

            static Float4 S(ArrayView<Float4> s4, long at, bool inside) => inside ? s4[at] : default;

            static void Columns(ArrayView<float> tile, long at, Float4 v)
            {
                tile[at] = v.A; tile[at + 8] = v.B; tile[at + 16] = v.C; tile[at + 24] = v.D;
            }
        }

        /// <summary>
        /// A group's side × side block of the NN product C = A·B on tensor cores, in its warps' accumulators (warp
        /// (wm, wn) holds rows i0 + 32wm…, columns j0 + 32wn…: see <see cref="Store"/>): A rows·k row-major from
        /// aBase with row stride lda (rows valid below <paramref name="rows"/>; TF32-rounded by the caller), B k·columns
        /// row-major from bBase with row stride ldb (columns valid below <paramref name="cols"/>; rounded here while
        /// staging), k below <paramref name="kCount"/>. Shared the TF32 Gram backward and the TF32 Winograd GEMMs.
        /// </summary>
        internal static WarpAccumulators NnBlock(ArrayView<float> a, long aBase, long lda, int rows, ArrayView<float> b, long bBase,
            long ldb, long cols, int kCount, int i0, long j0, int warpsSide, int batch)
        {
            int tid = Group.IdxX, threads = Group.DimX, lane = tid & 31, warp = tid >> 5;
            int wm = warp / warpsSide, wn = warp - wm * warpsSide, g = lane >> 2, q = lane & 3, side = Side(warpsSide);
            int bStride = side + 8;
            // Regions cut in Float4 units (RowStride and bStride are multiples of 4), so that ILGPU knows the vector
            // stores are aligned.
            var shared4 = Float4.SharedDynamic();
            var shared = shared4.Cast<float>();
            var aTile4 = shared4.SubView(0, side * RowStride / 4);                       // [i][k]
            var bTile4 = shared4.SubView(side * RowStride / 4, KChunk * bStride / 4);    // [k][j]
            var aTile = aTile4.Cast<float>();
            var bTile = bTile4.Cast<float>();
            // With every offset, stride and bound a multiple of 4 (the Winograd GEMMs always; the Gram backward where
            // C and N are, as in VGG) both tiles are staged as 128-bit vectors: 4 loads of each a thread a chunk (2×2
            // warps) instead of 16 scalar ones, each with its own bounds checks (ptxas for sm_90: 29–35 instructions
            // an element, ≈ 1 000 a chunk against ≈ 200 for its 32 mma.sync).
            bool vectors = aBase % 4 == 0 && lda % 4 == 0 && kCount % 4 == 0 && bBase % 4 == 0 && ldb % 4 == 0 && cols % 4 == 0;
            var a4 = a.Cast<Float4>();
            var b4 = b.Cast<Float4>();
            int sideVectors = side / 4;
            int bRow0 = tid / side, bCol = tid - bRow0 * side, bRowStep = threads / side;
            int bRow04 = tid / sideVectors, bCol4 = tid - bRow04 * sideVectors, bRowStep4 = threads / sideVectors;
            long bj = j0 + bCol, bj4 = j0 + 4 * bCol4;
            // Each lane's fragment positions in the tiles, as 64-bit bases made once: a k-step adds a constant (A) or a
            // multiple of the row stride (B), which ptxas folds into the shared loads' offsets (with the sums in 32
            // bits, widened per load, it could not: ≈ 120 IMAD/IADD3/LEA a chunk for 32 mma.sync).
            long aFragment = (long)(wm * 32 + g) * RowStride + q, bFragment = (long)q * bStride + wn * 32 + g;
            var acc = new WarpAccumulators();
            if (CudaAsm.IsSupported) CudaAsm.Emit(Conv3x3.IlgpuTensorCore.DeclareAccumulators);
            for (int k0 = 0; k0 < kCount; k0 += KChunk)
            {
                if (vectors)
                {
                    // A: 8 vectors a row (KChunk / 4), rows along e; B: a thread keeps one column vector (threads is a
                    // multiple of side / 4) and steps rows.
                    // A batch of each tile's vectors a pass, every load before any store (StagingBatch).
                    for (int e = tid; e < side * (KChunk / 4); e += batch * threads)
                    {
                        int e1 = e + threads;
                        bool has1 = batch > 1 && e1 < side * (KChunk / 4);
                        var v0 = NnVectorA(a4, aBase, lda, rows, kCount, i0, k0, e);
                        Float4 v1 = default;
                        if (batch > 1) v1 = NnVectorA(a4, aBase, lda, rows, kCount, i0, k0, has1 ? e1 : e);
                        aTile4[RowSlot(e)] = v0;
                        if (has1) aTile4[RowSlot(e1)] = v1;
                    }
                    for (int br = bRow04; br < KChunk; br += batch * bRowStep4)
                    {
                        int br1 = br + bRowStep4;
                        bool has1 = batch > 1 && br1 < KChunk;
                        var v0 = NnVectorB(b4, bBase, ldb, cols, kCount, k0 + br, bj4);
                        Float4 v1 = default;
                        if (batch > 1) v1 = NnVectorB(b4, bBase, ldb, cols, kCount, k0 + (has1 ? br1 : br), bj4);
                        bTile4[(br * bStride + 4 * bCol4) / 4] = v0;
                        if (has1) bTile4[(br1 * bStride + 4 * bCol4) / 4] = v1;
                    }
                }
                else
                {
                    // A's rows, 32 consecutive k a row (KChunk a constant: the division is a shift).
                    for (int e = tid; e < side * KChunk; e += threads)
                    {
                        int row = e / KChunk, kk = e - row * KChunk, i = i0 + row, k = k0 + kk;
                        aTile[row * RowStride + kk] = i < rows && k < kCount ? a[aBase + i * lda + k] : 0f;
                    }
                    // B's rows, side consecutive columns a row: a thread keeps one column and steps rows (threads,
                    // 32W², is a multiple of side, 32W), so that the division by the runtime side is made once, not
                    // per element (an I2F/MUFU.RCP division sequence in every element's staging before).
                    for (int br = bRow0; br < KChunk; br += bRowStep)
                    {
                        int kb = k0 + br;
                        bTile[br * bStride + bCol] = Conv3x3.IlgpuTensorCore.RoundTf32(kb < kCount && bj < cols ? b[bBase + kb * ldb + bj] : 0f);
                    }
                }
                Group.Barrier();
                for (int k8 = 0; k8 < KChunk; k8 += 8)
                {
                    long ra = aFragment + k8;
                    FragmentA a0 = RowMajorA(aTile, ra), a1 = RowMajorA(aTile, ra + 16 * RowStride);
                    long rb = bFragment + (long)k8 * bStride, rb4 = rb + 4L * bStride;
                    var b0 = new FragmentB(bTile[rb], bTile[rb4]);
                    var b1 = new FragmentB(bTile[rb + 8], bTile[rb4 + 8]);
                    var b2 = new FragmentB(bTile[rb + 16], bTile[rb4 + 16]);
                    var b3 = new FragmentB(bTile[rb + 24], bTile[rb4 + 24]);
                    Conv3x3.IlgpuTensorCore.WarpStep(shared, side * RowStride + KChunk * bStride, warp, g, q, ref acc, a0, a1, b0, b1, b2, b3);
                }
                Group.Barrier();
            }
            if (CudaAsm.IsSupported) acc = Conv3x3.IlgpuTensorCore.ReadAccumulators();
            return acc;
        }

        /// <summary>Vector e of an NN chunk's A tile (row e / 8 at i0, k 4·(e mod 8) at k0), zero outside.</summary>
        static Float4 NnVectorA(ArrayView<Float4> a4, long aBase, long lda, int rows, int kCount, int i0, int k0, int e)
        {
            int row = e / (KChunk / 4), kv = e - row * (KChunk / 4), i = i0 + row, k = k0 + 4 * kv;
            return i < rows && k < kCount ? a4[(aBase + i * lda + k) / 4] : default;
        }

        /// <summary>B's vector at row kb, columns bj4…, TF32-rounded, zero outside.</summary>
        static Float4 NnVectorB(ArrayView<Float4> b4, long bBase, long ldb, long cols, int kCount, int kb, long bj4) =>
            RoundTf32(kb < kCount && bj4 < cols ? b4[(bBase + kb * ldb + bj4) / 4] : default);

        /// <summary>A lane's A fragment (row-major 16×8) from a tile of RowStride-long rows, at its (g, q): elements
        /// (g, q), (g+8, q), (g, q+4), (g+8, q+4).</summary>
        static FragmentA RowMajorA(ArrayView<float> tile, long at) =>
            new(tile[at], tile[at + 8 * RowStride], tile[at + 4], tile[at + 8 * RowStride + 4]);

        /// <summary>Writes (or adds, scaled) a warp's 32×32 block: m-tile mi rows i + 16mi (+8), n-tile ni columns
        /// j + 8ni (+1) — the C fragment's (g, 2q), (g, 2q+1), (g+8, 2q), (g+8, 2q+1) — skipping what lies outside.</summary>
        internal static void Store(ArrayView<float> m, long offset, int rows, long cols, int i, long j, WarpAccumulators acc, float scale, int accumulate)
        {
            if (accumulate != 0)
            {
                // The 32 old values loaded before the first store (see Gram.Old), then stored as they are.
                acc = new WarpAccumulators
                {
                    C00 = PlusOld(m, offset, rows, cols, i, j, acc.C00, scale), C01 = PlusOld(m, offset, rows, cols, i, j + 8, acc.C01, scale),
                    C02 = PlusOld(m, offset, rows, cols, i, j + 16, acc.C02, scale), C03 = PlusOld(m, offset, rows, cols, i, j + 24, acc.C03, scale),
                    C10 = PlusOld(m, offset, rows, cols, i + 16, j, acc.C10, scale), C11 = PlusOld(m, offset, rows, cols, i + 16, j + 8, acc.C11, scale),
                    C12 = PlusOld(m, offset, rows, cols, i + 16, j + 16, acc.C12, scale), C13 = PlusOld(m, offset, rows, cols, i + 16, j + 24, acc.C13, scale),
                };
                scale = 1f;
            }
            Put(m, offset, rows, cols, i, j, acc.C00, scale); Put(m, offset, rows, cols, i, j + 8, acc.C01, scale);
            Put(m, offset, rows, cols, i, j + 16, acc.C02, scale); Put(m, offset, rows, cols, i, j + 24, acc.C03, scale);
            Put(m, offset, rows, cols, i + 16, j, acc.C10, scale); Put(m, offset, rows, cols, i + 16, j + 8, acc.C11, scale);
            Put(m, offset, rows, cols, i + 16, j + 16, acc.C12, scale); Put(m, offset, rows, cols, i + 16, j + 24, acc.C13, scale);
        }

        /// <summary>An m16n8 tile's four values (see <see cref="Put"/>) plus the old ones, scaled.</summary>
        static Accumulator PlusOld(ArrayView<float> m, long offset, int rows, long cols, int i, long j, Accumulator c, float scale) => new(
            Old(m, offset, rows, cols, i, j) + c.C0 * scale, Old(m, offset, rows, cols, i, j + 1) + c.C1 * scale,
            Old(m, offset, rows, cols, i + 8, j) + c.C2 * scale, Old(m, offset, rows, cols, i + 8, j + 1) + c.C3 * scale);

        /// <summary>Stores an m16n8 tile's four values, scaled (the old ones, where accumulating, already added).</summary>
        static void Put(ArrayView<float> m, long offset, int rows, long cols, int i, long j, Accumulator c, float scale)
        {
            StoreOne(m, offset, rows, cols, i, j, c.C0, scale, 0); StoreOne(m, offset, rows, cols, i, j + 1, c.C1, scale, 0);
            StoreOne(m, offset, rows, cols, i + 8, j, c.C2, scale, 0); StoreOne(m, offset, rows, cols, i + 8, j + 1, c.C3, scale, 0);
        }
    }

    /// <summary>
    /// The vectorised CPU versions, both GEMMs on panels of F packed to stay in L2. Forward: only blocks on or above
    /// the diagonal of G (it is symmetric), as outer products of a transposed panel in 4×16 register blocks; a fixed
    /// number of partial sums, added in a fixed order, keeps results bit-identical run to run. Backward: dF = S·F
    /// with S = (dG + dGᵀ)/N, in 4-row × 24-column register blocks over a panel of F's columns.
    /// </summary>
    public static class Cpu
    {
        /// <summary>Partial Gram matrices at most (a count that depends on the shape only, not on the core count, for
        /// determinism).</summary>
        public const int Partials = 8;

        /// <summary>The forward's parts for n positions: one per 256 positions up to <see cref="Partials"/> — a part
        /// costs a partial matrix to write and to add (1 MB at C = 512), which 32 positions (512×16², split 8 ways)
        /// did not repay.</summary>
        static int ForwardParts(int n) => Math.Clamp(n / 256, 1, Partials);

        /// <summary>Floats of scratch <see cref="Forward"/> needs: a partial Gram matrix (in 4×24 tiles) and a panel for
        /// each part.</summary>
        public static int ScratchSize(int c) => Partials * (TileFloats(c) + Strips(c) * ForwardPanelPositions * Strip);

        /// <summary>Channels a panel strip holds, and so the width of a micro-kernel's tile: 4 rows × 24 columns is 12
        /// AVX2 accumulators (Winograd's GEMM micro-kernel, shared), enough to cover the FMA latency.</summary>
        const int Strip = 24;

        /// <summary>Positions a chunk of the panel holds: a strip (24 × 192 floats, 18 KB) stays in L1 while every
        /// 4-row block at or above the diagonal passes over it.</summary>
        const int ForwardPanelPositions = 192;

        /// <summary>Strips of 24 channels (the last one 24 or 16 wide: c rounded up to 8, and 8 up to 16).</summary>
        static int Strips(int c) => (c + Strip - 1) / Strip;

        /// <summary>Floats of a part's partial Gram matrix: for each 4-row block, a 4×24 tile for each strip.</summary>
        static int TileFloats(int c) => (c + 3) / 4 * Strips(c) * 4 * Strip;

        /// <summary>
        /// g = F·Fᵀ/n. Each of <see cref="Partials"/> parts takes a slice of the positions; chunk by chunk it copies
        /// F's columns transposed into a panel of 24-channel strips, P[s][k][l] = F[24s + l][k] (zero past c), then for
        /// each strip and each 4-row block at or above the diagonal adds Σ_k P[k][i..i+4] ⊗ P[k][strip] into a 4×24
        /// tile by Winograd's GEMM micro-kernel (CpuWinograd.Gemm4x24): per position 3 vector loads and 4 broadcasts
        /// feed 12 FMAs, the strip in L1, the rows read from the same panel. (Before 2026-11-27, 4×16 blocks with the
        /// panel's rows c floats apart: 8 accumulators, a new cache line for every position's 4 row values, 23–39% of
        /// the FMA peak in nominal FLOPs.) The parts are added in a fixed order.
        /// </summary>
        public static unsafe void Forward(float[] f, float[] g, float[] scratch, int c, int n, CpuSimd simd)
        {
            if (simd == CpuSimd.Scalar)
            {
                ForwardScalar(f, g, scratch, c, n);
                return;
            }
            int strips = Strips(c), blocks = (c + 3) / 4, tileFloats = TileFloats(c), kc = ForwardPanelPositions, parts = ForwardParts(n);
            Parallel.For(0, parts, CpuParallel.OneWorkerACore, part =>
            {
                int k0 = (int)((long)n * part / parts), k1 = (int)((long)n * (part + 1) / parts);
                int panelAt = Partials * tileFloats + part * strips * kc * Strip;
                scratch.AsSpan(panelAt, strips * kc * Strip).Clear();   // lanes past c stay zero
                fixed (float* pf = f, ps = scratch)
                {
                    float* pt = ps + (long)part * tileFloats, panel = ps + panelAt;
                    for (int ks = k0; ks < k1; ks += kc)
                    {
                        int width = Math.Min(kc, k1 - ks), i = 0;
                        // 4 rows at a time by 4×4 transposes (a strip's 24 lanes hold whole groups of 4): element by
                        // element this copy was half the op at 64 channels (c·n scattered stores).
                        for (; i + 4 <= c; i += 4)
                            CopyTransposed4(pf + (long)i * n + ks, n, panel + (long)(i / Strip) * kc * Strip + i % Strip, width);
                        for (; i < c; i++)
                        {
                            float* row = pf + (long)i * n + ks, dst = panel + (long)(i / Strip) * kc * Strip + i % Strip;
                            for (int k = 0; k < width; k++) dst[k * Strip] = row[k];
                        }
                        for (int s = 0; s < strips; s++)
                        {
                            float* strip = panel + (long)s * kc * Strip;
                            bool wide = c - s * Strip > 16;   // 24 columns, else 16 (the rest zero)
                            for (int b = 0; b < blocks && 4 * b < (s + 1) * Strip; b++)
                            {
                                float* rows = panel + (long)(4 * b / Strip) * kc * Strip + 4 * b % Strip;
                                float* tile = pt + ((long)b * strips + s) * 4 * Strip;
                                // The part's first chunk writes its tiles; the others add (tiles never computed are never
                                // read). The row values come from the same panel, 24 floats a position apart.
                                Conv3x3.CpuWinograd.Gemm(simd == CpuSimd.Avx2, wide ? Conv3x3.CpuWinograd.Strip : Conv3x3.CpuWinograd.NarrowStrip, strip, rows, Strip, tile, width, first: ks == k0);
                            }
                        }
                    }
                }
            });
            // The parts added in a fixed order, tile by tile (4-row blocks in parallel): each entry on or above the
            // diagonal, mirrored below it.
            float inv = 1f / n;
            Parallel.For(0, blocks, CpuParallel.OneWorkerACore, b =>
            {
                for (int s = 4 * b / Strip; s < strips; s++)
                    for (int r = 0; r < 4; r++)
                    {
                        int i = 4 * b + r;
                        long at = ((long)b * strips + s) * 4 * Strip + r * Strip;
                        for (int l = Math.Max(0, i - s * Strip), j = s * Strip + l; l < Strip && j < c && i < c; l++, j++)
                        {
                            float sum = 0f;
                            for (int part = 0; part < parts; part++) sum += scratch[part * tileFloats + at + l];
                            g[i * c + j] = sum * inv;
                            g[j * c + i] = sum * inv;
                        }
                    }
            });
        }

        /// <summary>Rows r..r+4 of F (n floats apart) from position 0 to width, into the panel's lanes l..l+4 of each
        /// position (Strip floats apart): dst[k·Strip + j] = rows[j·n + k]. A copy: the same bytes at every level.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static unsafe void CopyTransposed4(float* rows, long n, float* dst, int width)
        {
            int k = 0;
            for (; k + 4 <= width; k += 4)
            {
                var r0 = Vector128.Load(rows + k); var r1 = Vector128.Load(rows + n + k);
                var r2 = Vector128.Load(rows + 2 * n + k); var r3 = Vector128.Load(rows + 3 * n + k);
                Lanes128.Transpose(ref r0, ref r1, ref r2, ref r3);
                r0.Store(dst + k * Strip); r1.Store(dst + (k + 1) * Strip); r2.Store(dst + (k + 2) * Strip); r3.Store(dst + (k + 3) * Strip);
            }
            for (; k < width; k++)
                for (int j = 0; j < 4; j++) dst[k * Strip + j] = rows[j * n + k];
        }

        /// <summary>The scalar path (no vector FMAs, or the scalar backend): the upper triangle's dot products of F's rows,
        /// in the same fixed parts and order of addition (the partial matrices in scratch: a part's tiles hold ≥ c²).</summary>
        static void ForwardScalar(float[] f, float[] g, float[] partial, int c, int n)
        {
            Parallel.For(0, Partials, CpuParallel.OneWorkerACore, part =>
            {
                int k0 = (int)((long)n * part / Partials), k1 = (int)((long)n * (part + 1) / Partials);
                for (int i = 0; i < c; i++)
                    for (int j = i; j < c; j++)
                    {
                        float sum = 0f;
                        for (int k = k0; k < k1; k++) sum += f[(long)i * n + k] * f[(long)j * n + k];
                        partial[part * c * c + i * c + j] = sum;
                    }
            });
            float inv = 1f / n;
            for (int i = 0; i < c; i++)
                for (int j = i; j < c; j++)
                {
                    float sum = 0f;
                    for (int part = 0; part < Partials; part++) sum += partial[part * c * c + i * c + j];
                    g[i * c + j] = sum * inv;
                    g[j * c + i] = sum * inv;
                }
        }

        /// <summary>Floats of scratch <see cref="BackwardAccumulate"/> needs: S in 4-row blocks, and a panel of F for each
        /// worker.</summary>
        public static int BackwardScratchSize(int c) => SBlocksSize(c) + Workers * c * PanelColumns(c);

        static int SBlocksSize(int c) => (c + 3) / 4 * 4 * c;

        const int SymmetricTile = 32;

        static int Workers => Environment.ProcessorCount;

        /// <summary>Columns of F a panel holds: c × cols floats ≤ 128 KB, so that a panel stays in a core's L2 while
        /// every 4-row block of dF passes over it (a multiple of the 24-wide strip, at most 240).</summary>
        static int PanelColumns(int c) => Math.Clamp(32768 / c / 24 * 24, 24, 240);

        /// <summary>
        /// df += (dG + dGᵀ)·F/n. Each worker takes the next chunk of columns not yet taken, copies F's columns of that chunk
        /// into its own contiguous panel (rows cols floats apart instead of n: F read once, in order, and the 4-row
        /// blocks then stream a panel that sits in L2 instead of c rows a whole image apart — the unpacked version ran
        /// at 30–40 GFLOP/s on every VGG layer, 20% of the FMA peak), then adds every 4-row block of S·panel into dF.
        /// S is stored by 4-row blocks, [i/4][j][i%4], so that a block's 4 values at each j are 16 contiguous bytes
        /// (a block walks 16·c bytes in order rather than c cache lines c floats apart).
        /// Each element of dF is written by one worker, in a fixed order: results do not depend on the core count.
        /// </summary>
        public static unsafe void BackwardAccumulate(float[] f, float[] dg, float[] df, float[] scratch, int c, int n, CpuSimd simd)
        {
            float inv = 1f / n;
            // S by 32×32 tiles, so that dG's transposed reads stay in L1 (row by row they missed the cache at every
            // element once dG outgrew L2: 1 MB at 512 channels, ≈ 5 ms of a 15-ms backward), tiles of rows in parallel.
            Parallel.For(0, (c + SymmetricTile - 1) / SymmetricTile, CpuParallel.OneWorkerACore, ib =>
            {
                int i0 = ib * SymmetricTile, i1 = Math.Min(c, i0 + SymmetricTile);
                for (int j0 = 0; j0 < c; j0 += SymmetricTile)
                    for (int i = i0, j1 = Math.Min(c, j0 + SymmetricTile); i < i1; i++)
                        for (int j = j0; j < j1; j++)
                            scratch[(i / 4 * c + j) * 4 + i % 4] = (dg[i * c + j] + dg[j * c + i]) * inv;
            });
            int cols = PanelColumns(c), chunks = (n + cols - 1) / cols, workers = Workers, sBlocks = SBlocksSize(c);
            // Chunks are handed out one at a time, not dealt round-robin: a worker on a slower core (an efficiency core
            // beside performance cores, or one a neighbour is using) takes fewer instead of holding up the rest. Each
            // chunk is still one worker's, its sums in a fixed order, so results do not depend on who took it.
            int nextChunk = -1;
            Parallel.For(0, workers, CpuParallel.OneWorkerACore, worker =>
            {
                fixed (float* pf = f, ps = scratch, pd = df)
                {
                    float* panel = ps + sBlocks + (long)worker * c * cols;
                    for (int chunk = Interlocked.Increment(ref nextChunk); chunk < chunks; chunk = Interlocked.Increment(ref nextChunk))
                    {
                        int k0 = chunk * cols, k1 = Math.Min(n, k0 + cols), width = k1 - k0;
                        for (int j = 0; j < c; j++)
                            new ReadOnlySpan<float>(pf + (long)j * n + k0, width).CopyTo(new Span<float>(panel + j * cols, width));
                        for (int i0 = 0; i0 < c; i0 += 4)
                        {
                            int k = 0;
                            if (simd == CpuSimd.Vector128 && i0 + 4 <= c)
                            {
                                // The same blocks on 128-bit vectors (Winograd's shared GEMMs, ending in dF += the sums).
                                var add = Conv3x3.CpuWinograd.GemmStart.Add;
                                for (; k + 24 <= width; k += 24)
                                    Conv3x3.CpuWinograd.Simd128.Gemm4x24(panel + k, cols, ps + (long)i0 * c, 4, pd + (long)i0 * n + k0 + k, n, c, add);
                                for (; k + 8 <= width; k += 8)
                                    Conv3x3.CpuWinograd.Simd128.Gemm4x8(panel + k, cols, ps + (long)i0 * c, 4, pd + (long)i0 * n + k0 + k, n, c, add);
                            }
                            else if (simd == CpuSimd.Avx2 && i0 + 4 <= c)
                            {
                                for (; k + 24 <= width; k += 24)
                                    Accumulate4x24(panel + k, ps + (long)i0 * c, pd + (long)i0 * n + k0 + k, c, cols, n);
                                // The chunk's last columns 8 at a time (VGG's maps leave 16: scalar, they were a third
                                // of the 512-channel layers' time).
                                for (; k + 8 <= width; k += 8)
                                    Accumulate4x8(panel + k, ps + (long)i0 * c, pd + (long)i0 * n + k0 + k, c, cols, n);
                            }
                            for (int i = i0; i < Math.Min(c, i0 + 4); i++)
                                for (int kk = k; kk < width; kk++)
                                {
                                    float s = 0f;
                                    for (int j = 0; j < c; j++) s += ps[(i0 * c + j * 4) + i - i0] * panel[j * cols + kk];
                                    pd[(long)i * n + k0 + kk] += s;
                                }
                        }
                    }
                }
            });
        }

        /// <summary>df[i0..i0+4, k..k+8] += S-block · F: <see cref="Accumulate4x24"/> one vector wide, for chunks' ends.</summary>
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
        static unsafe void Accumulate4x8(float* fj, float* st, float* d, int c, int fStride, int n)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int j = 0; j < c; j++, fj += fStride, st += 4)
            {
                var v = Avx.LoadVector256(fj);
                a0 = Fma.MultiplyAdd(Vector256.Create(st[0]), v, a0); a1 = Fma.MultiplyAdd(Vector256.Create(st[1]), v, a1);
                a2 = Fma.MultiplyAdd(Vector256.Create(st[2]), v, a2); a3 = Fma.MultiplyAdd(Vector256.Create(st[3]), v, a3);
            }
            float* d1 = d + n, d2 = d1 + n, d3 = d2 + n;
            Avx.Store(d, Avx.Add(Avx.LoadVector256(d), a0)); Avx.Store(d1, Avx.Add(Avx.LoadVector256(d1), a1));
            Avx.Store(d2, Avx.Add(Avx.LoadVector256(d2), a2)); Avx.Store(d3, Avx.Add(Avx.LoadVector256(d3), a3));
        }

        /// <summary>
        /// df[i0..i0+4, k..k+24] += S-block · F: 12 AVX2 accumulators, per j 3 loads and 4 broadcasts feed 12 FMAs.
        /// F's rows are fStride floats apart (a panel's), dF's n. No calls inside (see Conv3x3.Cpu: RyuJIT spills
        /// vector registers live across a call on x64 Unix).
        /// </summary>
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
        static unsafe void Accumulate4x24(float* fj, float* st, float* d, int c, int fStride, int n)
        {
            Vector256<float> a00 = default, a01 = default, a02 = default, a10 = default, a11 = default, a12 = default;
            Vector256<float> a20 = default, a21 = default, a22 = default, a30 = default, a31 = default, a32 = default;
            for (int j = 0; j < c; j++, fj += fStride, st += 4)
            {
                var v0 = Avx.LoadVector256(fj); var v1 = Avx.LoadVector256(fj + 8); var v2 = Avx.LoadVector256(fj + 16);
                var s0 = Vector256.Create(st[0]);
                a00 = Fma.MultiplyAdd(s0, v0, a00); a01 = Fma.MultiplyAdd(s0, v1, a01); a02 = Fma.MultiplyAdd(s0, v2, a02);
                var s1 = Vector256.Create(st[1]);
                a10 = Fma.MultiplyAdd(s1, v0, a10); a11 = Fma.MultiplyAdd(s1, v1, a11); a12 = Fma.MultiplyAdd(s1, v2, a12);
                var s2 = Vector256.Create(st[2]);
                a20 = Fma.MultiplyAdd(s2, v0, a20); a21 = Fma.MultiplyAdd(s2, v1, a21); a22 = Fma.MultiplyAdd(s2, v2, a22);
                var s3 = Vector256.Create(st[3]);
                a30 = Fma.MultiplyAdd(s3, v0, a30); a31 = Fma.MultiplyAdd(s3, v1, a31); a32 = Fma.MultiplyAdd(s3, v2, a32);
            }
            float* d1 = d + n, d2 = d1 + n, d3 = d2 + n;
            Avx.Store(d, Avx.Add(Avx.LoadVector256(d), a00)); Avx.Store(d + 8, Avx.Add(Avx.LoadVector256(d + 8), a01)); Avx.Store(d + 16, Avx.Add(Avx.LoadVector256(d + 16), a02));
            Avx.Store(d1, Avx.Add(Avx.LoadVector256(d1), a10)); Avx.Store(d1 + 8, Avx.Add(Avx.LoadVector256(d1 + 8), a11)); Avx.Store(d1 + 16, Avx.Add(Avx.LoadVector256(d1 + 16), a12));
            Avx.Store(d2, Avx.Add(Avx.LoadVector256(d2), a20)); Avx.Store(d2 + 8, Avx.Add(Avx.LoadVector256(d2 + 8), a21)); Avx.Store(d2 + 16, Avx.Add(Avx.LoadVector256(d2 + 16), a22));
            Avx.Store(d3, Avx.Add(Avx.LoadVector256(d3), a30)); Avx.Store(d3 + 8, Avx.Add(Avx.LoadVector256(d3 + 8), a31)); Avx.Store(d3 + 16, Avx.Add(Avx.LoadVector256(d3 + 16), a32));
        }
    }
}
