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
}
