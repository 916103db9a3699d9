using System.Diagnostics;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using GpuStyle.Engine.Network;
using GpuStyle.Engine.Pipelines;
using GpuStyle.Kernels;

namespace GpuStyle.Engine.Bench;

public sealed record PeakResult(double OneCoreGflops, double AllCoresGflops, int Threads);
public sealed record LayerResult(string Layer, int Cin, int Cout, int H, int W, double ForwardGflop,
    double ForwardSeconds, double BackwardSeconds, double GramGflop, double GramForwardSeconds, double GramBackwardSeconds)
{
    public double ForwardGflops => ForwardGflop / ForwardSeconds;
    public double BackwardGflops => ForwardGflop / BackwardSeconds;
    public double GramForwardGflops => GramGflop / GramForwardSeconds;
    public double GramBackwardGflops => GramGflop / GramBackwardSeconds;
}
/// <param name="SecondsPerIteration">One L-BFGS iteration as timed (its history still short).</param>
/// <param name="FullHistorySeconds">What L-BFGS's history adds once full (100 pairs: two passes over 201 image-sized
/// rows instead of the timed run's few, and the recursion on 100 pairs), timed separately on the same device.</param>
public sealed record IterationResult(int Size, int Height, int Width, double Gflop, double SecondsPerIteration, int Iterations,
    double FullHistorySeconds)
{
    public double Gflops => Gflop / SecondsPerIteration;
    public double SteadySeconds => SecondsPerIteration + FullHistorySeconds;
}

/// <summary>
/// What `gpustyle bench` measures: the machine's FMA peak, the convolutions and Gram matrices of every VGG layer at
/// one size, and whole iterations. Weights are random (He): timings do not depend on the values.
/// </summary>
public static class Benchmark
{
    /// <summary>
    /// The FMA peak: 10 independent Vector256 FMA chains per thread (enough to cover the FMA latency on two ports),
    /// on one core and then on all. On ARM64, 16 Vector128 chains of fmla (up to 4 FMA pipes of 4 cycles' latency —
    /// Apple's M-series, Neoverse V1/V2). On x86 without FMA3, 12 chains of SSE multiply and add (what the 128-bit
    /// kernels run there; 16 xmm registers hold 12 chains and the 2 constants). Without vectors, the scalar peak of
    /// the 10-chain loop.
    /// </summary>
    public static PeakResult MeasurePeak(double seconds = 0.5)
    {
        int threads = Environment.ProcessorCount;
        double one = 0, all = 0;
        for (int k = 0; k < 3; k++)   // the best of three, like every timing here
        {
            one = Math.Max(one, PeakOn(1, seconds / 2));
            all = Math.Max(all, PeakOn(threads, seconds / 2));
        }
        return new PeakResult(one, Math.Max(one, all), threads);
    }

