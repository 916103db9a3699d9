// The three losses of style transfer (DESIGN.md §3), each with its gradient. F is a tapped activation C×H×W of the
// image being optimised, P the same tap of the content image, G = Gram(F), A the (blended) style Gram.
//
//   content:  L = Σ (F − P)² / (C·H·W)                dL/dF = 2 (F − P) / (C·H·W)
//   style:    L = Σ (G − A)² / C²                     dL/dG = 2 (G − A) / C²       (then Gram's backward to F)
//   TV:       L = (Σ (x[c,i,j+1] − x[c,i,j])² + Σ (x[c,i+1,j] − x[c,i,j])²) / (C·H·W)
//             dL/dx[c,i,j] = 2/(C·H·W) · ( (x[c,i,j] − x[c,i,j−1]) − (x[c,i,j+1] − x[c,i,j])
//                                         + (x[c,i,j] − x[c,i−1,j]) − (x[c,i+1,j] − x[c,i,j]) ),
//             each term present only where its neighbour exists. (DESIGN.md writes 3·H·W: C = 3 for an image.)
//
// The ILGPU versions are the first pass of a deterministic two-level reduction (VectorOps.Ilgpu.Finish completes it):
// thread t of T handles elements t, t+T, t+2T, … (coalesced on a GPU), writes its partial sum into partials[t], and
// writes or adds the weighted gradient of its elements on the way. No atomics, so a run is bit-reproducible.
using ILGPU;
using ILGPU.Backends.EntryPoints;

namespace GpuStyle.Kernels;

public static class Losses
{
    public static class Reference
    {
        public static (double Loss, double[] Grad) Content(double[] f, double[] p)
        {
            int n = f.Length;
            double s = 0;
            var g = new double[n];
            for (int i = 0; i < n; i++) { double d = f[i] - p[i]; s += d * d; g[i] = 2 * d / n; }
            return (s / n, g);
        }

        /// <summary>Value and dL/dG for Gram matrices g, a of size c×c.</summary>
        public static (double Loss, double[] GradGram) Style(double[] g, double[] a, int c)
        {
            double s = 0;
            var dg = new double[c * c];
            for (int i = 0; i < c * c; i++) { double d = g[i] - a[i]; s += d * d; dg[i] = 2 * d / ((double)c * c); }
            return (s / ((double)c * c), dg);
        }

        public static (double Loss, double[] Grad) TotalVariation(double[] x, int c, int h, int w)
        {
            double s = 0, n = (double)c * h * w;
            var g = new double[x.Length];
            for (int ch = 0; ch < c; ch++)
                for (int i = 0; i < h; i++)
                    for (int j = 0; j < w; j++)
                    {
                        int k = (ch * h + i) * w + j;
                        if (j + 1 < w) { double d = x[k + 1] - x[k]; s += d * d; g[k + 1] += 2 * d / n; g[k] -= 2 * d / n; }
                        if (i + 1 < h) { double d = x[k + w] - x[k]; s += d * d; g[k + w] += 2 * d / n; g[k] -= 2 * d / n; }
                    }
            return (s / n, g);
        }
    }

    public static class Ilgpu
    {
        /// <summary>Content loss, pass 1. grad[i] += gradScale·(F−P)[i]; partials[t] = Σ (F−P)² over thread t's elements.</summary>
        [KernelName("content_loss")]
        public static void ContentPartial(Index1D t, ArrayView<float> f, ArrayView<float> p, ArrayView<float> grad,
            ArrayView<float> partials, int n, int threads, float gradScale)
        {
            float s = 0f;
            for (int i = t; i < n; i += threads)
            {
                float d = f[i] - p[i];
                s += d * d;
                grad[i] += gradScale * d;
            }
            partials[t] = s;
        }

        /// <summary>Style loss, pass 1. dg[i] = gradScale·(G−A)[i] (overwritten); partials[t] = Σ (G−A)².</summary>
        [KernelName("style_loss")]
        public static void StylePartial(Index1D t, ArrayView<float> g, ArrayView<float> a, ArrayView<float> dg,
            ArrayView<float> partials, int n, int threads, float gradScale)
        {
            float s = 0f;
            for (int i = t; i < n; i += threads)
            {
                float d = g[i] - a[i];
                s += d * d;
                dg[i] = gradScale * d;
            }
            partials[t] = s;
        }

        /// <summary>Total variation, pass 1. Each element owns the differences to its right and lower neighbours
        /// (so every difference is counted once) and gathers the gradient from all four.</summary>
        [KernelName("total_variation")]
        public static void TotalVariationPartial(Index1D t, ArrayView<float> x, ArrayView<float> grad,
            ArrayView<float> partials, int c, int h, int w, int threads, float gradScale)
        {
            int n = c * h * w;
            float s = 0f;
            for (int k = t; k < n; k += threads)
            {
                int p = k % (h * w);
                int i = p / w;
                int j = p - i * w;
                float v = x[k];
                float g = 0f;
                if (j + 1 < w) { float d = x[k + 1] - v; s += d * d; g -= d; }
                if (j > 0) g += v - x[k - 1];
                if (i + 1 < h) { float d = x[k + w] - v; s += d * d; g -= d; }
                if (i > 0) g += v - x[k - w];
                grad[k] += gradScale * 2f * g;
            }
            partials[t] = s;
        }
    }
    /// <summary>CPU versions: one pass that accumulates the loss (per chunk, see VectorOps.Cpu) and the gradient.</summary>
    public static class Cpu
    {
        /// <summary>Returns Σ(F−P)²; grad += gradScale·(F−P).</summary>
        public static double Content(float[] f, float[] p, float[] grad, float gradScale, double[] partials) =>
            VectorOps.Cpu.Reduce(f.Length, partials, (start, end) =>
            {
                double s = 0;
                for (int i = start; i < end; i++)
                {
                    float d = f[i] - p[i];
                    s += d * d;
                    grad[i] += gradScale * d;
                }
                return s;
            });

        /// <summary>Returns Σ(G−A)²; dg = gradScale·(G−A).</summary>
        public static double Style(float[] g, float[] a, float[] dg, float gradScale)
        {
            double s = 0;
            for (int i = 0; i < g.Length; i++)
            {
                float d = g[i] - a[i];
                s += d * d;
                dg[i] = gradScale * d;
            }
            return s;
        }

        /// <summary>Returns Σ of squared right and down differences; grad += gradScale·dTV/dx (as the ILGPU kernel).</summary>
        public static double TotalVariation(float[] x, float[] grad, int c, int h, int w, float gradScale, double[] partials) =>
            VectorOps.Cpu.Reduce(x.Length, partials, (start, end) =>
            {
                double s = 0;
                for (int k = start; k < end; k++)
                {
                    int p = k % (h * w), i = p / w, j = p - i * w;
                    float v = x[k], g = 0f;
                    if (j + 1 < w) { float d = x[k + 1] - v; s += d * d; g -= d; }
                    if (j > 0) g += v - x[k - 1];
                    if (i + 1 < h) { float d = x[k + w] - v; s += d * d; g -= d; }
                    if (i > 0) g += v - x[k - w];
                    grad[k] += gradScale * 2f * g;
                }
                return s;
            });
    }
}
