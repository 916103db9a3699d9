// 2×2 pooling with stride 2; an odd size floors (the last row/column of an odd map is dropped, as in Keras "valid").
//
// Forward (x: C×H×W → y: C×⌊H/2⌋×⌊W/2⌋), window Ω(c,r,s) = {x[c, 2r+a, 2s+b] : a,b ∈ {0,1}}:
//   max: y[c,r,s] = max Ω            avg: y[c,r,s] = ¼ Σ Ω
// Backward:
//   max: dx[c,2r+a,2s+b] = dy[c,r,s] if (a,b) is the first maximum of Ω in row-major order, else 0
//   avg: dx[c,2r+a,2s+b] = ¼ dy[c,r,s]
//   inputs in the dropped row/column get 0.
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

        /// <summary>Launch with C·H·W threads (one per input element: a gather, so no atomics and every dx written).</summary>
        [KernelName("pool2x2_backward")]
        public static void Backward(Index1D index, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx,
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
    /// <summary>CPU versions: memory-bound, so plain loops over channels in parallel.</summary>
    public static class Cpu
    {
        public static void Forward(bool max, float[] x, float[] y, int c, int h, int w)
        {
            int ho = h / 2, wo = w / 2;
            Parallel.For(0, c, ch =>
            {
                for (int r = 0; r < ho; r++)
                {
                    int top = (ch * h + 2 * r) * w, o = (ch * ho + r) * wo;
                    for (int s = 0; s < wo; s++)
                    {
                        float a = x[top + 2 * s], b = x[top + 2 * s + 1], e = x[top + w + 2 * s], f = x[top + w + 2 * s + 1];
                        y[o + s] = max ? MathF.Max(MathF.Max(a, b), MathF.Max(e, f)) : (a + b + e + f) * 0.25f;
                    }
                }
            });
        }

        public static void Backward(bool max, float[] x, float[] dy, float[] dx, int c, int h, int w)
        {
            int ho = h / 2, wo = w / 2;
            Parallel.For(0, c, ch =>
            {
                Array.Clear(dx, ch * h * w, h * w);   // covers the dropped last row/column of odd sizes too
                for (int r = 0; r < ho; r++)
                {
                    int top = (ch * h + 2 * r) * w, o = (ch * ho + r) * wo;
                    for (int s = 0; s < wo; s++)
                    {
                        float g = dy[o + s];
                        int k = top + 2 * s;
                        if (!max) { dx[k] = dx[k + 1] = dx[k + w] = dx[k + w + 1] = g * 0.25f; continue; }
                        int best = k;                       // the first maximum in row-major order, as the reference
                        if (x[k + 1] > x[best]) best = k + 1;
                        if (x[k + w] > x[best]) best = k + w;
                        if (x[k + w + 1] > x[best]) best = k + w + 1;
                        dx[best] = g;
                    }
                }
            });
        }
    }
}