    static double PeakOn(int threads, double seconds)
    {
        long iterations = 1_000_000;
        // Calibrate so each measurement lasts about `seconds`.
        while (true)
        {
            var sw = Stopwatch.StartNew();
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, _ => FmaLoop(iterations));
            double t = sw.Elapsed.TotalSeconds;
            if (t > seconds * 0.8 || iterations > 1L << 34)
                return threads * (double)iterations * FlopsPerIteration / t / 1e9;
            iterations = (long)(iterations * Math.Max(2, seconds / Math.Max(t, 1e-4)));
        }
    }

    static readonly int FlopsPerIteration = Fma.IsSupported ? 10 * 16 : AdvSimd.Arm64.IsSupported ? 16 * 8
        : Vector128.IsHardwareAccelerated ? 12 * 8 : 10 * 2;

    static float FmaLoop(long n)
    {
        if (!Fma.IsSupported && !AdvSimd.Arm64.IsSupported && Vector128.IsHardwareAccelerated)
        {
            var m = Vector128.Create(0.999999f); var c = Vector128.Create(1e-7f);
            var a0 = Vector128.Create(1f); var a1 = a0; var a2 = a0; var a3 = a0; var a4 = a0; var a5 = a0;
            var a6 = a0; var a7 = a0; var a8 = a0; var a9 = a0; var a10 = a0; var a11 = a0;
            for (long i = 0; i < n; i++)
            {
                a0 = Lanes128.Fma(a0, m, c); a1 = Lanes128.Fma(a1, m, c); a2 = Lanes128.Fma(a2, m, c);
                a3 = Lanes128.Fma(a3, m, c); a4 = Lanes128.Fma(a4, m, c); a5 = Lanes128.Fma(a5, m, c);
                a6 = Lanes128.Fma(a6, m, c); a7 = Lanes128.Fma(a7, m, c); a8 = Lanes128.Fma(a8, m, c);
                a9 = Lanes128.Fma(a9, m, c); a10 = Lanes128.Fma(a10, m, c); a11 = Lanes128.Fma(a11, m, c);
            }
            return (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11).GetElement(0);
        }
        if (AdvSimd.Arm64.IsSupported)
        {
            var m = Vector128.Create(0.999999f); var c = Vector128.Create(1e-7f);
            var a0 = Vector128.Create(1f); var a1 = a0; var a2 = a0; var a3 = a0; var a4 = a0; var a5 = a0; var a6 = a0; var a7 = a0;
            var a8 = a0; var a9 = a0; var a10 = a0; var a11 = a0; var a12 = a0; var a13 = a0; var a14 = a0; var a15 = a0;
            for (long i = 0; i < n; i++)
            {
                a0 = Lanes128.Fma(a0, m, c); a1 = Lanes128.Fma(a1, m, c); a2 = Lanes128.Fma(a2, m, c);
                a3 = Lanes128.Fma(a3, m, c); a4 = Lanes128.Fma(a4, m, c); a5 = Lanes128.Fma(a5, m, c);
                a6 = Lanes128.Fma(a6, m, c); a7 = Lanes128.Fma(a7, m, c); a8 = Lanes128.Fma(a8, m, c);
                a9 = Lanes128.Fma(a9, m, c); a10 = Lanes128.Fma(a10, m, c); a11 = Lanes128.Fma(a11, m, c);
                a12 = Lanes128.Fma(a12, m, c); a13 = Lanes128.Fma(a13, m, c); a14 = Lanes128.Fma(a14, m, c);
                a15 = Lanes128.Fma(a15, m, c);
            }
            return (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11 + a12 + a13 + a14 + a15).GetElement(0);
        }
        if (Fma.IsSupported)
        {
            var m = Vector256.Create(0.999999f); var c = Vector256.Create(1e-7f);
            var a0 = Vector256.Create(1f); var a1 = a0; var a2 = a0; var a3 = a0; var a4 = a0;
            var a5 = a0; var a6 = a0; var a7 = a0; var a8 = a0; var a9 = a0;
            for (long i = 0; i < n; i++)
            {
                a0 = Fma.MultiplyAdd(a0, m, c); a1 = Fma.MultiplyAdd(a1, m, c); a2 = Fma.MultiplyAdd(a2, m, c);
                a3 = Fma.MultiplyAdd(a3, m, c); a4 = Fma.MultiplyAdd(a4, m, c); a5 = Fma.MultiplyAdd(a5, m, c);
                a6 = Fma.MultiplyAdd(a6, m, c); a7 = Fma.MultiplyAdd(a7, m, c); a8 = Fma.MultiplyAdd(a8, m, c);
                a9 = Fma.MultiplyAdd(a9, m, c);
            }
            return (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9).GetElement(0);
        }
        float s0 = 1, s1 = 1, s2 = 1, s3 = 1, s4 = 1, s5 = 1, s6 = 1, s7 = 1, s8 = 1, s9 = 1;
        for (long i = 0; i < n; i++)
        {
            s0 = s0 * 0.999999f + 1e-7f; s1 = s1 * 0.999999f + 1e-7f; s2 = s2 * 0.999999f + 1e-7f; s3 = s3 * 0.999999f + 1e-7f;
            s4 = s4 * 0.999999f + 1e-7f; s5 = s5 * 0.999999f + 1e-7f; s6 = s6 * 0.999999f + 1e-7f; s7 = s7 * 0.999999f + 1e-7f;
            s8 = s8 * 0.999999f + 1e-7f; s9 = s9 * 0.999999f + 1e-7f;
        }
        return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7 + s8 + s9;
    }

    /// <summary>
    /// Seconds per call: one warm-up, then the fastest of at least 3 calls (repeating until minSeconds have passed).
    /// The fastest, not the mean: on a shared machine other tenants only ever make a call slower.
    /// </summary>
    public static double Time(IBackend b, Action op, double minSeconds = 0.3)
    {
        op();
        b.Synchronize();
        var total = Stopwatch.StartNew();
        double best = double.MaxValue;
        for (int reps = 0; reps < 3 || total.Elapsed.TotalSeconds < minSeconds; reps++)
        {
            long start = Stopwatch.GetTimestamp();
            op();
            b.Synchronize();
            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
        return best;
    }

    /// <summary>Conv forward (bias + ReLU) and backward (ReLU mask fused), and the Gram of its output, per conv layer.</summary>
    public static List<LayerResult> Layers(IBackend b, NetworkSpec spec, int size, string? only = null, double minSeconds = 0.3)
    {
        var results = new List<LayerResult>();
        var shapes = spec.OutputShapes(new Shape(3, size, size));
        var random = new Random(1);
        for (int i = 0; i < spec.Layers.Count; i++)
        {
            if (spec.Layers[i] is not ConvSpec conv || (only is not null && conv.Name != only)) continue;
            var s = shapes[i];
            using var x = Random(b, new Shape(conv.InChannels, s.H, s.W), random);
            using var w = b.Allocate(new Shape(conv.OutChannels, conv.InChannels, 9));
            b.Upload(w, conv.Weights);
            using var bias = b.Allocate(Shape.Vector(conv.OutChannels));
            b.Upload(bias, conv.Bias);
            using var y = b.Allocate(s);
            using var dy = Random(b, s, random);
            using var dx = b.Allocate(x.Shape);
            using var g = b.Allocate(new Shape(s.C, s.C, 1));
            using var dg = Random(b, g.Shape, random);
            double fwd = Time(b, () => b.Conv3x3Forward(x, w, bias, y, relu: true), minSeconds);
            double bwd = Time(b, () => b.Conv3x3BackwardInput(dy, y, w, dx), minSeconds);
            double gf = Time(b, () => b.GramForward(y, g), minSeconds);
            double gb = Time(b, () => b.GramBackwardAccumulate(y, dg, dy), minSeconds);
            results.Add(new LayerResult(conv.Name, conv.InChannels, conv.OutChannels, s.H, s.W, ConvGflop(conv, s), fwd, bwd,
                2.0 * s.C * s.C * s.Plane / 1e9, gf, gb));
        }
        return results;
    }

    public static double ConvGflop(ConvSpec c, Shape output) => 2.0 * 9 * c.InChannels * c.OutChannels * output.Plane / 1e9;

    /// <summary>
    /// Whole L-BFGS iterations of a style transfer (random photo and painting at size×size, the default layers),
    /// and the FLOPs one evaluation (forward to the deepest tap, backward to the pixels, the Gram matrices) costs.
    /// </summary>
    public static IterationResult Iteration(IBackend b, NetworkSpec spec, int size, RunSettings settings, int iterations)
    {
        using var run = NoiseRun(b, spec, size, settings, iterations);
        var shape = run.OutputShape;
        b.Synchronize();
        double seconds = double.MaxValue;
        for (int i = 0; i < iterations; i++)
        {
            long start = Stopwatch.GetTimestamp();
            run.Step();
            b.Synchronize();
            seconds = Math.Min(seconds, Stopwatch.GetElapsedTime(start).TotalSeconds);
        }

        var layers = settings.ContentLayers.Concat(settings.StyleLayers).ToList();
        int depth = layers.Max(spec.IndexOf) + 1;
        var shapes = spec.OutputShapes(shape);
        double gflop = 0;
        for (int i = 0; i < depth; i++)
            if (spec.Layers[i] is ConvSpec c) gflop += 2 * ConvGflop(c, shapes[i]);   // forward, and backward to its input
        foreach (var l in settings.StyleLayers)
        {
            var s = shapes[spec.IndexOf(l)];
            gflop += 2 * 2.0 * s.C * s.C * s.Plane / 1e9;
        }
        return new IterationResult(size, size, size, gflop, seconds, iterations, FullHistory(b, shape, settings.History, iterations + 1));
    }

    /// <summary>
    /// What a full history adds to an iteration beyond the timed run's short one (LbfgsOptimizer, vector-free): the
    /// two passes over the history (RowDots, CombineRows) grow with its rows — timed on a few rows and scaled, as
    /// both stream every row once — and the recursion with pairs × rows, timed at both lengths.
    /// </summary>
    static double FullHistory(IBackend b, Shape shape, int history, int had)
    {
        history = Math.Min(history, Optimizers.LbfgsOptimizer.MaxHistory(shape.Size));
        if (history <= had) return 0;
        const int sample = 9;
        using var rows = b.Allocate(new Shape(sample, 1, shape.Size));
        using var products = b.Allocate(Shape.Vector(3 * sample));
        using var coefficients = b.Allocate(Shape.Vector(sample));
        using var d = b.Allocate(shape);
        b.Fill(rows, 0.5f);
        b.Fill(coefficients, 0.25f);
        double perRow = Time(b, () =>
        {
            b.RowDots(rows, 0, 1, 2, products);
            b.CombineRows(rows, coefficients, d);
        }, 0.1) / sample;
        return 2 * (history - had) * perRow + Recursion(b, history) - Recursion(b, had);
    }

    /// <summary>The recursion on coefficients with a full ring of the given length (its cost does not depend on the
    /// values: a matrix of ones keeps them finite).</summary>
    static double Recursion(IBackend b, int history)
    {
        var ring = new LbfgsRing(history, history, 0, newPair: false);
        using var dots = b.Allocate(Shape.Vector(ring.Rows * ring.Rows));
        using var products = b.Allocate(Shape.Vector(3 * ring.Rows));
        using var coefficients = b.Allocate(Shape.Vector(ring.Rows + history));
        b.Fill(dots, 1f);
        b.Fill(products, 1f);
        return Time(b, () => b.LbfgsDirection(dots, products, coefficients, ring), 0.1);
    }

    /// <summary>Every op of whole L-BFGS iterations at one size, timed by <see cref="ProfilingBackend"/>, per
    /// iteration; the wall time of one; the most tensor memory the run held on the device; how the ops were timed;
    /// and the host reads an iteration makes.</summary>
    public static ProfileResult Profile(IBackend b, NetworkSpec spec, int size, RunSettings settings, int iterations)
    {
        var profiler = new ProfilingBackend(b);
        b.Memory.ResetPeak();
        using var run = NoiseRun(profiler, spec, size, settings, iterations);
        profiler.Reset();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < iterations; i++) run.Step();
        b.Synchronize();
        double perIteration = sw.Elapsed.TotalSeconds / iterations;
        var ops = profiler.Results().Select(o => o with { Seconds = o.Seconds / iterations, Gflop = o.Gflop / iterations, Calls = o.Calls / iterations }).ToList();
        return new ProfileResult(ops, perIteration, b.Memory.Peak, profiler.Clock,
            (double)profiler.HostReads / iterations, (double)profiler.HostFloatsRead / iterations);
    }

    /// <summary>
    /// A transfer between random pictures at size×size (timings do not depend on the content), started and stepped
    /// once — the warm-up that first-touches the L-BFGS buffers — ready for timed steps.
    /// </summary>
    static StyleRun NoiseRun(IBackend b, NetworkSpec spec, int size, RunSettings settings, int iterations)
    {
        var run = new StyleRun(b, spec, settings with { Iterations = iterations + 1 }, Picture.Noise(size, size, 1, 60f),
            [(Picture.Noise(size, size, 2, 60f), 1f)], Picture.Noise(size, size, 3));
        run.Start();
        run.Step();
        return run;
    }

    static Tensor Random(IBackend b, Shape shape, Random r)
    {
        var t = b.Allocate(shape);
        var v = new float[shape.Size];
        for (int i = 0; i < v.Length; i++) v[i] = (float)(r.NextDouble() * 2 - 1);
        b.Upload(t, v);
        return t;
    }
}

public sealed record ProfileResult(IReadOnlyList<OpProfile> Ops, double SecondsPerIteration, long PeakBytes, string Clock,
    double HostReadsPerIteration, double HostFloatsPerIteration);
