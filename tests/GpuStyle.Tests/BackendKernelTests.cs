using GpuStyle.Engine.Ilgpu;
using GpuStyle.Engine;
using GpuStyle.Kernels;
using GpuStyle.Tests.Support;

namespace GpuStyle.Tests;

/// <summary>
/// Every op, forward and backward, on every backend — the ILGPU kernels on ILGPU's CPU accelerator, the fast CPU
/// backend's AVX2/FMA path and its scalar fallback — against the float64 reference (≤ 1e-4 relative), and the CPU
/// backend against the ILGPU kernels. Outputs start as NaN so an element a kernel fails to write fails the test.
/// </summary>
[Collection(IlgpuCpuCollection.Name)]
public class BackendKernelTests(IlgpuCpuFixture fx)
{
    const double Tol = 1e-4;

    /// <summary>Runs the op on every backend, checks each against the reference, and each against ILGPU's result.</summary>
    void OnEveryBackend(string what, double[] reference, Func<IBackend, float[]> run, IReadOnlyList<IBackend>? backends = null)
    {
        float[]? ilgpu = null;
        foreach (var b in backends ?? fx.All)
        {
            var got = run(b);
            Assertions.Close(reference, got, Tol, $"{what} on {b.Name}");
            if (ilgpu is null) ilgpu = got;
            else Assertions.Close(TestData.ToDouble(ilgpu), got, Tol, $"{what}: {b.Name} vs the ILGPU kernel");
        }
    }

    [Theory]
    [InlineData(1, 1, 1, 1)]
    [InlineData(3, 5, 2, 3)]
    [InlineData(5, 17, 7, 5)]
    [InlineData(17, 3, 13, 17)]
    [InlineData(3, 64, 33, 31)]
    [InlineData(64, 5, 13, 17)]
    [InlineData(64, 64, 7, 5)]
    [InlineData(9, 7, 25, 41)]     // widths past one 24-pixel strip, with a 16-pixel tail
    // Winograd on the CPU backend (16+ channels each way): odd sizes (half-empty 2×2 tiles), one pixel, rows of
    // 24-tile and 16-tile strips (53 px = 27 tiles: 24 + a 16-tile strip mostly past the edge), channel counts past
    // an input chunk (64) and an output group (128), not multiples of the 4-channel block.
    [InlineData(16, 16, 1, 1)]
    [InlineData(17, 19, 13, 11)]
    [InlineData(21, 16, 5, 53)]
    [InlineData(67, 18, 3, 97)]
    [InlineData(18, 131, 6, 8)]
    [InlineData(20, 70, 9, 70)]    // F(4×4): 18 tiles a row (a 24-tile strip, then 16 past the edge), 3 tile rows
    public void Conv3x3_forward_and_backward_match_reference(int cin, int cout, int h, int w)
    {
        var rnd = new TestData(7 * cin + 31 * cout + h * w);
        var d = new ConvDims(cin, cout, h, w);
        var xd = rnd.UniformF32(cin * h * w);
        var wd = rnd.ConvWeights(cin, cout);
        var bd = rnd.UniformF32(cout, 0.1);
        var dyd = rnd.UniformF32(cout * h * w);
        foreach (bool relu in new[] { false, true })
        {
            var yRef = Conv3x3.Reference.Forward(xd, wd, bd, d, relu);
            OnEveryBackend($"conv forward relu={relu}", yRef, b =>
            {
                using var x = fx.Make(b, new Shape(cin, h, w), xd);
                using var wt = fx.Make(b, new Shape(cout, cin, 9), wd);
                using var bias = fx.Make(b, Shape.Vector(cout), bd);
                using var y = fx.Poisoned(b, new Shape(cout, h, w));
                b.Conv3x3Forward(x, wt, bias, y, relu);
                return fx.Read(y);
            }, fx.AllVariants);
            // The ReLU mask is the reference forward's output (random inputs: no output sits at exactly zero).
            var dxRef = Conv3x3.Reference.BackwardInput(dyd, relu ? yRef : null, wd, d);
            OnEveryBackend($"conv backward relu={relu}", dxRef, b =>
            {
                using var wt = fx.Make(b, new Shape(cout, cin, 9), wd);
                using var dy = fx.Make(b, new Shape(cout, h, w), dyd);
                using var y = fx.Make(b, new Shape(cout, h, w), yRef);
                using var dx = fx.Poisoned(b, new Shape(cin, h, w));
                b.Conv3x3BackwardInput(dy, relu ? y : null, wt, dx);
                return fx.Read(dx);
            }, fx.AllVariants);
        }
    }

