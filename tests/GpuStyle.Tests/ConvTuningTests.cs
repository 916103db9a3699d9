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
        public double Time(ConvDims d, bool isBackward, ConvPlan p)
        {
            Calls++;
            return p.Algorithm == (isBackward ? backward : forward) ? 1e-3 : 2e-3 + (int)p.Algorithm * 1e-3;
        }
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
        ConvChecks.ForwardAndBackwardMatch(b, 19, 7 + (int)forward, 1e-4, "tuned, first use", 33, 13, 11);
        var tunings = b.Tunings;
        Assert.Equal(2, tunings.Count);
        Assert.Equal((19, 33, 13, 11, false, forward), (tunings[0].Cin, tunings[0].Cout, tunings[0].H, tunings[0].W, tunings[0].Backward, tunings[0].Chosen.Algorithm));
        // The backward stands for the forward 33 → 19 on the flipped weights.
        Assert.Equal((33, 19, true, backward), (tunings[1].Cin, tunings[1].Cout, tunings[1].Backward, tunings[1].Chosen.Algorithm));
        foreach (var t in tunings)
        {
            Assert.Equal([ConvAlgorithm.Staged, ConvAlgorithm.Winograd2, ConvAlgorithm.Winograd4], t.Trials.Select(r => r.Plan.Algorithm));
            Assert.All(t.Trials, r => Assert.True(r.Agrees && r.Error < 1e-5, $"{t}: {r}"));   // fp32 Winograd is ~1e-7 off here
        }
        Assert.Equal(6, clock.Calls);
        // The same shapes again: no tuning, the same choices, the same results.
        ConvChecks.ForwardAndBackwardMatch(b, 19, 99, 1e-4, "tuned, second use", 33, 13, 11);
        Assert.Equal(6, clock.Calls);
        Assert.Equal(2, b.Tunings.Count);
        // Another map size is another shape.
        ConvChecks.ForwardAndBackwardMatch(b, 19, 5, 1e-4, "tuned, another size", 33, 6, 9);
        Assert.Equal(12, clock.Calls);
        Assert.Equal(4, b.Tunings.Count);
        Assert.StartsWith($"19→33 13×11 forward: {new ConvPlan(forward)} (blocked ", tunings[0].ToString());
    }

    /// <summary>A convolution with at most 4 output channels (on VGG, the backward to the colour channels) is tuned
    /// between the blocked kernel and the few-outputs one (Conv3x3.IlgpuFewOutputs), which, chosen, matches the
    /// float64 reference: 1–4 outputs, maps whose width is not a multiple of its 4 pixels (one narrower than 4),
    /// ReLU's mask in the backward, bias and ReLU in the forward.</summary>
    [Theory]
    [InlineData(3, 13, 9, 11)]   // the backward 13→3: the colour channels' case
    [InlineData(6, 2, 7, 10)]    // the forward 6→2 (its backward, 2→6, has 6 outputs: the blocked kernel alone)
    [InlineData(1, 5, 5, 5)]     // the backward 5→1
    [InlineData(4, 4, 6, 3)]     // 4 outputs both ways, a map 3 pixels wide
    public void Convolutions_with_few_outputs_tune_the_few_outputs_kernel_and_match_the_reference(int cin, int cout, int h, int w)
    {
        using var b = Tuned();
        b.TuningClock = new Clock(ConvAlgorithm.FewOutputs, ConvAlgorithm.FewOutputs).Time;
        ConvChecks.ForwardAndBackwardMatch(b, cin, 17 + cin * cout, 1e-5, $"few outputs, {cin}→{cout}", cout, h, w);
        Assert.Equal((cout <= 4 ? 1 : 0) + (cin <= 4 ? 1 : 0), b.Tunings.Count);
        foreach (var t in b.Tunings)
        {
            Assert.Equal(ConvAlgorithm.FewOutputs, t.Chosen.Algorithm);
            // The blocked kernel, the few-outputs one, the blocked kernel split over the inputs (5-channel chunks), then
            // the blocked kernel at 4 outputs × 8 pixels, whole and split.
            var splits = IlgpuBackend.BlockedSplitsOffered(t.Cin, 5, 8).ToList();
            Assert.Equal(["blocked", "few outputs", .. splits.Select(n => $"blocked split {n}"), "blocked 4×8", .. splits.Select(n => $"blocked 4×8 split {n}")],
                t.Trials.Select(r => r.Plan.ToString()));
            Assert.All(t.Trials, r => Assert.True(r.Agrees && r.Error < 1e-5, $"{t}: {r}"));
        }
        Assert.Contains(b.Tunings, t => t.ToString().Contains("few outputs (blocked "));
        // Again, tuned: the kernel alone writes the (NaN-filled) outputs — during the tuning the blocked kernel had
        // written them first.
        ConvChecks.ForwardAndBackwardMatch(b, cin, 5 + cin * cout, 1e-5, $"few outputs, {cin}→{cout}, second use", cout, h, w);
    }

    /// <summary>The blocked kernel split over the input channels (Conv3x3.IlgpuBlocked with splits, then
    /// Conv3x3.IlgpuTiled.SumSplits), chosen by the few-outputs tuning: uneven shares of 5-channel chunks (3 chunks in 2:
    /// 2 and 1; 5 in 4: 2, 2, 1 and an empty split, which writes zeros), bias and ReLU after the sum in the forward,
    /// ReLU's mask in the backward; offered only while a split keeps a chunk, and not at all with BlockedSplits=1.</summary>
    [Theory]
    [InlineData(3, 13, 9, 11, 2)]    // the backward 13→3, 2 splits
    [InlineData(21, 2, 7, 10, 4)]    // the forward 21→2, 4 splits (its backward, 2→21, has 21 outputs: not tuned)
    [InlineData(3, 23, 5, 6, 4)]     // the backward 23→3, 4 splits of 5 chunks
    public void The_blocked_kernel_split_over_its_inputs_matches_the_reference(int cin, int cout, int h, int w, int splits)
    {
        using var b = Tuned();
        b.TuningClock = (_, _, plan) => plan.Algorithm == ConvAlgorithm.Staged && plan.Splits == splits ? 1e-3 : 2e-3;
        ConvChecks.ForwardAndBackwardMatch(b, cin, 3 + cin * cout, 1e-5, $"blocked split {splits}, {cin}→{cout}", cout, h, w);
        var tuning = Assert.Single(b.Tunings);
        Assert.Equal($"blocked split {splits}", tuning.Chosen.ToString());
        Assert.All(tuning.Trials, r => Assert.True(r.Agrees && r.Error < 1e-5, tuning.ToString()));
        // The choice alone, on NaN-filled outputs.
        ConvChecks.ForwardAndBackwardMatch(b, cin, 7 + cin * cout, 1e-5, $"blocked split {splits}, {cin}→{cout}, second use", cout, h, w);
        using var unsplit = Tuned(IlgpuLaunchOptions.Tiny with { Conv = ConvKernel.Tuned, BlockedSplits = 1 });
        unsplit.TuningClock = (_, _, _) => 1e-3;
        ConvChecks.ForwardAndBackwardMatch(unsplit, cin, 5, 1e-5, "BlockedSplits=1", cout, h, w);
        Assert.Equal(["blocked", "few outputs", "blocked 4×8"], Assert.Single(unsplit.Tunings).Trials.Select(r => r.Plan.ToString()));
    }

    /// <summary>The blocked kernel at 4 output channels × 8 pixels a thread (Conv3x3.IlgpuBlockedFewOutputs), whole and
    /// split over the inputs, chosen by the few-outputs tuning: 1–4 outputs (its unused channels neither stored nor
    /// read past Cout), maps narrower than a thread's 8 pixels and wider than a tile, widths that allow 16-byte stores
    /// and widths that do not, uneven split shares (an empty split included), bias and ReLU in the forward, ReLU's
    /// mask in the backward — at the tiny test tile (16×3: 2×3 threads) and at the GPU's (128×8: 16×8 threads, 64-wide
    /// blocked tile).</summary>
    [Theory]
    [InlineData(3, 13, 9, 11, 1, 8, 3)]      // the backward 13→3, whole
    [InlineData(3, 13, 9, 11, 2, 8, 3)]      // split in 2 (chunks 3: 2 + 1)
    [InlineData(1, 23, 5, 6, 4, 8, 3)]       // the backward 23→1 in 4 splits of 5 chunks (2, 2, 1, none)
    [InlineData(4, 2, 7, 3, 1, 8, 3)]        // the forward 4→2 (bias, ReLU), a map 3 pixels wide
    [InlineData(6, 4, 6, 17, 2, 8, 3)]       // 4 outputs both ways (the forward and its backward 4→6)
    [InlineData(3, 13, 11, 136, 1, 64, 8)]   // the GPU's tile: a width that is a multiple of 4 (16-byte stores), two tiles
    [InlineData(3, 13, 9, 130, 2, 64, 8)]    // the GPU's tile, split: the second tile 2 pixels wide, two rows of groups
    public void The_blocked_kernel_at_4_outputs_by_8_pixels_matches_the_reference(int cin, int cout, int h, int w, int splits, int blockedWidth, int blockedHeight)
    {
        // 128 threads a group at the GPU's tile: 32 simulated warps of 4.
        using var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny with { Conv = ConvKernel.Tuned, BlockedWidth = blockedWidth, BlockedHeight = blockedHeight },
            new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: 32));
        b.TuningClock = (_, _, plan) => plan.Algorithm == ConvAlgorithm.BlockedFewOutputs && plan.Splits == splits ? 1e-3 : 2e-3;
        ConvChecks.ForwardAndBackwardMatch(b, cin, 5 + cin * cout + splits, 1e-5, $"blocked 4×8, split {splits}, {cin}→{cout}", cout, h, w);
        Assert.NotEmpty(b.Tunings);
        foreach (var t in b.Tunings)
        {
            Assert.Equal(new ConvPlan(ConvAlgorithm.BlockedFewOutputs, Splits: splits).ToString(), t.Chosen.ToString());
            Assert.All(t.Trials, r => Assert.True(r.Agrees && r.Error < 1e-5, $"{t}: {r}"));
        }
        // The choice alone, on NaN-filled outputs.
        ConvChecks.ForwardAndBackwardMatch(b, cin, 9 + cin * cout + splits, 1e-5, $"blocked 4×8, split {splits}, {cin}→{cout}, second use", cout, h, w);
    }

    [Fact]
    public void A_candidate_that_disagrees_with_the_blocked_kernel_is_never_chosen()
    {
        using var b = Tuned();
        // F(4×4) "fastest" both ways, but computing wrongly (as a kernel might on some device): one value in 7 off by 1%
        // of the output's scale — small enough to pass a loose look, 10× over the tolerance.
        b.TuningClock = new Clock(ConvAlgorithm.Winograd4, ConvAlgorithm.Winograd4).Time;
        b.AfterTrialRun = (p, output) =>
        {
            if (p.Algorithm != ConvAlgorithm.Winograd4) return;
            var v = b.Read(output);
            float scale = v.Max(MathF.Abs);
            for (int i = 0; i < v.Length; i += 7) v[i] += 0.05f * scale;
            b.Upload(output, v);
        };
        ConvChecks.ForwardAndBackwardMatch(b, 23, 3, 1e-4, "tuned, F(4×4) corrupted", 17, 9, 14);
        foreach (var t in b.Tunings)
        {
            var bad = t.Trials.Single(r => r.Plan.Algorithm == ConvAlgorithm.Winograd4);
            Assert.False(bad.Agrees, t.ToString());
            Assert.True(bad.Error > IlgpuBackend.TuningTolerance, t.ToString());
            // Of the two that agree, F(2×2) (2 ms + 1) loses to blocked (2 ms) under this clock.
            Assert.Equal(ConvAlgorithm.Staged, t.Chosen.Algorithm);
            Assert.Contains("refused", t.ToString());
        }
    }

    [Fact]
    public void A_candidate_that_fails_to_run_is_recorded_and_passed_over()
    {
        // F(2×2) "fastest", but its kernel will not load on this device (as a driver may refuse a kernel).
        using var b = Tuned();
        b.TuningClock = new Clock(ConvAlgorithm.Winograd2, ConvAlgorithm.Winograd2).Time;
        b.AfterTrialRun = (p, _) =>
        {
            if (p.Algorithm == ConvAlgorithm.Winograd2) throw new InvalidOperationException("CUDA_ERROR_INVALID_PTX (simulated)");
        };
        ConvChecks.ForwardAndBackwardMatch(b, 17, 8, 1e-4, "tuned, F(2×2) failing", 21, 7, 10);
        foreach (var t in b.Tunings)
        {
            var failed = t.Trials.Single(r => r.Plan.Algorithm == ConvAlgorithm.Winograd2);
            Assert.False(failed.Agrees);
            Assert.Contains("INVALID_PTX", failed.Failure);
            Assert.Contains("F(2×2) failed: CUDA_ERROR_INVALID_PTX", t.ToString());
            Assert.Equal(ConvAlgorithm.Staged, t.Chosen.Algorithm);   // blocked 2 ms, F(4×4) 4 ms
        }
    }

    [Theory]
    [InlineData(GramAlgorithm.Sgemm)]
    [InlineData(GramAlgorithm.Blocked)]
    public void The_gram_backward_is_tuned_where_the_sgemm_fits_and_accumulates_once(GramAlgorithm fastest)
    {
        // dF += S·F accumulates: every trial must start from dF as it was, and the call must add S·F exactly once.
        using var b = Tuned();
        int calls = 0;
        b.GramTuningClock = (_, _, a) => { calls++; return a.Algorithm == fastest ? 1e-3 : 2e-3; };
        foreach (var (c, n, tuned) in new[] { (32, 80, true), (32, 80, true), (33, 80, false), (32, 50, false) })
        {
            ConvChecks.GramBackwardMatches(b, c, n, "tuned");
            Assert.Equal(tuned, b.GramTunings.Any(t => (t.C, t.N) == (c, n)));
        }
        // 32 × 80 fits the tiny 16×16 SGEMM blocks and is tuned once; 33 channels and 50 positions do not fit them.
        Assert.Equal(2, calls);
        var tuning = Assert.Single(b.GramTunings);
        Assert.Equal(new GramPlan(fastest), tuning.Chosen);
        Assert.All(tuning.Trials, r => Assert.True(r.Agrees && r.Error < 1e-5, tuning.ToString()));
        Assert.StartsWith($"gram backward 32×80: {fastest} (Blocked ", tuning.ToString());
    }

    /// <summary>Under --conv tuned the fp32 Gram forward is tuned over its splits of the positions, once a shape: GramGrid's
    /// default (9 for 20 channels in 16-channel tiles and 600 positions), half and a quarter of it, and with 16 SMs
    /// counted (3 active tiles × 9 splits leave SMs idle) twice it. G is the reference whichever is chosen; GramSplits
    /// fixes the splits and nothing is tuned.</summary>
    [Theory]
    [InlineData(0, 0, 4, "Staged split 9, Staged split 4, Staged split 2")]
    [InlineData(0, 16, 18, "Staged split 9, Staged split 4, Staged split 2, Staged split 18")]
    [InlineData(5, 0, 5, "")]
    public void The_gram_forward_is_tuned_over_its_splits(int gramSplits, int splitsForSms, int fastest, string candidates)
    {
        const int c = 20, n = 600;
        using var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny with { Conv = ConvKernel.Tuned, GramSplits = gramSplits },
            CpuSimulation.Small with { SplitsForMultiprocessors = splitsForSms });
        int calls = 0;
        b.GramForwardTuningClock = (_, _, p) => { calls++; return p.Splits == fastest ? 1e-3 : 2e-3; };
        var fd = new TestData(Environment.TickCount ^ splitsForSms).UniformF32(c * n);
        ConvChecks.GramForwardMatches(b, fd, Gram.Reference.Forward(fd, c, n), c, n, "tuned Gram forward", uses: 2);
        Assert.Equal(candidates, string.Join(", ", b.GramForwardTunings.SelectMany(t => t.Trials).Select(t => t.Plan)));
        Assert.Equal(b.GramForwardTunings.Sum(t => t.Trials.Count), calls);
        if (candidates != "") Assert.Equal(new GramForwardPlan(GramForwardAlgorithm.Staged, fastest), b.GramForwardPlanOf(c, n));
    }

    [Fact]
    public void Few_channel_convolutions_are_not_tuned_for_Winograd()
    {
        // VGG's first layer (3 → 64) and its backward to the colour channels: Winograd needs 16 channels both ways.
        // The forward runs the blocked kernel untuned; the backward (20 → 3) is tuned between the blocked and the
        // few-outputs kernels alone (the blocked ones whole and split).
        using var b = Tuned();
        var clock = new Clock(ConvAlgorithm.Winograd4, ConvAlgorithm.Winograd4);
        b.TuningClock = clock.Time;
        ConvChecks.ForwardAndBackwardMatch(b, 3, 4, 1e-4, "tuned, 3 → 20", 20, 11, 12);
        var tuning = Assert.Single(b.Tunings);
        Assert.True(tuning.Backward);
        Assert.Equal(["blocked", "few outputs", "blocked split 2", "blocked split 4", "blocked 4×8", "blocked 4×8 split 2", "blocked 4×8 split 4"],
            tuning.Trials.Select(r => r.Plan.ToString()));
        Assert.Equal(7, clock.Calls);
    }

    [Fact]
    public void Timed_for_real_the_choice_is_the_fastest_candidate_that_agrees()
    {
        using var b = Tuned();
        ConvChecks.ForwardAndBackwardMatch(b, 16, 11, 1e-4, "tuned, real clock", 18, 10, 7);
        Assert.Equal(2, b.Tunings.Count);
        foreach (var t in b.Tunings)
        {
            Assert.All(t.Trials, r => Assert.True(r.Agrees && r.Seconds > 0, t.ToString()));
            Assert.Equal(t.Trials.MinBy(r => r.Seconds)!.Plan, t.Chosen);
        }
    }

    [Fact]
    public void Tuning_refuses_what_it_cannot_tune_and_the_cpu_backend_refuses_tuned()
    {
        var e = Assert.Throws<ArgumentException>(() => Tuned(IlgpuLaunchOptions.Tiny with { Conv = ConvKernel.Tuned, WinogradMma = 1 }));
        Assert.Contains("WinogradMma", e.Message);
        e = Assert.Throws<ArgumentException>(() => Tuned(IlgpuLaunchOptions.Tiny with { Conv = ConvKernel.Blocked, MmaTune = 1 }));
        Assert.Contains("--tf32", e.Message);
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
