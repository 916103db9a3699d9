using GpuStyle.Engine.Network;
using GpuStyle.Kernels;

namespace GpuStyle.Tests.Support;

/// <summary>
/// The whole style objective in float64, built from the op references only: forward through the layers, the three
/// losses, and the backward pass written out by hand. The engine's <see cref="StyleObjective"/> must agree with it,
/// and it must agree with finite differences of itself.
/// </summary>
public sealed class ReferenceNetwork(NetworkSpec spec, bool maxPool)
{
    public sealed record Result(double Total, double[] Content, double[] Style, double TotalVariation, double[] Gradient);

    /// <summary>Every layer's output, for an input of c×h×w.</summary>
    public List<(double[] Values, int C, int H, int W)> Forward(double[] x, int h, int w)
    {
        var outs = new List<(double[], int, int, int)>();
        var (cur, c) = (x, spec.InputChannels);
        foreach (var layer in spec.Layers)
        {
            switch (layer)
            {
                case ConvSpec conv:
                    cur = Conv3x3.Reference.Forward(cur, D(conv.Weights), D(conv.Bias), new ConvDims(c, conv.OutChannels, h, w), relu: true);
                    c = conv.OutChannels;
                    break;
                case PoolSpec:
                    cur = Pooling.Reference.Forward(maxPool, cur, c, h, w);
                    h /= 2; w /= 2;
                    break;
            }
            outs.Add((cur, c, h, w));
        }
        return outs;
    }

    public double[] Tap(double[] x, int h, int w, string tap) => Forward(x, h, w)[spec.IndexOf(tap)].Values;

    public Result Evaluate(double[] x, int h, int w, IReadOnlyList<(string Tap, double[] Target)> content,
        IReadOnlyList<(string Tap, double[] Gram)> style, LossWeights weights)
    {
        var outs = Forward(x, h, w);
        var grads = outs.Select(o => new double[o.Values.Length]).ToArray();
        var contentLoss = new double[content.Count];
        var styleLoss = new double[style.Count];
        double cw = content.Count == 0 ? 0 : weights.Content / content.Count;
        double sw = style.Count == 0 ? 0 : weights.Style / style.Count;
        for (int i = 0; i < content.Count; i++)
        {
            int l = spec.IndexOf(content[i].Tap);
            var (loss, g) = Losses.Reference.Content(outs[l].Values, content[i].Target);
            contentLoss[i] = loss;
            for (int k = 0; k < g.Length; k++) grads[l][k] += cw * g[k];
        }
        for (int i = 0; i < style.Count; i++)
        {
            int l = spec.IndexOf(style[i].Tap);
            var (f, c, hh, ww) = outs[l];
            var (loss, dg) = Losses.Reference.Style(Gram.Reference.Forward(f, c, hh * ww), style[i].Gram, c);
            styleLoss[i] = loss;
            var df = Gram.Reference.Backward(f, dg, c, hh * ww);
            for (int k = 0; k < df.Length; k++) grads[l][k] += sw * df[k];
        }
        var (tv, tvGrad) = Losses.Reference.TotalVariation(x, spec.InputChannels, h, w);

        double[] dx = null!;
        for (int l = outs.Count - 1; l >= 0; l--)
        {
            var (inVals, inC, inH, inW) = l == 0 ? (x, spec.InputChannels, h, w) : outs[l - 1];
            double[] dIn = spec.Layers[l] switch
            {
                ConvSpec conv => Conv3x3.Reference.BackwardInput(grads[l], outs[l].Values, D(conv.Weights), new ConvDims(inC, conv.OutChannels, inH, inW)),
                _ => Pooling.Reference.Backward(maxPool, inVals, grads[l], inC, inH, inW),
            };
            if (l == 0) dx = dIn;
            else for (int k = 0; k < dIn.Length; k++) grads[l - 1][k] += dIn[k];
        }
        for (int k = 0; k < dx.Length; k++) dx[k] += weights.TotalVariation * tvGrad[k];
        double total = cw * contentLoss.Sum() + sw * styleLoss.Sum() + weights.TotalVariation * tv;
        return new Result(total, contentLoss, styleLoss, tv, dx);
    }

    static double[] D(float[] a) => TestData.ToDouble(a);
}
