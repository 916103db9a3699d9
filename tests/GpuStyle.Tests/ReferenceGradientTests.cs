using GpuStyle.Kernels;
using GpuStyle.Tests.Support;

namespace GpuStyle.Tests;

/// <summary>
/// Every backward pass of the float64 reference against central finite differences of its own forward.
/// A vector-valued op y(x) is checked through the scalar L = Σ r ⊙ y(x) with random r, whose gradient is backward(r).
/// </summary>
public class ReferenceGradientTests
{
    static double Weighted(double[] r, double[] y) => VectorOps.Reference.Dot(r, y);

    [Theory]
    [InlineData(1, 1, 1, 1, false)]
    [InlineData(3, 5, 2, 3, true)]
    [InlineData(5, 3, 7, 5, true)]
    [InlineData(17, 4, 13, 17, true)]
    [InlineData(2, 17, 7, 5, false)]
    public void Conv3x3_backward_input_matches_finite_differences(int cin, int cout, int h, int w, bool relu)
    {
        var rnd = new TestData(cin * 1000 + cout * 100 + h * 10 + w);
        var d = new ConvDims(cin, cout, h, w);
        var x = rnd.Uniform(cin * h * w);
        var wt = rnd.ConvWeights(cin, cout);
        var b = rnd.Uniform(cout, 0.1);
        var r = rnd.Uniform(cout * h * w);
        var y = Conv3x3.Reference.Forward(x, wt, b, d, relu);
        var dx = Conv3x3.Reference.BackwardInput(r, relu ? y : null, wt, d);
        GradientCheck.Check(v => Weighted(r, Conv3x3.Reference.Forward(v, wt, b, d, relu)), x, dx,
            $"conv {d.Cin}→{d.Cout} {h}×{w} relu={relu}", seed: 1);
    }

    [Theory]
    [InlineData(true, 1, 2, 3)]
    [InlineData(true, 5, 7, 5)]
    [InlineData(true, 3, 13, 17)]
    [InlineData(false, 1, 2, 3)]
    [InlineData(false, 17, 7, 5)]
    [InlineData(false, 3, 13, 17)]
    public void Pool_backward_matches_finite_differences(bool max, int c, int h, int w)
    {
        var rnd = new TestData(c * 100 + h * 10 + w + (max ? 1 : 0));
        var x = rnd.Uniform(c * h * w);
        var r = rnd.Uniform(c * (h / 2) * (w / 2));
        var dx = Pooling.Reference.Backward(max, x, r, c, h, w);
        GradientCheck.Check(v => Weighted(r, Pooling.Reference.Forward(max, v, c, h, w)), x, dx,
            $"{(max ? "max" : "avg")} pool {c}×{h}×{w}", seed: 2);
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(3, 2, 3)]
    [InlineData(5, 7, 5)]
    [InlineData(17, 13, 17)]
    public void Gram_backward_matches_finite_differences(int c, int h, int w)
    {
        var rnd = new TestData(c * 100 + h * 10 + w);
        int n = h * w;
        var f = rnd.Uniform(c * n);
        var r = rnd.Uniform(c * c);   // not symmetric: exercises the (dG + dGᵀ) of the backward
        var df = Gram.Reference.Backward(f, r, c, n);
        GradientCheck.Check(v => Weighted(r, Gram.Reference.Forward(v, c, n)), f, df, $"gram {c}×{h}×{w}", seed: 3);
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(5, 7, 5)]
    [InlineData(17, 13, 17)]
    public void Content_loss_gradient_matches_finite_differences(int c, int h, int w)
    {
        var rnd = new TestData(c * 100 + h * 10 + w);
        var f = rnd.Uniform(c * h * w);
        var p = rnd.Uniform(c * h * w);
        var (_, g) = Losses.Reference.Content(f, p);
        GradientCheck.Check(v => Losses.Reference.Content(v, p).Loss, f, g, $"content {c}×{h}×{w}", seed: 4);
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(3, 2, 3)]
    [InlineData(5, 7, 5)]
    [InlineData(17, 13, 17)]
    public void Style_loss_gradient_through_the_gram_matches_finite_differences(int c, int h, int w)
    {
        var rnd = new TestData(c * 100 + h * 10 + w);
        int n = h * w;
        var f = rnd.Uniform(c * n);
        var a = Gram.Reference.Forward(rnd.Uniform(c * n), c, n);
        var g = Gram.Reference.Forward(f, c, n);
        var (_, dg) = Losses.Reference.Style(g, a, c);
        GradientCheck.Check(v => Losses.Reference.Style(v, a, c).Loss, g, dg, $"style dL/dG {c}", seed: 5);
        var df = Gram.Reference.Backward(f, dg, c, n);
        GradientCheck.Check(v => Losses.Reference.Style(Gram.Reference.Forward(v, c, n), a, c).Loss, f, df,
            $"style dL/dF {c}×{h}×{w}", seed: 6);
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(3, 2, 3)]
    [InlineData(3, 7, 5)]
    [InlineData(5, 13, 17)]
    public void Total_variation_gradient_matches_finite_differences(int c, int h, int w)
    {
        var rnd = new TestData(c * 100 + h * 10 + w);
        var x = rnd.Uniform(c * h * w);
        var (loss, g) = Losses.Reference.TotalVariation(x, c, h, w);
        if (h * w == 1)
        {
            // A single pixel has no neighbours: the loss and its gradient are exactly zero.
            Assert.Equal(0, loss);
            Assert.All(g, v => Assert.Equal(0, v));
            return;
        }
        GradientCheck.Check(v => Losses.Reference.TotalVariation(v, c, h, w).Loss, x, g, $"TV {c}×{h}×{w}", seed: 7);
    }
}