    [Fact]
    public void Cpu_backend_repacks_weights_when_they_change()
    {
        var rnd = new TestData(77);
        var d = new ConvDims(3, 4, 5, 6);
        var xd = rnd.UniformF32(3 * 5 * 6);
        var w1 = rnd.ConvWeights(3, 4);
        var w2 = rnd.ConvWeights(3, 4);
        var bd = rnd.UniformF32(4);
        var b = fx.CpuVector;
        using var x = fx.Make(b, new Shape(3, 5, 6), xd);
        using var wt = fx.Make(b, new Shape(4, 3, 9), w1);
        using var bias = fx.Make(b, Shape.Vector(4), bd);
        using var y = b.Allocate(new Shape(4, 5, 6));
        b.Conv3x3Forward(x, wt, bias, y, relu: false);
        b.Upload(wt, TestData.ToFloat(w2));
        b.Conv3x3Forward(x, wt, bias, y, relu: false);
        Assertions.Close(Conv3x3.Reference.Forward(xd, w2, bd, d, false), fx.Read(y), Tol, "after new weights");
    }

    [Fact]
    public void Cpu_backend_takes_its_winograd_tile_by_the_map_and_repacks_when_it_changes()
    {
        // The default CPU backend runs F(2×2) on a 16×16 map and F(4×4) on a 40×40 one (Conv3x3.CpuWinograd.Edge):
        // one weights tensor through both, and back, each result against the reference.
        Assert.Equal((2, 4), (Conv3x3.CpuWinograd.Edge(16, 16), Conv3x3.CpuWinograd.Edge(40, 40)));
        var rnd = new TestData(Environment.TickCount);
        var wd = rnd.ConvWeights(24, 20);
        var bd = rnd.UniformF32(20, 0.1);
        var b = fx.CpuVector;
        using var wt = fx.Make(b, new Shape(20, 24, 9), wd);
        using var bias = fx.Make(b, Shape.Vector(20), bd);
        foreach (int side in new[] { 16, 40, 16 })
        {
            var d = new ConvDims(24, 20, side, side);
            var xd = rnd.UniformF32(24 * side * side);
            var dyd = rnd.UniformF32(20 * side * side);
            using var x = fx.Make(b, new Shape(24, side, side), xd);
            using var y = fx.Poisoned(b, new Shape(20, side, side));
            b.Conv3x3Forward(x, wt, bias, y, relu: false);
            Assertions.Close(Conv3x3.Reference.Forward(xd, wd, bd, d, false), fx.Read(y), Tol, $"forward at {side}×{side}");
            using var dy = fx.Make(b, new Shape(20, side, side), dyd);
            using var dx = fx.Poisoned(b, new Shape(24, side, side));
            b.Conv3x3BackwardInput(dy, null, wt, dx);
            Assertions.Close(Conv3x3.Reference.BackwardInput(dyd, null, wd, d), fx.Read(dx), Tol, $"backward at {side}×{side}");
        }
    }

