using GpuStyle.Engine;
using GpuStyle.Engine.Ilgpu;
using GpuStyle.Kernels;
using GpuStyle.Tests.Support;

namespace GpuStyle.Tests;

/// <summary>
/// --conv tuned (IlgpuBackend.Tuning.cs): each convolution's shape and direction, on first use, runs the blocked
/// kernel and Winograd F(2×2) and F(4×4), and keeps the fastest that agrees with the blocked one. Timings are the
/// device's, so most tests give the backend a clock that says which candidate is fastest; one times for real.
/// </summary>
public class ConvTuningTests
{
    static IlgpuBackend Tuned(IlgpuLaunchOptions? options = null) => IlgpuBackend.Open("ilgpu-cpu",
        options ?? IlgpuLaunchOptions.Tiny with { Conv = ConvKernel.Tuned }, CpuSimulation.Small);

    /// <summary>A clock under which the given candidate takes 1 ms and every other 2–4 ms, counting its calls.</summary>
    sealed class Clock(ConvAlgorithm forward, ConvAlgorithm backward)
    {
        public int Calls;
        public double Time(ConvDims d, bool isBackward, ConvAlgorithm a)
        {
            Calls++;
            return a == (isBackward ? backward : forward) ? 1e-3 : 2e-3 + (int)a * 1e-3;
        }
    }

