using GpuStyle.Engine;
using GpuStyle.Kernels;
using GpuStyle.Tests.Support;

namespace GpuStyle.Tests;

/// <summary>
/// Every ILGPU kernel, forward and backward, run on ILGPU's CPU accelerator against the float64 reference
/// (≤ 1e-4 relative). Outputs start as NaN so an element a kernel fails to write fails the test.
/// </summary>
[Collection(IlgpuCpuCollection.Name)]
public class IlgpuKernelTests(IlgpuCpuFixture fx)
{
    const double Tol = 1e-4;
    IBackend B => fx.Backend;

    [Theory]
    [InlineData(1, 1, 1, 1)]
    [InlineData(3, 5, 2, 3)]
    [InlineData(5, 17, 7, 5)]
    [InlineData(17, 3, 13, 17)]
    [InlineData(3, 64, 33, 31)]
    [InlineData(64, 5, 13, 17)]
    [InlineData(64, 64, 7, 5)]
    public void Conv3x3_forward_and_backward_match_reference(int cin, int cout, int h, int w)
    {
        var rnd = new TestData(7 * cin + 31 * cout + h * w);
        var d = new ConvDims(cin, cout, h, w);
        var xd = rnd.UniformF32(cin * h * w);
        var wd = rnd.ConvWeights(cin, cout);
        var bd = rnd.UniformF32(cout, 0.1);
        var dyd = rnd.UniformF32(cout * h * w);
        using var x = fx.Make(new Shape(cin, h, w), xd);
        using var wt = fx.Make(new Shape(cout, cin, 9), wd);
        using var b = fx.Make(Shape.Vector(cout), bd);
        using var dy = fx.Make(new Shape(cout, h, w), dyd);

        foreach (bool relu in new[] { false, true })
        {
            using var y = fx.Poisoned(new Shape(cout, h, w));
            B.Conv3x3Forward(x, wt, b, y, relu);
            var yRef = Conv3x3.Reference.Forward(xd, wd, bd, d, relu);
            Assertions.Close(yRef, fx.Read(y), Tol, $"conv forward relu={relu}");

            using var dx = fx.Poisoned(new Shape(cin, h, w));
            B.Conv3x3BackwardInput(dy, relu ? y : null, wt, dx);
            // The mask comes from the kernel's own forward output (it is what the engine uses).
            var mask = relu ? TestData.ToDouble(fx.Read(y)) : null;
            Assertions.Close(Conv3x3.Reference.BackwardInput(dyd, mask, wd, d), fx.Read(dx), Tol, $"conv backward relu={relu}");
        }
    }