    [Theory]
    [InlineData(3, 6, 34)]     // 17 windows a row: two of 8 (the CPU's AVX2 path) and one scalar
    [InlineData(2, 5, 49)]     // 24 windows a row, an odd height and width
    public void Max_pool_ties_go_to_the_first_maximum_on_every_backend(int c, int h, int w)
    {
        // Inputs from {0, 0.5, 1}: most windows hold a tie, and the gradient must go to the first maximum in
        // row-major order on every backend, as in the reference. Then a NaN in each corner of four windows (an AVX
        // max keeps only its second operand's NaN): on the CPU backend, vector path or scalar, those windows' forward
        // is NaN, as the reference's. (ILGPU's max, PTX max.f32 on a GPU, returns the other operand: NaN-ignoring.)
        var rnd = new Random(Environment.TickCount);
        var xd = Enumerable.Range(0, c * h * w).Select(_ => rnd.Next(3) * 0.5).ToArray();
        var dyd = new TestData(c + h + w).UniformF32(c * (h / 2) * (w / 2));
        OnEveryBackend("max pool backward with ties", Pooling.Reference.Backward(true, xd, dyd, c, h, w), b =>
        {
            using var x = fx.Make(b, new Shape(c, h, w), xd);
            using var dy = fx.Make(b, new Shape(c, h / 2, w / 2), dyd);
            using var dx = fx.Poisoned(b, new Shape(c, h, w));
            b.PoolBackward(PoolKind.Max, x, dy, dx);
            return fx.Read(dx);
        });
        xd[2] = xd[7] = xd[w + 10] = xd[w + 13] = double.NaN;   // windows 1 (top left), 3 (top right), 5, 6 (bottom)
        foreach (var b in new IBackend[] { fx.CpuVector, fx.CpuScalar })
        {
            using var x = fx.Make(b, new Shape(c, h, w), xd);
            using var y = fx.Poisoned(b, new Shape(c, h / 2, w / 2));
            b.PoolForward(PoolKind.Max, x, y);
            var got = fx.Read(y);
            foreach (int window in new[] { 1, 3, 5, 6 })
                Assert.True(float.IsNaN(got[window]), $"{b.Name}: window {window}, holding a NaN, gave {got[window]}");
            Assert.Equal(4, got.Count(float.IsNaN));
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
        foreach (var kind in new[] { PoolKind.Max, PoolKind.Avg })
        {
            bool max = kind == PoolKind.Max;
            OnEveryBackend($"{kind} pool forward", Pooling.Reference.Forward(max, xd, c, h, w), b =>
            {
                using var x = fx.Make(b, new Shape(c, h, w), xd);
                using var y = fx.Poisoned(b, new Shape(c, h / 2, w / 2));
                b.PoolForward(kind, x, y);
                return fx.Read(y);
            });
            OnEveryBackend($"{kind} pool backward", Pooling.Reference.Backward(max, xd, dyd, c, h, w), b =>
            {
                using var x = fx.Make(b, new Shape(c, h, w), xd);
                using var dy = fx.Make(b, new Shape(c, h / 2, w / 2), dyd);
                using var dx = fx.Poisoned(b, new Shape(c, h, w));
                b.PoolBackward(kind, x, dy, dx);
                return fx.Read(dx);
            });
        }
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(3, 2, 3)]
    [InlineData(5, 7, 5)]
    [InlineData(17, 13, 17)]
    [InlineData(64, 33, 31)]
    [InlineData(10, 1, 4099)]      // positions past several L2 chunks and the partial split, not a multiple of 8
    [InlineData(48, 3, 70)]        // the CPU's 24-channel strips exactly (2 of them), chunks of 192 positions
    [InlineData(49, 5, 9)]         // a third strip holding one channel; a 4-row block crossing no strip
    [InlineData(130, 4, 5)]        // 6 strips (the last 10 wide), 8 parts of 2–3 positions each
    public void Gram_forward_and_backward_match_reference(int c, int h, int w)
    {
        var rnd = new TestData(c * 1000 + h * 10 + w);
        int n = h * w;
        var fd = rnd.UniformF32(c * n);
        var dgd = rnd.UniformF32(c * c);
        var before = rnd.UniformF32(c * n);
        OnEveryBackend("gram forward", Gram.Reference.Forward(fd, c, n), b =>
        {
            using var f = fx.Make(b, new Shape(c, h, w), fd);
            using var g = fx.Poisoned(b, new Shape(c, c, 1));
            b.GramForward(f, g);
            return fx.Read(g);
        }, fx.AllVariants);
        var expected = VectorOps.Reference.Axpy(1, Gram.Reference.Backward(fd, dgd, c, n), before);
        OnEveryBackend("gram backward", expected, b =>
        {
            using var f = fx.Make(b, new Shape(c, h, w), fd);
            using var dg = fx.Make(b, new Shape(c, c, 1), dgd);
            using var df = fx.Make(b, new Shape(c, h, w), before);   // accumulates: starts from random values, not NaN
            b.GramBackwardAccumulate(f, dg, df);
            return fx.Read(df);
        }, fx.AllVariants);
    }

    [Fact]
    public void The_CPU_Gram_backward_gives_the_same_bytes_whichever_worker_takes_a_chunk()
    {
        // Its chunks of columns go to whichever worker asks next, so the split between workers differs from run to
        // run — most of all with a core kept busy by something else, as here for half the runs. Each chunk's sums
        // are one worker's, in a fixed order: the bytes must not change.
        int c = 48, n = 97 * 100;   // 41 chunks of 240 positions
        var rnd = new TestData(Environment.TickCount);
        var f = rnd.UniformF32(c * n).Select(v => (float)v).ToArray();
        var dg = rnd.UniformF32(c * c).Select(v => (float)v).ToArray();
        var start = rnd.UniformF32(c * n).Select(v => (float)v).ToArray();
        var scratch = new float[Gram.Cpu.BackwardScratchSize(c)];
        float[] Run()
        {
            var df = (float[])start.Clone();
            Gram.Cpu.BackwardAccumulate(f, dg, df, scratch, c, n, CpuSimdLevels.Best);
            return df;
        }
        var first = Run();
        Assertions.Close(VectorOps.Reference.Axpy(1, Gram.Reference.Backward(f.Select(v => (double)v).ToArray(),
            dg.Select(v => (double)v).ToArray(), c, n), start.Select(v => (double)v).ToArray()), first, 1e-5, "CPU Gram backward");
        for (int run = 0; run < 6; run++)
        {
            bool done = false;
            var spinner = new Thread(() => { while (!Volatile.Read(ref done)) Thread.SpinWait(1000); });
            if (run % 2 == 0) spinner.Start();
            var again = Run();
            Volatile.Write(ref done, true);
            if (run % 2 == 0) spinner.Join();
            Assert.Equal(first, again);
        }
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
        var (loss, g) = Losses.Reference.Content(fd, pd);
        OnEveryBackend("content loss and gradient", [loss, .. VectorOps.Reference.Axpy(weight, g, before)], b =>
        {
            using var f = fx.Make(b, shape, fd);
            using var p = fx.Make(b, shape, pd);
            using var grad = fx.Make(b, shape, before);
            using var scalars = fx.Poisoned(b, Shape.Vector(3));
            b.ContentLoss(f, p, weight, grad, scalars, 1);
            Assertions.Close(loss, fx.Read(scalars)[1], Tol, $"content loss on {b.Name}");
            return [fx.Read(scalars)[1], .. fx.Read(grad)];
        });
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
        var (loss, dgRef) = Losses.Reference.Style(gd, ad, c);
        OnEveryBackend("style dL/dG", VectorOps.Reference.Scale(dgRef, weight), b =>
        {
            using var g = fx.Make(b, shape, gd);
            using var a = fx.Make(b, shape, ad);
            using var dg = fx.Poisoned(b, shape);
            using var scalars = fx.Poisoned(b, Shape.Vector(2));
            b.StyleLoss(g, a, weight, dg, scalars, 0);
            Assertions.Close(loss, fx.Read(scalars)[0], Tol, $"style loss on {b.Name}");
            return fx.Read(dg);
        });
    }

    [Theory]
    [InlineData(3, 2, 3)]
    [InlineData(3, 7, 5)]
    [InlineData(5, 13, 17)]
    [InlineData(3, 33, 31)]
    [InlineData(3, 130, 131)]      // several reduction chunks on the CPU backend
    public void Total_variation_matches_reference(int c, int h, int w)
    {
        var rnd = new TestData(c * h * w);
        var shape = new Shape(c, h, w);
        var xd = rnd.UniformF32(shape.Size, 100);
        var before = rnd.UniformF32(shape.Size);
        const float weight = 0.25f;
        var (loss, g) = Losses.Reference.TotalVariation(xd, c, h, w);
        OnEveryBackend("TV gradient", VectorOps.Reference.Axpy(weight, g, before), b =>
        {
            using var x = fx.Make(b, shape, xd);
            using var grad = fx.Make(b, shape, before);
            using var scalars = fx.Poisoned(b, Shape.Vector(1));
            b.TotalVariationLoss(x, weight, grad, scalars, 0);
            Assertions.Close(loss, fx.Read(scalars)[0], Tol, $"TV loss on {b.Name}");
            return fx.Read(grad);
        });
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(17)]
    [InlineData(1023)]
    [InlineData(40_000)]           // several reduction chunks on the CPU backend
    public void Vector_operations_match_reference(int n)
    {
        var rnd = new TestData(n);
        var shape = Shape.Vector(n);
        var xd = rnd.UniformF32(n);
        var yd = rnd.UniformF32(n);
        double dot = VectorOps.Reference.Dot(xd, yd);
        OnEveryBackend("dot, norm", [dot, VectorOps.Reference.Norm(xd)], b =>
        {
            using var x = fx.Make(b, shape, xd);
            using var y = fx.Make(b, shape, yd);
            using var scalars = fx.Poisoned(b, Shape.Vector(4));
            b.Dot(x, y, scalars, 0);
            b.Norm(x, scalars, 1);
            return fx.Read(scalars)[..2];
        });
        OnEveryBackend("subtract", VectorOps.Reference.Subtract(xd, yd), b => Binary(b, xd, yd, (x, y, z) => b.Subtract(x, y, z)));
        OnEveryBackend("multiply", VectorOps.Reference.Multiply(xd, yd), b => Binary(b, xd, yd, (x, y, z) => b.Multiply(x, y, z)));
        OnEveryBackend("copy", xd, b => Binary(b, xd, yd, (x, _, z) => b.Copy(x, z)));
        OnEveryBackend("axpy then scale", VectorOps.Reference.Scale(VectorOps.Reference.Axpy(-0.3, xd, yd), 2.5), b =>
        {
            using var x = fx.Make(b, shape, xd);
            using var acc = fx.Make(b, shape, yd);
            b.Axpy(-0.3f, x, acc);
            b.Scale(acc, 2.5f);
            return fx.Read(acc);
        });
        OnEveryBackend("fill", Enumerable.Repeat(1.5, n).ToArray(), b =>
        {
            using var z = fx.Poisoned(b, shape);
            b.Fill(z, 1.5f);
            return fx.Read(z);
        });
    }

    float[] Binary(IBackend b, double[] xd, double[] yd, Action<Tensor, Tensor, Tensor> op)
    {
        var shape = Shape.Vector(xd.Length);
        using var x = fx.Make(b, shape, xd);
        using var y = fx.Make(b, shape, yd);
        using var z = fx.Poisoned(b, shape);
        op(x, y, z);
        return fx.Read(z);
    }

    [Fact]
    public void Weighted_sum_combines_scalars_on_the_device()
    {
        var rnd = new TestData(11);
        var vals = rnd.UniformF32(5);
        var coef = rnd.UniformF32(4);
        double expected = Enumerable.Range(0, 4).Sum(k => coef[k] * vals[k]);
        OnEveryBackend("weighted sum", [expected], b =>
        {
            using var scalars = fx.Make(b, Shape.Vector(5), vals);
            using var coefficients = fx.Make(b, Shape.Vector(4), coef);
            b.WeightedSum(scalars, coefficients, 4);
            return [fx.Read(scalars)[4]];
        });
    }

    [Fact]
    public void Wrong_shapes_are_refused_on_the_host_before_any_launch()
    {
        foreach (var B in fx.All)
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

    [Fact]
    public void Tensors_of_another_backend_are_refused()
    {
        using var a = fx.Backend.Allocate(Shape.Vector(4));
        using var b = fx.CpuVector.Allocate(Shape.Vector(4));
        Assert.Throws<ArgumentException>(() => fx.CpuVector.Copy(a, b));
        Assert.Throws<ArgumentException>(() => fx.Backend.Copy(b, a));
    }
}

[Collection(IlgpuCpuCollection.Name)]
public class OptimizerKernelTests(IlgpuCpuFixture fx)
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(17, 3)]
    [InlineData(1023, 10)]
    public void Adam_step_matches_reference(int n, int step)
    {
        var rnd = new TestData(n + step);
        var xd = rnd.UniformF32(n); var gd = rnd.UniformF32(n); var md = rnd.UniformF32(n, 0.1);
        var vd = rnd.UniformF32(n, 0.1).Select(Math.Abs).ToArray();
        var (x, m, v) = ((double[])xd.Clone(), (double[])md.Clone(), (double[])vd.Clone());
        VectorOps.Reference.Adam(x, gd, m, v, 0.05, 0.9, 0.999, 1e-8, step);
        foreach (var b in fx.All)
        {
            using var tx = fx.Make(b, Shape.Vector(n), xd);
            using var tg = fx.Make(b, Shape.Vector(n), gd);
            using var tm = fx.Make(b, Shape.Vector(n), md);
            using var tv = fx.Make(b, Shape.Vector(n), vd);
            b.AdamStep(tx, tg, tm, tv, new AdamParameters(0.05f, 0.9f, 0.999f, 1e-8f, step));
            Assertions.Close(x, fx.Read(tx), 1e-4, $"Adam x on {b.Name}");
            Assertions.Close(m, fx.Read(tm), 1e-4, $"Adam m on {b.Name}");
            Assertions.Close(v, fx.Read(tv), 1e-4, $"Adam v on {b.Name}");
        }
    }
}

