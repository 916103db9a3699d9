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
using ILGPU.Backends.EntryPoints;
using ILGPU.Runtime.Cuda;

namespace GpuStyle.Kernels;

/// <summary>The sizes of one convolution, passed to kernels by value.</summary>
public struct ConvDims
{
    public int Cin, Cout, H, W;
    public ConvDims(int cin, int cout, int h, int w) { Cin = cin; Cout = cout; H = h; W = w; }
}

/// <summary>Four accumulators: one output channel at 4 adjacent pixels.</summary>
public readonly struct Pixels4
{
    public readonly float P0, P1, P2, P3;
    public Pixels4(float p0, float p1, float p2, float p3) { P0 = p0; P1 = p1; P2 = p2; P3 = p3; }
    public Pixels4 Add(float w, float a, float b, float c, float d) => new(P0 + w * a, P1 + w * b, P2 + w * c, P3 + w * d);
}

/// <summary>Four consecutive floats, 16-byte aligned: loaded from a view cast to Float4, ILGPU emits one vector load
/// (ld.shared.v4.f32, LDS.128) instead of four.</summary>
public struct Float4
{
    public float A, B, C, D;

    /// <summary>The group's dynamic shared memory as Float4s. Taken as floats and cast: ILGPU's OpenCL C divides the
    /// dynamic length by the element size cast to the element's type — `len / (float)4` for floats, but `len / ()16`
    /// for a struct, which no OpenCL compiler accepts (every kernel that asked for Float4 directly failed to build on
    /// PoCL and under clang). The PTX is the same either way (checked: every kernel's PTX unchanged, its
    /// ld.shared.v4.f32 loads included).</summary>
    public static ArrayView<Float4> SharedDynamic() => SharedMemory.GetDynamic<float>().Cast<Float4>();
}

/// <summary>
/// cp.async (PTX ISA 7.0, sm_80 and later): a copy from global to shared memory that holds no register while in
/// flight, completed in groups (commit_group, then wait_group N: all but the N most recent groups done). Only under
/// CUDA; elsewhere (<c>CudaAsm.IsSupported</c> false) the caller emulates the copies with plain loads and stores
/// (Conv3x3.IlgpuTensorCore.AsyncStaging), so the CPU accelerator and OpenCL run the same pipeline.
/// </summary>
public static class AsyncCopy
{
    /// <summary>The shared-window address of the group's dynamic shared memory (cp.async's destinations are
    /// offsets from it). ILGPU 1.5.3 declares that memory as <c>__dyn_shared_alloca</c> (its PTX, checked by the PTX
    /// tests: were it renamed, ptxas would reject every kernel that asks for it). 0 where there is no CUDA.</summary>
    public static long DynamicSharedAddress()
    {
        if (!CudaAsm.IsSupported) return 0;
        CudaAsm.Emit("mov.u64 %0, __dyn_shared_alloca;", out long window);
        return window;
    }

    /// <summary>A generic address (a device pointer the host read from a view: ILGPU gives kernels no way to take
    /// one) as a global-window address, for cp.async's source. 0 where there is no CUDA.</summary>
    public static long Global(long generic)
    {
        if (!CudaAsm.IsSupported) return 0;
        CudaAsm.Emit("cvta.to.global.u64 %0, %1;", out long window, generic);
        return window;
    }

    /// <summary>Copies one float (cached in L1 too: the patch's halo is read by neighbouring groups).</summary>
    public static void Copy4(long sharedAt, long globalAt) => CudaAsm.Emit("cp.async.ca.shared.global [%0], [%1], 4;", sharedAt, globalAt);

    /// <summary>Copies 16 aligned bytes through L2 only (the packed weights: every group reads them, once).</summary>
    public static void Copy16(long sharedAt, long globalAt) => CudaAsm.Emit("cp.async.cg.shared.global [%0], [%1], 16;", sharedAt, globalAt);

    /// <summary>Closes the group of copies this thread issued since the last commit (an empty group is allowed).</summary>
    public static void Commit() { if (CudaAsm.IsSupported) CudaAsm.Emit("cp.async.commit_group;"); }

    /// <summary>Waits until at most the most recent committed group of this thread's copies is pending.</summary>
    public static void WaitAllButOne() { if (CudaAsm.IsSupported) CudaAsm.Emit("cp.async.wait_group 1;"); }

    /// <summary>Waits until every committed group of this thread's copies is complete.</summary>
    public static void WaitAll() { if (CudaAsm.IsSupported) CudaAsm.Emit("cp.async.wait_all;"); }

    /// <summary>Waits until at most the two most recent committed groups of this thread's copies are pending.</summary>
    public static void WaitAllButTwo() { if (CudaAsm.IsSupported) CudaAsm.Emit("cp.async.wait_group 2;"); }
}

/// <summary>A thread's register block in <see cref="Conv3x3.IlgpuBlocked"/>: 8 output channels × 4 pixels.</summary>
public struct Block8x4
{
    public Pixels4 O0, O1, O2, O3, O4, O5, O6, O7;

    /// <summary>One kernel tap: the 8 channels' weights (two vector loads, lo and hi) times the 4 pixels' inputs.</summary>
    public void Tap(Float4 lo, Float4 hi, float a, float b, float c, float d)
    {
        O0 = O0.Add(lo.A, a, b, c, d); O1 = O1.Add(lo.B, a, b, c, d);
        O2 = O2.Add(lo.C, a, b, c, d); O3 = O3.Add(lo.D, a, b, c, d);
        O4 = O4.Add(hi.A, a, b, c, d); O5 = O5.Add(hi.B, a, b, c, d);
        O6 = O6.Add(hi.C, a, b, c, d); O7 = O7.Add(hi.D, a, b, c, d);
    }
}

/// <summary>A thread's register block in <see cref="Conv3x3.IlgpuBlockedFewOutputs"/>: 4 output channels × 8 pixels
/// (channel k's pixels 0–3 in Lk, 4–7 in Hk).</summary>
public struct Block4x8
{
    public Pixels4 L0, H0, L1, H1, L2, H2, L3, H3;

    /// <summary>One kernel tap: the 4 channels' weights (one vector load) times the 8 pixels' inputs a … h.</summary>
    public void Tap(Float4 w, float a, float b, float c, float d, float e, float f, float g, float h)
    {
        L0 = L0.Add(w.A, a, b, c, d); H0 = H0.Add(w.A, e, f, g, h);
        L1 = L1.Add(w.B, a, b, c, d); H1 = H1.Add(w.B, e, f, g, h);
        L2 = L2.Add(w.C, a, b, c, d); H2 = H2.Add(w.C, e, f, g, h);
        L3 = L3.Add(w.D, a, b, c, d); H3 = H3.Add(w.D, e, f, g, h);
    }
}

/// <summary>Launch shape of the tensor-core convolution (<see cref="Conv3x3.IlgpuTensorCore"/>), passed by value.
/// Emulate 1 reserves shared scratch for the warp-step emulation (anything but CUDA).</summary>
public struct MmaTile
{
    public int TileWidth, TileHeight, WarpsCo, Chunk, Emulate, Prefetch;
    /// <param name="prefetch">0: none; 1: the next chunk's input patch is loaded into registers during the current
    /// chunk's tensor work; 2: asynchronous copies (cp.async, no registers held) of the next chunk's patch into a
    /// second buffer and of the weights in two halves of taps (<see cref="Conv3x3.IlgpuTensorCore"/>'s pipeline).
    /// (Until 2026-11-27 a level 2 prefetched the weights into registers too: at 150 registers a thread on sm_90 it
    /// could not launch with any tile whose threads could hold a prefetched chunk, and was removed.)</param>
    public MmaTile(int tileWidth, int tileHeight, int warpsCo, int chunk, bool emulate, int prefetch = 0)
    {
        TileWidth = tileWidth; TileHeight = tileHeight; WarpsCo = warpsCo; Chunk = chunk; Emulate = emulate ? 1 : 0;
        Prefetch = prefetch;
    }

    /// <summary>Why this shape cannot run, or null.</summary>
    public readonly string? Problem() =>
        TileWidth % 8 != 0 || TileWidth <= 0 ? $"the tile width {TileWidth} is not a positive multiple of 8"
        : TileHeight <= 0 || TileWidth * TileHeight % 32 != 0 ? $"a {TileWidth}×{TileHeight} tile is not a whole number of 32-pixel warp tiles"
        : Chunk % 8 != 0 || Chunk <= 0 ? $"the input chunk {Chunk} is not a positive multiple of 8"
        : WarpsCo <= 0 ? "no warps along the output channels"
        : Prefetch is < 0 or > 2 ? $"prefetch {Prefetch} is not 0 (none), 1 (the next chunk's patch, in registers) or 2 (asynchronous copies)"
        : Prefetch == 1 && Chunk * (TileHeight + 2) * (TileWidth + 2) > PatchSlots.Count * Conv3x3.IlgpuTensorCore.Threads(this)
            ? $"prefetching a {TileWidth}×{TileHeight} tile's {Chunk}-channel patch needs more than {PatchSlots.Count} registers a thread"
        : null;
}

/// <summary>A position in a staged patch (channel, row, column), advanced by a fixed step without divisions.</summary>
public readonly struct PatchCursor
{
    public readonly int C, Y, X;
    public PatchCursor(int c, int y, int x) { C = c; Y = y; X = x; }

    /// <summary>The flat index e = (c·ph + y)·pw + x as a cursor: the two divisions, done once.</summary>
    public static PatchCursor Of(int e, int ph, int pw)
    {
        int c = e / (ph * pw), rest = e - c * ph * pw, y = rest / pw;
        return new PatchCursor(c, y, rest - y * pw);
    }

    /// <summary>This position plus step (itself a cursor with step.X &lt; pw, step.Y &lt; ph), carrying.</summary>
    public PatchCursor Next(PatchCursor step, int ph, int pw)
    {
        int x = X + step.X, y = Y + step.Y, c = C + step.C;
        if (x >= pw) { x -= pw; y++; }
        if (y >= ph) { y -= ph; c++; }
        return new PatchCursor(c, y, x);
    }
}

/// <summary>One prefetched patch element: the input and its ReLU mask (1 where no mask applies).</summary>
public readonly struct PatchValue
{
    public readonly float X, M;
    public PatchValue(float x, float m) { X = x; M = m; }
}

/// <summary>A thread's share of the next chunk's input patch, held in registers while the current chunk computes
/// (<see cref="Conv3x3.IlgpuTensorCore"/> with MmaTile.Prefetch): element tid + k·threads for k &lt; Count.</summary>
public struct PatchSlots
{
    public const int Count = 8;
    public PatchValue V0, V1, V2, V3, V4, V5, V6, V7;
}

/// <summary>A lane's fixed part of its fragment indices in <see cref="Conv3x3.IlgpuTensorCore"/>: A in the shared
/// weights, B0…B3 (its four n-tiles' columns) in a patch buffer; each load adds a part that depends only on the tap.</summary>
public readonly struct FragmentBases
{
    public readonly long A, B0, B1, B2, B3;
    public FragmentBases(long a, long b0, long b1, long b2, long b3) { A = a; B0 = b0; B1 = b1; B2 = b2; B3 = b3; }
}

/// <summary>The device addresses of the input and the packed weights of a TF32 convolution with asynchronous copies:
/// cp.async takes a global address, which a kernel cannot take from a view in ILGPU 1.5.3 (its LoadEffectiveAddressAsPtr
/// is host-only, Unsafe.AsPointer and fixed are refused), so the host reads them from the views and passes them.</summary>
public readonly struct GlobalAddresses
{
    public readonly long X, W;
    public GlobalAddresses(long x, long w) { X = x; W = w; }
}

/// <summary>One lane's share of a 16×8 TF32 A fragment (values already rounded to TF32).</summary>
public readonly struct FragmentA
{
    public readonly float A0, A1, A2, A3;
    public FragmentA(float a0, float a1, float a2, float a3) { A0 = a0; A1 = a1; A2 = a2; A3 = a3; }
}

/// <summary>One lane's share of an 8×8 TF32 B fragment.</summary>
public readonly struct FragmentB
{
    public readonly float B0, B1;
    public FragmentB(float b0, float b1) { B0 = b0; B1 = b1; }
}

/// <summary>One lane's four fp32 accumulators of a 16×8 C fragment.</summary>
public readonly struct Accumulator
{
    public readonly float C0, C1, C2, C3;
    public Accumulator(float c0, float c1, float c2, float c3) { C0 = c0; C1 = c1; C2 = c2; C3 = c3; }
}

/// <summary>A lane's 32 accumulators: 2 m-tiles × 4 n-tiles.</summary>
public struct WarpAccumulators
{
    public Accumulator C00, C01, C02, C03, C10, C11, C12, C13;
}

