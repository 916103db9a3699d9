using ILGPU;
using ILGPU.Runtime;
using GpuStyle.Engine;
using GpuStyle.Engine.Ilgpu;
using GpuStyle.Kernels;
using GpuStyle.Tests.Support;

namespace GpuStyle.Tests;

/// <summary>
/// The TF32 tensor-core convolution (<see cref="Conv3x3.IlgpuTensorCore"/>) on the CPU accelerator, where each
/// mma.sync is emulated from the fragment layout the PTX ISA documents: what is checked here is the kernel's tiling,
/// staging, fragment loads and stores, and the TF32 rounding. Groups of 32 threads (one warp, 32 channels × 8×4 pixels)
/// and 64 (two warps along the channels).
/// </summary>
public sealed class TensorCoreFixture : IDisposable
{
    public IlgpuBackend OneWarp { get; } = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny.WithTf32(tiny: true), CpuSimulation.Warp32);
    public IlgpuBackend TwoWarps { get; } = IlgpuBackend.Open("ilgpu-cpu",
        IlgpuLaunchOptions.Tiny.WithTf32(tiny: true) with { MmaWarpsCo = 2, MmaTileWidth = 16, MmaTileHeight = 2, MmaChunk = 16 }, CpuSimulation.Warp32);

    /// <summary>As on a GPU: layers with fewer than 4 channels either way run the blocked fp32 kernel instead.</summary>
    public IlgpuBackend Mixed { get; } = IlgpuBackend.Open("ilgpu-cpu",
        IlgpuLaunchOptions.Tiny.WithTf32(tiny: true) with { MmaMinChannels = 4 }, CpuSimulation.Warp32);

    /// <summary>The next chunk's patch prefetched into registers during the current chunk's mma work: two warps
    /// along the channels, 8×4 tiles (64 threads, 8 elements of a 480-float patch each).</summary>
    public IlgpuBackend Prefetching { get; } = IlgpuBackend.Open("ilgpu-cpu",
        IlgpuLaunchOptions.Tiny.WithTf32(tiny: true) with { MmaWarpsCo = 2, MmaPrefetch = 1 }, CpuSimulation.Warp32);

    /// <summary>Asynchronous copies (MmaPrefetch 2; emulated here, as everywhere but CUDA, each copy made at the latest
    /// moment its wait allows): two patch buffers, the weights in two halves of taps. Two warps along the channels, 8×4
    /// tiles, 8-channel chunks.</summary>
    public IlgpuBackend Asynchronous { get; } = IlgpuBackend.Open("ilgpu-cpu",
        IlgpuLaunchOptions.Tiny.WithTf32(tiny: true) with { MmaWarpsCo = 2, MmaPrefetch = 2 }, CpuSimulation.Warp32);

    /// <summary><see cref="Asynchronous"/>'s shape without prefetching: the same sums, bit for bit.</summary>
    public IlgpuBackend NotAsynchronous { get; } = IlgpuBackend.Open("ilgpu-cpu",
        IlgpuLaunchOptions.Tiny.WithTf32(tiny: true) with { MmaWarpsCo = 2 }, CpuSimulation.Warp32);

    /// <summary>Asynchronous copies with 16-channel chunks: each half of taps spans both 8-channel steps.</summary>
    public IlgpuBackend AsynchronousWideChunks { get; } = IlgpuBackend.Open("ilgpu-cpu",
        IlgpuLaunchOptions.Tiny.WithTf32(tiny: true) with { MmaWarpsCo = 2, MmaTileWidth = 16, MmaTileHeight = 2, MmaChunk = 16, MmaPrefetch = 2 },
        CpuSimulation.Warp32);

    public void Dispose()
    {
        OneWarp.Dispose();
        TwoWarps.Dispose();
        Mixed.Dispose();
        Prefetching.Dispose();
        Asynchronous.Dispose();
        NotAsynchronous.Dispose();
        AsynchronousWideChunks.Dispose();
    }
}

public class TensorCoreTests(TensorCoreFixture fx) : IClassFixture<TensorCoreFixture>
{
    /// <summary>The nearest number with a 10-bit mantissa (11 significant bits), ties away from zero, in float64.</summary>
    static double Tf32Reference(double v)
    {
        if (v == 0 || !double.IsFinite(v)) return v;
        int e = (int)Math.Floor(Math.Log2(Math.Abs(v)));
        double unit = Math.Pow(2, e - 10);
        return Math.Round(v / unit, MidpointRounding.AwayFromZero) * unit;
    }

    static double[] RoundAll(double[] v) => v.Select(a => (double)Conv3x3.IlgpuTensorCore.RoundTf32((float)a)).ToArray();

    [Fact]
    public void Tf32_rounding_is_round_to_nearest_ties_away_on_10_mantissa_bits()
    {
        var rnd = new Random(Environment.TickCount);
        for (int i = 0; i < 20000; i++)
        {
            float v = (float)((rnd.NextDouble() - 0.5) * Math.Pow(2, rnd.Next(-60, 60)));
            Assert.Equal(Tf32Reference(v), Conv3x3.IlgpuTensorCore.RoundTf32(v));
        }
        // Exactly halfway between two TF32 numbers: away from zero, both signs.
        float half = 1f + MathF.Pow(2, -11);
        Assert.Equal(1f + MathF.Pow(2, -10), Conv3x3.IlgpuTensorCore.RoundTf32(half));
        Assert.Equal(-(1f + MathF.Pow(2, -10)), Conv3x3.IlgpuTensorCore.RoundTf32(-half));
        Assert.Equal(float.PositiveInfinity, Conv3x3.IlgpuTensorCore.RoundTf32(float.PositiveInfinity));
        Assert.Equal(float.PositiveInfinity, Conv3x3.IlgpuTensorCore.RoundTf32(float.MaxValue));
        Assert.Equal(0f, Conv3x3.IlgpuTensorCore.RoundTf32(0f));
    }

    [Theory]
    [InlineData(1, 1, 1, 1, false)]
    [InlineData(3, 5, 5, 3, false)]      // the first layer's 3 channels: a chunk mostly zero padding
    [InlineData(9, 37, 6, 11, false)]    // two chunks, two channel blocks, edge tiles both ways
    [InlineData(16, 8, 4, 8, false)]     // exactly one tile
    [InlineData(13, 70, 3, 17, true)]    // two warps along the channels, 16×2 tiles, 16-channel chunks
    [InlineData(20, 6, 5, 18, true)]
    public void Tf32_conv_forward_and_backward_match_the_reference_on_rounded_operands(int cin, int cout, int h, int w, bool twoWarps) =>
        CheckForwardAndBackward(twoWarps ? fx.TwoWarps : fx.OneWarp, cin, cout, h, w);

    [Theory]
    [InlineData(9, 37, 6, 11)]     // two chunks: one prefetched; edge tiles both ways
    [InlineData(20, 70, 5, 18)]    // three chunks, the last partly past Cin; two channel blocks
    [InlineData(17, 16, 9, 8)]     // three chunks, a ReLU mask on the prefetched gradient
    [InlineData(5, 8, 4, 8)]       // one chunk: nothing to prefetch
    public void Prefetched_patches_give_the_same_convolutions(int cin, int cout, int h, int w) =>
        CheckForwardAndBackward(fx.Prefetching, cin, cout, h, w);

    [Theory]
    [InlineData(9, 37, 6, 11, false)]     // two chunks: both buffers; edge tiles both ways
    [InlineData(20, 70, 5, 18, false)]    // three chunks (buffer 0 twice), the last partly past Cin; two channel blocks
    [InlineData(17, 16, 9, 8, false)]     // three chunks, a ReLU mask applied after the copies arrive
    [InlineData(5, 8, 4, 8, false)]       // one chunk: nothing copied ahead
    [InlineData(33, 19, 3, 17, true)]     // 16-channel chunks: three, the last 1 channel deep
    [InlineData(13, 70, 3, 17, true)]
    public void Asynchronous_copies_give_the_same_convolutions(int cin, int cout, int h, int w, bool wideChunks) =>
        CheckForwardAndBackward(wideChunks ? fx.AsynchronousWideChunks : fx.Asynchronous, cin, cout, h, w);