public class AgreementCheckTests
{
    [Fact]
    public void The_device_check_covers_every_op_and_passes_for_the_scalar_cpu_path()
    {
        using var scalar = new GpuStyle.Engine.Cpu.CpuBackend(GpuStyle.Kernels.CpuSimd.Scalar);
        var results = GpuStyle.Engine.Bench.AgreementCheck.Run(scalar);
        Assert.All(results, r => Assert.True(r.Passed, $"{r.Op} {r.Shape}: {r.RelativeError:E1}"));
        foreach (var op in new[] { "conv forward + ReLU", "conv backward (ReLU mask)", "gram forward", "gram backward",
            "max pool forward", "max pool backward", "avg pool forward", "avg pool backward", "content loss gradient", "TV gradient",
            "dot product, norm", "L-BFGS direction" })
            Assert.Contains(results, r => r.Op == op);
        // It compares real work: the largest error is tiny but not exactly zero (a different summation order).
        Assert.Contains(results, r => r.RelativeError > 0);
    }
}

/// <summary>The tiled kernels with a non-square tile and another chunk: the GPU default (16×16, 16) is not square-
/// specific by accident, and nothing assumes TileWidth = TileHeight or that the chunk divides the channels.</summary>
public class TiledShapeTests
{
    [Theory]
    [InlineData(5, 9, 7, 11)]
    [InlineData(17, 3, 13, 6)]
    public void Tiled_conv_with_a_4x2_tile_and_5_channel_chunks_matches_reference(int cin, int cout, int h, int w)
    {
        using var b = GpuStyle.Engine.Ilgpu.IlgpuBackend.Open("ilgpu-cpu",
            GpuStyle.Engine.Ilgpu.IlgpuLaunchOptions.Tiny with { Conv = GpuStyle.Engine.Ilgpu.ConvKernel.Tiled, TileWidth = 4, TileHeight = 2, InputChunk = 5 });
        var rnd = new TestData(cin * cout + h);
        var d = new ConvDims(cin, cout, h, w);
        var xd = rnd.UniformF32(cin * h * w); var wd = rnd.ConvWeights(cin, cout); var bd = rnd.UniformF32(cout, 0.1);
        var dyd = rnd.UniformF32(cout * h * w);
        using var x = b.Make(new Shape(cin, h, w), xd);
        using var wt = b.Make(new Shape(cout, cin, 9), wd);
        using var bias = b.Make(Shape.Vector(cout), bd);
        using var y = b.Make(new Shape(cout, h, w), null);
        b.Conv3x3Forward(x, wt, bias, y, relu: true);
        var yRef = Conv3x3.Reference.Forward(xd, wd, bd, d, relu: true);
        Assertions.Close(yRef, b.Read(y), 1e-4, "tiled 4×2 forward");
        using var dy = b.Make(new Shape(cout, h, w), dyd);
        using var dx = b.Make(new Shape(cin, h, w), null);
        b.Conv3x3BackwardInput(dy, y, wt, dx);
        Assertions.Close(Conv3x3.Reference.BackwardInput(dyd, yRef, wd, d), b.Read(dx), 1e-4, "tiled 4×2 backward");
    }
}

