// The instruction sets the fast CPU backend's kernels are written for, and the few 128-bit lane shuffles its
// Vector128 kernels need (ARM64 NEON — Apple Silicon, Graviton, Snapdragon laptops —, and x86's SSE: the same code's
// second home, so that these machines' tests run every line the ARM64 path runs but the shuffles, and what x86 CPUs
// without AVX2 run — Atom-class Celerons and Pentiums before 2021, pre-2013 cores).
//
// Why a Vector128 path and not only AVX2: on ARM64, Vector256 is not hardware accelerated and Avx2/Fma are false, so
// before 2026-11-27 a Mac ran the scalar fallback: on this project's x86 machine that fallback is 12–27× slower than
// the AVX2 kernels layer by layer, 44–60× over a 256-px iteration. NEON is 128 bits wide with 32 registers; the
// Vector128 kernels are the AVX2 ones with every 8-float vector split into two 4-float halves, the same operations in
// the same order on each element — so on x64 with FMA3 (on xmm registers) their results are the AVX2 kernels' to the
// bit, which the tests check, and on ARM64 (fmla) the same (Arm64EmulationTests). On x86 without FMA3 each
// multiply-add is a multiply then an add (Lanes128.Fma).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace GpuStyle.Kernels;

/// <summary>Which of the CPU backend's kernel families runs: scalar loops, 128-bit vectors (NEON, SSE), or
/// AVX2+FMA. Ordered: a machine runs any level up to <see cref="CpuSimdLevels.Best"/>.</summary>
public enum CpuSimd
{
    Scalar = 0,
    Vector128 = 1,
    Avx2 = 2,
}

/// <summary>
/// The CPU kernels' <c>Parallel.For</c> options: at most one worker a core. Left to itself the thread pool ran 4 workers
/// on this project's 2-core machine (a bare Parallel.For of 0.7-ms items, 2026-11-28), time-sharing the L1 and L2 that
/// each kernel's work item is sized for (Winograd's convolution: 0.87–0.92 of the time with this and two other changes).
/// </summary>
public static class CpuParallel
{
    public static readonly ParallelOptions OneWorkerACore = new() { MaxDegreeOfParallelism = Environment.ProcessorCount };
}

public static class CpuSimdLevels
{
    /// <summary>AVX2 and FMA3: the 256-bit kernels (x86-64 since 2013).</summary>
    public static bool Avx2Supported => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>128-bit vectors in hardware: ARM64's AdvSimd (every ARMv8 core), x86's SSE (every x86-64 core).</summary>
    public static bool Vector128Supported => Vector128.IsHardwareAccelerated;

    /// <summary>The widest level this machine runs.</summary>
    public static CpuSimd Best => Avx2Supported ? CpuSimd.Avx2 : Vector128Supported ? CpuSimd.Vector128 : CpuSimd.Scalar;

    /// <summary>The level asked for, or the widest this machine has where it lacks the one asked for.</summary>
    public static CpuSimd AtMost(CpuSimd wanted) => wanted <= Best ? wanted : Best;

    public static string Describe(CpuSimd level) => level switch
    {
        CpuSimd.Avx2 => "AVX2+FMA",
        CpuSimd.Vector128 => AdvSimd.Arm64.IsSupported ? "NEON (Vector128)" : Fma.IsSupported ? "SSE+FMA (Vector128)" : "SSE (Vector128, no FMA)",
        _ => "scalar",
    };
}

/// <summary>
/// Two-operand shuffles of 4-float vectors that Vector128's portable API lacks, each one instruction on ARM64 (zip,
/// uzp) and on x86 (unpck, shufps, movlhps/movhlps); elsewhere built lane by lane. The JIT drops the branches a
/// machine does not take.
/// </summary>
public static class Lanes128
{
    /// <summary>[a0 b0 a1 b1].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> ZipLow(Vector128<float> a, Vector128<float> b) =>
        AdvSimd.Arm64.IsSupported ? AdvSimd.Arm64.ZipLow(a, b)
        : Sse.IsSupported ? Sse.UnpackLow(a, b)
        : Vector128.Create(a[0], b[0], a[1], b[1]);

    /// <summary>[a2 b2 a3 b3].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> ZipHigh(Vector128<float> a, Vector128<float> b) =>
        AdvSimd.Arm64.IsSupported ? AdvSimd.Arm64.ZipHigh(a, b)
        : Sse.IsSupported ? Sse.UnpackHigh(a, b)
        : Vector128.Create(a[2], b[2], a[3], b[3]);

    /// <summary>[a0 a2 b0 b2]: the even elements of a, then of b.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> UnzipEven(Vector128<float> a, Vector128<float> b) =>
        AdvSimd.Arm64.IsSupported ? AdvSimd.Arm64.UnzipEven(a, b)
        : Sse.IsSupported ? Sse.Shuffle(a, b, 0b10_00_10_00)
        : Vector128.Create(a[0], a[2], b[0], b[2]);

    /// <summary>[a1 a3 b1 b3]: the odd elements of a, then of b.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> UnzipOdd(Vector128<float> a, Vector128<float> b) =>
        AdvSimd.Arm64.IsSupported ? AdvSimd.Arm64.UnzipOdd(a, b)
        : Sse.IsSupported ? Sse.Shuffle(a, b, 0b11_01_11_01)
        : Vector128.Create(a[1], a[3], b[1], b[3]);

    /// <summary>[a0 a1 b0 b1]: the low halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> LowHalves(Vector128<float> a, Vector128<float> b) =>
        AdvSimd.Arm64.IsSupported ? AdvSimd.Arm64.ZipLow(a.AsDouble(), b.AsDouble()).AsSingle()
        : Sse.IsSupported ? Sse.MoveLowToHigh(a, b)
        : Vector128.Create(a[0], a[1], b[0], b[1]);

    /// <summary>[a2 a3 b2 b3]: the high halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> HighHalves(Vector128<float> a, Vector128<float> b) =>
        AdvSimd.Arm64.IsSupported ? AdvSimd.Arm64.ZipHigh(a.AsDouble(), b.AsDouble()).AsSingle()
        : Sse.IsSupported ? Sse.MoveHighToLow(b, a)
        : Vector128.Create(a[2], a[3], b[2], b[3]);

    /// <summary>A 4×4 transpose: out_j[i] = in_i[j]. Its own inverse.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Transpose(ref Vector128<float> r0, ref Vector128<float> r1, ref Vector128<float> r2, ref Vector128<float> r3)
    {
        var t0 = ZipLow(r0, r1); var t1 = ZipHigh(r0, r1);     // [r0_0 r1_0 r0_1 r1_1], [r0_2 r1_2 r0_3 r1_3]
        var t2 = ZipLow(r2, r3); var t3 = ZipHigh(r2, r3);
        r0 = LowHalves(t0, t2); r1 = HighHalves(t0, t2);
        r2 = LowHalves(t1, t3); r3 = HighHalves(t1, t3);
    }

    /// <summary>a·b + c: rounded once where the CPU fuses (fmla on ARM64, vfmadd on x86 with FMA3 — the AVX2 kernels'
    /// arithmetic), a multiply then an add on x86 without FMA3 (where FusedMultiplyAdd would be a software loop).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Fma(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.MultiplyAddEstimate(a, b, c);
}