    [Theory]
    [InlineData(20, 70, 5, 18)]
    [InlineData(17, 16, 9, 8)]
    public void With_8_channel_chunks_asynchronous_copies_give_the_same_sums_bit_for_bit(int cin, int cout, int h, int w)
    {
        // Taps 0–4 then 5–8 of one 8-channel step is the order the synchronous kernel runs its mmas in.
        var inputs = ConvInputs.Random(Environment.TickCount ^ 0x5a5a, cin, cout, h, w);
        inputs.AssertSame(inputs.Run(fx.NotAsynchronous), fx.Asynchronous);
    }

    [Theory]
    [InlineData(20, 70, 9, 37, 0)]   // three chunks, two channel blocks of 64, edge tiles both ways
    [InlineData(9, 64, 17, 32, 1)]   // prefetching: two chunks, one channel block, a map of 1 × 3 tiles
    [InlineData(17, 64, 9, 33, 2)]   // asynchronous copies: three chunks, edge tiles both ways
    public void The_default_tile_with_its_shape_compiled_in_matches_the_reference(int cin, int cout, int h, int w, int prefetch)
    {
        // The GPU's tile, 32×8 pixels × 2 warps of 32 channels (512 threads), runs Forward32x8 — its strides constants.
        using var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny.WithTf32(tiny: true)
            with { MmaTileWidth = 32, MmaTileHeight = 8, MmaWarpsCo = 2, MmaChunk = 8, MmaPrefetch = prefetch },
            new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: 128));
        Assert.True(Conv3x3.IlgpuTensorCore.IsDefaultShape(new IlgpuLaunchOptions().Mma(emulate: false)));
        var tile = new MmaTile(32, 8, 2, 8, emulate: true, prefetch);
        Assert.Equal(prefetch switch { 0 => nameof(Conv3x3.IlgpuTensorCore.Forward32x8), 1 => nameof(Conv3x3.IlgpuTensorCore.Forward32x8PrefetchPatch),
                _ => nameof(Conv3x3.IlgpuTensorCore.Forward32x8Async) },
            prefetch == 2 ? Conv3x3.IlgpuTensorCore.ForAsync(tile).Method.Name : Conv3x3.IlgpuTensorCore.For(tile).Method.Name);
        CheckForwardAndBackward(b, cin, cout, h, w);
    }

    [Fact]
    public void The_launcher_type_of_the_launch_bounds_path_matches_the_kernel()
    {
        // On CUDA the TF32 kernel loads through LaunchBounds as a Kernel whose launcher takes the stream first: the
        // same call here on the CPU accelerator's Kernel object checks that delegate type against the kernel's
        // parameters (the CUDA load itself needs a GPU).
        var kernel = fx.OneWarp.Accelerator.LoadKernel(typeof(Conv3x3.IlgpuTensorCore).GetMethod(nameof(Conv3x3.IlgpuTensorCore.Forward32x8))!);
        var launch = kernel.CreateLauncherDelegate<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ConvDims, int, int, int, MmaTile>>();
        Assert.NotNull(launch);
        var asynchronous = fx.OneWarp.Accelerator.LoadKernel(typeof(Conv3x3.IlgpuTensorCore).GetMethod(nameof(Conv3x3.IlgpuTensorCore.Forward32x8Async))!);
        Assert.NotNull(asynchronous.CreateLauncherDelegate<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ConvDims, int, int, int, MmaTile, GlobalAddresses>>());
        Assert.Null(fx.OneWarp.LaunchBoundsNote);   // nothing of the kind off CUDA
    }

    [Fact]
    public void Small_maps_get_lower_tiles_when_asked()
    {
        // The H200's default tile, 64 channels × 32×8: VGG's 64×64 layers have 128 groups of it, its 32×32 ones 32.
        var tile = new MmaTile(32, 8, 2, 8, emulate: false);
        var conv4 = new ConvDims(512, 512, 64, 64);
        Assert.Equal(8, IlgpuBackend.MmaTileFor(tile, 0, conv4).TileHeight);               // off: unchanged
        Assert.Equal(4, IlgpuBackend.MmaTileFor(tile, 132, conv4).TileHeight);             // 128 → 256 groups
        Assert.Equal(2, IlgpuBackend.MmaTileFor(tile, 132, new ConvDims(512, 512, 32, 32)).TileHeight);   // 32 → 64 → 128: the floor
        Assert.Equal(8, IlgpuBackend.MmaTileFor(tile, 132, new ConvDims(256, 256, 128, 128)).TileHeight); // 256 groups already
        Assert.Equal(2, IlgpuBackend.MmaTileFor(tile, 264, conv4).TileHeight);             // 128 → 256 → 512
        // A 32×2 tile's 128 threads cannot hold a prefetched patch (8 elements a thread): it is lowered anyway and
        // prefetches nothing; 32×4 keeps the patch prefetch.
        var prefetching = new MmaTile(32, 8, 2, 8, emulate: false, prefetch: 1);
        var lowest = IlgpuBackend.MmaTileFor(prefetching, 264, conv4);
        Assert.Equal((2, 0), (lowest.TileHeight, lowest.Prefetch));
        var lower = IlgpuBackend.MmaTileFor(prefetching, 132, conv4);
        Assert.Equal((4, 1), (lower.TileHeight, lower.Prefetch));
        Assert.Equal(1, IlgpuBackend.MmaTileFor(prefetching, 132, new ConvDims(256, 256, 128, 128)).Prefetch);   // not lowered
    }

    [Fact]
    public void Tile_candidates_halve_down_to_two_warps_of_pixels_while_they_launch()
    {
        // MmaTune's candidates for the H200's default tile: 32×8, 32×4, 32×2 (64 pixels: two warps' worth).
        var tile = new MmaTile(32, 8, 2, 8, emulate: false);
        Assert.Equal([8, 4, 2], IlgpuBackend.MmaTileCandidates(tile, _ => true).Select(t => t.TileHeight));
        Assert.Equal([8, 4], IlgpuBackend.MmaTileCandidates(tile, t => t.TileHeight >= 4).Select(t => t.TileHeight));
        // Prefetching: 32×2's 128 threads cannot hold the patch, so that candidate does not prefetch.
        Assert.Equal([(8, 1), (4, 1), (2, 0)], IlgpuBackend.MmaTileCandidates(tile with { Prefetch = 1 }, _ => true).Select(t => (t.TileHeight, t.Prefetch)));
        Assert.Equal([1], IlgpuBackend.MmaTileCandidates(new MmaTile(32, 1, 1, 8, emulate: false), _ => true).Select(t => t.TileHeight));
        // MmaTune with prefetching times each height without it too (once each: 32×2 never prefetches a patch).
        Assert.Equal([(8, 2), (4, 2), (2, 2), (8, 0), (4, 0), (2, 0)],
            IlgpuBackend.MmaTuneTiles(tile with { Prefetch = 2 }, _ => true).Select(t => (t.TileHeight, t.Prefetch)));
        Assert.Equal([(8, 1), (4, 1), (2, 0), (8, 0), (4, 0)],
            IlgpuBackend.MmaTuneTiles(tile with { Prefetch = 1 }, _ => true).Select(t => (t.TileHeight, t.Prefetch)));
        Assert.Equal([8, 4, 2], IlgpuBackend.MmaTuneTiles(tile, _ => true).Select(t => t.TileHeight));
    }

    [Fact]
    public void Tuned_tiles_choose_a_height_per_shape_and_compute_the_same()
    {
        // MmaTune=1 with a 16×8 tile: candidates 16×8 and 16×4 (and Winograd: the next test); the clock
        // makes 16×4 the forward's and 16×8 the backward's. Both directions must still compute the TF32 convolution
        // (checked as the other tests do).
        using var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny.WithTf32(tiny: true)
            with { MmaTileWidth = 16, MmaTileHeight = 8, MmaWarpsCo = 1, MmaTune = 1 },
            new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: 64));
        Assert.Contains("tile height", b.Name);
        int calls = 0;
        b.TuningClock = (_, backward, plan) => { calls++; return plan.Tile.TileHeight == (backward ? 8 : 4) ? 1e-3 : 2e-3; };
        CheckForwardAndBackward(b, 20, 37, 9, 16);
        Assert.Equal(10, calls);
        var tunings = b.Tunings;
        Assert.Equal(2, tunings.Count);
        Assert.All(tunings, t => Assert.Equal([8, 4, 0, 0, 0], t.Trials.Select(r => r.Plan.Tile.TileHeight)));
        Assert.Equal((ConvAlgorithm.Tf32, 4, false), (tunings[0].Chosen.Algorithm, tunings[0].Chosen.Tile.TileHeight, tunings[0].Backward));
        Assert.Equal((ConvAlgorithm.Tf32, 8, true), (tunings[1].Chosen.Algorithm, tunings[1].Chosen.Tile.TileHeight, tunings[1].Backward));
        // Every tile sums each output in the same order: the candidates agree to the last bit, or nearly.
        Assert.All(tunings, t => Assert.All(t.Trials.Where(r => r.Plan.Algorithm == ConvAlgorithm.Tf32), r => Assert.True(r.Agrees && r.Error < 1e-6, t.ToString())));
        // (The TF32 GEMM in the default 2×2 warps only: 4×4 warps' 512 threads exceed this simulation's 256.)
        Assert.StartsWith("20→37 9×16 forward: TF32 16×4 (TF32 16×8 2 ms, TF32 16×4 1 ms, F(2×2) TF32 2×2 warps 2 ms, F(2×2) 2 ms, F(4×4) 2 ms)",
            tunings[0].ToString());
    }

    [Fact]
    public void Tuned_tf32_offers_winograd_with_tf32_gemms_where_it_applies()
    {
        // MmaTune=1: beside the tile heights, F(2×2) with TF32 GEMMs in the configured 1×1-warp block and in 2×2
        // warps, and fp32 F(2×2) and F(4×4) (16+ channels both ways); the clock makes TF32-GEMM Winograd in 2×2 warps
        // the forward's choice and fp32 F(4×4) the backward's. Results must stay at the TF32 level (as WinogradTests'
        // TF32 GEMMs: 5–6e-4 measured), the fp32 ones well inside it.
        using var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny.WithTf32(tiny: true) with
        {
            MmaTileWidth = 16, MmaTileHeight = 8, MmaWarpsCo = 1, MmaTune = 1, MmaGramWarps = 1, WinogradScratch = 16 * 128 * 32,
        }, new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: 32));
        Assert.True(b.Tf32Winograd);
        Assert.Null(b.TuningNote);
        b.TuningClock = (_, backward, plan) => (backward ? plan.Algorithm == ConvAlgorithm.Winograd4 : plan.GemmWarps == 2) ? 1e-3 : 2e-3;
        var (forward, backward) = ConvChecks.ForwardAndBackwardMatch(b, 37, Environment.TickCount, 2e-3, "TF32 tuned, Winograd candidates", 20, 9, 16);
        // Each ran its own GEMMs: the forward's rounded to TF32 (an fp32 one would be ~1e-6 off), the backward's not.
        Assert.True(forward > 2e-5, $"the TF32-GEMM forward is {forward:E1} off: not rounded to TF32?");
        Assert.True(backward < 2e-5, $"the fp32 F(4×4) backward is {backward:E1} off: rounded to TF32?");
        var tunings = b.Tunings;
        Assert.Equal(2, tunings.Count);
        Assert.All(tunings, t => Assert.Equal(
            [(ConvAlgorithm.Tf32, 0), (ConvAlgorithm.Tf32, 0), (ConvAlgorithm.Winograd2Tf32, 1), (ConvAlgorithm.Winograd2Tf32, 2), (ConvAlgorithm.Winograd2, 0), (ConvAlgorithm.Winograd4, 0)],
            t.Trials.Select(r => (r.Plan.Algorithm, r.Plan.GemmWarps))));
        Assert.Equal((ConvAlgorithm.Winograd2Tf32, 2, false), (tunings[0].Chosen.Algorithm, tunings[0].Chosen.GemmWarps, tunings[0].Backward));
        Assert.Equal((ConvAlgorithm.Winograd4, true), (tunings[1].Chosen.Algorithm, tunings[1].Backward));
        foreach (var t in tunings)
            foreach (var winograd in t.Trials.Where(r => r.Plan.Algorithm != ConvAlgorithm.Tf32))
                Assert.True(winograd.Agrees && winograd.Error > 0 && winograd.Error < IlgpuBackend.Tf32TuningTolerance, t.ToString());
        // Few channels: the tiles only.
        ConvChecks.ForwardAndBackwardMatch(b, 9, 5, 2e-3, "TF32 tuned, 9 → 20", 20, 9, 16);
        Assert.All(b.Tunings.Where(t => t.Cin == 9 || t.Cout == 9).SelectMany(t => t.Trials), r => Assert.Equal(ConvAlgorithm.Tf32, r.Plan.Algorithm));
    }

    [Theory]
    [InlineData(9, 37, 6, 11, 1, 0)]
    [InlineData(20, 16, 9, 16, 1, 0)]
    [InlineData(20, 70, 9, 16, 2, 1)]    // two warps along the channels, the patch prefetched in the lowered tile
    public void Lowered_tiles_give_the_same_convolutions(int cin, int cout, int h, int w, int warpsCo, int prefetch)
    {
        // A 16×8 tile asked for more groups than any of these maps has: every convolution runs 16×4.
        using var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny.WithTf32(tiny: true)
            with { MmaTileWidth = 16, MmaTileHeight = 8, MmaWarpsCo = warpsCo, MmaPrefetch = prefetch, MmaMinGroups = 1000 },
            new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: 64));
        var lowered = IlgpuBackend.MmaTileFor(new MmaTile(16, 8, warpsCo, 8, emulate: true, prefetch), 1000, new ConvDims(cin, cout, h, w));
        Assert.Equal((4, prefetch), (lowered.TileHeight, lowered.Prefetch));
        CheckForwardAndBackward(b, cin, cout, h, w);
    }

    [Fact]
    public void A_tile_that_cannot_launch_prefetches_less_then_lowers()
    {
        // A model of sm_90 (the TF32 kernels take 64–72 registers a thread without prefetching, 96–121 with:
        // SassTests): 72 and 128 as allocated, against 65 536 registers an SM. 32×8 tiles (512 threads) launch
        // either way, 32×16 (1 024) neither: it is lowered to 32×8, keeping the prefetch.
        int[] registers = [72, 128];
        Func<MmaTile, bool> sm90 = t => registers[t.Prefetch] * Conv3x3.IlgpuTensorCore.Threads(t) <= 65536;
        var full = new MmaTile(32, 8, 2, 8, emulate: false, prefetch: 1);
        Assert.Equal(full, IlgpuBackend.LaunchableTile(full, sm90));
        var tall = new MmaTile(32, 16, 2, 8, emulate: false, prefetch: 1);
        Assert.Equal(full, IlgpuBackend.LaunchableTile(tall, sm90));
        Assert.Equal(full with { Prefetch = 0 }, IlgpuBackend.LaunchableTile(full, t => t.Prefetch == 0));
        // Lower tiles down to one warp of pixels (32×1); a tile whose threads cannot hold a prefetched patch (32×2:
        // 128 threads) does not prefetch; below 32×1 nothing launches, and it says so.
        var halved = IlgpuBackend.LaunchableTile(full, t => Conv3x3.IlgpuTensorCore.Threads(t) <= 128);
        Assert.Equal((2, 0), (halved.TileHeight, halved.Prefetch));
        var four = IlgpuBackend.LaunchableTile(full, t => t.TileHeight <= 4);
        Assert.Equal((4, 1), (four.TileHeight, four.Prefetch));
        Assert.Equal(1, IlgpuBackend.LaunchableTile(full, t => t.TileHeight == 1).TileHeight);
        var none = Assert.Throws<InvalidOperationException>(() => IlgpuBackend.LaunchableTile(full, _ => false));
        Assert.Contains("32×1", none.Message);
    }

    [Fact]
    public void Patch_prefetching_needs_enough_threads_and_asynchronous_copies_shared_memory()
    {
        Assert.Null(new MmaTile(32, 8, 2, 8, emulate: false, prefetch: 1).Problem());   // the GPU's default tile
        Assert.Contains("registers a thread", new MmaTile(32, 8, 1, 8, emulate: false, prefetch: 1).Problem());   // 256 threads
        // Asynchronous copies hold nothing in registers: any thread count will do.
        Assert.Null(new MmaTile(32, 8, 1, 8, emulate: false, prefetch: 2).Problem());
        Assert.Null(new MmaTile(8, 4, 1, 8, emulate: false, prefetch: 2).Problem());
        Assert.Contains("prefetch 3", new MmaTile(32, 8, 2, 8, emulate: false, prefetch: 3).Problem());
        // Two patch buffers: the 32×8 tile's 32 KB of shared memory becomes 43 KB, under the 48 KB CUDA allows
        // without an opt-in (which ILGPU cannot make); a 32×16 tile's would not be (the backend then lowers it).
        var t = new MmaTile(32, 8, 2, 8, emulate: false);
        Assert.Equal(8064, Conv3x3.IlgpuTensorCore.SharedFloats(t));
        Assert.Equal(10944, Conv3x3.IlgpuTensorCore.SharedFloats(t with { Prefetch = 2 }));
        Assert.True(4 * Conv3x3.IlgpuTensorCore.SharedFloats(t with { TileHeight = 16, Prefetch = 2 }) > 48 * 1024);
    }

    internal static void CheckForwardAndBackward(IlgpuBackend b, int cin, int cout, int h, int w)
    {
        var rnd = new TestData(Environment.TickCount ^ (cin * 131 + cout));
        var d = new ConvDims(cin, cout, h, w);
        var xd = rnd.UniformF32(cin * h * w);
        var wd = rnd.ConvWeights(cin, cout);
        var bd = rnd.UniformF32(cout, 0.1);
        var dyd = rnd.UniformF32(cout * h * w);

        using var x = b.Make(new Shape(cin, h, w), xd);
        using var wt = b.Make(new Shape(cout, cin, 9), wd);
        using var bias = b.Make(Shape.Vector(cout), bd);
        using var y = b.Make(new Shape(cout, h, w), null);
        b.Conv3x3Forward(x, wt, bias, y, relu: true);
        var yGot = b.Read(y);
        // TF32 products of TF32-rounded operands are exact in fp32; only the fp32 sums round.
        var yRef = Conv3x3.Reference.Forward(RoundAll(xd), RoundAll(wd), bd, d, relu: true);
        Assertions.Close(yRef, yGot, 1e-5, $"TF32 forward {cin}→{cout} {h}×{w}");
        // ...and against the exact operands it is TF32-accurate: rounding both operands moves a product by at most
        // 2·2^-11 of itself, so each output by at most ~1e-3 of Σ|w·x| (bounded per element: outputs that cancel to
        // nearly nothing are not held to a relative bound).
        var yExact = Conv3x3.Reference.Forward(xd, wd, bd, d, relu: true);
        var magnitude = Conv3x3.Reference.Forward(xd.Select(Math.Abs).ToArray(), wd.Select(Math.Abs).ToArray(),
            bd.Select(Math.Abs).ToArray(), d, relu: false);
        double largest = magnitude.Max();
        for (int i = 0; i < yGot.Length; i++)
            Assert.True(Math.Abs(yGot[i] - yExact[i]) <= 1.1e-3 * magnitude[i] + 1e-6 * largest,
                $"TF32 forward vs exact operands, element {i}: {yGot[i]} vs {yExact[i]} (Σ|w·x| {magnitude[i]})");

        using var dy = b.Make(new Shape(cout, h, w), dyd);
        using var dx = b.Make(new Shape(cin, h, w), null);
        b.Conv3x3BackwardInput(dy, y, wt, dx);
        // The mask comes from our own forward's output (yGot), the masked gradient and weights are rounded.
        var dxRef = Conv3x3.Reference.BackwardInput(RoundAll(dyd), yGot.Select(v => (double)v).ToArray(), RoundAll(wd), d);
        Assertions.Close(dxRef, b.Read(dx), 1e-5, $"TF32 backward {cin}←{cout} {h}×{w}");
        using var dxPlain = b.Make(new Shape(cin, h, w), null);
        b.Conv3x3BackwardInput(dy, null, wt, dxPlain);
        Assertions.Close(Conv3x3.Reference.BackwardInput(RoundAll(dyd), null, RoundAll(wd), d), b.Read(dxPlain), 1e-5, "TF32 backward, no ReLU");
    }

    [Fact]
    public void Few_channel_layers_run_in_fp32_beside_tensor_core_layers_in_a_network_order()
    {
        // A 3→8 layer (fp32: 3 < MmaMinChannels) then an 8→8 layer (TF32), forward, backward in reverse, and the
        // forward again: the fp32 backward's scratch (the flipped weights) is allocated between TF32 calls that
        // reuse theirs (the packed weights) — once, on an H200, the one freed the other.
        var b = fx.Mixed;
        var rnd = new TestData(Environment.TickCount);
        int h = 5, w = 7;
        var xd = rnd.UniformF32(3 * h * w);
        var w1 = rnd.ConvWeights(3, 8); var b1 = rnd.UniformF32(8, 0.1);
        var w2 = rnd.ConvWeights(8, 8); var b2 = rnd.UniformF32(8, 0.1);
        var dyd = rnd.UniformF32(8 * h * w);
        using var x = b.Make(new Shape(3, h, w), xd);
        using var wt1 = b.Make(new Shape(8, 3, 9), w1); using var bias1 = b.Make(Shape.Vector(8), b1);
        using var wt2 = b.Make(new Shape(8, 8, 9), w2); using var bias2 = b.Make(Shape.Vector(8), b2);
        using var y1 = b.Make(new Shape(8, h, w), null);
        using var y2 = b.Make(new Shape(8, h, w), null);
        using var dy2 = b.Make(new Shape(8, h, w), dyd);
        using var dy1 = b.Make(new Shape(8, h, w), null);
        using var dx = b.Make(new Shape(3, h, w), null);
        var d1 = new ConvDims(3, 8, h, w); var d2 = new ConvDims(8, 8, h, w);
        for (int pass = 0; pass < 2; pass++)
        {
            b.Conv3x3Forward(x, wt1, bias1, y1, relu: true);
            var y1Got = TestData.ToDouble(b.Read(y1));
            Assertions.Close(Conv3x3.Reference.Forward(xd, w1, b1, d1, relu: true), b.Read(y1), 1e-5, $"fp32 layer forward, pass {pass}");
            b.Conv3x3Forward(y1, wt2, bias2, y2, relu: true);
            var y2Got = b.Read(y2);
            Assertions.Close(Conv3x3.Reference.Forward(RoundAll(y1Got), RoundAll(w2), b2, d2, relu: true), y2Got, 1e-5, $"TF32 layer forward, pass {pass}");
            b.Conv3x3BackwardInput(dy2, y2, wt2, dy1);
            var dy1Got = b.Read(dy1);
            Assertions.Close(Conv3x3.Reference.BackwardInput(RoundAll(dyd), TestData.ToDouble(y2Got), RoundAll(w2), d2), dy1Got, 1e-5, $"TF32 layer backward, pass {pass}");
            b.Conv3x3BackwardInput(dy1, y1, wt1, dx);
            Assertions.Close(Conv3x3.Reference.BackwardInput(TestData.ToDouble(dy1Got), y1Got, w1, d1), b.Read(dx), 1e-5, $"fp32 layer backward, pass {pass}");
        }
    }

    [Fact]
    public void Tf32_really_rounds_the_operands()
    {
        // Operands with bits below TF32's mantissa: an fp32 kernel would match the exact result to ~1e-7, TF32 cannot.
        var b = fx.OneWarp;
        int cin = 8, cout = 4, h = 4, w = 8;
        var xs = Enumerable.Range(0, cin * h * w).Select(i => 1f + (i % 3 + 1) * MathF.Pow(2, -14)).ToArray();
        var ws = Enumerable.Range(0, cout * cin * 9).Select(i => 1f + (i % 5 + 1) * MathF.Pow(2, -15)).ToArray();
        using var x = b.Allocate(new Shape(cin, h, w)); b.Upload(x, xs);
        using var wt = b.Allocate(new Shape(cout, cin, 9)); b.Upload(wt, ws);
        using var bias = b.Allocate(Shape.Vector(cout)); b.Upload(bias, new float[cout]);
        using var y = b.Allocate(new Shape(cout, h, w));
        b.Conv3x3Forward(x, wt, bias, y, relu: false);
        var got = new float[y.Length]; b.Download(y, got);
        var exact = Conv3x3.Reference.Forward(xs.Select(v => (double)v).ToArray(), ws.Select(v => (double)v).ToArray(),
            new double[cout], new ConvDims(cin, cout, h, w), relu: false);
        // All operands round to exactly 1 (their extra bits are below half a TF32 unit, 2^-11), so every output is its tap count.
        var counts = Conv3x3.Reference.Forward(Enumerable.Repeat(1.0, xs.Length).ToArray(), Enumerable.Repeat(1.0, ws.Length).ToArray(),
            new double[cout], new ConvDims(cin, cout, h, w), relu: false);
        for (int i = 0; i < got.Length; i++)
        {
            Assert.Equal(counts[i], got[i]);
            Assert.True(Math.Abs(exact[i] - got[i]) > 1e-4 * exact[i], $"element {i}: {got[i]} is the fp32 result {exact[i]}");
        }
    }
}

