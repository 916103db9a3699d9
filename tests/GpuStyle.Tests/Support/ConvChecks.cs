using GpuStyle.Engine;
using GpuStyle.Kernels;

namespace GpuStyle.Tests.Support;

/// <summary>One convolution layer's forward and backward, or one Gram backward, on a backend against the float64
/// reference.</summary>
public static class ConvChecks
{
    /// <summary>dF += S·F (S = (dG + dGᵀ)/N) for C channels × N positions from random dF: the accumulated result
    /// against the reference's gradient plus the start, to 1e-5 of the largest.</summary>
    public static void GramBackwardMatches(IBackend b, int c, int n, string what)
    {
        var rnd = new TestData(Environment.TickCount ^ (c * n));
        var fd = rnd.UniformF32(c * n);
        var dgd = rnd.UniformF32(c * c);
        var startd = rnd.UniformF32(c * n);
        using var f = b.Make(new Shape(c, 1, n), fd);
        using var dg = b.Make(new Shape(c, c, 1), dgd);
        using var df = b.Make(new Shape(c, 1, n), startd);
        b.GramBackwardAccumulate(f, dg, df);
        var expected = Gram.Reference.Backward(fd, dgd, c, n).Zip(startd, (g, s) => g + s).ToArray();
        Assertions.Close(expected, b.Read(df), 1e-5, $"Gram backward, {c}×{n}, {what}");
    }

    /// <summary>G = F·Fᵀ/N of C channels × N positions (<paramref name="fd"/>) computed <paramref name="uses"/> times
    /// into a fresh G (a tuned backend tunes at the first and runs its choice at the later ones), each against
    /// <paramref name="expected"/> to 1e-5 of the largest.</summary>
    public static void GramForwardMatches(IBackend b, double[] fd, double[] expected, int c, int n, string what, int uses = 1)
    {
        using var f = b.Make(new Shape(c, 1, n), fd);
        for (int use = 0; use < uses; use++)
        {
            using var g = b.Make(new Shape(c, c, 1), null);
            b.GramForward(f, g);
            Assertions.Close(expected, b.Read(g), 1e-5, $"{what}, {c}×{n}, use {use + 1}");
        }
    }

    /// <summary>A map (13×23 by default: odd both ways) of cin → cout channels: the forward with bias and ReLU and the
    /// backward through ReLU's mask against the float64 reference, within tolerance of the largest output. Returns
    /// each direction's largest error (of its largest output).</summary>
    public static (double Forward, double Backward) ForwardAndBackwardMatch(IBackend b, int cin, int seed, double tolerance, string what, int cout = 70, int h = 13, int w = 23)
    {
        var rnd = new TestData(seed);
        var d = new ConvDims(cin, cout, h, w);
        var xd = rnd.UniformF32(cin * h * w);
        var wd = rnd.ConvWeights(cin, cout);
        var bd = rnd.UniformF32(cout, 0.1);
        var dyd = rnd.UniformF32(cout * h * w);
        var yRef = Conv3x3.Reference.Forward(xd, wd, bd, d, relu: true);
        using var x = b.Make(new Shape(cin, h, w), xd);
        using var wt = b.Make(new Shape(cout, cin, 9), wd);
        using var bias = b.Make(Shape.Vector(cout), bd);
        using var y = b.Make(new Shape(cout, h, w), null);
        b.Conv3x3Forward(x, wt, bias, y, relu: true);
        double forward = Assertions.Close(yRef, b.Read(y), tolerance, $"forward, {what}");
        using var dy = b.Make(new Shape(cout, h, w), dyd);
        using var mask = b.Make(new Shape(cout, h, w), yRef);
        using var dx = b.Make(new Shape(cin, h, w), null);
        b.Conv3x3BackwardInput(dy, mask, wt, dx);
        double backward = Assertions.Close(Conv3x3.Reference.BackwardInput(dyd, yRef, wd, d), b.Read(dx), tolerance, $"backward, {what}");
        return (forward, backward);
    }
}
