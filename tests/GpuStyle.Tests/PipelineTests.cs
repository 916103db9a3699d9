using GpuStyle.Engine;
using GpuStyle.Engine.Network;
using GpuStyle.Engine.Pipelines;
using GpuStyle.Engine.Weights;
using GpuStyle.Tests.Support;
using GpuStyle.WeightsTools;

namespace GpuStyle.Tests;

/// <summary>The three optimisations at tiny sizes with fixture weights, on every backend, with both optimisers.</summary>
[Collection(IlgpuCpuCollection.Name)]
public sealed class PipelineTests(IlgpuCpuFixture fx) : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("gpustyle-pipeline-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    NetworkSpec SmallVgg16() => SmallVgg16(_dir);

    /// <summary>A fixture VGG16 of few channels (8, 12, 16, 16, 16), written into <paramref name="dir"/> and read back.</summary>
    internal static NetworkSpec SmallVgg16(string dir)
    {
        string path = Path.Combine(dir, "vgg16-small.h5");
        FixtureWeights.Write(new FixtureSpec("vgg16", KerasLayout.Keras1, 3, [8, 12, 16, 16, 16], Seed: 4), path);
        return Vgg.BuildSpec(KerasWeightsReader.Read(path));
    }

    /// <summary>A smooth random picture: a few sinusoids per channel, like a photo more than like noise.</summary>
    static Picture Smooth(int h, int w, int seed)
    {
        var r = new Random(seed);
        var v = new float[3 * h * w];
        for (int c = 0; c < 3; c++)
        {
            double a = r.NextDouble() * 0.8, b = r.NextDouble() * 0.8, ph = r.NextDouble() * 6;
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++)
                    v[(c * h + i) * w + j] = (float)(80 * Math.Sin(a * i + b * j + ph) + 20 * r.NextDouble());
        }
        return new Picture(new Shape(3, h, w), v);
    }

    static RunSettings Settings(RunMode mode, OptimizerKind optimizer) => new()
    {
        Mode = mode,
        ContentLayers = ["relu2_2"],
        StyleLayers = ["relu1_1", "relu2_1", "relu3_1"],
        Weights = new LossWeights(1f, 100f, 1e-4f),
        Optimizer = optimizer,
        LearningRate = 4f,
        Iterations = 10,
    };

    [Theory]
    [InlineData(RunMode.Transfer, OptimizerKind.Lbfgs)]
    [InlineData(RunMode.Content, OptimizerKind.Lbfgs)]
    [InlineData(RunMode.Texture, OptimizerKind.Lbfgs)]
    [InlineData(RunMode.Transfer, OptimizerKind.Adam)]
    public void Each_mode_lowers_its_loss_by_a_large_factor_on_every_backend(RunMode mode, OptimizerKind optimizer)
    {
        var spec = SmallVgg16();
        var photo = Smooth(18, 22, 1);
        var painting = Smooth(20, 16, 2);
        var settings = Settings(mode, optimizer);
        foreach (var b in fx.All)
        {
            var start = Picture.Noise(18, 22, seed: 3);
            using var run = new StyleRun(b, spec, settings, mode == RunMode.Texture ? null : photo,
                mode == RunMode.Content ? [] : [(painting, 1f)], start);
            var first = run.Start();
            Assert.Equal(0, first.Iteration);
            IterationReport last = first;
            int steps = optimizer == OptimizerKind.Adam ? 40 : 20;
            for (int i = 0; i < steps; i++)
            {
                last = run.Step();
                Assert.True(last.Evaluations >= 1);
                if (optimizer == OptimizerKind.Lbfgs) Assert.True(last.Total <= first.Total, "L-BFGS never accepts a step that raises the loss");
            }
            float factor = optimizer == OptimizerKind.Adam ? 3f : 10f;
            Assert.True(last.Total * factor < first.Total,
                $"{mode}/{optimizer} on {b.Name}: loss {first.Total} → {last.Total} in {steps} iterations, not ÷{factor}");
        }
    }

    [Fact]
    public void The_same_seed_gives_the_same_bytes_and_another_seed_does_not()
    {
        var spec = SmallVgg16();
        byte[] Run(int seed, IBackend b)
        {
            using var run = new StyleRun(b, spec, Settings(RunMode.Transfer, OptimizerKind.Lbfgs), Smooth(18, 22, 1),
                [(Smooth(20, 16, 2), 1f)], Picture.Noise(18, 22, seed));
            run.Start();
            for (int i = 0; i < 3; i++) run.Step();
            return run.Current().ToRgb();
        }
        foreach (var b in new IBackend[] { fx.CpuVector, fx.Backend })
        {
            Assert.Equal(Run(7, b), Run(7, b));
            Assert.NotEqual(Run(7, b), Run(8, b));
        }
    }

    /// <summary>f(x) = Σ aᵢ(xᵢ − cᵢ)², ill-conditioned (a spans 1…100), on the device.</summary>
    sealed class Quadratic : GpuStyle.Engine.Optimizers.IObjectiveFunction, IDisposable
    {
        readonly IBackend _b;
        readonly Tensor _a, _c, _diff;
        public Tensor Scalars { get; }
        public int TotalSlot => 0;
        public int Evaluations;

        public Quadratic(IBackend b, int n)
        {
            _b = b;
            var r = new Random(3);
            _a = b.Allocate(Shape.Vector(n)); b.Upload(_a, Enumerable.Range(0, n).Select(i => 1f + 99f * i / n).ToArray());
            _c = b.Allocate(Shape.Vector(n)); b.Upload(_c, Enumerable.Range(0, n).Select(_ => (float)r.NextDouble() * 10).ToArray());
            _diff = b.Allocate(Shape.Vector(n));
            Scalars = b.Allocate(Shape.Vector(1));
        }

        public void Evaluate(Tensor x, Tensor grad)
        {
            Evaluations++;
            _b.Subtract(x, _c, _diff);
            _b.Multiply(_diff, _a, grad);
            _b.Dot(_diff, grad, Scalars, 0);
            _b.Scale(grad, 2f);
        }

        public void Dispose() { _a.Dispose(); _c.Dispose(); _diff.Dispose(); Scalars.Dispose(); }
    }

    [Fact]
    public void Lbfgs_minimises_a_quadratic_and_says_when_it_has_converged()
    {
        foreach (var b in new IBackend[] { fx.CpuVector, fx.Backend })
        {
            using var f = new Quadratic(b, 50);
            using var start = b.Allocate(Shape.Vector(50));
            b.Fill(start, 0f);
            using var lbfgs = new GpuStyle.Engine.Optimizers.LbfgsOptimizer(b, f, start, history: 10);
            lbfgs.Start();
            float first = lbfgs.Loss;
            int steps = 0;
            while (!lbfgs.Converged && steps < 500) { lbfgs.Step(); steps++; }
            Assert.True(lbfgs.Converged, $"{b.Name}: not converged after {steps} steps (loss {lbfgs.Loss})");
            Assert.True(lbfgs.Loss < first * 1e-6, $"{b.Name}: converged at {lbfgs.Loss} from {first}");
            Assert.True(steps < 200, $"{b.Name}: {steps} steps for a 50-dimensional quadratic");
        }
    }

    [Fact]
    public void An_iteration_allocates_nothing_that_grows_with_the_image()
    {
        // Scratch buffers grow once and are reused; what remains per iteration is the small bookkeeping of the
        // thread pool (Parallel.For delegates and tasks), the same at any size.
        var spec = SmallVgg16();
        long PerIteration(int size)
        {
            using var run = new StyleRun(fx.CpuVector, spec, Settings(RunMode.Transfer, OptimizerKind.Lbfgs) with { Iterations = 10 },
                Smooth(size, size, 1), [(Smooth(size, size, 2), 1f)], Picture.Noise(size, size, 3));
            run.Start();
            run.Step();
            run.Step();
            // This thread's allocations: where the engine would allocate a tensor or a buffer (other tests running
            // in parallel allocate on their own threads and must not count).
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 4; i++) run.Step();
            return (GC.GetAllocatedBytesForCurrentThread() - before) / 4;
        }
        long small = PerIteration(32), large = PerIteration(128);   // 16× the pixels
        Assert.True(large < 2 * small + 64 * 1024, $"{small} bytes an iteration at 32 px, {large} at 128 px");
        Assert.True(large < 3 * 128 * 128 * 4, $"{large} bytes an iteration: as much as an image-sized tensor");
    }

    [Fact]
    public void Picture_preprocessing_round_trips_and_is_BGR_minus_the_mean()
    {
        var rgb = new byte[] { 255, 0, 10, 1, 2, 3 };     // two pixels
        var p = Picture.FromRgb(rgb, 1, 2);
        Assert.Equal(10 - 103.939f, p.Values[0], 3);        // B of pixel 0
        Assert.Equal(0 - 116.779f, p.Values[2], 3);         // G of pixel 0
        Assert.Equal(255 - 123.68f, p.Values[4], 3);        // R of pixel 0
        Assert.Equal(rgb, p.ToRgb());
        var clamped = new Picture(p.Shape, p.Values.Select(v => v + 1000f).ToArray()).ToRgb();
        Assert.All(clamped, v => Assert.Equal(255, v));
    }
}