/// <summary>
/// The TF32 Gram kernels (<see cref="Gram.IlgpuTensorCore"/>, MmaGram=1) on the CPU accelerator, mma.sync emulated:
/// one warp (32-sided tiles) and 2×2 warps (64-sided, the GPU's shape: 128 simulated threads), channel counts that
/// are not multiples of a tile (several tiles, edge tiles, the upper triangle mirrored), positions that do not fill a
/// chunk, several split-K slices — against float64 on the TF32-rounded operands.
/// </summary>
public class TensorCoreGramTests
{
    static IlgpuBackend Open(int warps, int splits, int batch, int prefetch = 0) => IlgpuBackend.Open("ilgpu-cpu",
        IlgpuLaunchOptions.Tiny.WithTf32(tiny: true) with { MmaGram = 1, MmaGramWarps = warps, GramSplits = splits, MmaGemmBatch = batch, MmaGramPrefetch = prefetch },
        new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: warps == 3 ? 128 : 32));   // a power of two, ≥ 8·warps²

    static double Round(double v) => Conv3x3.IlgpuTensorCore.RoundTf32((float)v);

    /// <summary>dF + S·F as the TF32 Gram backward computes it: its A, S = (dG + dGᵀ)/N in float, rounded to TF32; its
    /// B, F rounded; the sums in float64.</summary>
    /// <summary>A Gram backward's random F, dG and starting dF of C channels and N positions, and what the TF32
    /// kernels make of them (<see cref="Tf32BackwardExpected"/>).</summary>
    static (double[] F, double[] Dg, double[] Start, double[] Expected) BackwardCase(int c, int n, int seed)
    {
        var rnd = new TestData(seed);
        var f = rnd.UniformF32(c * n);
        var dg = rnd.UniformF32(c * c);
        var start = rnd.UniformF32(c * n);
        return (f, dg, start, Tf32BackwardExpected(f, dg, start, c, n));
    }

    static double[] Tf32BackwardExpected(IReadOnlyList<double> f, IReadOnlyList<double> dg, IReadOnlyList<double> start, int c, int n)
    {
        var expected = start.ToArray();
        for (int i = 0; i < c; i++)
            for (int j = 0; j < c; j++)
            {
                double s = Round((float)((float)(dg[i * c + j] + dg[j * c + i]) * (1f / n)));
                for (int k = 0; k < n; k++) expected[i * n + k] += s * Round(f[j * n + k]);
            }
        return expected;
    }

    [Theory]
    [InlineData(1, 5, 7, 11, 1)]
    [InlineData(1, 3, 70, 45, 2)]     // 3 tiles of 32 each way, 45 positions: a chunk and a partial one, 2 slices
    [InlineData(2, 1, 67, 100, 3)]    // 2×2 warps: 64-sided tiles, one edge tile
    [InlineData(2, 2, 33, 37, 1)]
    [InlineData(1, 4, 36, 44, 1)]     // C and N multiples of 4: the backward stages 128-bit vectors; an edge tile
    [InlineData(2, 6, 68, 100, 2)]    // likewise with 2×2 warps, partly filled chunks
    [InlineData(3, 7, 100, 104, 2)]   // 3×3 warps (288 threads): a thread's last staging batch half empty
    [InlineData(2, 8, 68, 100, 2, 1)] // MmaGemmBatch=1: each staging load waited for in turn (the comparison's setting)
    [InlineData(3, 9, 100, 104, 2, 1)]
    [InlineData(2, 10, 68, 100, 2, 2, 1)]   // MmaGramPrefetch=1: the forward's next chunk in flight (ForwardPrefetch)
    [InlineData(2, 11, 130, 44, 3, 2, 1)]
    [InlineData(2, 12, 68, 98, 2, 2, 1)]    // N not a multiple of 4: ForwardPartial's scalar staging, as without the option
    public void Tf32_gram_forward_and_backward_match_the_reference_on_rounded_operands(int warps, int seed, int c, int n, int splits,
        int batch = Gram.IlgpuTensorCore.StagingBatch, int prefetch = 0)
    {
        using var b = Open(warps, splits, batch, prefetch);
        Assert.Contains("and Gram", b.Name);
        var rnd = new TestData(Environment.TickCount ^ seed);
        var fd = rnd.UniformF32(c * n);
        var dgd = rnd.UniformF32(c * c);
        var startd = rnd.UniformF32(c * n);
        using var f = b.Make(new Shape(c, 1, n), fd);
        using var g = b.Make(new Shape(c, c, 1), null);
        b.GramForward(f, g);
        var rounded = fd.Select(Round).ToArray();
        Assertions.Close(Gram.Reference.Forward(rounded, c, n), b.Read(g), 1e-5, $"TF32 Gram forward, {c}×{n}, {warps}×{warps} warps");

        using var dg = b.Make(new Shape(c, c, 1), dgd);
        using var df = b.Make(new Shape(c, 1, n), startd);
        b.GramBackwardAccumulate(f, dg, df);
        Assertions.Close(Tf32BackwardExpected(fd, dgd, startd, c, n), b.Read(df), 1e-5, $"TF32 Gram backward, {c}×{n}, {warps}×{warps} warps");
    }

    /// <summary>Under --tf32 with MmaTune the Gram backward is tuned between the TF32 kernel and the fp32 SGEMM where
    /// the SGEMM's blocks fit (C and N multiples of the tiny 16-sided blocks here): once a shape, each trial from dF as
    /// it was, the call adding S·F once — by the TF32 kernel (its result on rounded operands) or the SGEMM (fp32). A
    /// shape off the blocks, with N not a multiple of 4 (no version 5 either), runs the TF32 kernel untuned, as does
    /// every shape with MmaTune=0.</summary>
    [Theory]
    [InlineData(GramAlgorithm.Tf32, 1)]
    [InlineData(GramAlgorithm.Sgemm, 1)]
    [InlineData(GramAlgorithm.Sgemm, 0)]
    public void Tf32_gram_backward_is_tuned_against_the_sgemm_and_adds_once(GramAlgorithm fastest, int tune)
    {
        using var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny.WithTf32(tiny: true) with { MmaGram = 1, MmaGramWarps = 1, MmaTune = tune },
            new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: 32));
        int calls = 0;
        b.GramTuningClock = (_, _, a) => { calls++; return a.Algorithm == fastest ? 1e-3 : 2e-3; };
        foreach (var (c, n, tuned) in new[] { (32, 80, true), (32, 80, true), (33, 78, false) })
        {
            var rnd = new TestData(Environment.TickCount ^ (c * n));
            var fd = rnd.UniformF32(c * n);
            var dgd = rnd.UniformF32(c * c);
            var startd = rnd.UniformF32(c * n);
            using var f = b.Make(new Shape(c, 1, n), fd);
            using var dg = b.Make(new Shape(c, c, 1), dgd);
            using var df = b.Make(new Shape(c, 1, n), startd);
            b.GramBackwardAccumulate(f, dg, df);
            bool sgemm = tune != 0 && tuned && fastest == GramAlgorithm.Sgemm;
            var expected = (double[])startd.Clone();
            for (int i = 0; i < c; i++)
                for (int j = 0; j < c; j++)
                {
                    double s = sgemm ? (dgd[i * c + j] + dgd[j * c + i]) / n : Round((float)((float)(dgd[i * c + j] + dgd[j * c + i]) * (1f / n)));
                    for (int k = 0; k < n; k++) expected[i * n + k] += s * (sgemm ? fd[j * n + k] : Round(fd[j * n + k]));
                }
            Assertions.Close(expected, b.Read(df), 1e-5, $"TF32-mode Gram backward, {c}×{n}, {(sgemm ? "by the SGEMM" : "TF32")}");
            Assert.Equal(tune != 0 && tuned, b.GramTunings.Any(t => (t.C, t.N) == (c, n)));
        }
        if (tune == 0)
        {
            Assert.Equal(0, calls);
            return;
        }
        var tuning = Assert.Single(b.GramTunings);
        // N = 80, a multiple of 4: version 5 is a candidate too (one simulated SM: no splits).
        Assert.Equal(["Tf32", "Tf32Fragments", "Sgemm"], tuning.Trials.Select(t => t.Plan.ToString()));
        Assert.Equal(3, calls);
        Assert.Equal(new GramPlan(fastest), tuning.Chosen);
        Assert.All(tuning.Trials, r => Assert.True(r.Agrees, tuning.ToString()));
        Assert.StartsWith($"gram backward 32×80: {fastest} (Tf32 ", tuning.ToString());
    }

    /// <summary>The TF32 Gram backward split over the channels it sums (Gram.IlgpuTensorCore.BackwardAccumulate with
    /// splits, then AddSplits), offered where the grid gives 16 SMs (CpuSimulation.SplitsForMultiprocessors) fewer than two groups each: 9 chunks of
    /// 32 channels in 2 splits (5 and 4, the last chunk partly filled), as 128-bit vectors (C a multiple of 4) and as
    /// scalars (C not); chosen, it adds S·F to dF once, like the unsplit kernel, on the rounded operands.</summary>
    [Theory]
    [InlineData(260, 40)]
    [InlineData(258, 70)]
    public void Tf32_gram_backward_split_over_the_channels_matches_the_reference(int c, int n)
    {
        using var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny.WithTf32(tiny: true) with { MmaGram = 1, MmaGramWarps = 1, MmaTune = 1 },
            new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: 32, SplitsForMultiprocessors: 16));
        var tuning = TunedTwiceAddsOnce(b, c, n, new GramPlan(GramAlgorithm.Tf32, 2));
        // (C is off the tiny SGEMM's 16-channel blocks: not a candidate; version 5 only where N is a multiple of 4.)
        Assert.Equal(n % 4 == 0 ? ["Tf32", "Tf32 split 2", "Tf32Fragments", "Tf32Fragments split 2"] : ["Tf32", "Tf32 split 2"],
            tuning.Trials.Select(t => t.Plan.ToString()));
    }

    /// <summary>Version 5 of the TF32 Gram backward (Gram.IlgpuTensorCore.SymmetricFragments and BackwardFragments:
    /// S packed in fragment order, F staged in the 0 4 1 5 2 6 3 7 order with padded column groups, the next chunk's
    /// loads in flight while a chunk computes), launched as the backend launches it, against the float64 reference on
    /// the rounded operands and bit for bit against version 4 (BackwardAccumulate: the same chunks, k-steps and mma
    /// operands in the same order), whole and split (uneven shares: 5 chunks in 3 splits, 2 + 2 + 1), its partial
    /// outputs NaN-filled first, F followed by rows of NaN. Shapes: C a multiple of the 64-row block or not (partly filled blocks and chunks: 40,
    /// 90, 100, 130, 264), N a multiple of 4 off the 64-column tile (an edge tile), dF's old values kept and added once.</summary>
    [Theory]
    [InlineData(64, 100, 1)]
    [InlineData(40, 36, 1)]
    [InlineData(100, 196, 1)]
    [InlineData(264, 36, 2)]
    [InlineData(130, 68, 3)]
    [InlineData(90, 52, 2)]   // the last chunk 26 deep: its fourth k-step partly filled (the others' last chunks are ≤ 8 deep)
    public void Tf32_gram_backward_in_fragment_order_equals_version_4_and_matches_the_reference(int c, int n, int splits)
    {
        using var b = Open(2, 1, Gram.IlgpuTensorCore.StagingBatch);
        var a = b.Accelerator;
        var symmetric = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, float, int>(Gram.IlgpuTensorCore.SymmetricScaled);
        var packS = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, float>(Gram.IlgpuTensorCore.SymmetricFragments);
        var version4 = a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int>(Gram.IlgpuTensorCore.BackwardAccumulate);
        var version5 = a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(Gram.IlgpuTensorCore.BackwardFragments);
        var addSplits = a.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, long, int>(Gram.IlgpuTensorCore.AddSplits);
        var rnd = new TestData(Environment.TickCount ^ (c * 31 + n));
        float[] fd = rnd.UniformF32(c * n).Select(v => (float)v).ToArray(), dgd = rnd.UniformF32(c * c).Select(v => (float)v).ToArray();
        float[] startd = rnd.UniformF32(c * n).Select(v => (float)v).ToArray();
        // F followed by 64 rows of NaN: a row read past C (whose S column is zero) would make NaN of its products.
        using var f = a.Allocate1D(fd.Concat(Enumerable.Repeat(float.NaN, 64 * n)).ToArray());
        using var dg = a.Allocate1D(dgd);
        long count = (long)c * n;
        using var partials = a.Allocate1D<float>(splits * count);
        float[] Run(bool fragments)
        {
            using var df = a.Allocate1D(startd);
            var output = splits > 1 ? partials.View : df.View;
            if (splits > 1) partials.View.CopyFromCPU(Enumerable.Repeat(float.NaN, (int)(splits * count)).ToArray());
            const int side = Gram.IlgpuTensorCore.FragmentsSide;
            var grid = new Index3D((n + side - 1) / side, (c + side - 1) / side, splits);
            if (fragments)
            {
                using var s = a.Allocate1D<float>(Gram.IlgpuTensorCore.SymmetricFragmentsLength(c));
                packS((int)s.Length, dg.View, s.View, c, 1f / n);
                version5(new KernelConfig(grid, new Index3D(Gram.IlgpuTensorCore.FragmentsThreads, 1, 1),
                    SharedMemoryConfig.RequestDynamic<float>(Gram.IlgpuTensorCore.FragmentsSharedFloats(emulate: 1))), f.View, s.View, output, c, n, splits);
                a.Synchronize();
            }
            else
            {
                using var s = a.Allocate1D<float>((long)c * c);
                symmetric(c * c, dg.View, s.View, c, 1f / n, 1);
                version4(new KernelConfig(grid, new Index3D(Gram.IlgpuTensorCore.Threads(2), 1, 1),
                    SharedMemoryConfig.RequestDynamic<float>(Gram.IlgpuTensorCore.BackwardSharedFloats(2, emulate: 1))), f.View, s.View, output, c, n, 2,
                    Gram.IlgpuTensorCore.StagingBatch, splits);
                a.Synchronize();
            }
            if (splits > 1)
            {
                Assert.DoesNotContain(partials.GetAsArray1D(), float.IsNaN);
                addSplits((int)count, partials.View, df.View, count, splits);
            }
            return df.GetAsArray1D();
        }
        var expected = Tf32BackwardExpected(fd.Select(v => (double)v).ToArray(), dgd.Select(v => (double)v).ToArray(), startd.Select(v => (double)v).ToArray(), c, n);
        var got = Run(fragments: true);
        Assertions.Close(expected, got, 1e-5, $"TF32 Gram backward in fragment order, {c}×{n}, split {splits}");
        Assert.Equal(Run(fragments: false), got);
    }

    /// <summary>The TF32 Gram forward with the next chunk's loads in flight (Gram.IlgpuTensorCore.ForwardPrefetch),
    /// launched as the backend launches it, against the float64 reference on rounded operands and bit for bit against
    /// ForwardPartial (2×2 warps, the same slices, chunks and k-order), its partials NaN-filled first (every element of
    /// G's upper triangle written, by both kernels the same elements), F exactly C rows (a row read past C is a read
    /// past its buffer). A diagonal tile stages only A and its warp block below the diagonal stores nothing. C:
    /// one tile, partly filled second tiles whose thread rows end in each of the four 16-row bands (C − 64 = 8, 20, 36,
    /// 52) and a third tile; N a multiple of 4 with a partial last chunk, 1–3 slices (uneven: 5 chunks in 3).</summary>
    [Theory]
    [InlineData(64, 100, 1)]
    [InlineData(72, 36, 1)]
    [InlineData(84, 132, 2)]
    [InlineData(100, 68, 2)]
    [InlineData(116, 140, 3)]
    [InlineData(130, 44, 1)]
    public void Tf32_gram_forward_with_loads_in_flight_equals_forward_partial_and_matches_the_reference(int c, int n, int splits)
    {
        using var b = Open(2, 1, Gram.IlgpuTensorCore.StagingBatch);
        var a = b.Accelerator;
        var staged = a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int, int, int, int>(Gram.IlgpuTensorCore.ForwardPartial);
        var prefetch = a.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int, int>(Gram.IlgpuTensorCore.ForwardPrefetch);
        var rnd = new TestData(Environment.TickCount ^ (c * 37 + n));
        float[] fd = rnd.UniformF32(c * n).Select(v => (float)v).ToArray();
        // F exactly C rows: a row read past C would only feed entries of G outside C, so its values could not show;
        // it lies past the buffer's end, which the tests' bounds checks stop.
        using var f = a.Allocate1D(fd);
        using var partials = a.Allocate1D<float>((long)splits * c * c);
        const int side = 64;
        int tiles = (c + side - 1) / side;
        var config = new KernelConfig(new Index3D(tiles, tiles, splits), new Index3D(Gram.IlgpuTensorCore.Threads(2), 1, 1),
            SharedMemoryConfig.RequestDynamic<float>(Gram.IlgpuTensorCore.ForwardSharedFloats(2, emulate: 1)));
        float[] Run(bool inFlight)
        {
            partials.View.CopyFromCPU(Enumerable.Repeat(float.NaN, splits * c * c).ToArray());
            if (inFlight) prefetch(config, f.View, partials.View, c, n, splits);
            else staged(config, f.View, partials.View, c, n, splits, 2, Gram.IlgpuTensorCore.StagingBatch);
            a.Synchronize();
            return partials.GetAsArray1D();
        }
        var got = Run(inFlight: true);
        // Each entry from the tile on or above the diagonal that holds it, summed over the slices: G·N.
        var sum = new double[c * c];
        for (int i = 0; i < c; i++)
            for (int j = 0; j < c; j++)
            {
                long at = j >= i ? (long)i * c + j : (long)j * c + i;
                for (int z = 0; z < splits; z++)
                {
                    float v = got[z * (long)c * c + at];
                    Assert.False(float.IsNaN(v), $"slice {z}'s partial at {at} not written");
                    sum[i * c + j] += v;
                }
            }
        var expected = Gram.Reference.Forward(fd.Select(v => (double)v).Select(Round).ToArray(), c, n).Select(v => v * n).ToArray();
        Assertions.Close(expected, sum.Select(v => (float)v).ToArray(), 1e-5, $"TF32 Gram forward with loads in flight, {c}×{n}, {splits} slices");
        // Bit for bit, where either kernel wrote (the same elements).
        var old = Run(inFlight: false);
        for (long e = 0; e < got.Length; e++)
            Assert.Equal(old[e], got[e]);   // NaN equals NaN here
        // A diagonal tile's lower-left warp block (rows 32…63, columns 0…31 of the tile) is not stored.
        for (int z = 0; z < splits; z++)
            for (int t = 0; t < tiles; t++)
                for (int i = t * side + 32; i < Math.Min(c, t * side + 64); i++)
                    for (int j = t * side; j < t * side + 32; j++)
                        Assert.True(float.IsNaN(got[(z * (long)c + i) * c + j]), $"slice {z}, ({i}, {j}): a diagonal tile's lower warp block stored");
    }

    /// <summary>Under --tf32 with MmaTune, where N is a multiple of 4, version 5 is a tuning candidate of the Gram
    /// backward: chosen, it adds S·F to dF once (the first call tunes, each trial from dF as it was; the second runs the
    /// choice alone).</summary>
    [Fact]
    public void Tf32_gram_backward_in_fragment_order_is_tuned_and_adds_once()
    {
        const int c = 40, n = 36;
        using var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny.WithTf32(tiny: true) with { MmaGram = 1, MmaGramWarps = 2, MmaTune = 1 },
            new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: 32));
        var tuning = TunedTwiceAddsOnce(b, c, n, new GramPlan(GramAlgorithm.Tf32Fragments));
        Assert.Equal(["Tf32", "Tf32Fragments"], tuning.Trials.Select(t => t.Plan.ToString()));
    }

    /// <summary>A Gram backward tuned with <paramref name="wanted"/> timed fastest: the first call tunes (each trial
    /// from dF as it was), the second runs the choice alone; both add S·F to dF once, as the reference on rounded
    /// operands, and every trial agreed. Returns the tuning, for its candidates.</summary>
    static GramTuning TunedTwiceAddsOnce(IlgpuBackend b, int c, int n, GramPlan wanted)
    {
        b.GramTuningClock = (_, _, a) => a == wanted ? 1e-3 : 2e-3;
        var (fd, dgd, startd, expected) = BackwardCase(c, n, Environment.TickCount ^ c ^ (n << 10));
        using var f = b.Make(new Shape(c, 1, n), fd);
        using var dg = b.Make(new Shape(c, c, 1), dgd);
        for (int use = 0; use < 2; use++)
        {
            using var df = b.Make(new Shape(c, 1, n), startd);
            b.GramBackwardAccumulate(f, dg, df);
            Assertions.Close(expected, b.Read(df), 1e-5, $"TF32 Gram backward by {wanted}, {c}×{n}, use {use + 1}");
        }
        var tuning = Assert.Single(b.GramTunings);
        Assert.Equal(wanted, tuning.Chosen);
        Assert.All(tuning.Trials, r => Assert.True(r.Agrees && r.Error < 1e-5, tuning.ToString()));
        return tuning;
    }

    /// <summary>MmaGramFragments=1 with MmaTune=0: the Gram backward runs version 5 untuned (its two kernels loaded at
    /// the first call; none with MmaGramFragments=0, whose version 4 loaded at the start), and version 4 where N is not
    /// a multiple of 4; either way S·F is added once.</summary>
    [Theory]
    [InlineData(1, 36, 2)]
    [InlineData(1, 38, 0)]
    [InlineData(0, 36, 0)]
    public void Mma_gram_fragments_runs_version_5_untuned(int fragments, int n, int kernelsLoaded)
    {
        const int c = 40;
        using var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny.WithTf32(tiny: true) with
            { MmaGram = 1, MmaGramWarps = 2, MmaTune = 0, MmaGramFragments = fragments }, new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: 32));
        var (fd, dgd, startd, expected) = BackwardCase(c, n, Environment.TickCount ^ n);
        using var f = b.Make(new Shape(c, 1, n), fd);
        using var dg = b.Make(new Shape(c, c, 1), dgd);
        using var df = b.Make(new Shape(c, 1, n), startd);
        int before = b.Kernels.Loaded;
        b.GramBackwardAccumulate(f, dg, df);
        Assertions.Close(expected, b.Read(df), 1e-5, $"TF32 Gram backward, MmaGramFragments={fragments}, {c}×{n}");
        Assert.Equal(kernelsLoaded, b.Kernels.Loaded - before);
        Assert.Empty(b.GramTunings);
    }

    /// <summary>Under --tf32 with MmaTune the Gram forward is tuned the first time a shape is met: both version 4 kernels
    /// (the prefetching one where N is a multiple of 4) at each split GramForwardSplitsOffered gives — with 16 SMs
    /// counted, twice the default too, where the one tile's groups leave SMs idle. Whichever is timed fastest, G is the
    /// reference on rounded operands, every candidate agreed, and the second call runs the choice untuned.</summary>
    [Theory]
    [InlineData(1024, 0, GramForwardAlgorithm.Tf32Prefetch, 2, "Tf32 split 4, Tf32 split 2, Tf32 split 1, Tf32Prefetch split 4, Tf32Prefetch split 2, Tf32Prefetch split 1")]
    [InlineData(1024, 16, GramForwardAlgorithm.Tf32Prefetch, 8, "Tf32 split 4, Tf32 split 2, Tf32 split 1, Tf32 split 8, Tf32Prefetch split 4, Tf32Prefetch split 2, Tf32Prefetch split 1, Tf32Prefetch split 8")]
    [InlineData(1022, 0, GramForwardAlgorithm.Tf32, 1, "Tf32 split 3, Tf32 split 1")]   // N not a multiple of 4: no prefetching kernel
    public void Tf32_gram_forward_is_tuned_over_its_kernels_and_splits(int n, int splitsForSms, GramForwardAlgorithm algorithm, int splits, string candidates)
    {
        const int c = 40;
        using var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny.WithTf32(tiny: true) with { MmaGram = 1, MmaGramWarps = 2, MmaTune = 1, GramSplits = 0 },
            new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: 32, SplitsForMultiprocessors: splitsForSms));
        var wanted = new GramForwardPlan(algorithm, splits);
        int calls = 0;
        b.GramForwardTuningClock = (_, _, p) => { calls++; return p == wanted ? 1e-3 : 2e-3; };
        var fd = new TestData(Environment.TickCount ^ n).UniformF32(c * n);
        ConvChecks.GramForwardMatches(b, fd, Gram.Reference.Forward(fd.Select(Round).ToArray(), c, n), c, n, $"TF32 Gram forward by {wanted}", uses: 2);
        var tuning = Assert.Single(b.GramForwardTunings);
        Assert.Equal(candidates, string.Join(", ", tuning.Trials.Select(t => t.Plan)));
        Assert.Equal(tuning.Trials.Count, calls);   // each timed once, and the second call not at all
        Assert.Equal(wanted, tuning.Chosen);
        Assert.Equal(wanted, b.GramForwardPlanOf(c, n));
        Assert.All(tuning.Trials, r => Assert.True(r.Agrees && r.Error < 1e-5, tuning.ToString()));
        Assert.StartsWith($"gram forward {c}×{n}: {wanted} (Tf32 split ", tuning.ToString());
    }

    /// <summary>The Gram forward is not tuned with MmaTune=0 (MmaGramPrefetch picks the kernel, GramGrid the splits) nor
    /// where GramSplits fixes the splits and only one kernel applies; with GramSplits and MmaTune, only the kernels are
    /// tried.</summary>
    [Theory]
    [InlineData(0, 0, 0, "")]
    [InlineData(0, 1, 0, "")]
    [InlineData(1, 0, 2, "Tf32 split 2, Tf32Prefetch split 2")]
    public void Tf32_gram_forward_tuning_follows_the_options(int tune, int prefetch, int gramSplits, string candidates)
    {
        const int c = 40, n = 1024;
        using var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny.WithTf32(tiny: true) with
            { MmaGram = 1, MmaGramWarps = 2, MmaTune = tune, MmaGramPrefetch = prefetch, GramSplits = gramSplits }, new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: 32));
        b.GramForwardTuningClock = (_, _, _) => 1e-3;
        var fd = new TestData(Environment.TickCount ^ (tune + 2 * prefetch)).UniformF32(c * n);
        using var f = b.Make(new Shape(c, 1, n), fd);
        using var g = b.Make(new Shape(c, c, 1), null);
        int before = b.Kernels.Loaded;
        b.GramForward(f, g);
        Assertions.Close(Gram.Reference.Forward(fd.Select(Round).ToArray(), c, n), b.Read(g), 1e-5, $"TF32 Gram forward, MmaTune={tune}, MmaGramPrefetch={prefetch}");
        Assert.Equal(candidates, string.Join(", ", b.GramForwardTunings.SelectMany(t => t.Trials).Select(t => t.Plan)));
        if (tune == 0)
            Assert.Equal(prefetch, b.Kernels.Loaded - before);   // the prefetching kernel loaded at its first use, and only when asked for
    }

    /// <summary>Packed S: each lane's four A values of each 16×8 block in fragment order (rows g, g+8 × columns q,
    /// q+4), (dG + dGᵀ)·scale rounded to TF32 as version 4's S, zero past C — element by element against the layout
    /// written out by hand, for C = 40 (a partly filled 64-row block and 32-channel chunk).</summary>
    [Fact]
    public void Symmetric_fragments_pack_s_in_fragment_order()
    {
        const int c = 40;
        const float scale = 0.37f;
        using var b = Open(2, 1, Gram.IlgpuTensorCore.StagingBatch);
        var rnd = new TestData(Environment.TickCount);
        var dgd = rnd.UniformF32(c * c);
        long length = Gram.IlgpuTensorCore.SymmetricFragmentsLength(c);
        Assert.Equal(1 * 2 * 2048, length);
        var kernel = b.Accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, float>(Gram.IlgpuTensorCore.SymmetricFragments);
        using var dg = b.Accelerator.Allocate1D(dgd.Select(v => (float)v).ToArray());
        using var packed = b.Accelerator.Allocate1D<float>(length);
        packed.View.CopyFromCPU(Enumerable.Repeat(float.NaN, (int)length).ToArray());
        kernel((int)length, dg.View, packed.View, c, scale);
        var got = packed.GetAsArray1D();
        for (int chunk = 0; chunk < 2; chunk++)
            for (int m = 0; m < 4; m++)
                for (int k8 = 0; k8 < 4; k8++)
                    for (int lane = 0; lane < 32; lane++)
                        for (int e = 0; e < 4; e++)
                        {
                            int g = lane / 4, q = lane % 4;
                            int i = 16 * m + g + (e % 2 == 1 ? 8 : 0), j = 32 * chunk + 8 * k8 + q + (e >= 2 ? 4 : 0);
                            float want = i < c && j < c ? Conv3x3.IlgpuTensorCore.RoundTf32((float)((float)(dgd[i * c + j] + dgd[j * c + i]) * scale)) : 0f;
                            int at = (((chunk * 4 + m) * 4 + k8) * 32 + lane) * 4 + e;
                            Assert.True(want == got[at], $"packed S at chunk {chunk}, m-tile {m}, k-step {k8}, lane {lane}, value {e}: {got[at]}, expected {want}");
                        }
    }
}

