// The Gram matrix of a feature map: its channel correlations, with the positions summed out.
//
// Forward (F: C×N with N = H·W):   G = F·Fᵀ / N,   G[i,j] = Σ_k F[i,k]·F[j,k] / N
// Backward:                          dF = (dG + dGᵀ)·F / N,   dF[i,k] = Σ_j (dG[i,j] + dG[j,i])·F[j,k] / N
// FLOPs: 2·C²·N forward (C·(C+1)·N exploiting symmetry), 2·C²·N backward.
using ILGPU;

namespace GpuStyle.Kernels;

public static class Gram
{
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
        public static void Forward(Index1D index, ArrayView<float> f, ArrayView<float> g, int c, int n)
        {
            int i = index / c;
            int j = index - i * c;
            float s = 0f;
            for (int k = 0; k < n; k++) s += f[i * n + k] * f[j * n + k];
            g[index] = s / n;
        }

        /// <summary>Launch with C·N threads; adds into df (the losses of one layer meet there).</summary>
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
}