public class MemoryPlanTests
{
    [Fact]
    public void The_largest_history_that_fits_is_found_at_the_asked_size()
    {
        // A small network at a large size: L-BFGS's 2·H picture-sized vectors are most of the estimate.
        var spec = new NetworkSpec(3, [new ConvSpec("relu1_1", 3, 8, new float[8 * 3 * 9], new float[8])]);
        var output = new Shape(3, 1536, 2048);
        long With(int history) => MemoryPlan.Estimate(spec, output, output, 1, new RunSettings { History = history, Iterations = 500 });
        Assert.True(With(100) > 2 * With(20));
        Assert.Equal(2L * 4 * 3 * 1536 * 2048, With(31) - With(30));   // a pair: two picture-sized float vectors
        foreach (long budget in new[] { With(37), With(37) + 1, With(38) - 1 })
            Assert.Equal(37, MemoryPlan.LargestHistoryFitting(With, budget, 100));
        Assert.Equal(99, MemoryPlan.LargestHistoryFitting(With, With(100), 100));       // below the asked one, never it
        Assert.Equal(1, MemoryPlan.LargestHistoryFitting(With, With(1), 100));
        Assert.Equal(0, MemoryPlan.LargestHistoryFitting(With, With(1) - 1, 100));     // even one pair does not fit
        Assert.Equal(0, MemoryPlan.LargestHistoryFitting(With, long.MaxValue - 1, 1));  // nothing shorter than 1
    }