/// <summary>One convolution's random inputs (x, weights, bias, and a gradient for the backward), run on a backend:
/// the forward with ReLU, then the backward through that ReLU, both outputs NaN-filled before they are written.</summary>
public sealed record ConvInputs(int Cin, int Cout, int H, int W, double[] X, double[] Weights, double[] Bias, double[] Dy)
{
    public static ConvInputs Random(int seed, int cin, int cout, int h, int w)
    {
        var rnd = new TestData(seed);
        return new(cin, cout, h, w, rnd.UniformF32(cin * h * w), rnd.ConvWeights(cin, cout), rnd.UniformF32(cout, 0.1), rnd.UniformF32(cout * h * w));
    }

    public (float[] Y, float[] Dx) Run(IlgpuBackend b)
    {
        using var x = b.Make(new Shape(Cin, H, W), X);
        using var wt = b.Make(new Shape(Cout, Cin, 9), Weights);
        using var bias = b.Make(Shape.Vector(Cout), Bias);
        using var y = b.Make(new Shape(Cout, H, W), null);
        using var dy = b.Make(new Shape(Cout, H, W), Dy);
        using var dx = b.Make(new Shape(Cin, H, W), null);
        b.Conv3x3Forward(x, wt, bias, y, relu: true);
        b.Conv3x3BackwardInput(dy, y, wt, dx);
        return (b.Read(y), b.Read(dx));
    }

    /// <summary>Runs these inputs on <paramref name="b"/>: its forward and backward equal <paramref name="expected"/>
    /// (another backend's <see cref="Run"/>) to the bit.</summary>
    public void AssertSame((float[] Y, float[] Dx) expected, IlgpuBackend b)
    {
        var (y, dx) = Run(b);
        Assert.Equal(expected.Y, y);
        Assert.Equal(expected.Dx, dx);
    }
}