/// <summary>The blocked convolution's staging (Conv3x3.IlgpuTiled.StagePatchInBatches, StageWeightsInBatches): four
/// rows' loads before their stores (BlockedBatch=4, the default) and one at a time (1, the comparison's setting), at
/// the GPU's 64×8 tile (128 threads: four warps, each walking its own rows) and at a tiny one (6 threads sharing a
/// row), with chunks that leave a partial one, maps past one tile with edges, and output channels past one group of
/// 8 — forward with bias and ReLU, backward through ReLU's mask, against the float64 reference.</summary>
public class BlockedStagingTests
{
    [Theory]
    [InlineData(13, 3, 9, 70, 64, 8, 8, 4)]    // VGG's backward to the colour channels in small: 3 outputs, chunks 8 + 5
    [InlineData(3, 11, 17, 21, 64, 8, 8, 4)]   // its first layer in small: 3 inputs, 11 outputs (a group and a partial one)
    [InlineData(13, 3, 9, 70, 64, 8, 8, 1)]
    [InlineData(3, 11, 17, 21, 64, 8, 8, 1)]
    [InlineData(13, 3, 9, 72, 64, 8, 8, 4)]    // a width that is a multiple of 4: 16-byte stores, the second tile's last 56 pixels outside
    [InlineData(3, 11, 17, 20, 64, 8, 8, 4)]
    [InlineData(7, 9, 11, 13, 8, 3, 5, 4)]     // 6 threads a group: a row walked by all of them, 4 rows a batch
    [InlineData(7, 9, 11, 13, 8, 3, 5, 1)]
    public void Blocked_conv_staged_in_batches_or_not_matches_reference(int cin, int cout, int h, int w, int tileWidth, int tileHeight, int chunk, int batch)
    {
        using var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny with
        {
            Conv = ConvKernel.Blocked, BlockedWidth = tileWidth, BlockedHeight = tileHeight, BlockedChunk = chunk, BlockedBatch = batch,
        }, new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: 32));
        ConvChecks.ForwardAndBackwardMatch(b, cin, 11 * cin + cout + batch, 1e-5, $"blocked {tileWidth}×{tileHeight}, chunk {chunk}, batch {batch}", cout, h, w);
    }

    [Fact]
    public void Blocked_batch_other_than_1_or_4_is_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => IlgpuBackend.Validate(new IlgpuLaunchOptions().With("BlockedBatch=2"), "an H200", 1024));
        Assert.Contains("BlockedBatch is 1", e.Message);
    }
}