    [Theory]
    [InlineData(1, 2, 3)]
    [InlineData(3, 7, 5)]
    [InlineData(5, 13, 17)]
    [InlineData(17, 33, 31)]
    [InlineData(64, 2, 2)]
    public void Pooling_forward_and_backward_match_reference(int c, int h, int w)
    {
        var rnd = new TestData(c * 1000 + h * 10 + w);
        var xd = rnd.UniformF32(c * h * w);
        var dyd = rnd.UniformF32(c * (h / 2) * (w / 2));
        using var x = fx.Make(new Shape(c, h, w), xd);
        using var dy = fx.Make(new Shape(c, h / 2, w / 2), dyd);
        foreach (var kind in new[] { PoolKind.Max, PoolKind.Avg })
        {
            bool max = kind == PoolKind.Max;
            using var y = fx.Poisoned(new Shape(c, h / 2, w / 2));
            B.PoolForward(kind, x, y);
            Assertions.Close(Pooling.Reference.Forward(max, xd, c, h, w), fx.Read(y), Tol, $"{kind} pool forward");
            using var dx = fx.Poisoned(new Shape(c, h, w));
            B.PoolBackward(kind, x, dy, dx);
            Assertions.Close(Pooling.Reference.Backward(max, xd, dyd, c, h, w), fx.Read(dx), Tol, $"{kind} pool backward");
        }
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(3, 2, 3)]
    [InlineData(5, 7, 5)]
    [InlineData(17, 13, 17)]
    [InlineData(64, 33, 31)]
    public void Gram_forward_and_backward_match_reference(int c, int h, int w)
    {
        var rnd = new TestData(c * 1000 + h * 10 + w);
        int n = h * w;
        var fd = rnd.UniformF32(c * n);
        var dgd = rnd.UniformF32(c * c);
        var before = rnd.UniformF32(c * n);
        using var f = fx.Make(new Shape(c, h, w), fd);
        using var g = fx.Poisoned(new Shape(c, c, 1));
        B.GramForward(f, g);
        Assertions.Close(Gram.Reference.Forward(fd, c, n), fx.Read(g), Tol, "gram forward");

        using var dg = fx.Make(new Shape(c, c, 1), dgd);
        using var df = fx.Make(new Shape(c, h, w), before);   // accumulates: starts from random values, not NaN
        B.GramBackwardAccumulate(f, dg, df);
        var expected = VectorOps.Reference.Axpy(1, Gram.Reference.Backward(fd, dgd, c, n), before);
        Assertions.Close(expected, fx.Read(df), Tol, "gram backward");
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(3, 2, 3)]
    [InlineData(17, 13, 17)]
    [InlineData(64, 33, 31)]
    public void Content_loss_matches_reference(int c, int h, int w)
    {
        var rnd = new TestData(c + h + w);
        var shape = new Shape(c, h, w);
        var fd = rnd.UniformF32(shape.Size);
        var pd = rnd.UniformF32(shape.Size);
        var before = rnd.UniformF32(shape.Size);
        const float weight = 0.7f;
        using var f = fx.Make(shape, fd);
        using var p = fx.Make(shape, pd);
        using var grad = fx.Make(shape, before);
        using var scalars = fx.Poisoned(Shape.Vector(3));
        B.ContentLoss(f, p, weight, grad, scalars, 1);
        var (loss, g) = Losses.Reference.Content(fd, pd);
        Assertions.Close(loss, fx.Read(scalars)[1], Tol, "content loss");
        Assertions.Close(VectorOps.Reference.Axpy(weight, g, before), fx.Read(grad), Tol, "content gradient");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(17)]
    [InlineData(64)]
    public void Style_loss_matches_reference(int c)
    {
        var rnd = new TestData(c);
        var shape = new Shape(c, c, 1);
        var gd = rnd.UniformF32(c * c);
        var ad = rnd.UniformF32(c * c);
        const float weight = 3f;
        using var g = fx.Make(shape, gd);
        using var a = fx.Make(shape, ad);
        using var dg = fx.Poisoned(shape);
        using var scalars = fx.Poisoned(Shape.Vector(2));
        B.StyleLoss(g, a, weight, dg, scalars, 0);
        var (loss, dgRef) = Losses.Reference.Style(gd, ad, c);
        Assertions.Close(loss, fx.Read(scalars)[0], Tol, "style loss");
        Assertions.Close(VectorOps.Reference.Scale(dgRef, weight), fx.Read(dg), Tol, "style dL/dG");
    }

