using GpuStyle.Engine;
using GpuStyle.Engine.Cpu;
using GpuStyle.Kernels;
using GpuStyle.Tests.Support;

namespace GpuStyle.Tests;

/// <summary>
/// The CPU backend's 128-bit kernels (what an ARM64 machine runs: kernels/CpuSimd.cs) against its AVX2 ones. They put
/// every element through the same operations in the same order, so their results must be equal to the bit: a lane
/// shuffled to the wrong place, a tile group written to the wrong half or a missed tail shows as a difference, where
/// a tolerance could let a small one through. (Each is also compared with the float64 reference in BackendKernelTests,
/// through the fixture's AllVariants.) Inputs are fresh random values; outputs start as NaN.
/// </summary>
[Collection(IlgpuCpuCollection.Name)]
public class Vector128Tests(IlgpuCpuFixture fx)
{
    /// <summary>Pairs of backends that must agree to the bit: AVX2, then its 128-bit twin.</summary>
    (CpuBackend Avx2, CpuBackend V128)[] ConvPairs =>
        [(fx.CpuVector, fx.CpuV128), (fx.CpuWinograd4, fx.CpuV128Winograd4), (fx.CpuDirect, fx.CpuV128Direct)];

    static void SameBits(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}: element {i} of {expected.Length} is {actual[i]:R}, the AVX2 kernels' {expected[i]:R}");
        Assert.DoesNotContain(actual, float.IsNaN);   // every element written (outputs start as NaN)
    }

    [Avx2Theory]
    [InlineData(3, 64, 37, 29)]     // the first layer's shape: the direct kernel's rows (3 input channels)
    [InlineData(64, 3, 19, 45)]     // the backward to the picture's colours
    [InlineData(5, 9, 7, 53)]       // direct: a 24-pixel strip, a 16-pixel one, columns past the edge
    [InlineData(16, 16, 1, 1)]      // Winograd from here: one pixel
    [InlineData(17, 19, 13, 11)]
    [InlineData(21, 16, 5, 53)]     // 27 F(2×2) tiles a row: a 16-tile strip mostly past the edge
    [InlineData(67, 18, 3, 97)]     // past an input chunk (64 channels)
    [InlineData(18, 131, 6, 8)]     // past an output group (128; 64 for F(4×4))
    [InlineData(20, 70, 9, 70)]     // F(4×4): 18 tiles a row, 3 tile rows
    [InlineData(32, 40, 24, 33)]    // F(4×4) by default (Conv3x3.CpuWinograd.Edge): odd width
    public void Convolutions_equal_the_AVX2_kernels_bit_for_bit(int cin, int cout, int h, int w)
    {
        var rnd = new TestData(Environment.TickCount ^ (cin * 131 + cout * 17 + h * w));
        var xd = rnd.UniformF32(cin * h * w);
        var wd = rnd.ConvWeights(cin, cout);
        var bd = rnd.UniformF32(cout, 0.1);
        var dyd = rnd.UniformF32(cout * h * w);
        var maskd = rnd.Uniform(cout * h * w);   // about half the entries ≤ 0: ReLU's backward drops them
        foreach (var (avx2, v128) in ConvPairs)
            foreach (bool relu in new[] { false, true })
            {
                float[] Forward(IBackend b)
                {
                    using var x = fx.Make(b, new Shape(cin, h, w), xd);
                    using var wt = fx.Make(b, new Shape(cout, cin, 9), wd);
                    using var bias = fx.Make(b, Shape.Vector(cout), bd);
                    using var y = fx.Poisoned(b, new Shape(cout, h, w));
                    b.Conv3x3Forward(x, wt, bias, y, relu);
                    return fx.Read(y);
                }
                float[] Backward(IBackend b)
                {
                    using var wt = fx.Make(b, new Shape(cout, cin, 9), wd);
                    using var dy = fx.Make(b, new Shape(cout, h, w), dyd);
                    using var mask = fx.Make(b, new Shape(cout, h, w), maskd);
                    using var dx = fx.Poisoned(b, new Shape(cin, h, w));
                    b.Conv3x3BackwardInput(dy, relu ? mask : null, wt, dx);
                    return fx.Read(dx);
                }
                SameBits(Forward(avx2), Forward(v128), $"forward relu={relu} on {v128.Name}");
                SameBits(Backward(avx2), Backward(v128), $"backward relu={relu} on {v128.Name}");
            }
    }

    [Avx2Theory]
    [InlineData(3, 1)]
    [InlineData(5, 37)]
    [InlineData(17, 203)]       // a 16-wide last strip
    [InlineData(24, 200)]       // whole strips; the backward's chunk ends in 8-column steps
    [InlineData(67, 1031)]      // several 192-position chunks, 3 strips, a row block past c
    public void Gram_matrices_equal_the_AVX2_kernels_bit_for_bit(int c, int n)
    {
        var rnd = new TestData(Environment.TickCount ^ (c * 7919 + n));
        var fd = rnd.UniformF32(c * n);
        var dgd = rnd.UniformF32(c * c);
        var startd = rnd.UniformF32(c * n);
        float[] Forward(IBackend b)
        {
            using var f = fx.Make(b, new Shape(c, n, 1), fd);
            using var g = fx.Poisoned(b, new Shape(c, c, 1));
            b.GramForward(f, g);
            return fx.Read(g);
        }
        float[] Backward(IBackend b)
        {
            using var f = fx.Make(b, new Shape(c, n, 1), fd);
            using var dg = fx.Make(b, new Shape(c, c, 1), dgd);
            using var df = fx.Make(b, new Shape(c, n, 1), startd);
            b.GramBackwardAccumulate(f, dg, df);
            return fx.Read(df);
        }
        SameBits(Forward(fx.CpuVector), Forward(fx.CpuV128), "Gram forward");
        SameBits(Backward(fx.CpuVector), Backward(fx.CpuV128), "Gram backward");
    }

    [Avx2Theory]
    [InlineData(3, 2, 2)]
    [InlineData(5, 9, 17)]       // odd sizes: the last row and column dropped
    [InlineData(4, 16, 40)]      // 20 windows a row: two 8-window vectors, a 4-window one
    [InlineData(2, 6, 70)]       // 35 windows: 4 vectors of 8, then 3 scalar
    public void Pooling_equals_the_AVX2_kernels_bit_for_bit(int c, int h, int w)
    {
        var rnd = new TestData(Environment.TickCount ^ (c * 31 + h * 7 + w));
        var xd = rnd.UniformF32(c * h * w);
        // Ties, as ReLU leaves them (equal corners: the first one takes the gradient in both kernels).
        for (int i = 0; i + 1 < xd.Length; i += 5) xd[i + 1] = xd[i];
        var dyd = rnd.UniformF32(c * (h / 2) * (w / 2));
        foreach (var kind in new[] { PoolKind.Max, PoolKind.Avg })
        {
            float[] Forward(IBackend b)
            {
                using var x = fx.Make(b, new Shape(c, h, w), xd);
                using var y = fx.Poisoned(b, new Shape(c, h / 2, w / 2));
                b.PoolForward(kind, x, y);
                return fx.Read(y);
            }
            float[] Backward(IBackend b)
            {
                using var x = fx.Make(b, new Shape(c, h, w), xd);
                using var dy = fx.Make(b, new Shape(c, h / 2, w / 2), dyd);
                using var dx = fx.Poisoned(b, new Shape(c, h, w));
                b.PoolBackward(kind, x, dy, dx);
                return fx.Read(dx);
            }
            SameBits(Forward(fx.CpuVector), Forward(fx.CpuV128), $"{kind} pool forward");
            SameBits(Backward(fx.CpuVector), Backward(fx.CpuV128), $"{kind} pool backward");
        }
    }

    [Fact]
    public void A_NaN_in_a_window_makes_its_max_NaN_on_the_128_bit_kernels()
    {
        // Vector128.Max's NaN rule is the platform's (x86's maxps returns an operand); the kernel sets NaN itself.
        var xd = new TestData(Environment.TickCount).UniformF32(2 * 4 * 16);
        xd[3] = double.NaN;            // channel 0, window 1
        xd[64 + 16 + 10] = double.NaN; // channel 1, row 1: window 5 of the first row of windows
        using var x = fx.Make(fx.CpuV128, new Shape(2, 4, 16), xd);
        using var y = fx.Poisoned(fx.CpuV128, new Shape(2, 2, 8));
        fx.CpuV128.PoolForward(PoolKind.Max, x, y);
        var got = fx.Read(y);
        for (int i = 0; i < got.Length; i++)
            Assert.Equal(i is 1 or 16 + 5, float.IsNaN(got[i]));
    }

    [Fact]
    public void The_128_bit_lane_shuffles_do_what_they_say()
    {
        var a = System.Runtime.Intrinsics.Vector128.Create(1f, 2f, 3f, 4f);
        var b = System.Runtime.Intrinsics.Vector128.Create(5f, 6f, 7f, 8f);
        Assert.Equal([1f, 5f, 2f, 6f], Lanes(Lanes128.ZipLow(a, b)));
        Assert.Equal([3f, 7f, 4f, 8f], Lanes(Lanes128.ZipHigh(a, b)));
        Assert.Equal([1f, 3f, 5f, 7f], Lanes(Lanes128.UnzipEven(a, b)));
        Assert.Equal([2f, 4f, 6f, 8f], Lanes(Lanes128.UnzipOdd(a, b)));
        Assert.Equal([1f, 2f, 5f, 6f], Lanes(Lanes128.LowHalves(a, b)));
        Assert.Equal([3f, 4f, 7f, 8f], Lanes(Lanes128.HighHalves(a, b)));
        var r = Enumerable.Range(0, 4).Select(i => System.Runtime.Intrinsics.Vector128.Create(4f * i, 4f * i + 1, 4f * i + 2, 4f * i + 3)).ToArray();
        Lanes128.Transpose(ref r[0], ref r[1], ref r[2], ref r[3]);
        for (int i = 0; i < 4; i++)
            Assert.Equal(Enumerable.Range(0, 4).Select(j => 4f * j + i).ToArray(), Lanes(r[i]));
    }

    static float[] Lanes(System.Runtime.Intrinsics.Vector128<float> v) => [v[0], v[1], v[2], v[3]];
}

/// <summary>A theory that compares with the AVX2 kernels: skipped, saying so, on a CPU without AVX2 and FMA (an
/// ARM64 machine runs the 128-bit kernels against the float64 reference in BackendKernelTests).</summary>
public sealed class Avx2TheoryAttribute : TheoryAttribute
{
    public Avx2TheoryAttribute()
    {
        if (!CpuSimdLevels.Avx2Supported) Skip = "needs AVX2 and FMA to compare the 128-bit kernels with; this CPU lacks them";
    }
}