    /// <summary>The forward (bias, ReLU) and the backward through ReLU's mask of cin → cout on an h×w map, against the
    /// float64 reference.</summary>
    static void ForwardAndBackwardMatch(IlgpuBackend b, int cin, int cout, int h, int w, int seed, string what)
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
        Assertions.Close(yRef, b.Read(y), 1e-4, $"tuned forward, {what}");
        using var dy = b.Make(new Shape(cout, h, w), dyd);
        using var mask = b.Make(new Shape(cout, h, w), yRef);
        using var dx = b.Make(new Shape(cin, h, w), null);
        b.Conv3x3BackwardInput(dy, mask, wt, dx);
        Assertions.Close(Conv3x3.Reference.BackwardInput(dyd, yRef, wd, d), b.Read(dx), 1e-4, $"tuned backward, {what}");
    }

    [Theory]
    [InlineData(ConvAlgorithm.Winograd4, ConvAlgorithm.Winograd2)]
    [InlineData(ConvAlgorithm.Staged, ConvAlgorithm.Winograd4)]
    [InlineData(ConvAlgorithm.Winograd2, ConvAlgorithm.Staged)]
    public void Each_shape_and_direction_runs_its_fastest_candidate_and_is_tuned_once(ConvAlgorithm forward, ConvAlgorithm backward)
    {
        using var b = Tuned();
        Assert.StartsWith("ilgpu/ilgpu-cpu", b.Name);
        Assert.Contains("tuned conv", b.Name);
        var clock = new Clock(forward, backward);
        b.TuningClock = clock.Time;
        ForwardAndBackwardMatch(b, 19, 33, 13, 11, 7 + (int)forward, "first use");
        var tunings = b.Tunings;
        Assert.Equal(2, tunings.Count);
        Assert.Equal((19, 33, 13, 11, false, forward), (tunings[0].Cin, tunings[0].Cout, tunings[0].H, tunings[0].W, tunings[0].Backward, tunings[0].Chosen));
        // The backward stands for the forward 33 → 19 on the flipped weights.
        Assert.Equal((33, 19, true, backward), (tunings[1].Cin, tunings[1].Cout, tunings[1].Backward, tunings[1].Chosen));
        foreach (var t in tunings)
        {
            Assert.Equal(Enum.GetValues<ConvAlgorithm>(), t.Trials.Select(r => r.Algorithm));
            Assert.All(t.Trials, r => Assert.True(r.Agrees && r.Error < 1e-5, $"{t}: {r}"));   // fp32 Winograd is ~1e-7 off here
        }
        Assert.Equal(6, clock.Calls);
        // The same shapes again: no tuning, the same choices, the same results.
        ForwardAndBackwardMatch(b, 19, 33, 13, 11, 99, "second use");
        Assert.Equal(6, clock.Calls);
        Assert.Equal(2, b.Tunings.Count);
        // Another map size is another shape.
        ForwardAndBackwardMatch(b, 19, 33, 6, 9, 5, "another size");
        Assert.Equal(12, clock.Calls);
        Assert.Equal(4, b.Tunings.Count);
        Assert.StartsWith($"19→33 13×11 forward: {ConvTuning.Describe(forward)} (blocked ", tunings[0].ToString());
    }

    [Fact]
    public void A_candidate_that_disagrees_with_the_blocked_kernel_is_never_chosen()
    {
        using var b = Tuned();
        // F(4×4) "fastest" both ways, but computing wrongly (as a kernel might on some device): one value in 7 off by 1%
        // of the output's scale — small enough to pass a loose look, 10× over the tolerance.
        b.TuningClock = new Clock(ConvAlgorithm.Winograd4, ConvAlgorithm.Winograd4).Time;
        b.AfterTrialRun = (a, output) =>
        {
            if (a != ConvAlgorithm.Winograd4) return;
            var v = b.Read(output);
            float scale = v.Max(MathF.Abs);
            for (int i = 0; i < v.Length; i += 7) v[i] += 0.05f * scale;
            b.Upload(output, v);
        };
        ForwardAndBackwardMatch(b, 23, 17, 9, 14, 3, "F(4×4) corrupted");
        foreach (var t in b.Tunings)
        {
            var bad = t.Trials.Single(r => r.Algorithm == ConvAlgorithm.Winograd4);
            Assert.False(bad.Agrees, t.ToString());
            Assert.True(bad.Error > IlgpuBackend.TuningTolerance, t.ToString());
            // Of the two that agree, F(2×2) (2 ms + 1) loses to blocked (2 ms) under this clock.
            Assert.Equal(ConvAlgorithm.Staged, t.Chosen);
            Assert.Contains("refused", t.ToString());
        }
    }

    [Fact]
    public void Few_channel_convolutions_are_not_tuned()
    {
        // VGG's first layer (3 → 64) and its backward to the colour channels: Winograd needs 16 channels both ways.
        using var b = Tuned();
        var clock = new Clock(ConvAlgorithm.Winograd4, ConvAlgorithm.Winograd4);
        b.TuningClock = clock.Time;
        ForwardAndBackwardMatch(b, 3, 20, 11, 12, 4, "3 → 20");
        Assert.Empty(b.Tunings);
        Assert.Equal(0, clock.Calls);
    }

    [Fact]
    public void Timed_for_real_the_choice_is_the_fastest_candidate_that_agrees()
    {
        using var b = Tuned();
        ForwardAndBackwardMatch(b, 16, 18, 10, 7, 11, "real clock");
        Assert.Equal(2, b.Tunings.Count);
        foreach (var t in b.Tunings)
        {
            Assert.All(t.Trials, r => Assert.True(r.Agrees && r.Seconds > 0, t.ToString()));
            Assert.Equal(t.Trials.MinBy(r => r.Seconds)!.Algorithm, t.Chosen);
        }
    }

    [Fact]
    public void Tuned_refuses_the_tf32_winograd_gemms_and_the_cpu_backend_refuses_tuned()
    {
        var e = Assert.Throws<ArgumentException>(() => Tuned(IlgpuLaunchOptions.Tiny with { Conv = ConvKernel.Tuned, WinogradMma = 1 }));
        Assert.Contains("WinogradMma", e.Message);
        var cpu = Assert.Throws<DeviceNotFoundException>(() => Backends.Open("cpu", ConvKernel.Tuned));
        Assert.Contains("--conv tuned", cpu.Message);
    }

    [Fact]
    public void Scratch_buffers_count_as_device_memory()
    {
        // Winograd's transformed weights and tiles live in scratch buffers: the meter `bench --profile` reports must
        // see them, not only the tensors.
        using var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny with { Conv = ConvKernel.Winograd, WinogradTile = 4 }, CpuSimulation.Small);
        var rnd = new TestData(12);
        using var x = b.Make(new Shape(32, 12, 12), rnd.UniformF32(32 * 144));
        using var w = b.Make(new Shape(48, 32, 9), rnd.ConvWeights(32, 48));
        using var bias = b.Make(Shape.Vector(48), rnd.UniformF32(48, 0.1));
        using var y = b.Make(new Shape(48, 12, 12), null);
        long before = b.Memory.InUse;
        b.Conv3x3Forward(x, w, bias, y, relu: false);
        // U alone: 36 positions × 32 inputs × 48 outputs (both multiples of the tiny 16-blocks) floats.
        Assert.True(b.Memory.InUse - before >= 4L * 36 * 32 * 48, $"{b.Memory.InUse - before} bytes of scratch counted");
        Assert.True(b.Memory.Peak >= b.Memory.InUse);
    }
}