    [Theory]
    [InlineData(3, 2, 3)]
    [InlineData(3, 7, 5)]
    [InlineData(5, 13, 17)]
    [InlineData(3, 33, 31)]
    public void Total_variation_matches_reference(int c, int h, int w)
    {
        var rnd = new TestData(c * h * w);
        var shape = new Shape(c, h, w);
        var xd = rnd.UniformF32(shape.Size, 100);
        var before = rnd.UniformF32(shape.Size);
        const float weight = 0.25f;
        using var x = fx.Make(shape, xd);
        using var grad = fx.Make(shape, before);
        using var scalars = fx.Poisoned(Shape.Vector(1));
        B.TotalVariationLoss(x, weight, grad, scalars, 0);
        var (loss, g) = Losses.Reference.TotalVariation(xd, c, h, w);
        Assertions.Close(loss, fx.Read(scalars)[0], Tol, "TV loss");
        Assertions.Close(VectorOps.Reference.Axpy(weight, g, before), fx.Read(grad), Tol, "TV gradient");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(17)]
    [InlineData(1023)]
    public void Vector_operations_match_reference(int n)
    {
        var rnd = new TestData(n);
        var shape = Shape.Vector(n);
        var xd = rnd.UniformF32(n);
        var yd = rnd.UniformF32(n);
        using var x = fx.Make(shape, xd);
        using var y = fx.Make(shape, yd);
        using var scalars = fx.Poisoned(Shape.Vector(4));

        B.Dot(x, y, scalars, 0);
        B.Norm(x, scalars, 1);
        var s = fx.Read(scalars);
        Assertions.Close(VectorOps.Reference.Dot(xd, yd), s[0], Tol, "dot");
        Assertions.Close(VectorOps.Reference.Norm(xd), s[1], Tol, "norm");

        using var z = fx.Poisoned(shape);
        B.Subtract(x, y, z);
        Assertions.Close(VectorOps.Reference.Subtract(xd, yd), fx.Read(z), Tol, "subtract");
        B.Fill(z, float.NaN);
        B.Multiply(x, y, z);
        Assertions.Close(VectorOps.Reference.Multiply(xd, yd), fx.Read(z), Tol, "multiply");
        B.Fill(z, float.NaN);
        B.Copy(x, z);
        Assertions.Close(xd, fx.Read(z), 0, "copy");

        using var acc = fx.Make(shape, yd);
        B.Axpy(-0.3f, x, acc);
        Assertions.Close(VectorOps.Reference.Axpy(-0.3, xd, yd), fx.Read(acc), Tol, "axpy");
        B.Scale(acc, 2.5f);
        Assertions.Close(VectorOps.Reference.Scale(VectorOps.Reference.Axpy(-0.3, xd, yd), 2.5), fx.Read(acc), Tol, "scale");

        // y += factor·scalars[0]·x with the dot product left on the device as the step.
        using var acc2 = fx.Make(shape, yd);
        B.AxpyScalar(scalars, 0, -2f, x, acc2);
        Assertions.Close(VectorOps.Reference.Axpy(-2 * s[0], xd, yd), fx.Read(acc2), Tol, "axpy with a device scalar");

        B.Fill(z, 1.5f);
        Assert.All(fx.Read(z), v => Assert.Equal(1.5f, v));
    }

    [Fact]
    public void Weighted_sum_combines_scalars_on_the_device()
    {
        var rnd = new TestData(11);
        var vals = rnd.UniformF32(5);
        var coef = rnd.UniformF32(4);
        using var scalars = fx.Make(Shape.Vector(5), vals);
        using var coefficients = fx.Make(Shape.Vector(4), coef);
        B.WeightedSum(scalars, coefficients, 4);
        double expected = Enumerable.Range(0, 4).Sum(k => coef[k] * vals[k]);
        Assertions.Close(expected, fx.Read(scalars)[4], Tol, "weighted sum");
    }

    [Fact]
    public void Wrong_shapes_are_refused_on_the_host_before_any_launch()
    {
        using var x = B.Allocate(new Shape(3, 5, 5));
        using var y = B.Allocate(new Shape(4, 5, 5));
        using var w = B.Allocate(new Shape(4, 2, 9));   // weights for 2 inputs, not 3
        using var b = B.Allocate(Shape.Vector(4));
        Assert.Throws<ArgumentException>(() => B.Conv3x3Forward(x, w, b, y, true));
        using var small = B.Allocate(new Shape(3, 3, 3));
        Assert.Throws<ArgumentException>(() => B.PoolForward(PoolKind.Max, x, small));
        using var g = B.Allocate(new Shape(4, 4, 1));
        Assert.Throws<ArgumentException>(() => B.GramForward(x, g));
        using var s = B.Allocate(Shape.Vector(2));
        Assert.Throws<ArgumentOutOfRangeException>(() => B.Dot(x, x, s, 2));
    }
}