/// <summary>The blocked Gram kernels at the GPU's 16×16 groups, which run entry points compiled with T = 16.</summary>
public class BlockedGramAtGpuGroupsTests
{
    [Theory]
    // A slice is at least 4 tiles' side of positions (256 here): N below 256·splits gets fewer splits.
    [InlineData(70, 29, 31, 3)]    // two 64-sided tiles a side (the second mostly past C), three splits
    [InlineData(128, 9, 17, 1)]    // two whole tiles, one split
    [InlineData(70, 71, 69, 19)]   // more splits than the reduction's 8 rows: each thread adds several, the rows' sums in order
    [InlineData(70, 37, 41, 5, 0)] // the first reduction, one thread an entry (GramReduceRows=0)
    [InlineData(70, 37, 41, 5, 3)] // 3 rows for 5 splits: rows that add 2 and rows that add 1
    [InlineData(70, 97, 101, 37, 3)]  // 37 splits in 3 rows: two rounds of four loads in flight, then the rest one by one
    [InlineData(70, 97, 101, 37, 8)]  // 37 in 8 rows: one round of four, then 1 or 0 more
    public void Gram_with_16x16_groups_matches_the_reference(int c, int h, int w, int splits, int reduceRows = 8)
    {
        using var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny with
            {
                Conv = ConvKernel.Blocked, TileWidth = 16, TileHeight = 16, GramSplits = splits, GramReduceRows = reduceRows,
            },
            new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: 64));
        var rnd = new TestData(Environment.TickCount ^ c);
        int n = h * w;
        var fd = rnd.UniformF32(c * n);
        var dgd = rnd.UniformF32(c * c);
        var before = rnd.UniformF32(c * n);
        using var f = b.Make(new Shape(c, h, w), fd);
        using var g = b.Make(new Shape(c, c, 1), null);
        b.GramForward(f, g);
        Assertions.Close(Gram.Reference.Forward(fd, c, n), b.Read(g), 1e-5, $"Gram forward, {c}×{n}, 16×16 groups");
        using var dg = b.Make(new Shape(c, c, 1), dgd);
        using var df = b.Make(new Shape(c, h, w), before);
        b.GramBackwardAccumulate(f, dg, df);
        Assertions.Close(VectorOps.Reference.Axpy(1, Gram.Reference.Backward(fd, dgd, c, n), before), b.Read(df), 1e-5,
            $"Gram backward, {c}×{n}, 16×16 groups");
    }
}
