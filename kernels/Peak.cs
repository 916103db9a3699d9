// The device's fp32 FMA peak, measured: what `gpustyle bench` divides achieved GFLOP/s by on a GPU (the CPU's peak
// is measured by a Vector256 FMA loop in Bench/Benchmark.cs). Each thread runs 8 independent chains
// a ← a·m + c (8 chains hide the FMA latency; PTX's plain mul.f32 + add.f32 are contracted to one FFMA by ptxas),
// so a launch of T threads × N iterations is 16·T·N FLOPs. The result is written so nothing is optimised away.
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Runtime;

namespace GpuStyle.Kernels;

public static class Peak
{
    public const int FlopsPerIteration = 16;

    /// <summary>What one thread computes, on the host: the tests compare the kernel with it.</summary>
    public static float Reference(int thread, int iterations, float m, float c)
    {
        float a = 1f + thread * 1e-6f, sum = 0f;
        float[] offsets = [0f, 1e-3f, 2e-3f, 3e-3f, 4e-3f, 5e-3f, 6e-3f, 7e-3f];   // the kernel's constants, exactly
        for (int k = 0; k < 8; k++)
        {
            float v = a + offsets[k];
            for (int i = 0; i < iterations; i++) v = v * m + c;
            sum += v;
        }
        return sum;
    }

    public static class Ilgpu
    {
        [KernelName("fma_peak")]
        public static void FmaChains(Index1D index, ArrayView<float> sink, int iterations, float m, float c)
        {
            float a = 1f + index * 1e-6f;
            float v0 = a + 0f, v1 = a + 1e-3f, v2 = a + 2e-3f, v3 = a + 3e-3f, v4 = a + 4e-3f, v5 = a + 5e-3f, v6 = a + 6e-3f, v7 = a + 7e-3f;
            for (int i = 0; i < iterations; i++)
            {
                v0 = v0 * m + c; v1 = v1 * m + c; v2 = v2 * m + c; v3 = v3 * m + c;
                v4 = v4 * m + c; v5 = v5 * m + c; v6 = v6 * m + c; v7 = v7 * m + c;
            }
            sink[index] = v0 + v1 + v2 + v3 + v4 + v5 + v6 + v7;
        }
    }
}