    [Fact]
    public void The_estimate_grows_with_size_and_the_largest_fitting_size_fits()
    {
        var layers = new List<LayerSpec>();
        int cin = 3;
        foreach (var (name, cout) in new[] { ("relu1_1", 64), ("relu1_2", 64) })
        {
            layers.Add(new ConvSpec(name, cin, cout, new float[cout * cin * 9], new float[cout]));
            cin = cout;
        }
        layers.Add(new PoolSpec("pool1"));
        layers.Add(new ConvSpec("relu2_1", 64, 128, new float[128 * 64 * 9], new float[128]));
        var spec = new NetworkSpec(3, layers);
        var settings = new RunSettings { History = 100, Iterations = 500 };
        long At(int size) => MemoryPlan.Estimate(spec, new Shape(3, size, size), new Shape(3, size, size), 4, settings);
        // About quadratic in the side once past the fixed parts (Winograd's GPU scratch is at most 32 MB).
        Assert.True(At(1024) > 3.5 * At(512));
        Assert.True(At(256) > 2 * At(128));
        // 64 floats of activations a pixel ×2 (+ gradients), plus 206 image-sized optimiser vectors: > 1 KB a pixel.
        Assert.True(At(512) > 512L * 512 * 1000);
        long budget = At(300);
        int fits = MemoryPlan.LargestFitting(At, budget, 1024);
        Assert.Equal(288, fits);                          // multiples of 16: 288 fits, 304 does not
        Assert.True(At(fits) <= budget && At(fits + 16) > budget);

        // Past 2³¹ values in a feature map (64 channels × 6 000² here) the estimate used to overflow an int; now such
        // a run never fits, however much memory there is, and the largest fitting size is one whose maps the engine
        // can index (its arrays and kernels take int indices).
        Assert.Equal(long.MaxValue, At(6000));
        int indexable = MemoryPlan.LargestFitting(At, long.MaxValue - 1, 6000);
        Assert.Equal(5760, indexable);                    // padded: 64 × 5 762 × 5 792 ≤ Array.MaxLength < 64 × 5 778 × 5 808
        Assert.True(At(indexable) < long.MaxValue && At(indexable + 16) == long.MaxValue);
        Assert.True(At(indexable) > At(4000));
    }
}

/// <summary>Preserving the photo's colours: the result has the stylised picture's luminance and the photo's chroma.</summary>
public class PreserveColorsTests
{
    /// <summary>YIQ of a preprocessed picture's pixel, from 0..255 RGB (float64, the textbook matrix).</summary>
    internal static (double Y, double I, double Q) Yiq(Picture x, int p)
    {
        int plane = x.Height * x.Width;
        double b = x.Values[p] + Picture.MeanBgr[0], g = x.Values[plane + p] + Picture.MeanBgr[1], r = x.Values[2 * plane + p] + Picture.MeanBgr[2];
        return (0.299 * r + 0.587 * g + 0.114 * b, 0.596 * r - 0.274 * g - 0.322 * b, 0.211 * r - 0.523 * g + 0.312 * b);
    }

    static Picture Random(int h, int w, Random random)
    {
        var v = new float[3 * h * w];
        for (int i = 0; i < v.Length; i++) v[i] = (float)(random.NextDouble() * 255 - 120);
        return new Picture(new Shape(3, h, w), v);
    }

    [Fact]
    public void The_result_has_one_pictures_luminance_and_the_others_chroma()
    {
        var random = new Random();
        Picture stylised = Random(5, 7, random), photo = Random(5, 7, random);
        var result = stylised.WithColorsOf(photo);
        for (int p = 0; p < 35; p++)
        {
            var (y, i, q) = Yiq(result, p);
            Assert.Equal(Yiq(stylised, p).Y, y, 1e-3);
            Assert.Equal(Yiq(photo, p).I, i, 1e-3);
            Assert.Equal(Yiq(photo, p).Q, q, 1e-3);
        }
        Assert.Equal(photo.Values, photo.WithColorsOf(photo).Values);   // its own colours change nothing
        Assert.Throws<ArgumentException>(() => stylised.WithColorsOf(Random(7, 5, random)));
    }
}