public static partial class Conv3x3
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
        [KernelName("conv3x3_forward_direct")]   // readable names for Nsight Compute (checked in PtxCompileTests)
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
        [KernelName("conv3x3_backward_direct")]
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
    /// ILGPU kernels, version 2: tiled for GPUs. A group computes a TW×TH tile of output pixels for 8 output channels
    /// (each thread one pixel, 8 accumulators in registers); input channels pass in chunks whose zero-bordered input
    /// patch ((TH+2)×(TW+2) per channel) and weights (chunk × 9 × 8) are first staged in shared memory, so each input
    /// value read from global memory serves 9 taps × 8 channels. The tile (group) size and the chunk are launch
    /// parameters: 16×16 and 16 on a GPU, 4×4 and 3 in tests on the CPU accelerator. The backward is the same kernel
    /// on the transposed, flipped weights (<see cref="TransposeFlip"/>), with ReLU's mask applied while staging.
    /// </summary>
    public static class IlgpuTiled
    {
        public const int ChannelsPerGroup = 8;

        /// <summary>Floats of dynamic shared memory for a tw×th tile and a chunk of input channels.</summary>
        public static int SharedFloats(int tw, int th, int chunk) => chunk * (th + 2) * (tw + 2) + chunk * 9 * ChannelsPerGroup;

        /// <summary>
        /// Grid (⌈W/TW⌉, ⌈H/TH⌉, ⌈Cout/8⌉), group (TW, TH). w: [Cout][Cin][9]. hasBias 0 ignores b. useMask 1 zeroes
        /// input elements where mask ≤ 0 (mask has x's shape).
        /// </summary>
        [KernelName("conv3x3_tiled")]
        public static void Forward(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask, int chunk)
        {
            int tw = Group.DimX, th = Group.DimY, tx = Group.IdxX, ty = Group.IdxY;
            int pw = tw + 2, ph = th + 2;
            int x0 = Grid.IdxX * tw, y0 = Grid.IdxY * th, o0 = Grid.IdxZ * ChannelsPerGroup;
            int tid = ty * tw + tx, threads = tw * th;
            var shared = SharedMemory.GetDynamic<float>();
            var patch = shared.SubView(0, chunk * ph * pw);
            var wts = shared.SubView(chunk * ph * pw, chunk * 9 * ChannelsPerGroup);
            float a0 = 0f, a1 = 0f, a2 = 0f, a3 = 0f, a4 = 0f, a5 = 0f, a6 = 0f, a7 = 0f;
            for (int c0 = 0; c0 < d.Cin; c0 += chunk)
            {
                int cn = d.Cin - c0 < chunk ? d.Cin - c0 : chunk;
                Stage(x, mask, w, d, useMask, patch, wts, c0, cn, x0, y0, o0, pw, ph, pw, tid, threads, batch: 1);
                Group.Barrier();
                for (int c = 0; c < cn; c++)
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++)
                        {
                            float v = patch[(c * ph + ty + ky) * pw + tx + kx];
                            int wb = (c * 9 + ky * 3 + kx) * ChannelsPerGroup;
                            a0 += wts[wb] * v; a1 += wts[wb + 1] * v; a2 += wts[wb + 2] * v; a3 += wts[wb + 3] * v;
                            a4 += wts[wb + 4] * v; a5 += wts[wb + 5] * v; a6 += wts[wb + 6] * v; a7 += wts[wb + 7] * v;
                        }
                Group.Barrier();
            }
            int ox = x0 + tx, oy = y0 + ty;
            if (ox >= d.W || oy >= d.H) return;
            Store(y, b, d, o0, oy, ox, a0, 0, relu, hasBias); Store(y, b, d, o0, oy, ox, a1, 1, relu, hasBias);
            Store(y, b, d, o0, oy, ox, a2, 2, relu, hasBias); Store(y, b, d, o0, oy, ox, a3, 3, relu, hasBias);
            Store(y, b, d, o0, oy, ox, a4, 4, relu, hasBias); Store(y, b, d, o0, oy, ox, a5, 5, relu, hasBias);
            Store(y, b, d, o0, oy, ox, a6, 6, relu, hasBias); Store(y, b, d, o0, oy, ox, a7, 7, relu, hasBias);
        }

        /// <summary>All threads of a group copy cn input channels' patch (zero outside the map, masked where asked)
        /// and their weights for the group's 8 output channels ([channel][tap][8]) into shared memory.</summary>
        /// <paramref name="batch"/> 1 waits for each load before the next; 4 issues a thread's loads four at a time
        /// (<see cref="StagePatchInBatches"/>, <see cref="StageWeightsInBatches"/>).
        internal static void Stage(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ConvDims d, int useMask,
            ArrayView<float> patch, ArrayView<float> wts, int c0, int cn, int x0, int y0, int o0, int pw, int ph, int rowStride,
            int tid, int threads, int batch)
        {
            if (batch > 1)
            {
                StagePatchInBatches(x, mask, d, useMask, patch, ph * rowStride, rowStride, c0, cn, x0, y0, pw, ph, tid, threads, tf32: 0);
                StageWeightsInBatches(w, d, wts, c0, cn, o0, tid, threads);
                return;
            }
            StagePatch(x, mask, d, useMask, patch, ph * rowStride, rowStride, c0, cn, x0, y0, pw, ph, tid, threads, tf32: 0);
            for (int e = tid; e < cn * 9 * ChannelsPerGroup; e += threads)
            {
                int k = e % ChannelsPerGroup, ct = e / ChannelsPerGroup, c = ct / 9, t = ct - c * 9;
                wts[e] = o0 + k < d.Cout ? w[((o0 + k) * d.Cin + c0 + c) * 9 + t] : 0f;
            }
        }

        // Staging in batches (the nineteenth session found it in the TF32 kernels' SASS; here for the fp32 blocked
        // kernel, which runs VGG's first layer and its backward to the colour channels). A loop whose body loads behind
        // a branch and then stores waits for each load in turn: one round trip to L2 or memory an element. The blocked
        // kernel's 128 threads stage ≈ 41 elements each a chunk of the 64→3 backward, 8 chunks: ≈ 330 round trips a
        // thread, ≈ 0.1–0.2 ms at 0.3–0.6 µs each — what the H200 measured (0.29 ms at 512², 0.19 at 256², where the
        // grid is a quarter as large: latency, not throughput). Four rows a time, each load without a branch (a pixel
        // outside reads element 0 and is zeroed after): a quarter of the round trips.

        /// <summary><see cref="StagePatch"/>'s result, a thread's rows four at a time: the four rows' loads are issued
        /// before any of their stores, and none sits behind a branch.</summary>
        internal static void StagePatchInBatches(ArrayView<float> x, ArrayView<float> mask, ConvDims d, int useMask, ArrayView<float> patch,
            int plane, int rowStride, int c0, int cn, int x0, int y0, int pw, int ph, int tid, int threads, int tf32)
        {
            int rowThreads = RowLanes(threads);
            int lane = tid % rowThreads, rowStep = threads / rowThreads, rows = cn * ph;
            for (int r = tid / rowThreads; r < rows; r += 4 * rowStep)
            {
                var s0 = PatchRow.Of(r, rows, d, c0, y0, ph, plane, rowStride);
                var s1 = PatchRow.Of(r + rowStep, rows, d, c0, y0, ph, plane, rowStride);
                var s2 = PatchRow.Of(r + 2 * rowStep, rows, d, c0, y0, ph, plane, rowStride);
                var s3 = PatchRow.Of(r + 3 * rowStep, rows, d, c0, y0, ph, plane, rowStride);
                for (int px = lane; px < pw; px += rowThreads)
                {
                    int ix = x0 + px - 1;
                    bool column = ix >= 0 && ix < d.W;
                    float v0 = s0.Load(x, mask, useMask, column, ix), v1 = s1.Load(x, mask, useMask, column, ix);
                    float v2 = s2.Load(x, mask, useMask, column, ix), v3 = s3.Load(x, mask, useMask, column, ix);
                    patch[s0.To + px] = tf32 != 0 ? IlgpuTensorCore.RoundTf32(v0) : v0;
                    if (s1.Exists) patch[s1.To + px] = tf32 != 0 ? IlgpuTensorCore.RoundTf32(v1) : v1;
                    if (s2.Exists) patch[s2.To + px] = tf32 != 0 ? IlgpuTensorCore.RoundTf32(v2) : v2;
                    if (s3.Exists) patch[s3.To + px] = tf32 != 0 ? IlgpuTensorCore.RoundTf32(v3) : v3;
                }
            }
        }

        /// <summary>Row r of a chunk's patch: where it starts in x (0 when outside the map), where in shared memory, and
        /// whether it is inside the map and inside the chunk at all.</summary>
        internal struct PatchRow
        {
            public long At;
            public int To;
            public bool Inside, Exists;

            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            public static PatchRow Of(int r, int rows, ConvDims d, int c0, int y0, int ph, int plane, int rowStride)
            {
                int c = r / ph, py = r - c * ph, iy = y0 + py - 1;
                bool exists = r < rows, inside = exists && c0 + c < d.Cin && iy >= 0 && iy < d.H;
                return new PatchRow { At = inside ? ((long)(c0 + c) * d.H + iy) * d.W : 0, To = c * plane + py * rowStride, Inside = inside, Exists = exists };
            }

            /// <summary>The row's value at column ix (<see cref="LoadMasked"/>).</summary>
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            public readonly float Load(ArrayView<float> x, ArrayView<float> mask, int useMask, bool column, int ix) =>
                LoadMasked(x, mask, useMask, Inside && column, At + ix);
        }

        /// <summary>x[at] where <paramref name="inside"/>, zero elsewhere and (with useMask) where mask[at] ≤ 0 — without
        /// a branch: a load outside reads element 0 and is zeroed after, so that a thread's loads can all be in flight
        /// together (behind a branch, the sm_90 SASS waits for each before issuing the next). The staging in batches, the
        /// few-outputs kernel and Winograd's gathered input transforms load through it.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        internal static float LoadMasked(ArrayView<float> x, ArrayView<float> mask, int useMask, bool inside, long at)
        {
            long i = inside ? at : 0;
            float v = x[i];
            float keep = useMask != 0 ? mask[i] : 1f;
            return inside && !(keep <= 0f) ? v : 0f;
        }

        /// <summary>The chunk's weights for the group's 8 output channels ([channel][tap][8], zero past Cout), four
        /// at a time, as <see cref="StagePatchInBatches"/>.</summary>
        internal static void StageWeightsInBatches(ArrayView<float> w, ConvDims d, ArrayView<float> wts, int c0, int cn, int o0, int tid, int threads)
        {
            int n = cn * 9 * ChannelsPerGroup;
            for (int e = tid; e < n; e += 4 * threads)
            {
                int e1 = e + threads, e2 = e1 + threads, e3 = e2 + threads;
                float v0 = Weight(w, d, c0, o0, e, n), v1 = Weight(w, d, c0, o0, e1, n);
                float v2 = Weight(w, d, c0, o0, e2, n), v3 = Weight(w, d, c0, o0, e3, n);
                wts[e] = v0;
                if (e1 < n) wts[e1] = v1;
                if (e2 < n) wts[e2] = v2;
                if (e3 < n) wts[e3] = v3;
            }
        }

        /// <summary>Element e of a chunk's staged weights, w[o0 + k][c0 + c][t] (e = (c·9 + t)·8 + k), zero past
        /// Cout; an unconditional load (element 0 past Cout or past the chunk's n elements).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static float Weight(ArrayView<float> w, ConvDims d, int c0, int o0, int e, int n)
        {
            int k = e % ChannelsPerGroup, ct = e / ChannelsPerGroup, c = ct / 9, t = ct - c * 9;
            bool inside = e < n && o0 + k < d.Cout;
            float v = w[inside ? ((long)(o0 + k) * d.Cin + c0 + c) * 9 + t : 0];
            return inside ? v : 0f;
        }

        /// <summary>How many threads share one row when a group stages a tile row by row: a warp (32), or the whole
        /// group when it is not a whole number of warps — so that every row is walked by a fixed set of threads.</summary>
        internal static int RowLanes(int threads) => threads % 32 == 0 ? 32 : threads;

        /// <summary>
        /// Copies cn input channels' (TH+2)×(TW+2) patch into shared memory, rows <paramref name="rowStride"/> and
        /// planes <paramref name="plane"/> floats apart: zero outside the map and past Cin, masked where asked, TF32-rounded when
        /// <paramref name="tf32"/> is 1. Threads walk rows (a warp along a row: coalesced loads), so the only runtime
        /// divisions are one per row, not two per element.
        /// </summary>
        internal static void StagePatch(ArrayView<float> x, ArrayView<float> mask, ConvDims d, int useMask, ArrayView<float> patch,
            int plane, int rowStride, int c0, int cn, int x0, int y0, int pw, int ph, int tid, int threads, int tf32)
        {
            int rowThreads = RowLanes(threads);
            int lane = tid % rowThreads, rowStep = threads / rowThreads;
            for (int r = tid / rowThreads; r < cn * ph; r += rowStep)
            {
                int c = r / ph, py = r - c * ph, iy = y0 + py - 1;
                bool rowInside = c0 + c < d.Cin && iy >= 0 && iy < d.H;
                int rowAt = ((c0 + c) * d.H + iy) * d.W, to = c * plane + py * rowStride;
                for (int px = lane; px < pw; px += rowThreads)
                {
                    int ix = x0 + px - 1;
                    float v = 0f;
                    if (rowInside && ix >= 0 && ix < d.W)
                    {
                        v = x[rowAt + ix];
                        if (useMask != 0 && mask[rowAt + ix] <= 0f) v = 0f;
                    }
                    patch[to + px] = tf32 != 0 ? IlgpuTensorCore.RoundTf32(v) : v;
                }
            }
        }

        static void Store(ArrayView<float> y, ArrayView<float> b, ConvDims d, int o0, int oy, int ox, float acc, int k,
            int relu, int hasBias) => StoreOutput(y, b, d, o0 + k, oy, ox, acc, relu, hasBias);

        /// <summary>The staged convolutions' epilogue, one output: y[o, oy, ox] = (ReLU)(acc + bias), skipped outside
        /// the output (edge tiles, padded channels).</summary>
        internal static void StoreOutput(ArrayView<float> y, ArrayView<float> b, ConvDims d, int o, int oy, int ox, float acc,
            int relu, int hasBias)
        {
            if (o >= d.Cout || oy >= d.H || ox >= d.W) return;
            StoreOutput(y, d, o, oy, ox, acc, hasBias != 0 ? b[o] : 0f, relu, hasBias);
        }

        /// <summary><see cref="StoreOutput(ArrayView{float}, ArrayView{float}, ConvDims, int, int, int, float, int, int)"/>
        /// with the bias already loaded (<see cref="Bias"/>): kernels load their biases together, before the stores, so
        /// that no load waits behind a store's bounds test.</summary>
        internal static void StoreOutput(ArrayView<float> y, ConvDims d, int o, int oy, int ox, float acc, float bias, int relu, int hasBias)
        {
            if (o >= d.Cout || oy >= d.H || ox >= d.W) return;
            y[(o * d.H + oy) * d.W + ox] = Activated(acc, bias, relu, hasBias);
        }

        /// <summary>An output's value: the sum plus its bias (with hasBias), through ReLU (with relu).</summary>
        internal static float Activated(float acc, float bias, int relu, int hasBias)
        {
            float z = hasBias != 0 ? acc + bias : acc;
            return relu != 0 && z < 0f ? 0f : z;
        }

        /// <summary>Split <paramref name="split"/>'s share of <paramref name="chunks"/> input chunks in a convolution
        /// split <paramref name="splits"/> ways (see <see cref="SumSplits"/>): chunks First … End−1, ⌈chunks/splits⌉ a
        /// split (the last ones may have fewer, or none).</summary>
        internal struct SplitShare
        {
            public int First, End;

            public static SplitShare Of(int chunks, int splits, int split)
            {
                int each = (chunks + splits - 1) / splits, first = split * each;
                return new SplitShare { First = first, End = first + each < chunks ? first + each : chunks };
            }

            /// <summary>The same share in channels: of <paramref name="channels"/> in chunks of <paramref name="chunk"/>,
            /// channels First … End−1 (End at most the channel count; First past End in an empty split).</summary>
            public static SplitShare OfChannels(int channels, int chunk, int splits, int split)
            {
                var share = Of((channels + chunk - 1) / chunk, splits, split);
                int end = share.End * chunk;
                return new SplitShare { First = share.First * chunk, End = end < channels ? end : channels };
            }
        }

        /// <summary>Where split <paramref name="split"/> writes: y itself unsplit, else its Cout·H·W block of the partial
        /// outputs (see <see cref="SumSplits"/>).</summary>
        internal static ArrayView<float> SplitOutput(ArrayView<float> y, ConvDims d, int splits, int split) =>
            splits > 1 ? y.SubView((long)split * d.Cout * d.H * d.W, (long)d.Cout * d.H * d.W) : y;

        /// <summary>Output channel o's bias (channel 0's past Cout, whose outputs are not stored), or 0 without one.</summary>
        internal static float Bias(ArrayView<float> b, ConvDims d, int o, int hasBias) => hasBias != 0 ? b[o < d.Cout ? o : 0] : 0f;

        /// <summary>
        /// A convolution split over its input channels (version 5 of the TF32 kernel, the blocked fp32 one): each split
        /// summed its share of the input chunks into its own partial output (the s-th Cout·H·W block of
        /// <paramref name="partials"/>); this adds them in split order, then the bias and ReLU: y = (ReLU)(Σ_s partials[s]
        /// + b). Where a grid is too small to fill the SMs (VGG's 64×64 and 32×32 layers at 512² on an H200; the
        /// backward to the colour channels, whose threads walk 8 chunks one after the other), a split's groups run
        /// side by side. Its cost: splits·Cout·H·W floats written and read again (relu4_2 at 512², 2 splits: 16 MB each
        /// way, L2-resident on an H200: ≈ 5–10 µs). One thread an output element.
        /// </summary>
        [KernelName("conv3x3_sum_splits")]
        public static void SumSplits(Index1D index, ArrayView<float> partials, ArrayView<float> b, ArrayView<float> y, ConvDims d,
            int splits, int relu, int hasBias)
        {
            int plane = d.H * d.W;
            long n = (long)d.Cout * plane;
            float z = partials[index];
            for (int s = 1; s < splits; s++) z += partials[s * n + index];
            y[index] = Activated(z, hasBias != 0 ? b[index / plane] : 0f, relu, hasBias);
        }

        /// <summary>W′[i][o][t] = w[o][i][8−t]: the backward's kernel. Launch with Cout·Cin·9 threads.</summary>
        [KernelName("conv3x3_transpose_flip")]
        public static void TransposeFlip(Index1D index, ArrayView<float> w, ArrayView<float> wt, int cin, int cout)
        {
            int t = index % 9, io = index / 9, o = io % cout, i = io / cout;
            wt[index] = w[(o * cin + i) * 9 + 8 - t];
        }
    }

    /// <summary>
    /// Version 3: version 2 with a register block of 8 output channels × 4 pixels of a row per thread. Version 2 does
    /// one FMA per shared-memory load (each of a thread's 8 weights meets one input value); here, per input channel
    /// and kernel row, 6 input values and 3×8 weights feed 96 FMAs — 3.2 FMAs a load, so the FMA pipes rather than
    /// shared memory set the pace. Group (TW/4, TH), tile TW×TH pixels, TW a multiple of 4; shared memory as version 2.
    /// Shared loads are 128-bit vectors (<see cref="Float4"/>): a thread's 6 inputs of a kernel row are two LDS.128 (the
    /// second brings 2 floats it does not use) and each tap's 8 weights two more — 8 loads for the 96 FMAs of a channel
    /// and kernel row instead of 30, and no per-load address arithmetic. (The H200 profile of the scalar version:
    /// issue-bound at 0.70 instructions a scheduler-cycle, FFMAs 288 of 1 416 SASS instructions; counted, FFMAs go
    /// from ≈ 50% to ≈ 85% of the loop's instructions: expected ≈ 1.5× on these convolutions.) Patch rows are
    /// TW + 4 floats apart: a multiple of 4, so every vector is aligned, with room for the last thread's over-read.
    /// A 128-bit load is served a quarter-warp (8 lanes) at a time, and 8 lanes of a row read 128 contiguous bytes:
    /// no bank conflicts whatever the stride (the scalar version needed a stride ≡ 1 mod 4 for that).
    /// </summary>
    public static class IlgpuBlocked
    {
        public const int PixelsPerThread = 4;

        public static int RowStride(int tw) => tw + 4;

        public static int SharedFloats(int tw, int th, int chunk) =>
            chunk * (th + 2) * RowStride(tw) + chunk * 9 * IlgpuTiled.ChannelsPerGroup;

        /// <summary>Grid (⌈W/TW⌉, ⌈H/TH⌉, ⌈Cout/8⌉ · splits), group (TW/4, TH). Arguments as <see cref="IlgpuTiled.Forward"/>;
        /// with splits &gt; 1 split over the input channels as <see cref="IlgpuMmaFragments"/>' version 5 (each split's
        /// chunks summed into y's s-th Cout·H·W block, without bias or ReLU, for <see cref="IlgpuTiled.SumSplits"/>): the
        /// backward to the colour channels at 512² has 512 groups of 4 warps, each thread walking 8 chunks one after the
        /// other — its staging's round trips, not the work, set its time (0.25 ms on an H200; 0.14 at 256², a quarter of
        /// the pixels).</summary>
        [KernelName("conv3x3_blocked")]
        public static void Forward(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask, int chunk, int batch, int splits)
        {
            int tw = Group.DimX * PixelsPerThread, th = Group.DimY, tx = Group.IdxX, ty = Group.IdxY;
            int pw = tw + 2, ph = th + 2, rs = RowStride(tw);
            int outputGroups = (d.Cout + IlgpuTiled.ChannelsPerGroup - 1) / IlgpuTiled.ChannelsPerGroup, split = Grid.IdxZ / outputGroups;
            int x0 = Grid.IdxX * tw, y0 = Grid.IdxY * th, o0 = (Grid.IdxZ - split * outputGroups) * IlgpuTiled.ChannelsPerGroup;
            var inputs = IlgpuTiled.SplitShare.OfChannels(d.Cin, chunk, splits, split);
            int firstInput = inputs.First, endInput = inputs.End;
            y = IlgpuTiled.SplitOutput(y, d, splits, split);
            int tid = ty * Group.DimX + tx, threads = Group.DimX * th;
            // The regions are cut in Float4 units (both sizes are multiples of 4 floats: rs is one, and 9·8 per
            // channel), so that ILGPU knows every Float4 load is 16-byte aligned; cut in floats, the weights' loads
            // were split back into scalars (their offset's alignment was unknown).
            var shared4 = Float4.SharedDynamic();
            int rs4 = rs / 4, patch4Length = chunk * ph * rs4;
            var patch4 = shared4.SubView(0, patch4Length);
            var wts4 = shared4.SubView(patch4Length, chunk * 9 * IlgpuTiled.ChannelsPerGroup / 4);
            var patch = patch4.Cast<float>();
            var wts = wts4.Cast<float>();
            var acc = new Block8x4();
            for (int c0 = firstInput; c0 < endInput; c0 += chunk)
            {
                int cn = endInput - c0 < chunk ? endInput - c0 : chunk;
                IlgpuTiled.Stage(x, mask, w, d, useMask, patch, wts, c0, cn, x0, y0, o0, pw, ph, rs, tid, threads, batch);
                Group.Barrier();
                for (int c = 0; c < cn; c++)
                    for (int ky = 0; ky < 3; ky++)
                    {
                        // 64-bit indices keep the loads at constant offsets from one address (an int index costs each
                        // load a 32-bit add, a widening multiply and a 64-bit add: ptxas cannot fold a sum that might wrap).
                        long row = (c * ph + ty + ky) * (long)rs4 + tx;
                        Float4 p = patch4[row], q = patch4[row + 1];   // inputs x..x+5 (q.C, q.D unused)
                        long wb = (c * 9 + ky * 3) * 2L;               // 8 weights a tap: two Float4
                        acc.Tap(wts4[wb], wts4[wb + 1], p.A, p.B, p.C, p.D);        // kx = 0
                        acc.Tap(wts4[wb + 2], wts4[wb + 3], p.B, p.C, p.D, q.A);    // kx = 1
                        acc.Tap(wts4[wb + 4], wts4[wb + 5], p.C, p.D, q.A, q.B);    // kx = 2
                    }
                Group.Barrier();
            }
            int ox = x0 + tx * PixelsPerThread, oy = y0 + ty;
            if (oy >= d.H) return;
            // The 8 biases loaded together, before any store (each behind its store's bounds test, they were waited
            // for one by one).
            float b0 = IlgpuTiled.Bias(b, d, o0, hasBias), b1 = IlgpuTiled.Bias(b, d, o0 + 1, hasBias);
            float b2 = IlgpuTiled.Bias(b, d, o0 + 2, hasBias), b3 = IlgpuTiled.Bias(b, d, o0 + 3, hasBias);
            float b4 = IlgpuTiled.Bias(b, d, o0 + 4, hasBias), b5 = IlgpuTiled.Bias(b, d, o0 + 5, hasBias);
            float b6 = IlgpuTiled.Bias(b, d, o0 + 6, hasBias), b7 = IlgpuTiled.Bias(b, d, o0 + 7, hasBias);
            Store(y, d, o0, oy, ox, acc.O0, b0, relu, hasBias); Store(y, d, o0 + 1, oy, ox, acc.O1, b1, relu, hasBias);
            Store(y, d, o0 + 2, oy, ox, acc.O2, b2, relu, hasBias); Store(y, d, o0 + 3, oy, ox, acc.O3, b3, relu, hasBias);
            Store(y, d, o0 + 4, oy, ox, acc.O4, b4, relu, hasBias); Store(y, d, o0 + 5, oy, ox, acc.O5, b5, relu, hasBias);
            Store(y, d, o0 + 6, oy, ox, acc.O6, b6, relu, hasBias); Store(y, d, o0 + 7, oy, ox, acc.O7, b7, relu, hasBias);
        }

        /// <summary>Output channel o at 4 pixels from (oy, ox), its bias loaded: bias and ReLU, skipping what lies
        /// outside. Where the row's width is a multiple of 4 and the 4 pixels lie inside, one 16-byte store: as 4
        /// scalar stores, a warp's store touched 4 times the sectors it wrote, and VGG's first layer (3→64 at 512², 67 MB
        /// written) ran at 75% of the L1/L2 throughput and 12% of DRAM's (Nsight Compute, H200: 76 µs).</summary>
        internal static void Store(ArrayView<float> y, ConvDims d, int o, int oy, int ox, Pixels4 acc, float bias, int relu, int hasBias)
        {
            if ((d.W & 3) == 0 && ox + 3 < d.W && o < d.Cout)
            {
                // (o·H + oy)·W + ox is a multiple of 4: W is, and ox is (a tile's width is a multiple of 4). Every y is
                // a tensor's own buffer or a split's block of Cout·H·W floats, so 16-byte aligned.
                y.Cast<Float4>()[((long)(o * d.H + oy) * d.W + ox) >> 2] = new Float4
                {
                    A = IlgpuTiled.Activated(acc.P0, bias, relu, hasBias), B = IlgpuTiled.Activated(acc.P1, bias, relu, hasBias),
                    C = IlgpuTiled.Activated(acc.P2, bias, relu, hasBias), D = IlgpuTiled.Activated(acc.P3, bias, relu, hasBias),
                };
                return;
            }
            IlgpuTiled.StoreOutput(y, d, o, oy, ox, acc.P0, bias, relu, hasBias);
            IlgpuTiled.StoreOutput(y, d, o, oy, ox + 1, acc.P1, bias, relu, hasBias);
            IlgpuTiled.StoreOutput(y, d, o, oy, ox + 2, acc.P2, bias, relu, hasBias);
            IlgpuTiled.StoreOutput(y, d, o, oy, ox + 3, acc.P3, bias, relu, hasBias);
        }

    }

    /// <summary>
    /// Version 3c: the blocked kernel for at most 4 output channels — on VGG, the backward to the 3 colour channels
    /// (64→3). The blocked kernel computes 8 output channels × 4 pixels a thread and used 3 of the 8 there: Nsight
    /// Compute (H200, 2026-11-28, 512²) found it issue-bound, 180 µs at 23% occupancy, 5% of the FMA peak. Here a
    /// thread computes 4 channels × 8 pixels of a row: per input channel and kernel row, 3 LDS.128 bring its 10 inputs
    /// (12, two unused) and 3 more the taps' 4 weights, for 96 FMAs of which 72 count (Cout 3) — against 8 loads and
    /// 96 FMAs of which 36 count. Counted at 512²: half the threads, each doing the same instructions a channel and
    /// row: the 1.3 G instructions of the blocked kernel's loop become 0.65 G. Expected ≈ 0.1 ms (0.17–0.19 now); a
    /// grid of half the warps is filled by the split over the inputs (the tuning tries 2, 4, 8).
    /// Staging is the blocked kernel's (<see cref="IlgpuTiled.Stage"/>, its weights [channel][tap][8] with zeros past
    /// Cout; this kernel reads the low 4). Group (TW/8, TH) — the blocked kernel's group at twice its tile's width —,
    /// grid (⌈W/TW⌉, ⌈H/TH⌉, splits); arguments as <see cref="IlgpuBlocked.Forward"/>, the splits' partial outputs
    /// likewise.
    /// </summary>
    public static class IlgpuBlockedFewOutputs
    {
        public const int MaxOutputs = 4, PixelsPerThread = 8;

        /// <summary>The blocked kernel's shared memory for a TW×TH tile: patch rows TW + 4 floats apart (a multiple of
        /// 4: aligned vectors; room for the last thread's 12-float read of a (TW + 2)-float row), then the weights.</summary>
        public static int SharedFloats(int tw, int th, int chunk) => IlgpuBlocked.SharedFloats(tw, th, chunk);

        [KernelName("conv3x3_blocked_few_outputs")]
        public static void Forward(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask, int chunk, int batch, int splits)
        {
            int tw = Group.DimX * PixelsPerThread, th = Group.DimY, tx = Group.IdxX, ty = Group.IdxY;
            int pw = tw + 2, ph = th + 2, rs = IlgpuBlocked.RowStride(tw), split = Grid.IdxZ;
            int x0 = Grid.IdxX * tw, y0 = Grid.IdxY * th;
            var inputs = IlgpuTiled.SplitShare.OfChannels(d.Cin, chunk, splits, split);
            int firstInput = inputs.First, endInput = inputs.End;
            y = IlgpuTiled.SplitOutput(y, d, splits, split);
            int tid = ty * Group.DimX + tx, threads = Group.DimX * th;
            // Regions cut in Float4 units, as in the blocked kernel (so that every vector load is known aligned).
            var shared4 = Float4.SharedDynamic();
            int rs4 = rs / 4, patch4Length = chunk * ph * rs4;
            var patch4 = shared4.SubView(0, patch4Length);
            var wts4 = shared4.SubView(patch4Length, chunk * 9 * IlgpuTiled.ChannelsPerGroup / 4);
            var acc = new Block4x8();
            for (int c0 = firstInput; c0 < endInput; c0 += chunk)
            {
                int cn = endInput - c0 < chunk ? endInput - c0 : chunk;
                IlgpuTiled.Stage(x, mask, w, d, useMask, patch4.Cast<float>(), wts4.Cast<float>(), c0, cn, x0, y0, 0, pw, ph, rs, tid, threads, batch);
                Group.Barrier();
                for (int c = 0; c < cn; c++)
                    for (int ky = 0; ky < 3; ky++)
                    {
                        long row = (c * ph + ty + ky) * (long)rs4 + 2 * tx;
                        Float4 p = patch4[row], q = patch4[row + 1], r = patch4[row + 2];   // inputs x..x+11 (r.C, r.D unused)
                        long wb = (c * 9 + ky * 3) * 2L;   // a tap's 8 staged weights: the low Float4 holds channels 0–3
                        acc.Tap(wts4[wb], p.A, p.B, p.C, p.D, q.A, q.B, q.C, q.D);        // kx = 0
                        acc.Tap(wts4[wb + 2], p.B, p.C, p.D, q.A, q.B, q.C, q.D, r.A);    // kx = 1
                        acc.Tap(wts4[wb + 4], p.C, p.D, q.A, q.B, q.C, q.D, r.A, r.B);    // kx = 2
                    }
                Group.Barrier();
            }
            int ox = x0 + tx * PixelsPerThread, oy = y0 + ty;
            if (oy >= d.H) return;
            float b0 = IlgpuTiled.Bias(b, d, 0, hasBias), b1 = IlgpuTiled.Bias(b, d, 1, hasBias);
            float b2 = IlgpuTiled.Bias(b, d, 2, hasBias), b3 = IlgpuTiled.Bias(b, d, 3, hasBias);
            // Channels past Cout are skipped by the stores' own test.
            IlgpuBlocked.Store(y, d, 0, oy, ox, acc.L0, b0, relu, hasBias); IlgpuBlocked.Store(y, d, 0, oy, ox + 4, acc.H0, b0, relu, hasBias);
            IlgpuBlocked.Store(y, d, 1, oy, ox, acc.L1, b1, relu, hasBias); IlgpuBlocked.Store(y, d, 1, oy, ox + 4, acc.H1, b1, relu, hasBias);
            IlgpuBlocked.Store(y, d, 2, oy, ox, acc.L2, b2, relu, hasBias); IlgpuBlocked.Store(y, d, 2, oy, ox + 4, acc.H2, b2, relu, hasBias);
            IlgpuBlocked.Store(y, d, 3, oy, ox, acc.L3, b3, relu, hasBias); IlgpuBlocked.Store(y, d, 3, oy, ox + 4, acc.H3, b3, relu, hasBias);
        }
    }

    /// <summary>
    /// Version 3b: a convolution with at most 4 output channels — on VGG, the backward to the 3 colour channels,
    /// dx = conv(dy ⊙ [y &gt; 0], W′) with 64 inputs and 3 outputs. The blocked kernel computes 8 output channels a
    /// thread and 64 a group, and used 3 of them there: on an H200 (2026-11-28) 0.38 ms at 512², 5% of the fp32 FMA
    /// peak, the slowest op for its FLOPs (0.9 GFLOP). Here a thread computes 4 consecutive pixels of one row for
    /// every output channel (at most 16 sums in registers), reading its 3×6 input window (and the mask's) once an input
    /// channel for all of them; the weights are the same for a whole warp (one broadcast load each). Counted at 512²:
    /// 65 536 threads, each 64 channels × (36 loads, 144 FMAs); dy and the mask, 67 MB each, read from memory once
    /// ≈ 35 µs on an H200 — expected ≈ 0.05–0.1 ms; measured 0.28 ms at 512² (2026-11-28), then 0.17 with each
    /// channel's loads issued together and 16-byte stores (twentieth session): the loads' address arithmetic and 20
    /// warps an SM leave it issue- and latency-bound. A candidate of the tuning (ConvAlgorithm.FewOutputs), which keeps
    /// it only where it is faster than the blocked kernel (whole or split) and agrees with it.
    /// Launch with H·⌈W/4⌉ threads; arguments as <see cref="IlgpuTiled.Forward"/>, w: [Cout][Cin][9].
    /// </summary>
    public static class IlgpuFewOutputs
    {
        public const int MaxOutputs = 4, PixelsPerThread = 4;

        public static int Threads(ConvDims d) => d.H * ((d.W + PixelsPerThread - 1) / PixelsPerThread);

        [KernelName("conv3x3_few_outputs")]
        public static void Forward(Index1D index, ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask)
        {
            int quads = (d.W + PixelsPerThread - 1) / PixelsPerThread;
            int r = index / quads, c0 = (index - r * quads) * PixelsPerThread;
            long plane = (long)d.H * d.W;
            Pixels4 a0 = default, a1 = default, a2 = default, a3 = default;
            long stride = (long)d.Cin * 9;   // w[o][i][ky][kx] at o·stride + i·9 + ky·3 + kx
            for (int i = 0; i < d.Cin; i++)
            {
                // The channel's 3 rows × 6 columns (c0−1 … c0+4: the three taps of a weight row over the 4 pixels),
                // every load issued before the first product and none behind a branch (see InputRow.Of): one round
                // trip a channel. Loaded row by row behind the bounds tests, as in the first version, they were 12
                // round trips a row, and the kernel was latency-bound: 0.28 ms at 512² on an H200, 0.25 at 256².
                var p0 = InputRow.Of(x, mask, d, useMask, i * plane, r - 1, c0);
                var p1 = InputRow.Of(x, mask, d, useMask, i * plane, r, c0);
                var p2 = InputRow.Of(x, mask, d, useMask, i * plane, r + 1, c0);
                long tap = (long)i * 9;
                a0 = Channel(a0, w, tap, p0, p1, p2);
                if (d.Cout > 1) a1 = Channel(a1, w, stride + tap, p0, p1, p2);
                if (d.Cout > 2) a2 = Channel(a2, w, 2 * stride + tap, p0, p1, p2);
                if (d.Cout > 3) a3 = Channel(a3, w, 3 * stride + tap, p0, p1, p2);
            }
            // The blocked kernel's epilogue: output channel k of 4 pixels, bias and ReLU, skipping what lies outside;
            // the biases loaded together first.
            float b0 = IlgpuTiled.Bias(b, d, 0, hasBias), b1 = IlgpuTiled.Bias(b, d, 1, hasBias);
            float b2 = IlgpuTiled.Bias(b, d, 2, hasBias), b3 = IlgpuTiled.Bias(b, d, 3, hasBias);
            IlgpuBlocked.Store(y, d, 0, r, c0, a0, b0, relu, hasBias);
            if (d.Cout > 1) IlgpuBlocked.Store(y, d, 1, r, c0, a1, b1, relu, hasBias);
            if (d.Cout > 2) IlgpuBlocked.Store(y, d, 2, r, c0, a2, b2, relu, hasBias);
            if (d.Cout > 3) IlgpuBlocked.Store(y, d, 3, r, c0, a3, b3, relu, hasBias);
        }

        /// <summary>Six consecutive inputs of one row of one channel.</summary>
        struct InputRow
        {
            public float V0, V1, V2, V3, V4, V5;

            /// <summary>Row sr of the channel at <paramref name="planeAt"/>, columns c0−1 … c0+4: zero outside the map
            /// and where the mask (with useMask) is not positive. No load behind a branch: one outside reads element 0
            /// and is zeroed after.</summary>
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            public static InputRow Of(ArrayView<float> x, ArrayView<float> mask, ConvDims d, int useMask, long planeAt, int sr, int c0)
            {
                bool rowInside = sr >= 0 && sr < d.H;
                long row = rowInside ? planeAt + (long)sr * d.W : 0;
                return new InputRow
                {
                    V0 = Input(x, mask, row, rowInside, c0 - 1, d.W, useMask), V1 = Input(x, mask, row, rowInside, c0, d.W, useMask),
                    V2 = Input(x, mask, row, rowInside, c0 + 1, d.W, useMask), V3 = Input(x, mask, row, rowInside, c0 + 2, d.W, useMask),
                    V4 = Input(x, mask, row, rowInside, c0 + 3, d.W, useMask), V5 = Input(x, mask, row, rowInside, c0 + 4, d.W, useMask),
                };
            }
        }

        /// <summary>x at (row, col), zero outside the map or where the mask (with useMask) is not positive.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static float Input(ArrayView<float> x, ArrayView<float> mask, long row, bool rowInside, int col, int width, int useMask) =>
            IlgpuTiled.LoadMasked(x, mask, useMask, rowInside && col >= 0 && col < width, row + col);

        /// <summary>One output channel's 3×3 weights of one input channel (at w[at … at+8]) over the 4 pixels.</summary>
        static Pixels4 Channel(Pixels4 acc, ArrayView<float> w, long at, InputRow p0, InputRow p1, InputRow p2) =>
            WeightRow(WeightRow(WeightRow(acc, w, at, p0), w, at + 3, p1), w, at + 6, p2);

        /// <summary>One weight row's 3 taps (at w[at … at+2]) over 4 pixels whose inputs are v0 … v5.</summary>
        static Pixels4 WeightRow(Pixels4 acc, ArrayView<float> w, long at, InputRow p) =>
            acc.Add(w[at], p.V0, p.V1, p.V2, p.V3).Add(w[at + 1], p.V1, p.V2, p.V3, p.V4).Add(w[at + 2], p.V2, p.V3, p.V4, p.V5);
    }

    /// <summary>
    /// Version 4: the tiled convolution on tensor cores, TF32 in and fp32 accumulation, through inline PTX
    /// <c>mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32</c>. The convolution is an implicit GEMM:
    /// Z[o][p] = Σ_k A[o][k]·B[k][p] with k = (tap, input channel), A the weights and B the shifted input, read straight
    /// from a shared-memory patch (no im2col). One k-step is 8 input channels at one tap.
    /// A group is WarpsCo × (TW·TH/32) warps; each warp owns 32 output channels × 32 pixels (2 m-tiles of 16 channels
    /// × 4 n-tiles of 8 pixels, 32 accumulators a thread); the group owns 32·WarpsCo channels × a TW×TH pixel tile
    /// (TW a multiple of 8, so an n-tile is 8 pixels of one row). Operands are rounded to TF32 once, while staging.
    /// Where <c>CudaAsm.IsSupported</c> is false (the CPU accelerator, OpenCL) each warp-step is emulated: every lane
    /// writes its fragments to shared memory at the positions the PTX ISA gives them, and reads back the elements of
    /// its accumulators — so the CPU-accelerator tests check the fragment layout this kernel relies on.
    /// </summary>
    public static class IlgpuTensorCore
    {
        public const int WarpChannels = 32, WarpPixels = 32, KStep = 8;
        /// <summary>Floats of emulation scratch a warp needs: 2 A fragments (16×8) and 4 B fragments (8×8).</summary>
        public const int ScratchPerWarp = 2 * 16 * 8 + 4 * 8 * 8;

        /// <summary>One input channel's patch, padded so that a plane's stride is 8 banks apart mod 32: the 4 channel
        /// rows × 8 pixels a B-fragment load touches then fall in 32 different banks.</summary>
        public static int PlaneStride(int tw, int th)
        {
            int n = (tw + 2) * (th + 2);
            return n + ((8 - n % 32) + 32) % 32;
        }

        /// <summary>Weights in shared memory: [tap][channel][out channel], rows padded by 8 (conflict-free A loads).</summary>
        public static int WeightStride(int warpsCo) => WarpChannels * warpsCo + 8;

        public static int Threads(MmaTile t) => 32 * t.WarpsCo * (t.TileWidth * t.TileHeight / WarpPixels);

        /// <summary>Floats of the staged patch: one chunk's planes, two buffers when copied asynchronously.</summary>
        public static int PatchFloats(MmaTile t) => (t.Prefetch == 2 ? 2 : 1) * t.Chunk * PlaneStride(t.TileWidth, t.TileHeight);

        /// <summary>Dynamic shared memory: the patch (<see cref="PatchFloats"/>), the chunk's weights, and the
        /// emulation's scratch where there are no tensor cores. The 32×8 tile: 32 KB, 43 KB with asynchronous copies —
        /// under the 48 KB a CUDA kernel gets without opting in, which ILGPU cannot do.</summary>
        public static int SharedFloats(MmaTile t) =>
            PatchFloats(t) + 9 * t.Chunk * WeightStride(t.WarpsCo)
            + (t.Emulate != 0 ? Threads(t) / 32 * ScratchPerWarp : 0);

        /// <summary>Round to the nearest TF32 value (10-bit mantissa), ties away from zero: PTX's cvt.rna.tf32.f32,
        /// written as integer operations so that every backend rounds the same way. Inf stays inf.</summary>
        public static float RoundTf32(float v) => Interop.IntAsFloat((Interop.FloatAsInt(v) + 0x1000u) & 0xFFFFE000u);

        /// <summary>
        /// Grid (⌈W/TW⌉, ⌈H/TH⌉, ⌈Cout/(32·WarpsCo)⌉), group (<see cref="Threads"/>, 1, 1), dynamic shared memory
        /// <see cref="SharedFloats"/>. Arguments as <see cref="IlgpuTiled.Forward"/>, but w is <see cref="PackWeights"/>'
        /// output for these dims and this tile. One entry point per prefetch level (<see cref="For"/>): a register
        /// count is the kernel's, not the launch's, and with the prefetch registers of every level in one kernel ptxas
        /// gave it 155 a thread (sm_90) — more than 65 536 / 512, so that the 32×8 tile could not launch at all, with
        /// or without prefetching (SassTests). Compiled apart: 64 (none), 96 (the patch in registers; 119 until the
        /// twelfth session's rewrite of the chunk loop), 96 (asynchronous copies); the 32×8 tile's own entry points 72,
        /// 96 and 72 (64 with CUDA launch bounds, LaunchBounds, where they fit it without spilling: not prefetching
        /// into registers).
        /// </summary>
        [KernelName("conv3x3_tf32_mma")]
        public static void Forward(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask, MmaTile t) =>
            Convolve(x, mask, w, b, y, d, relu, hasBias, useMask, t, prefetch: 0, default);

        /// <summary><see cref="Forward"/> with the next chunk's input patch prefetched into registers (MmaPrefetch 1).</summary>
        [KernelName("conv3x3_tf32_mma_prefetch_patch")]
        public static void ForwardPrefetchPatch(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask, MmaTile t) =>
            Convolve(x, mask, w, b, y, d, relu, hasBias, useMask, t, prefetch: 1, default);

        /// <summary><see cref="Forward"/> with asynchronous copies (MmaPrefetch 2): <see cref="ConvolveAsync"/>.
        /// <paramref name="sources"/>: x's and w's device addresses, read by the host from the same views.</summary>
        [KernelName("conv3x3_tf32_mma_async")]
        public static void ForwardAsync(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask, MmaTile t, GlobalAddresses sources) =>
            Convolve(x, mask, w, b, y, d, relu, hasBias, useMask, t, prefetch: 2, sources);

        /// <summary><see cref="Forward"/> for the GPU's default tile, 32×8 pixels, 2 warps along the channels, 8-channel
        /// chunks (t's shape is ignored), its strides constants: each B-fragment load is then a per-thread register
        /// plus an immediate. ptxas for sm_90, the general kernel's chunk loop: 488 instructions for 72 mma.sync, 199 of
        /// them IMADs computing the 144 fragment loads' addresses from the runtime plane and row strides.</summary>
        [KernelName("conv3x3_tf32_mma_32x8")]
        public static void Forward32x8(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask, MmaTile t) =>
            Convolve(x, mask, w, b, y, d, relu, hasBias, useMask, DefaultShape(t), prefetch: 0, default);

        /// <summary><see cref="Forward32x8"/> with the next chunk's input patch prefetched into registers.</summary>
        [KernelName("conv3x3_tf32_mma_32x8_prefetch_patch")]
        public static void Forward32x8PrefetchPatch(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask, MmaTile t) =>
            Convolve(x, mask, w, b, y, d, relu, hasBias, useMask, DefaultShape(t), prefetch: 1, default);

        /// <summary><see cref="Forward32x8"/> with asynchronous copies (MmaPrefetch 2).</summary>
        [KernelName("conv3x3_tf32_mma_32x8_async")]
        public static void Forward32x8Async(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask, MmaTile t, GlobalAddresses sources) =>
            Convolve(x, mask, w, b, y, d, relu, hasBias, useMask, DefaultShape(t), prefetch: 2, sources);

        /// <summary>Whether a tile has the shape <see cref="Forward32x8"/> is compiled for.</summary>
        public static bool IsDefaultShape(MmaTile t) => DefaultShape(t).Equals(t);

        /// <summary>t with the default tile's shape (its prefetch level and emulation kept).</summary>
        static MmaTile DefaultShape(MmaTile t)
        {
            var fixedShape = t;
            fixedShape.TileWidth = 32; fixedShape.TileHeight = 8; fixedShape.WarpsCo = 2; fixedShape.Chunk = 8;
            return fixedShape;
        }

        /// <summary>The entry point for a tile without asynchronous copies (<see cref="ForAsync"/>): its prefetch level,
        /// and the default shape's constants where it has it.</summary>
        public static Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int, int, int, MmaTile>
            For(MmaTile t) => IsDefaultShape(t)
                ? (t.Prefetch == 0 ? Forward32x8 : Forward32x8PrefetchPatch)
                : (t.Prefetch == 0 ? Forward : ForwardPrefetchPatch);

        /// <summary>The entry point for a tile with asynchronous copies (Prefetch 2), which takes the global addresses too.</summary>
        public static Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ConvDims, int, int, int, MmaTile, GlobalAddresses>
            ForAsync(MmaTile t) => IsDefaultShape(t) ? Forward32x8Async : ForwardAsync;

        /// <summary>The kernel's body, inlined into each entry point with its prefetch level a constant (so that the
        /// other levels' code, and their registers, are gone). t.Prefetch is not read here.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Convolve(ArrayView<float> x, ArrayView<float> mask, ArrayView<float> w, ArrayView<float> b,
            ArrayView<float> y, ConvDims d, int relu, int hasBias, int useMask, MmaTile t, int prefetch, GlobalAddresses sources)
        {
            int tid = Group.IdxX, threads = Group.DimX, lane = tid & 31, warp = tid >> 5;
            int wm = warp % t.WarpsCo, wn = warp / t.WarpsCo;
            int g = lane >> 2, q = lane & 3;              // the PTX ISA's groupID and threadID_in_group
            int tw = t.TileWidth, th = t.TileHeight, pw = tw + 2, ph = th + 2, chunk = t.Chunk;
            int plane = PlaneStride(tw, th), wstride = WeightStride(t.WarpsCo), bm = WarpChannels * t.WarpsCo;
            int x0 = Grid.IdxX * tw, y0 = Grid.IdxY * th, o0 = Grid.IdxZ * bm;
            // Regions cut in Float4 units (plane and wstride are multiples of 8 floats), so that ILGPU knows the
            // weights' vector stores are aligned. With asynchronous copies the patch has two buffers, chunk by chunk.
            int patchFloats = (prefetch == 2 ? 2 : 1) * chunk * plane, scratchAt = patchFloats + 9 * chunk * wstride;
            var shared4 = Float4.SharedDynamic();
            var wts4 = shared4.SubView(patchFloats / 4, 9 * chunk * wstride / 4);
            var shared = shared4.Cast<float>();
            var patch = shared.SubView(0, patchFloats);
            var wts = wts4.Cast<float>();
            // Where in the patch column n = g of each n-tile starts (its row and column in the tile).
            int p0 = wn * WarpPixels + g, p1 = p0 + 8, p2 = p0 + 16, p3 = p0 + 24;
            int off0 = p0 / tw * pw + p0 % tw, off1 = p1 / tw * pw + p1 % tw;
            int off2 = p2 / tw * pw + p2 % tw, off3 = p3 / tw * pw + p3 % tw;
            int cinPadded = PaddedInputs(d, t), coutPadded = PaddedOutputs(d, t);
            var at = new FragmentBases((long)q * wstride + wm * WarpChannels + g, (long)q * plane + off0, (long)q * plane + off1,
                (long)q * plane + off2, (long)q * plane + off3);
            var acc = new WarpAccumulators();
            if (CudaAsm.IsSupported) CudaAsm.Emit(DeclareAccumulators);
            if (prefetch == 2)
                ConvolveAsync(new AsyncStaging(x, mask, w.Cast<Float4>(), patch, wts4, sources, d, useMask, t, cinPadded, coutPadded,
                    x0, y0, o0, tid, threads), shared, scratchAt, at, warp, g, q, ref acc);
            else
            {
                // With prefetch 1, the next chunk's patch is loaded into registers before the current chunk's mma work
                // and stored after it, so that the loads' latency overlaps the tensor work (on an H200, 39% of the
                // stalls of the unprefetched kernel waited on the staging loads). A thread's elements: tid + k·threads.
                var first = PatchCursor.Of(tid, ph, pw);
                var step = PatchCursor.Of(threads, ph, pw);
                var w4 = w.Cast<Float4>();
                if (prefetch == 1)
                    IlgpuTiled.StagePatch(x, mask, d, useMask, patch, plane, pw, 0, chunk, x0, y0, pw, ph, tid, threads, tf32: 1);
                for (int c0 = 0; c0 < d.Cin; c0 += chunk)
                {
                    // Stage chunk input channels (zero past Cin and outside the map) and their weights, TF32-rounded.
                    if (prefetch == 0)
                        IlgpuTiled.StagePatch(x, mask, d, useMask, patch, plane, pw, c0, chunk, x0, y0, pw, ph, tid, threads, tf32: 1);
                    // Weights, already TF32-rounded and packed [tap][channel][out channel] with zero padding
                    // (PackWeights): each row of bm output channels is a contiguous, coalesced copy of 128-bit vectors,
                    // stored along the output channels (consecutive banks). Row r = tap·chunk + c.
                    for (int e = tid; e < WeightVectors(t); e += threads)
                        wts4[WeightTarget(e, t)] = w4[WeightSource(e, t, c0, cinPadded, coutPadded, o0)];
                    Group.Barrier();
                    bool more = prefetch == 1 && c0 + chunk < d.Cin;
                    var next = new PatchSlots();
                    if (more) next = LoadPatch(x, mask, d, useMask, c0 + chunk, x0, y0, chunk, ph, pw, first, step);
                    Taps(patch, 0, wts, shared, scratchAt, t, at, 0, 9, warp, g, q, ref acc);
                    Group.Barrier();
                    if (more) StorePatch(patch, next, chunk, ph, pw, plane, first, step);
                }
            }
            if (CudaAsm.IsSupported) acc = ReadAccumulators();
            // C (16×8): c0 (g, 2q), c1 (g, 2q+1), c2 (g+8, 2q), c3 (g+8, 2q+1).
            int oa = o0 + wm * WarpChannels + g, pc = wn * WarpPixels + 2 * q;
            Store(y, b, d, t, oa, pc, x0, y0, acc.C00, relu, hasBias); Store(y, b, d, t, oa, pc + 8, x0, y0, acc.C01, relu, hasBias);
            Store(y, b, d, t, oa, pc + 16, x0, y0, acc.C02, relu, hasBias); Store(y, b, d, t, oa, pc + 24, x0, y0, acc.C03, relu, hasBias);
            Store(y, b, d, t, oa + 16, pc, x0, y0, acc.C10, relu, hasBias); Store(y, b, d, t, oa + 16, pc + 8, x0, y0, acc.C11, relu, hasBias);
            Store(y, b, d, t, oa + 16, pc + 16, x0, y0, acc.C12, relu, hasBias); Store(y, b, d, t, oa + 16, pc + 24, x0, y0, acc.C13, relu, hasBias);
        }

        /// <summary>
        /// The chunk loop with asynchronous copies (MmaPrefetch 2): a two-stage pipeline in which no thread holds a
        /// staged value in a register. The patch has two buffers: chunk c+1's is copied (cp.async, 4 bytes an element)
        /// while chunk c computes. The weights — 64% of a chunk's staged floats, the 32×8 tile's 20 KB — have one
        /// buffer, filled in two halves of taps (rows tap·chunk + channel: taps 0–4, then 5–8), so that each half is
        /// copied while the other half's taps compute: a second weights buffer would take the 32×8 tile to 63 KB, past
        /// the 48 KB ILGPU can ask for. Per chunk c (buffer c mod 2):
        /// <code>
        ///   copy patch(c+1) → other buffer; commit         in flight: weights 5–8 (c), patch (c+1)
        ///   taps 0–4 of chunk c; barrier
        ///   copy weights 0–4 (c+1); commit; wait for weights 5–8 (c); barrier
        ///   taps 5–8 of chunk c; barrier
        ///   copy weights 5–8 (c+1); commit; wait for patch (c+1) and weights 0–4 (c+1)
        ///   round (and mask) this thread's elements of patch (c+1) in place; barrier
        /// </code>
        /// Every thread commits the same groups (empty ones at the end), so one wait count fits all. cp.async cannot
        /// round to TF32 or apply ReLU's mask on the way, so each thread does that to the elements it copied once they
        /// have arrived (its own copies are visible to it after the wait; the barrier publishes them); the mask is
        /// read there, from global memory. Four barriers a chunk against two, for 72 mma.sync a warp. With 8-channel
        /// chunks the mmas run in the same order as without prefetching: the same sums, bit for bit (tested).
        /// Off CUDA the copies are emulated at the latest moment the waits allow (<see cref="AsyncStaging"/>).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void ConvolveAsync(AsyncStaging s, ArrayView<float> shared, int scratchAt, FragmentBases at, int warp, int g, int q,
            ref WarpAccumulators acc)
        {
            int chunk = s.Tile.Chunk, all = WeightVectors(s.Tile), half = 5 * chunk * (WarpChannels * s.Tile.WarpsCo / 4);
            var groups = new CopyGroups();
            var open = CopyGroup.None;
            s.IssuePatch(ref open, 0, 0);
            s.IssueWeights(ref open, 0, 0, half);
            groups.Commit(ref open);
            s.IssueWeights(ref open, 0, half, all);
            groups.Commit(ref open);
            groups.Wait(s, 1);
            s.FinishPatch(0, 0);
            Group.Barrier();
            for (int c0 = 0; c0 < s.D.Cin; c0 += chunk)
            {
                bool odd = (c0 / chunk & 1) != 0, more = c0 + chunk < s.D.Cin;
                int current = odd ? s.BufferFloats : 0, next = s.BufferFloats - current;
                if (more) s.IssuePatch(ref open, c0 + chunk, next);
                groups.Commit(ref open);
                Taps(s.Patches, current, s.Weights, shared, scratchAt, s.Tile, at, 0, 5, warp, g, q, ref acc);
                Group.Barrier();
                if (more) s.IssueWeights(ref open, c0 + chunk, 0, half);
                groups.Commit(ref open);
                groups.Wait(s, 2);
                Group.Barrier();
                Taps(s.Patches, current, s.Weights, shared, scratchAt, s.Tile, at, 5, 9, warp, g, q, ref acc);
                Group.Barrier();
                if (more) s.IssueWeights(ref open, c0 + chunk, half, all);
                groups.Commit(ref open);
                groups.Wait(s, 1);
                if (more) s.FinishPatch(c0 + chunk, next);
                Group.Barrier();
            }
        }

        /// <summary>Taps [tapFrom, tapTo) of every 8-channel step of the chunk staged at <paramref name="buffer"/> in
        /// the patch: one warp-step each. Each fragment index is the thread's fixed part (<paramref name="at"/>, from q,
        /// g and the warp) plus a part that depends only on the step and the tap: with the tile's strides constants
        /// (Forward32x8) that part is an immediate, and every load a register plus an immediate (64-bit sums, which
        /// ptxas may fold).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Taps(ArrayView<float> patch, int buffer, ArrayView<float> wts, ArrayView<float> shared, int scratchAt, MmaTile t,
            FragmentBases at, int tapFrom, int tapTo, int warp, int g, int q, ref WarpAccumulators acc)
        {
            int chunk = t.Chunk, pw = t.TileWidth + 2, plane = PlaneStride(t.TileWidth, t.TileHeight), wstride = WeightStride(t.WarpsCo);
            for (int c8 = 0; c8 < chunk; c8 += KStep)
                for (int tap = tapFrom; tap < tapTo; tap++)
                {
                    // A (row-major 16×8): a0 (g, q), a1 (g+8, q), a2 (g, q+4), a3 (g+8, q+4).
                    long wa = at.A + (long)(tap * chunk + c8) * wstride, wa4 = wa + 4 * wstride;
                    var a0 = new FragmentA(wts[wa], wts[wa + 8], wts[wa4], wts[wa4 + 8]);
                    var a1 = new FragmentA(wts[wa + 16], wts[wa + 24], wts[wa4 + 16], wts[wa4 + 24]);
                    // B (column-major 8×8): b0 (k = q, n = g), b1 (k = q+4, n = g).
                    long pt = buffer + (long)c8 * plane + tap / 3 * pw + tap % 3, pt4 = pt + 4 * plane;
                    var b0 = new FragmentB(patch[at.B0 + pt], patch[at.B0 + pt4]);
                    var b1 = new FragmentB(patch[at.B1 + pt], patch[at.B1 + pt4]);
                    var b2 = new FragmentB(patch[at.B2 + pt], patch[at.B2 + pt4]);
                    var b3 = new FragmentB(patch[at.B3 + pt], patch[at.B3 + pt4]);
                    WarpStep(shared, scratchAt, warp, g, q, ref acc, a0, a1, b0, b1, b2, b3);
                }
        }

        /// <summary>One warp-step of 8 mmas (the convolution's and the TF32 Gram kernels'): on tensor cores under CUDA,
        /// emulated in the warp's shared scratch (at scratchAt, ScratchPerWarp floats a warp) elsewhere. The
        /// accumulators are PTX registers named by the assembly itself (DeclareAccumulators): passed through EmitRef
        /// they were address-taken locals, which ptxas left in local memory (320 bytes a thread; L2 at 83% of its
        /// throughput, 3 TFLOP/s on an H200). Only inputs are passed, by value; acc is the emulation's.</summary>
        internal static void WarpStep(ArrayView<float> shared, int scratchAt, int warp, int g, int q, ref WarpAccumulators acc,
            FragmentA a0, FragmentA a1, FragmentB b0, FragmentB b1, FragmentB b2, FragmentB b3)
        {
            if (CudaAsm.IsSupported)
            {
                uint u0 = Bits(a0.A0), u1 = Bits(a0.A1), u2 = Bits(a0.A2), u3 = Bits(a0.A3);
                uint v0 = Bits(a1.A0), v1 = Bits(a1.A1), v2 = Bits(a1.A2), v3 = Bits(a1.A3);
                CudaAsm.Emit(Mma00, u0, u1, u2, u3, Bits(b0.B0), Bits(b0.B1));
                CudaAsm.Emit(Mma01, u0, u1, u2, u3, Bits(b1.B0), Bits(b1.B1));
                CudaAsm.Emit(Mma02, u0, u1, u2, u3, Bits(b2.B0), Bits(b2.B1));
                CudaAsm.Emit(Mma03, u0, u1, u2, u3, Bits(b3.B0), Bits(b3.B1));
                CudaAsm.Emit(Mma10, v0, v1, v2, v3, Bits(b0.B0), Bits(b0.B1));
                CudaAsm.Emit(Mma11, v0, v1, v2, v3, Bits(b1.B0), Bits(b1.B1));
                CudaAsm.Emit(Mma12, v0, v1, v2, v3, Bits(b2.B0), Bits(b2.B1));
                CudaAsm.Emit(Mma13, v0, v1, v2, v3, Bits(b3.B0), Bits(b3.B1));
            }
            else
                EmulateWarpStep(shared.SubView(scratchAt + warp * ScratchPerWarp, ScratchPerWarp), g, q, ref acc, a0, a1, b0, b1, b2, b3);
        }

        internal static uint Bits(float v) => Interop.FloatAsInt(v);

        /// <summary>
        /// What the asynchronous chunk loop (<see cref="ConvolveAsync"/>) copies from and to, and this thread's share
        /// of it. Under CUDA a copy is a cp.async. Elsewhere it is emulated at the latest moment the PTX allows:
        /// issuing poisons the destination (NaN) and records the copy in the open group, and the wait that must see
        /// the group complete makes it (<see cref="CopyGroups"/>) — so that a read before its wait, a wait one group
        /// short, or a half of the weights waited for in the wrong place computes with NaN and fails the tests, where
        /// copying at once would hide it. (On CUDA the emulation's code is dead: CudaAsm.IsSupported is a constant.)
        /// </summary>
        internal readonly struct AsyncStaging
        {
            public readonly ArrayView<float> X, Mask, Patches, Weights;
            public readonly ArrayView<Float4> W4, Weights4;
            public readonly ConvDims D;
            public readonly MmaTile Tile;
            public readonly int UseMask, CinPadded, CoutPadded, X0, Y0, O0, Tid, Threads, Plane, BufferFloats;
            public readonly long PatchesAt, WeightsAt, XAt, WAt;

            /// <summary>patches: both buffers, at the start of the dynamic shared memory; weights right after them.</summary>
            public AsyncStaging(ArrayView<float> x, ArrayView<float> mask, ArrayView<Float4> w4, ArrayView<float> patches,
                ArrayView<Float4> weights4, GlobalAddresses sources, ConvDims d, int useMask, MmaTile t,
                int cinPadded, int coutPadded, int x0, int y0, int o0, int tid, int threads)
            {
                X = x; Mask = mask; W4 = w4; Patches = patches; Weights4 = weights4; Weights = weights4.Cast<float>(); D = d; UseMask = useMask;
                Tile = t; CinPadded = cinPadded; CoutPadded = coutPadded; X0 = x0; Y0 = y0; O0 = o0; Tid = tid; Threads = threads;
                Plane = PlaneStride(t.TileWidth, t.TileHeight);
                BufferFloats = t.Chunk * Plane;
                PatchesAt = AsyncCopy.DynamicSharedAddress();
                WeightsAt = PatchesAt + 4L * patches.Length;
                XAt = AsyncCopy.Global(sources.X);
                WAt = AsyncCopy.Global(sources.W);
            }

            const int Issue = 0, CopyNow = 1, Finish = 2;

            /// <summary>Starts copying chunk c0's patch into the buffer at <paramref name="buffer"/>: elements inside the
            /// map asynchronously (raw: <see cref="FinishPatch"/> rounds and masks them), zeros elsewhere stored at once.</summary>
            public void IssuePatch(ref CopyGroup open, int c0, int buffer)
            {
                CopyPatch(c0, buffer, Issue);
                if (!CudaAsm.IsSupported) { open.PatchC0 = c0; open.Buffer = buffer; }
            }

            /// <summary>Once this thread's copies of a patch have arrived: its elements inside the map TF32-rounded, and
            /// zeroed where the mask is ≤ 0 when asked (as <see cref="IlgpuTiled.StagePatch"/> stages them).</summary>
            public void FinishPatch(int c0, int buffer) => CopyPatch(c0, buffer, Finish);

            /// <summary>Starts copying weight vectors [from, to) of the chunk at c0 (16 bytes each).</summary>
            public void IssueWeights(ref CopyGroup open, int c0, int from, int to)
            {
                CopyWeights(c0, from, to, Issue);
                if (!CudaAsm.IsSupported) { open.WeightC0 = c0; open.From = from; open.To = to; }
            }

            /// <summary>The emulation: makes a group's copies.</summary>
            public void Complete(CopyGroup group)
            {
                if (group.PatchC0 >= 0) CopyPatch(group.PatchC0, group.Buffer, CopyNow);
                if (group.From < group.To) CopyWeights(group.WeightC0, group.From, group.To, CopyNow);
            }

            /// <summary>This thread's elements of a chunk's patch, walked as <see cref="IlgpuTiled.StagePatch"/> walks
            /// them (a warp along a row: coalesced), the same ones in each mode.</summary>
            void CopyPatch(int c0, int buffer, int mode)
            {
                int pw = Tile.TileWidth + 2, ph = Tile.TileHeight + 2, rowThreads = IlgpuTiled.RowLanes(Threads);
                int lane = Tid % rowThreads, rowStep = Threads / rowThreads;
                for (int r = Tid / rowThreads; r < Tile.Chunk * ph; r += rowStep)
                {
                    int c = r / ph, py = r - c * ph, iy = Y0 + py - 1;
                    bool rowInside = c0 + c < D.Cin && iy >= 0 && iy < D.H;
                    int rowAt = ((c0 + c) * D.H + iy) * D.W, to = buffer + c * Plane + py * pw;
                    for (int px = lane; px < pw; px += rowThreads)
                    {
                        int ix = X0 + px - 1, i = rowAt + ix;
                        if (rowInside && ix >= 0 && ix < D.W)
                        {
                            if (mode == Issue)
                            {
                                if (CudaAsm.IsSupported) AsyncCopy.Copy4(PatchesAt + 4L * (to + px), XAt + 4L * i);
                                else Patches[to + px] = float.NaN;
                            }
                            else if (mode == CopyNow) Patches[to + px] = X[i];
                            else Patches[to + px] = RoundTf32(UseMask != 0 && Mask[i] <= 0f ? 0f : Patches[to + px]);
                        }
                        else if (mode == Issue) Patches[to + px] = 0f;
                    }
                }
            }

            void CopyWeights(int c0, int from, int to, int mode)
            {
                for (int e = from + Tid; e < to; e += Threads)
                {
                    int target = WeightTarget(e, Tile), source = WeightSource(e, Tile, c0, CinPadded, CoutPadded, O0);
                    if (mode == CopyNow) Weights4[target] = W4[source];
                    else if (CudaAsm.IsSupported) AsyncCopy.Copy16(WeightsAt + 16L * target, WAt + 16L * source);
                    else Weights4[target] = new Float4 { A = float.NaN, B = float.NaN, C = float.NaN, D = float.NaN };
                }
            }
        }

        /// <summary>The copies of one committed group, as the emulation records them: chunk PatchC0's patch into the
        /// buffer at Buffer (none where PatchC0 &lt; 0) and weight vectors [From, To) of chunk WeightC0.</summary>
        internal struct CopyGroup
        {
            public int PatchC0, Buffer, WeightC0, From, To;
            public static CopyGroup None => new() { PatchC0 = -1 };
        }

        /// <summary>cp.async.commit_group and wait_group; emulated off CUDA with the committed groups not yet made
        /// (at most three, oldest first: the loop never has more in flight).</summary>
        internal struct CopyGroups
        {
            CopyGroup _g0, _g1, _g2;
            int _count;

            public void Commit(ref CopyGroup open)
            {
                if (CudaAsm.IsSupported) AsyncCopy.Commit();
                else
                {
                    if (_count == 0) _g0 = open; else if (_count == 1) _g1 = open; else _g2 = open;
                    _count++;
                }
                open = CopyGroup.None;
            }

            /// <summary>Until at most <paramref name="pending"/> of the most recent groups are incomplete (PTX: 1 or 2,
            /// else all).</summary>
            public void Wait(AsyncStaging s, int pending)
            {
                if (CudaAsm.IsSupported)
                {
                    if (pending == 1) AsyncCopy.WaitAllButOne();
                    else if (pending == 2) AsyncCopy.WaitAllButTwo();
                    else AsyncCopy.WaitAll();
                    return;
                }
                while (_count > pending)
                {
                    s.Complete(_g0);
                    _g0 = _g1; _g1 = _g2;
                    _count--;
                }
            }
        }

        /// <summary>The 128-bit vectors of a chunk's weights: 9 taps × chunk channels × 32·WarpsCo outputs / 4.</summary>
        public static int WeightVectors(MmaTile t) => 9 * t.Chunk * WarpChannels * t.WarpsCo / 4;

        /// <summary>Where vector e of the chunk at c0 lies in the packed weights (row r = tap·chunk + channel, bm/4
        /// vectors a row), in vectors: coutPadded and o0 are multiples of 32, so rows start on 16-byte boundaries.</summary>
        internal static int WeightSource(int e, MmaTile t, int c0, int cinPadded, int coutPadded, int o0)
        {
            int perRow = WarpChannels * t.WarpsCo / 4, r = e / perRow, tap = r / t.Chunk;
            return ((tap * cinPadded + c0 + r - tap * t.Chunk) * coutPadded + o0) / 4 + e - r * perRow;
        }

        /// <summary>Where vector e goes in the shared weights: row r, WeightStride floats a row.</summary>
        internal static int WeightTarget(int e, MmaTile t)
        {
            int perRow = WarpChannels * t.WarpsCo / 4, r = e / perRow;
            return r * (WeightStride(t.WarpsCo) / 4) + e - r * perRow;
        }

        /// <summary>Loads a thread's elements of chunk c0's patch (zero outside the map and past Cin) into registers.</summary>
        static PatchSlots LoadPatch(ArrayView<float> x, ArrayView<float> mask, ConvDims d, int useMask, int c0, int x0, int y0,
            int chunk, int ph, int pw, PatchCursor at, PatchCursor step)
        {
            var s = new PatchSlots();
            s.V0 = Fetch(x, mask, d, useMask, c0, x0, y0, chunk, at); at = at.Next(step, ph, pw);
            s.V1 = Fetch(x, mask, d, useMask, c0, x0, y0, chunk, at); at = at.Next(step, ph, pw);
            s.V2 = Fetch(x, mask, d, useMask, c0, x0, y0, chunk, at); at = at.Next(step, ph, pw);
            s.V3 = Fetch(x, mask, d, useMask, c0, x0, y0, chunk, at); at = at.Next(step, ph, pw);
            s.V4 = Fetch(x, mask, d, useMask, c0, x0, y0, chunk, at); at = at.Next(step, ph, pw);
            s.V5 = Fetch(x, mask, d, useMask, c0, x0, y0, chunk, at); at = at.Next(step, ph, pw);
            s.V6 = Fetch(x, mask, d, useMask, c0, x0, y0, chunk, at); at = at.Next(step, ph, pw);
            s.V7 = Fetch(x, mask, d, useMask, c0, x0, y0, chunk, at);
            return s;
        }

        static PatchValue Fetch(ArrayView<float> x, ArrayView<float> mask, ConvDims d, int useMask, int c0, int x0, int y0,
            int chunk, PatchCursor at)
        {
            int iy = y0 + at.Y - 1, ix = x0 + at.X - 1;
            if (at.C >= chunk || c0 + at.C >= d.Cin || iy < 0 || iy >= d.H || ix < 0 || ix >= d.W) return new PatchValue(0f, 1f);
            int i = ((c0 + at.C) * d.H + iy) * d.W + ix;
            return new PatchValue(x[i], useMask != 0 ? mask[i] : 1f);
        }

        /// <summary>Stores prefetched elements into the patch (after the group is done with it), masked and TF32-rounded
        /// as <see cref="IlgpuTiled.StagePatch"/> would have.</summary>
        static void StorePatch(ArrayView<float> patch, PatchSlots s, int chunk, int ph, int pw, int plane, PatchCursor at, PatchCursor step)
        {
            Put(patch, s.V0, chunk, pw, plane, at); at = at.Next(step, ph, pw);
            Put(patch, s.V1, chunk, pw, plane, at); at = at.Next(step, ph, pw);
            Put(patch, s.V2, chunk, pw, plane, at); at = at.Next(step, ph, pw);
            Put(patch, s.V3, chunk, pw, plane, at); at = at.Next(step, ph, pw);
            Put(patch, s.V4, chunk, pw, plane, at); at = at.Next(step, ph, pw);
            Put(patch, s.V5, chunk, pw, plane, at); at = at.Next(step, ph, pw);
            Put(patch, s.V6, chunk, pw, plane, at); at = at.Next(step, ph, pw);
            Put(patch, s.V7, chunk, pw, plane, at);
        }

        static void Put(ArrayView<float> patch, PatchValue v, int chunk, int pw, int plane, PatchCursor at)
        {
            if (at.C < chunk) patch[at.C * plane + at.Y * pw + at.X] = RoundTf32(v.M <= 0f ? 0f : v.X);
        }

        /// <summary>Input channels rounded up to whole chunks, output channels to whole groups: the packed weights' sizes.</summary>
        public static int PaddedInputs(ConvDims d, MmaTile t) => (d.Cin + t.Chunk - 1) / t.Chunk * t.Chunk;
        public static int PaddedOutputs(ConvDims d, MmaTile t)
        {
            int bm = WarpChannels * t.WarpsCo;
            return (d.Cout + bm - 1) / bm * bm;
        }

        /// <summary>Floats of <see cref="PackWeights"/>' output for a convolution with these dims.</summary>
        public static int PackedLength(ConvDims d, MmaTile t) => 9 * PaddedInputs(d, t) * PaddedOutputs(d, t);

        /// <summary>
        /// The weights as the kernel stages them: packed[tap][input channel][output channel], TF32-rounded, Cin padded
        /// to the chunk and Cout to the group's channels with zeros — so that staging is a plain coalesced copy with no
        /// bounds checks, divisions or rounding. d is the convolution the kernel will run: flip 0 packs w[Cout][Cin][9]
        /// for the forward; flip 1 packs the backward's W′[i][o][t] = w[o][i][8−t] straight from the layer's
        /// w[d.Cin][d.Cout][9] (the backward's input channels are the layer's outputs). One thread per packed element.
        /// </summary>
        [KernelName("conv3x3_tf32_pack_weights")]
        public static void PackWeights(Index1D index, ArrayView<float> w, ArrayView<float> packed, ConvDims d, MmaTile t, int flip)
        {
            int cinPadded = PaddedInputs(d, t), coutPadded = PaddedOutputs(d, t);
            int o = index % coutPadded, rest = index / coutPadded, i = rest % cinPadded, tap = rest / cinPadded;
            float v = 0f;
            if (o < d.Cout && i < d.Cin)
                v = flip == 0 ? w[(o * d.Cin + i) * 9 + tap] : w[(i * d.Cout + o) * 9 + 8 - tap];
            packed[index] = RoundTf32(v);
        }

        // The 32 accumulators as PTX registers gs_c0…gs_c31 (4 per m16n8 tile: tile mn owns gs_c(4·(4m+n))…+3), declared
        // and zeroed once at the kernel's start; every mma names its own four. ILGPU passes only inputs by value.
        internal const string DeclareAccumulators = ".reg .f32 gs_c<32>;\n\t" +
            "mov.f32 gs_c0, 0f00000000; mov.f32 gs_c1, 0f00000000; mov.f32 gs_c2, 0f00000000; mov.f32 gs_c3, 0f00000000;\n\t" +
            "mov.f32 gs_c4, 0f00000000; mov.f32 gs_c5, 0f00000000; mov.f32 gs_c6, 0f00000000; mov.f32 gs_c7, 0f00000000;\n\t" +
            "mov.f32 gs_c8, 0f00000000; mov.f32 gs_c9, 0f00000000; mov.f32 gs_c10, 0f00000000; mov.f32 gs_c11, 0f00000000;\n\t" +
            "mov.f32 gs_c12, 0f00000000; mov.f32 gs_c13, 0f00000000; mov.f32 gs_c14, 0f00000000; mov.f32 gs_c15, 0f00000000;\n\t" +
            "mov.f32 gs_c16, 0f00000000; mov.f32 gs_c17, 0f00000000; mov.f32 gs_c18, 0f00000000; mov.f32 gs_c19, 0f00000000;\n\t" +
            "mov.f32 gs_c20, 0f00000000; mov.f32 gs_c21, 0f00000000; mov.f32 gs_c22, 0f00000000; mov.f32 gs_c23, 0f00000000;\n\t" +
            "mov.f32 gs_c24, 0f00000000; mov.f32 gs_c25, 0f00000000; mov.f32 gs_c26, 0f00000000; mov.f32 gs_c27, 0f00000000;\n\t" +
            "mov.f32 gs_c28, 0f00000000; mov.f32 gs_c29, 0f00000000; mov.f32 gs_c30, 0f00000000; mov.f32 gs_c31, 0f00000000;";
        const string MmaOp = "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 ";
        const string Mma00 = MmaOp + "{gs_c0,gs_c1,gs_c2,gs_c3}, {%0,%1,%2,%3}, {%4,%5}, {gs_c0,gs_c1,gs_c2,gs_c3};";
        const string Mma01 = MmaOp + "{gs_c4,gs_c5,gs_c6,gs_c7}, {%0,%1,%2,%3}, {%4,%5}, {gs_c4,gs_c5,gs_c6,gs_c7};";
        const string Mma02 = MmaOp + "{gs_c8,gs_c9,gs_c10,gs_c11}, {%0,%1,%2,%3}, {%4,%5}, {gs_c8,gs_c9,gs_c10,gs_c11};";
        const string Mma03 = MmaOp + "{gs_c12,gs_c13,gs_c14,gs_c15}, {%0,%1,%2,%3}, {%4,%5}, {gs_c12,gs_c13,gs_c14,gs_c15};";
        const string Mma10 = MmaOp + "{gs_c16,gs_c17,gs_c18,gs_c19}, {%0,%1,%2,%3}, {%4,%5}, {gs_c16,gs_c17,gs_c18,gs_c19};";
        const string Mma11 = MmaOp + "{gs_c20,gs_c21,gs_c22,gs_c23}, {%0,%1,%2,%3}, {%4,%5}, {gs_c20,gs_c21,gs_c22,gs_c23};";
        const string Mma12 = MmaOp + "{gs_c24,gs_c25,gs_c26,gs_c27}, {%0,%1,%2,%3}, {%4,%5}, {gs_c24,gs_c25,gs_c26,gs_c27};";
        const string Mma13 = MmaOp + "{gs_c28,gs_c29,gs_c30,gs_c31}, {%0,%1,%2,%3}, {%4,%5}, {gs_c28,gs_c29,gs_c30,gs_c31};";

        /// <summary>Copies the assembly's accumulator registers out, once, for the epilogue. Written out 32 times because
        /// ILGPU takes an asm string only as a literal (one computed in a helper is not a constant to its frontend).</summary>
        internal static WarpAccumulators ReadAccumulators()
        {
            var a = new WarpAccumulators();
            CudaAsm.Emit("mov.f32 %0, gs_c0;", out float c0); CudaAsm.Emit("mov.f32 %0, gs_c1;", out float c1);
            CudaAsm.Emit("mov.f32 %0, gs_c2;", out float c2); CudaAsm.Emit("mov.f32 %0, gs_c3;", out float c3);
            a.C00 = new Accumulator(c0, c1, c2, c3);
            CudaAsm.Emit("mov.f32 %0, gs_c4;", out c0); CudaAsm.Emit("mov.f32 %0, gs_c5;", out c1);
            CudaAsm.Emit("mov.f32 %0, gs_c6;", out c2); CudaAsm.Emit("mov.f32 %0, gs_c7;", out c3);
            a.C01 = new Accumulator(c0, c1, c2, c3);
            CudaAsm.Emit("mov.f32 %0, gs_c8;", out c0); CudaAsm.Emit("mov.f32 %0, gs_c9;", out c1);
            CudaAsm.Emit("mov.f32 %0, gs_c10;", out c2); CudaAsm.Emit("mov.f32 %0, gs_c11;", out c3);
            a.C02 = new Accumulator(c0, c1, c2, c3);
            CudaAsm.Emit("mov.f32 %0, gs_c12;", out c0); CudaAsm.Emit("mov.f32 %0, gs_c13;", out c1);
            CudaAsm.Emit("mov.f32 %0, gs_c14;", out c2); CudaAsm.Emit("mov.f32 %0, gs_c15;", out c3);
            a.C03 = new Accumulator(c0, c1, c2, c3);
            CudaAsm.Emit("mov.f32 %0, gs_c16;", out c0); CudaAsm.Emit("mov.f32 %0, gs_c17;", out c1);
            CudaAsm.Emit("mov.f32 %0, gs_c18;", out c2); CudaAsm.Emit("mov.f32 %0, gs_c19;", out c3);
            a.C10 = new Accumulator(c0, c1, c2, c3);
            CudaAsm.Emit("mov.f32 %0, gs_c20;", out c0); CudaAsm.Emit("mov.f32 %0, gs_c21;", out c1);
            CudaAsm.Emit("mov.f32 %0, gs_c22;", out c2); CudaAsm.Emit("mov.f32 %0, gs_c23;", out c3);
            a.C11 = new Accumulator(c0, c1, c2, c3);
            CudaAsm.Emit("mov.f32 %0, gs_c24;", out c0); CudaAsm.Emit("mov.f32 %0, gs_c25;", out c1);
            CudaAsm.Emit("mov.f32 %0, gs_c26;", out c2); CudaAsm.Emit("mov.f32 %0, gs_c27;", out c3);
            a.C12 = new Accumulator(c0, c1, c2, c3);
            CudaAsm.Emit("mov.f32 %0, gs_c28;", out c0); CudaAsm.Emit("mov.f32 %0, gs_c29;", out c1);
            CudaAsm.Emit("mov.f32 %0, gs_c30;", out c2); CudaAsm.Emit("mov.f32 %0, gs_c31;", out c3);
            a.C13 = new Accumulator(c0, c1, c2, c3);
            return a;
        }

        /// <summary>The 8 products of one warp-step, computed the way the tensor cores define them: lanes publish
        /// their fragments at the ISA's (row, column) positions, then each lane sums the row·column its
        /// accumulators stand for. Two group barriers: every warp of the group runs the same steps.</summary>
        internal static void EmulateWarpStep(ArrayView<float> s, int g, int q, ref WarpAccumulators acc,
            FragmentA a0, FragmentA a1, FragmentB b0, FragmentB b1, FragmentB b2, FragmentB b3)
        {
            PublishA(s, 0, g, q, a0); PublishA(s, 128, g, q, a1);
            PublishB(s, 256, g, q, b0); PublishB(s, 320, g, q, b1); PublishB(s, 384, g, q, b2); PublishB(s, 448, g, q, b3);
            Group.Barrier();
            acc.C00 = Product(s, 0, 256, g, q, acc.C00); acc.C01 = Product(s, 0, 320, g, q, acc.C01);
            acc.C02 = Product(s, 0, 384, g, q, acc.C02); acc.C03 = Product(s, 0, 448, g, q, acc.C03);
            acc.C10 = Product(s, 128, 256, g, q, acc.C10); acc.C11 = Product(s, 128, 320, g, q, acc.C11);
            acc.C12 = Product(s, 128, 384, g, q, acc.C12); acc.C13 = Product(s, 128, 448, g, q, acc.C13);
            Group.Barrier();
        }

        static void PublishA(ArrayView<float> s, int at, int g, int q, FragmentA a)
        {
            s[at + g * 8 + q] = a.A0; s[at + (g + 8) * 8 + q] = a.A1;
            s[at + g * 8 + q + 4] = a.A2; s[at + (g + 8) * 8 + q + 4] = a.A3;
        }

        static void PublishB(ArrayView<float> s, int at, int g, int q, FragmentB b)
        {
            s[at + q * 8 + g] = b.B0; s[at + (q + 4) * 8 + g] = b.B1;   // stored [k][n]
        }

        static Accumulator Product(ArrayView<float> s, int atA, int atB, int g, int q, Accumulator c)
        {
            float c0 = c.C0, c1 = c.C1, c2 = c.C2, c3 = c.C3;
            for (int k = 0; k < 8; k++)
            {
                float top = s[atA + g * 8 + k], bottom = s[atA + (g + 8) * 8 + k];
                float left = s[atB + k * 8 + 2 * q], right = s[atB + k * 8 + 2 * q + 1];
                c0 += top * left; c1 += top * right; c2 += bottom * left; c3 += bottom * right;
            }
            return new Accumulator(c0, c1, c2, c3);
        }

        /// <summary>Writes one accumulator fragment: rows o and o+8, pixels p and p+1 of the tile.</summary>
        static void Store(ArrayView<float> y, ArrayView<float> b, ConvDims d, MmaTile t, int o, int p, int x0, int y0,
            Accumulator c, int relu, int hasBias)
        {
            StoreOne(y, b, d, t, o, p, x0, y0, c.C0, relu, hasBias); StoreOne(y, b, d, t, o, p + 1, x0, y0, c.C1, relu, hasBias);
            StoreOne(y, b, d, t, o + 8, p, x0, y0, c.C2, relu, hasBias); StoreOne(y, b, d, t, o + 8, p + 1, x0, y0, c.C3, relu, hasBias);
        }

        static void StoreOne(ArrayView<float> y, ArrayView<float> b, ConvDims d, MmaTile t, int o, int p, int x0, int y0,
            float acc, int relu, int hasBias) =>
            IlgpuTiled.StoreOutput(y, b, d, o, y0 + p / t.TileWidth, x0 + p % t.TileWidth, acc, relu, hasBias);
    }

    /// <summary>
    /// The vectorised CPU version: a register-blocked direct convolution. The input is first copied into a
    /// zero-bordered buffer (so the inner loop has no bounds checks), the weights are packed once per layer as
    /// [Cout/4][Cin][9 taps][4] (so the four weights of a tap are adjacent), and each work item computes 4 output
    /// channels × 24 pixels of one output row in 12 AVX2 registers: per tap, 3 loads + 4 broadcasts feed 12 FMAs
    /// (or, with 128-bit vectors, 4 channels × 8 pixels at a time: <see cref="Accumulate4xN128"/>).
    /// Work items (channel block, row, 24-pixel strip) are spread over all cores.
    /// </summary>
    public static class Cpu
    {
        public const int ChannelBlock = 4;
        public const int Strip = 24;
        public const int NarrowStrip = 16;

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
        public static float[] PackBackward(ReadOnlySpan<float> w, int cin, int cout) => PackForward(TransposeFlip(w, cin, cout), cout, cin);

        /// <summary>W'[i][o][t] = w[o][i][8−t]: the backward's kernel as a forward one (Cin and Cout swap).</summary>
        public static float[] TransposeFlip(ReadOnlySpan<float> w, int cin, int cout)
        {
            var flipped = new float[w.Length];
            for (int o = 0; o < cout; o++)
                for (int i = 0; i < cin; i++)
                    for (int t = 0; t < 9; t++)
                        flipped[(i * cout + o) * 9 + t] = w[(o * cin + i) * 9 + 8 - t];
            return flipped;
        }

        /// <summary>
        /// Copies x (C×H×W) into the zero-bordered buffer p (C×(H+2)×PaddedWidth). With a mask, an element is kept
        /// only where mask &gt; 0: ReLU's backward, fused into this copy.
        /// </summary>
        public static void Pad(float[] x, float[]? mask, float[] p, int c, int h, int w) => Pad(x, mask, p, c, h, w, h + 2, PaddedWidth(w));

        /// <summary>As above into planes of <paramref name="rows"/> rows of <paramref name="wp"/> floats (rows ≥ H + 2,
        /// wp ≥ W + 2): x one row and column in, zero everywhere else. Winograd's layouts take more of both.</summary>
        public static void Pad(float[] x, float[]? mask, float[] p, int c, int h, int w, int rows, int wp)
        {
            Parallel.For(0, c, CpuParallel.OneWorkerACore, ch =>
            {
                var plane = p.AsSpan(ch * rows * wp, rows * wp);
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
                    else if (Vector128.IsHardwareAccelerated)   // ARM64
                        for (; k + 4 <= w; k += 4)
                            Vector128.BitwiseAnd(Vector128.Create(src[k..]), Vector128.GreaterThan(Vector128.Create(m[k..]), Vector128<float>.Zero))
                                .CopyTo(dst[(k + 1)..]);
                    for (; k < w; k++) dst[k + 1] = m[k] > 0f ? src[k] : 0f;
                }
            });
        }

        /// <summary>Input channels per pass over a strip: their window (64 × 3 rows × 26 floats = 20 KB) stays in L1.</summary>
        public const int InputChunk = 64;

        /// <summary>
        /// y = [ReLU](conv(p) + bias) from the padded input and packed weights; bias may be null. A work item is one
        /// strip of one output row for all output channels: its tiles (Cout × 24 floats) live on the stack while the
        /// input channels pass in chunks of 64, each chunk's input window reused from L1 by every channel block.
        /// </summary>
        public static unsafe void Convolve(float[] p, float[] packed, float[]? bias, float[] y, int cin, int cout,
            int h, int w, bool relu, CpuSimd simd)
        {
            if (Math.Min(cin, cout) <= ChannelBlock)
            {
                ConvolveRows(p, packed, bias, y, cin, cout, h, w, relu, simd);
                return;
            }
            int blocks = (cout + ChannelBlock - 1) / ChannelBlock;
            var (wide, narrow) = Strips(w);
            int strips = wide + narrow;
            int wp = PaddedWidth(w), plane = (h + 2) * wp;
            Parallel.For(0, h * strips, CpuParallel.OneWorkerACore, item =>
            {
                int row = item / strips, strip = item - row * strips;
                var (x0, width) = StripAt(strip, wide);
                float* tiles = stackalloc float[blocks * ChannelBlock * Strip];
                fixed (float* pp = p, pw = packed, pb = bias, py = y)
                {
                    for (int o = 0; o < blocks * ChannelBlock; o++)
                        new Span<float>(tiles + o * Strip, Strip).Fill(pb is null || o >= cout ? 0f : pb[o]);
                    for (int c0 = 0; c0 < cin; c0 += InputChunk)
                    {
                        int cn = Math.Min(InputChunk, cin - c0);
                        float* r = pp + (long)c0 * plane + row * wp + x0;   // padded row `row` = the output row's upper neighbour
                        for (int ob = 0; ob < blocks; ob++)
                        {
                            float* q = pw + ((long)ob * cin + c0) * 9 * ChannelBlock;
                            float* tile = tiles + ob * ChannelBlock * Strip;
                            AccumulateStrip(r, q, tile, cn, plane, wp, width, simd);
                        }
                    }
                    for (int ob = 0; ob < blocks; ob++)
                        WriteTile(tiles + ob * ChannelBlock * Strip, py, cout, h, w, ob * ChannelBlock, row, x0, width, relu);
                }
            });
        }

        /// <summary>Input channels a pass of <see cref="ConvolveRows"/> takes: 4 channels' 3 padded rows (12 rows of 2.2 KB
        /// at 512 px) stay in L1 while the strips sweep them (64 → 3 at 512 px, hot: 12–15 ms with 4, 15–18 with 8).</summary>
        const int RowChunk = 4;

        /// <summary>
        /// <see cref="Convolve"/> for the layers with at most 4 channels one way — VGG's first (3 → 64) and the backward
        /// to the picture's 3 colours (64 → 3). There a strip's work is small (27 products an output, or a single
        /// 4-channel block) and <see cref="Convolve"/>'s item, a strip of one row for every channel, touches a page per
        /// channel plane per 24 pixels: 64 planes 1 MB apart, written (3 → 64) or read 3 rows at a time (64 → 3) —
        /// measured 24–34 GFLOP/s at 512 px, 12–21% of the FMA peak, against 3–4× that for a pass over the same bytes in
        /// order. Here a work item is one row of one 4-channel output block: the input channels pass in chunks of
        /// <see cref="RowChunk"/>, each chunk's rows swept by every strip of the row in turn (pages touched once a
        /// chunk), and the block's 4 output rows are written whole.
        /// </summary>
        static unsafe void ConvolveRows(float[] p, float[] packed, float[]? bias, float[] y, int cin, int cout,
            int h, int w, bool relu, CpuSimd simd)
        {
            int blocks = (cout + ChannelBlock - 1) / ChannelBlock;
            var (wide, narrow) = Strips(w);
            int strips = wide + narrow, wp = PaddedWidth(w), plane = (h + 2) * wp;
            Parallel.For(0, h * blocks, CpuParallel.OneWorkerACore, item =>
            {
                int row = item / blocks, ob = item - row * blocks;
                // The row's tiles, strip after strip (each 4 channels × 24 floats, as Convolve's).
                float* tiles = stackalloc float[strips * ChannelBlock * Strip];
                fixed (float* pp = p, pw = packed, pb = bias, py = y)
                {
                    for (int o = 0; o < ChannelBlock; o++)
                    {
                        float b = pb is null || ob * ChannelBlock + o >= cout ? 0f : pb[ob * ChannelBlock + o];
                        for (int s = 0; s < strips; s++) new Span<float>(tiles + (s * ChannelBlock + o) * Strip, Strip).Fill(b);
                    }
                    for (int c0 = 0; c0 < cin; c0 += RowChunk)
                    {
                        int cn = Math.Min(RowChunk, cin - c0);
                        float* q = pw + ((long)ob * cin + c0) * 9 * ChannelBlock;
                        for (int s = 0; s < strips; s++)
                        {
                            var (x0, width) = StripAt(s, wide);
                            float* r = pp + (long)c0 * plane + row * wp + x0, tile = tiles + s * ChannelBlock * Strip;
                            AccumulateStrip(r, q, tile, cn, plane, wp, width, simd);
                        }
                    }
                    for (int s = 0; s < strips; s++)
                    {
                        var (x0, width) = StripAt(s, wide);
                        WriteTile(tiles + s * ChannelBlock * Strip, py, cout, h, w, ob * ChannelBlock, row, x0, width, relu);
                    }
                }
            });
        }

        /// <summary>tile += a strip's convolution over cn input channels, by the micro-kernel for its width (or the scalar
        /// fallback). The micro-kernels hold the accumulators; this only picks one.</summary>
        static unsafe void AccumulateStrip(float* r, float* q, float* tile, int cn, int plane, int wp, int width, CpuSimd simd)
        {
            if (simd == CpuSimd.Scalar) AccumulateScalar(r, q, tile, cn, plane, wp, width);
            else if (simd == CpuSimd.Vector128) Accumulate4xN128(r, q, tile, cn, plane, wp, width);
            else if (width == Strip) Accumulate4x24(r, q, tile, cn, plane, wp);
            else Accumulate4x16(r, q, tile, cn, plane, wp);
        }

        /// <summary>Strip s of a row split by <see cref="Strips"/> (the wide ones first): its first pixel and width.</summary>
        static (int X0, int Width) StripAt(int s, int wide) =>
            s < wide ? (s * Strip, Strip) : (wide * Strip + (s - wide) * NarrowStrip, NarrowStrip);

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

        /// <summary>
        /// The micro-kernel: tile (4 channels × 24 pixels, row stride 24) += the convolution over cin input channels.
        /// 12 AVX2 accumulators; per tap 3 loads and 4 broadcasts feed 12 FMAs, the 9 taps unrolled. It must contain no calls: on x64 Unix
        /// every vector register is caller-saved, so RyuJIT spills accumulators that live across one — measured at
        /// 16 GFLOP/s with the tile write inside.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Accumulate4x24(float* r, float* q, float* tile, int cin, int plane, int wp)
        {
            var a00 = Avx.LoadVector256(tile); var a01 = Avx.LoadVector256(tile + 8); var a02 = Avx.LoadVector256(tile + 16);
            var a10 = Avx.LoadVector256(tile + 24); var a11 = Avx.LoadVector256(tile + 32); var a12 = Avx.LoadVector256(tile + 40);
            var a20 = Avx.LoadVector256(tile + 48); var a21 = Avx.LoadVector256(tile + 56); var a22 = Avx.LoadVector256(tile + 64);
            var a30 = Avx.LoadVector256(tile + 72); var a31 = Avx.LoadVector256(tile + 80); var a32 = Avx.LoadVector256(tile + 88);
            for (int i = 0; i < cin; i++, r += plane, q += 9 * ChannelBlock)
            {
                // The nine taps written out: no inner loop counters, constant offsets (measured faster than loops).
                float* s0 = r, s1 = r + wp, s2 = r + 2 * wp;
                {   // tap (0,0)
                    var v0 = Avx.LoadVector256(s0 + 0); var v1 = Avx.LoadVector256(s0 + 8); var v2 = Avx.LoadVector256(s0 + 16);
                    var w0 = Vector256.Create(q[0]); a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01); a02 = Fma.MultiplyAdd(w0, v2, a02);
                    var w1 = Vector256.Create(q[1]); a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11); a12 = Fma.MultiplyAdd(w1, v2, a12);
                    var w2 = Vector256.Create(q[2]); a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21); a22 = Fma.MultiplyAdd(w2, v2, a22);
                    var w3 = Vector256.Create(q[3]); a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31); a32 = Fma.MultiplyAdd(w3, v2, a32);
                }
                {   // tap (0,1)
                    var v0 = Avx.LoadVector256(s0 + 1); var v1 = Avx.LoadVector256(s0 + 9); var v2 = Avx.LoadVector256(s0 + 17);
                    var w0 = Vector256.Create(q[4]); a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01); a02 = Fma.MultiplyAdd(w0, v2, a02);
                    var w1 = Vector256.Create(q[5]); a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11); a12 = Fma.MultiplyAdd(w1, v2, a12);
                    var w2 = Vector256.Create(q[6]); a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21); a22 = Fma.MultiplyAdd(w2, v2, a22);
                    var w3 = Vector256.Create(q[7]); a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31); a32 = Fma.MultiplyAdd(w3, v2, a32);
                }
                {   // tap (0,2)
                    var v0 = Avx.LoadVector256(s0 + 2); var v1 = Avx.LoadVector256(s0 + 10); var v2 = Avx.LoadVector256(s0 + 18);
                    var w0 = Vector256.Create(q[8]); a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01); a02 = Fma.MultiplyAdd(w0, v2, a02);
                    var w1 = Vector256.Create(q[9]); a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11); a12 = Fma.MultiplyAdd(w1, v2, a12);
                    var w2 = Vector256.Create(q[10]); a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21); a22 = Fma.MultiplyAdd(w2, v2, a22);
                    var w3 = Vector256.Create(q[11]); a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31); a32 = Fma.MultiplyAdd(w3, v2, a32);
                }
                {   // tap (1,0)
                    var v0 = Avx.LoadVector256(s1 + 0); var v1 = Avx.LoadVector256(s1 + 8); var v2 = Avx.LoadVector256(s1 + 16);
                    var w0 = Vector256.Create(q[12]); a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01); a02 = Fma.MultiplyAdd(w0, v2, a02);
                    var w1 = Vector256.Create(q[13]); a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11); a12 = Fma.MultiplyAdd(w1, v2, a12);
                    var w2 = Vector256.Create(q[14]); a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21); a22 = Fma.MultiplyAdd(w2, v2, a22);
                    var w3 = Vector256.Create(q[15]); a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31); a32 = Fma.MultiplyAdd(w3, v2, a32);
                }
                {   // tap (1,1)
                    var v0 = Avx.LoadVector256(s1 + 1); var v1 = Avx.LoadVector256(s1 + 9); var v2 = Avx.LoadVector256(s1 + 17);
                    var w0 = Vector256.Create(q[16]); a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01); a02 = Fma.MultiplyAdd(w0, v2, a02);
                    var w1 = Vector256.Create(q[17]); a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11); a12 = Fma.MultiplyAdd(w1, v2, a12);
                    var w2 = Vector256.Create(q[18]); a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21); a22 = Fma.MultiplyAdd(w2, v2, a22);
                    var w3 = Vector256.Create(q[19]); a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31); a32 = Fma.MultiplyAdd(w3, v2, a32);
                }
                {   // tap (1,2)
                    var v0 = Avx.LoadVector256(s1 + 2); var v1 = Avx.LoadVector256(s1 + 10); var v2 = Avx.LoadVector256(s1 + 18);
                    var w0 = Vector256.Create(q[20]); a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01); a02 = Fma.MultiplyAdd(w0, v2, a02);
                    var w1 = Vector256.Create(q[21]); a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11); a12 = Fma.MultiplyAdd(w1, v2, a12);
                    var w2 = Vector256.Create(q[22]); a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21); a22 = Fma.MultiplyAdd(w2, v2, a22);
                    var w3 = Vector256.Create(q[23]); a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31); a32 = Fma.MultiplyAdd(w3, v2, a32);
                }
                {   // tap (2,0)
                    var v0 = Avx.LoadVector256(s2 + 0); var v1 = Avx.LoadVector256(s2 + 8); var v2 = Avx.LoadVector256(s2 + 16);
                    var w0 = Vector256.Create(q[24]); a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01); a02 = Fma.MultiplyAdd(w0, v2, a02);
                    var w1 = Vector256.Create(q[25]); a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11); a12 = Fma.MultiplyAdd(w1, v2, a12);
                    var w2 = Vector256.Create(q[26]); a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21); a22 = Fma.MultiplyAdd(w2, v2, a22);
                    var w3 = Vector256.Create(q[27]); a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31); a32 = Fma.MultiplyAdd(w3, v2, a32);
                }
                {   // tap (2,1)
                    var v0 = Avx.LoadVector256(s2 + 1); var v1 = Avx.LoadVector256(s2 + 9); var v2 = Avx.LoadVector256(s2 + 17);
                    var w0 = Vector256.Create(q[28]); a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01); a02 = Fma.MultiplyAdd(w0, v2, a02);
                    var w1 = Vector256.Create(q[29]); a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11); a12 = Fma.MultiplyAdd(w1, v2, a12);
                    var w2 = Vector256.Create(q[30]); a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21); a22 = Fma.MultiplyAdd(w2, v2, a22);
                    var w3 = Vector256.Create(q[31]); a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31); a32 = Fma.MultiplyAdd(w3, v2, a32);
                }
                {   // tap (2,2)
                    var v0 = Avx.LoadVector256(s2 + 2); var v1 = Avx.LoadVector256(s2 + 10); var v2 = Avx.LoadVector256(s2 + 18);
                    var w0 = Vector256.Create(q[32]); a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01); a02 = Fma.MultiplyAdd(w0, v2, a02);
                    var w1 = Vector256.Create(q[33]); a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11); a12 = Fma.MultiplyAdd(w1, v2, a12);
                    var w2 = Vector256.Create(q[34]); a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21); a22 = Fma.MultiplyAdd(w2, v2, a22);
                    var w3 = Vector256.Create(q[35]); a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31); a32 = Fma.MultiplyAdd(w3, v2, a32);
                }
            }
            Avx.Store(tile, a00); Avx.Store(tile + 8, a01); Avx.Store(tile + 16, a02);
            Avx.Store(tile + 24, a10); Avx.Store(tile + 32, a11); Avx.Store(tile + 40, a12);
            Avx.Store(tile + 48, a20); Avx.Store(tile + 56, a21); Avx.Store(tile + 64, a22);
            Avx.Store(tile + 72, a30); Avx.Store(tile + 80, a31); Avx.Store(tile + 88, a32);
        }

        /// <summary>The 16-pixel variant for the ends of rows: 8 accumulators (tile row stride stays 24).</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Accumulate4x16(float* r, float* q, float* tile, int cin, int plane, int wp)
        {
            var a00 = Avx.LoadVector256(tile); var a01 = Avx.LoadVector256(tile + 8);
            var a10 = Avx.LoadVector256(tile + 24); var a11 = Avx.LoadVector256(tile + 32);
            var a20 = Avx.LoadVector256(tile + 48); var a21 = Avx.LoadVector256(tile + 56);
            var a30 = Avx.LoadVector256(tile + 72); var a31 = Avx.LoadVector256(tile + 80);
            for (int i = 0; i < cin; i++, r += plane, q += 9 * ChannelBlock)
            {
                float* s0 = r, s1 = r + wp, s2 = r + 2 * wp;
                {   // tap (0,0)
                    var v0 = Avx.LoadVector256(s0 + 0); var v1 = Avx.LoadVector256(s0 + 8);
                    var w0 = Vector256.Create(q[0]); a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01);
                    var w1 = Vector256.Create(q[1]); a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11);
                    var w2 = Vector256.Create(q[2]); a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21);
                    var w3 = Vector256.Create(q[3]); a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31);
                }
                {   // tap (0,1)
                    var v0 = Avx.LoadVector256(s0 + 1); var v1 = Avx.LoadVector256(s0 + 9);
                    var w0 = Vector256.Create(q[4]); a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01);
                    var w1 = Vector256.Create(q[5]); a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11);
                    var w2 = Vector256.Create(q[6]); a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21);
                    var w3 = Vector256.Create(q[7]); a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31);
                }
                {   // tap (0,2)
                    var v0 = Avx.LoadVector256(s0 + 2); var v1 = Avx.LoadVector256(s0 + 10);
                    var w0 = Vector256.Create(q[8]); a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01);
                    var w1 = Vector256.Create(q[9]); a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11);
                    var w2 = Vector256.Create(q[10]); a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21);
                    var w3 = Vector256.Create(q[11]); a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31);
                }
                {   // tap (1,0)
                    var v0 = Avx.LoadVector256(s1 + 0); var v1 = Avx.LoadVector256(s1 + 8);
                    var w0 = Vector256.Create(q[12]); a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01);
                    var w1 = Vector256.Create(q[13]); a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11);
                    var w2 = Vector256.Create(q[14]); a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21);
                    var w3 = Vector256.Create(q[15]); a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31);
                }
                {   // tap (1,1)
                    var v0 = Avx.LoadVector256(s1 + 1); var v1 = Avx.LoadVector256(s1 + 9);
                    var w0 = Vector256.Create(q[16]); a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01);
                    var w1 = Vector256.Create(q[17]); a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11);
                    var w2 = Vector256.Create(q[18]); a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21);
                    var w3 = Vector256.Create(q[19]); a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31);
                }
                {   // tap (1,2)
                    var v0 = Avx.LoadVector256(s1 + 2); var v1 = Avx.LoadVector256(s1 + 10);
                    var w0 = Vector256.Create(q[20]); a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01);
                    var w1 = Vector256.Create(q[21]); a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11);
                    var w2 = Vector256.Create(q[22]); a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21);
                    var w3 = Vector256.Create(q[23]); a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31);
                }
                {   // tap (2,0)
                    var v0 = Avx.LoadVector256(s2 + 0); var v1 = Avx.LoadVector256(s2 + 8);
                    var w0 = Vector256.Create(q[24]); a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01);
                    var w1 = Vector256.Create(q[25]); a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11);
                    var w2 = Vector256.Create(q[26]); a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21);
                    var w3 = Vector256.Create(q[27]); a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31);
                }
                {   // tap (2,1)
                    var v0 = Avx.LoadVector256(s2 + 1); var v1 = Avx.LoadVector256(s2 + 9);
                    var w0 = Vector256.Create(q[28]); a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01);
                    var w1 = Vector256.Create(q[29]); a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11);
                    var w2 = Vector256.Create(q[30]); a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21);
                    var w3 = Vector256.Create(q[31]); a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31);
                }
                {   // tap (2,2)
                    var v0 = Avx.LoadVector256(s2 + 2); var v1 = Avx.LoadVector256(s2 + 10);
                    var w0 = Vector256.Create(q[32]); a00 = Fma.MultiplyAdd(w0, v0, a00); a01 = Fma.MultiplyAdd(w0, v1, a01);
                    var w1 = Vector256.Create(q[33]); a10 = Fma.MultiplyAdd(w1, v0, a10); a11 = Fma.MultiplyAdd(w1, v1, a11);
                    var w2 = Vector256.Create(q[34]); a20 = Fma.MultiplyAdd(w2, v0, a20); a21 = Fma.MultiplyAdd(w2, v1, a21);
                    var w3 = Vector256.Create(q[35]); a30 = Fma.MultiplyAdd(w3, v0, a30); a31 = Fma.MultiplyAdd(w3, v1, a31);
                }
            }
            Avx.Store(tile, a00); Avx.Store(tile + 8, a01);
            Avx.Store(tile + 24, a10); Avx.Store(tile + 32, a11);
            Avx.Store(tile + 48, a20); Avx.Store(tile + 56, a21);
            Avx.Store(tile + 72, a30); Avx.Store(tile + 80, a31);
        }

        /// <summary>
        /// The micro-kernel on 128-bit vectors (<see cref="CpuSimd.Vector128"/>: NEON on ARM64): the strip 8 pixels at a
        /// time, 4 channels × 8 pixels in 8 accumulators, the taps in a loop. Each output sums its products in the AVX2
        /// kernels' order (input channel, then tap, fused), so the results equal theirs to the bit. Winograd takes every
        /// layer with 16 or more channels each way, so on a Vector128 machine this runs only where one side has 3
        /// (VGG's first layer and the backward to the picture) and under `--conv direct`: simple before fast.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static unsafe void Accumulate4xN128(float* r, float* q, float* tile, int cin, int plane, int wp, int width)
        {
            for (int x = 0; x < width; x += 8)
            {
                float* t0 = tile + x, t1 = t0 + Strip, t2 = t1 + Strip, t3 = t2 + Strip;
                var a00 = Vector128.Load(t0); var a01 = Vector128.Load(t0 + 4); var a10 = Vector128.Load(t1); var a11 = Vector128.Load(t1 + 4);
                var a20 = Vector128.Load(t2); var a21 = Vector128.Load(t2 + 4); var a30 = Vector128.Load(t3); var a31 = Vector128.Load(t3 + 4);
                float* ri = r + x, qt = q;
                for (int i = 0; i < cin; i++, ri += plane)
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++, qt += ChannelBlock)
                        {
                            float* s = ri + ky * wp + kx;
                            var v0 = Vector128.Load(s); var v1 = Vector128.Load(s + 4);
                            var w0 = Vector128.Create(qt[0]); a00 = Lanes128.Fma(w0, v0, a00); a01 = Lanes128.Fma(w0, v1, a01);
                            var w1 = Vector128.Create(qt[1]); a10 = Lanes128.Fma(w1, v0, a10); a11 = Lanes128.Fma(w1, v1, a11);
                            var w2 = Vector128.Create(qt[2]); a20 = Lanes128.Fma(w2, v0, a20); a21 = Lanes128.Fma(w2, v1, a21);
                            var w3 = Vector128.Create(qt[3]); a30 = Lanes128.Fma(w3, v0, a30); a31 = Lanes128.Fma(w3, v1, a31);
                        }
                a00.Store(t0); a01.Store(t0 + 4); a10.Store(t1); a11.Store(t1 + 4);
                a20.Store(t2); a21.Store(t2 + 4); a30.Store(t3); a31.Store(t3 + 4);
            }
        }

        /// <summary>The fallback for CPUs without vector FMAs: the same blocking and summation order (unfused multiply-adds).</summary>
        static unsafe void AccumulateScalar(float* r, float* q, float* tile, int cin, int plane, int wp, int width)
        {
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
        }

        /// <summary>Copies the valid part of a 4×width tile (channels &lt; cout, pixels &lt; w) into y, with ReLU if asked.</summary>
        static unsafe void WriteTile(float* tile, float* y, int cout, int h, int w, int o0, int row, int x0, int width, bool relu)
        {
            int valid = Math.Min(width, w - x0);
            for (int o = 0; o < ChannelBlock && o0 + o < cout; o++)
            {
                float* src = tile + o * Strip, dst = y + ((long)(o0 + o) * h + row) * w + x0;
                if (relu)
                {
                    // Branch-free: a data-dependent branch here mispredicts half the time (measured: ~20% of a layer).
                    int k = 0;
                    if (Vector256.IsHardwareAccelerated)
                        for (; k + 8 <= valid; k += 8) Vector256.Store(Vector256.Max(Vector256.Load(src + k), Vector256<float>.Zero), dst + k);
                    else if (Vector128.IsHardwareAccelerated)   // ARM64: Vector256 is emulated there
                        for (; k + 4 <= valid; k += 4) Vector128.Store(Vector128.Max(Vector128.Load(src + k), Vector128<float>.Zero), dst + k);
                    for (; k < valid; k++) dst[k] = MathF.Max(src[k], 0f);
                }
                else new ReadOnlySpan<float>(src, valid).CopyTo(new Span<float>(dst, valid));
            }
        }
    }
}
