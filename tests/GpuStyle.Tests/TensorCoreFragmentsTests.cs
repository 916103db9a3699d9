using GpuStyle.Engine;
using GpuStyle.Engine.Ilgpu;
using GpuStyle.Kernels;
using GpuStyle.Tests.Support;

namespace GpuStyle.Tests;

/// <summary>
/// Version 5 of the TF32 convolution (<see cref="Conv3x3.IlgpuMmaFragments"/>: weights packed and the input staged in
/// the order the mma.sync fragments read them) on the CPU accelerator, each mma emulated from the PTX ISA's fragment
/// layout as for version 4: what is checked is the packing, the channel-interleaved staging, the vector fragment loads
/// and the stores, at shapes that leave partial chunks (Cin not a multiple of 8), partial channel groups (Cout not a
/// multiple of 64 or 32), partial tiles both ways, and several chunks.
/// </summary>
public sealed class TensorCoreFragmentsFixture : IDisposable
{
    /// <summary>Tiles of one row (64 threads) and of two (128): MmaTune off, so every TF32 convolution runs version 5.</summary>
    public IlgpuBackend OneRow { get; } = Open(rows: 1);
    public IlgpuBackend TwoRows { get; } = Open(rows: 2);

    /// <summary>Warps of all 64 channels (MmaFragments 2): tiles of two rows (64 threads) and three (96: a height
    /// that is no power of two).</summary>
    public IlgpuBackend WideTwoRows { get; } = Open(rows: 2, fragments: 2);
    public IlgpuBackend WideThreeRows { get; } = Open(rows: 3, fragments: 2);

    /// <summary>64×64 warp tiles (MmaFragments 4): a warp for every two rows — tiles of two rows (one warp) and of six
    /// (three warps: a count that is no power of two).</summary>
    public IlgpuBackend SquareTwoRows { get; } = Open(rows: 2, fragments: 4);
    public IlgpuBackend SquareSixRows { get; } = Open(rows: 6, fragments: 4);

    /// <summary>Version 4 with 8-channel chunks, for the bit-for-bit comparison: two warps along the channels as version
    /// 5's, a 32×2 tile.</summary>
    public IlgpuBackend Version4 { get; } = IlgpuBackend.Open("ilgpu-cpu",
        IlgpuLaunchOptions.Tiny.WithTf32(tiny: true) with { MmaWarpsCo = 2, MmaTileWidth = 32, MmaTileHeight = 2, MmaChunk = 8 },
        new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: 32));

    /// <summary>The weights copied a chunk ahead (MmaFragmentsAsync 1; off CUDA, when waited for): 32-channel warps
    /// at two rows, 64-channel ones at three.</summary>
    public IlgpuBackend AsyncTwoRows { get; } = Open(rows: 2, asyncWeights: 1);
    public IlgpuBackend WideAsyncThreeRows { get; } = Open(rows: 3, fragments: 2, asyncWeights: 1);

    public static IlgpuBackend Open(int rows, int tune = 0, int fragments = 1, int asyncWeights = 0, int splitsForSms = 0) => IlgpuBackend.Open("ilgpu-cpu",
        IlgpuLaunchOptions.Tiny.WithTf32(tiny: true) with
        {
            MmaWarpsCo = 2, MmaTileWidth = 32, MmaTileHeight = rows, MmaChunk = 8, MmaFragments = fragments, MmaTune = tune,
            MmaFragmentsAsync = asyncWeights,
        }, new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)(16 * rows)),   // a power of two
            SplitsForMultiprocessors: splitsForSms));

    /// <summary>MmaTune with version 5 in 32-channel warps, splits offered as for 16 SMs, so that small grids are offered
    /// splits (one simulated: 16 ran this class's split test 4–20× slower a trial).</summary>
    public IlgpuBackend Split { get; } = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny.WithTf32(tiny: true) with
    {
        MmaWarpsCo = 2, MmaTileWidth = 32, MmaTileHeight = 2, MmaChunk = 8, MmaFragments = 1, MmaTune = 1,
    }, new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: 32, SplitsForMultiprocessors: 16));

    public void Dispose()
    {
        Split.Dispose();
        OneRow.Dispose();
        TwoRows.Dispose();
        WideTwoRows.Dispose();
        WideThreeRows.Dispose();
        SquareTwoRows.Dispose();
        SquareSixRows.Dispose();
        AsyncTwoRows.Dispose();
        WideAsyncThreeRows.Dispose();
        Version4.Dispose();
    }
}

public class TensorCoreFragmentsTests(TensorCoreFragmentsFixture fx) : IClassFixture<TensorCoreFragmentsFixture>
{
    [Theory]
    [InlineData(1, 1, 1, 1, 1)]       // one input, one output, one pixel: a chunk of 7 zero channels, 63 idle outputs
    [InlineData(3, 5, 5, 3, 2)]       // the first layer's 3 channels
    [InlineData(9, 37, 6, 11, 1)]     // two chunks (the second 1 deep), a partial group, 6 one-row tiles
    [InlineData(20, 70, 5, 37, 2)]    // three chunks, two groups (the second 6 deep), tiles partial both ways
    [InlineData(16, 64, 4, 32, 2)]    // exact: two chunks, one group, 1 × 2 tiles
    [InlineData(13, 33, 3, 65, 2)]    // 3 tiles across (the last 1 wide), 33 outputs: the second warp's second m-tile 1 deep
    public void Conv_forward_and_backward_match_the_reference_on_rounded_operands(int cin, int cout, int h, int w, int rows) =>
        TensorCoreTests.CheckForwardAndBackward(rows == 1 ? fx.OneRow : fx.TwoRows, cin, cout, h, w);

    [Theory]
    [InlineData(3, 5, 5, 3, 2)]       // 5 outputs: m-tiles 1–3 of the one warp all padding
    [InlineData(9, 37, 6, 11, 3)]     // two chunks; channels 32–36 in the upper accumulators' first m-tile
    [InlineData(20, 70, 7, 37, 2)]    // three chunks, two groups (the second 6 deep), tiles partial both ways
    [InlineData(13, 64, 3, 65, 3)]    // one full group: both halves of every warp's accumulators; 3 tiles across
    public void Wide_warps_match_the_reference_on_rounded_operands(int cin, int cout, int h, int w, int rows)
    {
        Assert.Contains("64-channel warps", (rows == 2 ? fx.WideTwoRows : fx.WideThreeRows).Name);
        TensorCoreTests.CheckForwardAndBackward(rows == 2 ? fx.WideTwoRows : fx.WideThreeRows, cin, cout, h, w);
    }

    [Theory]
    [InlineData(3, 5, 5, 3, 2)]       // 5 outputs, 5 rows: the last tile's second row below the map
    [InlineData(9, 37, 7, 11, 6)]     // two chunks; channels 32–36 in the upper m-tiles; rows 6 and 7 of the tile outside
    [InlineData(20, 70, 4, 37, 2)]    // three chunks, two groups (the second 6 deep), tiles partial across
    [InlineData(13, 64, 13, 65, 6)]   // one full group, all four accumulator sets; 3 tiles across, 3 down (the last 1 row)
    public void Square_warps_match_the_reference_on_rounded_operands(int cin, int cout, int h, int w, int rows)
    {
        var backend = rows == 2 ? fx.SquareTwoRows : fx.SquareSixRows;
        Assert.Contains("64×64 warp tiles", backend.Name);
        TensorCoreTests.CheckForwardAndBackward(backend, cin, cout, h, w);
    }

    [Theory]
    [InlineData(20, 70, 5, 37)]
    [InlineData(17, 16, 9, 8)]
    public void With_8_channel_chunks_version_5_gives_version_4s_sums_bit_for_bit(int cin, int cout, int h, int w)
    {
        // Both sum each output chunk by chunk, tap by tap, 8 channels a step, in fp32: only the operands' layout in
        // shared memory differs. (On a GPU the same holds while both run the same mma.sync sequence.)
        var inputs = ConvInputs.Random(Environment.TickCount ^ 0x3c3c, cin, cout, h, w);
        var version4 = inputs.Run(fx.Version4);
        inputs.AssertSame(version4, fx.TwoRows);
        inputs.AssertSame(version4, fx.WideTwoRows);   // the same mma sequence for each accumulator
        inputs.AssertSame(version4, fx.SquareTwoRows);
    }

    /// <summary>Version 5 with its weights copied a chunk ahead into a second buffer (MmaFragmentsAsync 1): off CUDA
    /// each chunk's weights are copied when waited for, into the buffer the chunk reads, so a wrong buffer or a chunk
    /// read before its copy shows here. One chunk, two, three (buffers 0, 1, 0), partial groups and tiles.</summary>
    [Theory]
    [InlineData(1, 1, 1, 1)]        // one chunk: the empty group committed after it
    [InlineData(9, 37, 6, 11)]      // two chunks (the second 1 deep), a partial group
    [InlineData(20, 70, 5, 37)]     // three chunks, two groups, tiles partial both ways
    public void Asynchronous_weights_match_the_reference_and_the_staged_kernel_bit_for_bit(int cin, int cout, int h, int w)
    {
        Assert.Contains("weights by cp.async", fx.AsyncTwoRows.Name);
        TensorCoreTests.CheckForwardAndBackward(fx.AsyncTwoRows, cin, cout, h, w);
        TensorCoreTests.CheckForwardAndBackward(fx.WideAsyncThreeRows, cin, cout, h, w);
        // The same sums in the same order: only where the weights come from differs.
        var inputs = ConvInputs.Random(Environment.TickCount ^ 0x5a5a, cin, cout, h, w);
        inputs.AssertSame(inputs.Run(fx.TwoRows), fx.AsyncTwoRows);
    }

    /// <summary>With MmaTune, MmaFragmentsAsync offers each version 5 plan both ways (splits included); a split chosen
    /// with asynchronous weights starts its buffers at its own first chunk.</summary>
    [Fact]
    public void MmaTune_offers_version_5_with_and_without_asynchronous_weights()
    {
        using var b = TensorCoreFragmentsFixture.Open(rows: 2, tune: 1, fragments: 1, asyncWeights: 1, splitsForSms: 16);
        b.TuningClock = (_, _, plan) => plan.Tile.Prefetch == 2 && plan.Splits == 2 ? 1e-3 : 2e-3;
        TensorCoreTests.CheckForwardAndBackward(b, 72, 70, 3, 37);   // 9 chunks each way: split 2 shares 5 and 4
        Assert.All(b.Tunings, t =>
        {
            Assert.Equal(["TF32 fragments 32×2", "TF32 fragments 32×2 async", "TF32 fragments 32×2 split 2", "TF32 fragments 32×2 async split 2"],
                t.Trials.Where(r => r.Plan.Algorithm == ConvAlgorithm.Tf32Fragments).Select(r => r.Plan.ToString()));
            Assert.Equal("TF32 fragments 32×2 async split 2", t.Chosen.ToString());
            Assert.All(t.Trials.Where(r => r.Plan.Algorithm == ConvAlgorithm.Tf32Fragments), r => Assert.True(r.Agrees && r.Error < 1e-5, t.ToString()));
        });
        TensorCoreTests.CheckForwardAndBackward(b, 72, 70, 3, 37);   // the choices alone, on NaN-filled outputs
    }

    [Fact]
    public void The_GPUs_32x8_tile_matches_the_reference()
    {
        // 512 threads, 16 warps: the GPU's default height.
        using var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny.WithTf32(tiny: true)
            with { MmaWarpsCo = 2, MmaTileWidth = 32, MmaTileHeight = 8, MmaChunk = 8, MmaFragments = 1 },
            new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: 128));
        Assert.Contains("fragment-ordered", b.Name);
        TensorCoreTests.CheckForwardAndBackward(b, 17, 64, 9, 33);
    }

    [Fact]
    public void MmaTune_offers_each_height_and_shape_of_version_5_beside_version_4s_tile()
    {
        // MmaFragments 7 (all three shapes; the --tf32 default is 3, without the 64×64 tiles): version 4 at its configured 32×4 tile only (its lower tiles are left
        // to version 5), version 5 at 4 and 2 rows in 32-channel warps, then in 64-channel ones, then at 4 rows in
        // 64×64 warp tiles (2 rows would be one warp a group) (then Winograd). The clock makes version 5 in wide warps
        // of 2 rows the forward's choice and version 4 the backward's. The second call of each direction runs the
        // choice alone, on NaN-filled outputs: the trials' writes cannot stand in for it.
        Assert.Equal(3, new IlgpuLaunchOptions().WithTf32().MmaFragments);   // the default: 64×64 warp tiles opt-in
        using var b = TensorCoreFragmentsFixture.Open(rows: 4, tune: 1, fragments: 7);
        b.TuningClock = (_, backward, plan) =>
            (backward ? plan.Algorithm == ConvAlgorithm.Tf32
                : plan.Algorithm == ConvAlgorithm.Tf32Fragments && plan.Tile.TileHeight == 2 && plan.Tile.WarpsCo == 1) ? 1e-3 : 2e-3;
        TensorCoreTests.CheckForwardAndBackward(b, 20, 37, 9, 40);
        var tunings = b.Tunings;
        Assert.Equal(2, tunings.Count);
        Assert.All(tunings, t => Assert.Equal(
            ["TF32 32×4", "TF32 fragments 32×4", "TF32 fragments 32×2", "TF32 fragments 32×4 wide", "TF32 fragments 32×2 wide",
             "TF32 fragments 32×4 64×64 warps"],
            t.Trials.Where(r => r.Plan.Algorithm is ConvAlgorithm.Tf32 or ConvAlgorithm.Tf32Fragments).Select(r => r.Plan.ToString())));
        Assert.Equal("TF32 fragments 32×2 wide", tunings[0].Chosen.ToString());
        Assert.Equal("TF32 32×4", tunings[1].Chosen.ToString());
        // Version 5 sums as version 4 does: it agrees to the last bit, or nearly.
        Assert.All(tunings, t => Assert.All(t.Trials.Where(r => r.Plan.Algorithm == ConvAlgorithm.Tf32Fragments),
            r => Assert.True(r.Agrees && r.Error < 1e-6, t.ToString())));
        Assert.Contains("TF32 fragments 32×2 wide 1 ms", tunings[0].ToString());
        TensorCoreTests.CheckForwardAndBackward(b, 20, 37, 9, 40);   // tuned: the choices alone
        // Without version 5, version 4's lower tiles are candidates again.
        using var plain = TensorCoreFragmentsFixture.Open(rows: 4, tune: 1, fragments: 0);
        plain.TuningClock = (_, _, _) => 1e-3;
        TensorCoreTests.CheckForwardAndBackward(plain, 20, 37, 9, 40);
        Assert.Equal(["TF32 32×4", "TF32 32×2"], plain.Tunings[0].Trials.Where(r => r.Plan.Algorithm == ConvAlgorithm.Tf32).Select(r => r.Plan.ToString()));
    }

    /// <summary>Version 5 split over the input channels (Conv3x3.IlgpuMmaFragments.SumSplits): the tuning offers 2, 4
    /// … splits where the grid leaves SMs without two groups and each split keeps 4 chunks, and a split chosen matches
    /// the reference — uneven shares (9 chunks in 2: 5 and 4; 17 in 4: 5, 5, 5 and 2), partial output groups, bias and
    /// ReLU added after the sum, ReLU's mask in the backward. Splits offered as for 16 SMs, so that these small grids are "small".</summary>
    [Theory]
    [InlineData(72, 70, 3, 37, 2, 2)]     // 8 groups: 2 splits both ways (9 chunks each way: 4 splits would leave 2)
    [InlineData(136, 70, 2, 33, 4, 2)]    // forward 17 chunks: 4 splits; backward (70 inputs, 9 chunks): 2
    public void A_split_over_the_input_channels_matches_the_reference(int cin, int cout, int h, int w, int forwardSplits, int backwardSplits)
    {
        var b = fx.Split;
        b.TuningClock = (_, _, plan) => 1e-3 / plan.Splits - (plan.Algorithm == ConvAlgorithm.Tf32Fragments ? 1e-5 : 0);
        TensorCoreTests.CheckForwardAndBackward(b, cin, cout, h, w);
        var tunings = b.Tunings.Where(t => t.Cin + t.Cout == cin + cout).ToList();
        Assert.Equal(2, tunings.Count);
        Assert.Equal($"TF32 fragments 32×2 split {forwardSplits}", tunings[0].Chosen.ToString());
        Assert.Equal($"TF32 fragments 32×2 split {backwardSplits}", tunings[1].Chosen.ToString());
        Assert.Equal(["TF32 fragments 32×2", .. Enumerable.Range(1, forwardSplits / 2).Select(k => $"TF32 fragments 32×2 split {2 * k}")],
            tunings[0].Trials.Where(r => r.Plan.Algorithm == ConvAlgorithm.Tf32Fragments).Select(r => r.Plan.ToString()));
        // Split sums round differently from the whole one, at fp32's level.
        Assert.All(tunings, t => Assert.All(t.Trials.Where(r => r.Plan.Algorithm == ConvAlgorithm.Tf32Fragments),
            r => Assert.True(r.Agrees && r.Error < 1e-5, t.ToString())));
        TensorCoreTests.CheckForwardAndBackward(b, cin, cout, h, w);   // the choices alone, on NaN-filled outputs
    }

    /// <summary>Which splits the tuning offers (IlgpuBackend.SplitsOffered), at an H200's 132 SMs: VGG16 at 512², the
    /// 32×8 tile.</summary>
    [Theory]
    [InlineData(128, 64, 8, new[] { 2, 4 })]        // 512→512 at 64²: 128 groups; 8 splits would be 1 024 groups
    [InlineData(32, 64, 8, new[] { 2, 4, 8 })]      // 512→512 at 32²
    [InlineData(64, 32, 8, new[] { 2, 4, 8 })]      // 256→512 at 32²: 8 splits of 4 chunks
    [InlineData(256, 32, 8, new[] { 2 })]           // 256→256 at 128²: 256 groups, under two an SM
    [InlineData(264, 64, 8, new int[0])]            // two groups an SM already
    [InlineData(128, 7, 8, new int[0])]             // 56 input channels: a split would keep under 4 chunks
    [InlineData(128, 64, 1, new int[0])]            // MmaSplits=1: none
    public void Splits_are_offered_where_the_grid_leaves_SMs_without_two_groups(long groups, int chunks, int maxSplits, int[] offered) =>
        Assert.Equal(offered, IlgpuBackend.SplitsOffered(groups, chunks, 132, maxSplits));

    [Fact]
    public void Heights_that_cannot_run_are_refused_with_the_reason()
    {
        var tooTall = IlgpuLaunchOptions.Tiny.WithTf32(tiny: true) with { MmaWarpsCo = 2, MmaTileWidth = 32, MmaTileHeight = 32, MmaChunk = 8, MmaFragments = 1 };
        // 8 is no set of warp shapes.
        Assert.Contains("MmaFragments is a sum of 1", Assert.Throws<ArgumentException>(() =>
            IlgpuBackend.Validate(tooTall with { MmaTileHeight = 8, MmaFragments = 8, MmaTune = 1 }, "test", 4096, long.MaxValue)).Message);
        // 64×64 warp tiles alone take two rows a warp: an odd height cannot run untuned; tuned, each shape takes the
        // heights it can.
        Assert.Contains("two rows a warp: an even height", Assert.Throws<ArgumentException>(() =>
            IlgpuBackend.Validate(tooTall with { MmaTileHeight = 5, MmaFragments = 4 }, "test", 4096, long.MaxValue)).Message);
        IlgpuBackend.Validate(tooTall with { MmaTileHeight = 5, MmaFragments = 7, MmaTune = 1 }, "test", 4096, long.MaxValue);
        var e = Assert.Throws<ArgumentException>(() => IlgpuBackend.Validate(tooTall, "test", 4096, long.MaxValue));
        Assert.Contains("a fragment-ordered tile of 32 rows (1 to 16)", e.Message);
        // Version 4's 16×16 tile of 2 warps along the channels is 512 threads; version 5's 16 rows, 1 024.
        var narrow = tooTall with { MmaTileHeight = 16, MmaTileWidth = 16 };
        IlgpuBackend.Validate(narrow with { MmaFragments = 0 }, "gpu", 512);
        e = Assert.Throws<ArgumentException>(() => IlgpuBackend.Validate(narrow, "gpu", 512));
        Assert.Contains("fragment-ordered TF32 convolution's 1024-thread groups (MmaTileHeight 16)", e.Message);
        // Asynchronous weights: two weight buffers and the patch in 48 KB (at most 9 rows), not in 64×64 warp tiles.
        var asyncWeights = tooTall with { MmaTileHeight = 8, MmaFragmentsAsync = 1 };
        IlgpuBackend.Validate(asyncWeights, "gpu", 1024);
        Assert.Contains("at most 9 rows fit 48 KB", Assert.Throws<ArgumentException>(() => IlgpuBackend.Validate(asyncWeights with { MmaTileHeight = 10 }, "test", 4096, long.MaxValue)).Message);
        IlgpuBackend.Validate(asyncWeights with { MmaTileHeight = 10, MmaTune = 1 }, "test", 4096, long.MaxValue);   // tuned: the heights that fit
        Assert.Contains("asynchronous weights in 64×64 warp tiles", Assert.Throws<ArgumentException>(() => IlgpuBackend.Validate(asyncWeights with { MmaFragments = 4 }, "test", 4096, long.MaxValue)).Message);
        Assert.Contains("MmaFragmentsAsync is 0", Assert.Throws<ArgumentException>(() => IlgpuBackend.Validate(asyncWeights with { MmaFragmentsAsync = 2 }, "test", 4096, long.MaxValue)).Message);
    }

    [Fact]
    public void Shared_memory_of_the_GPUs_tile_fits_without_opting_in()
    {
        // 10 rows × 34 pixels × 8 channels of input and 9 × 8 × 64 weights: 29 KB, under the 48 KB ILGPU can ask for.
        Assert.Equal(2720 + 4608, Conv3x3.IlgpuMmaFragments.SharedFloats(8, emulate: false));
        Assert.True(4 * Conv3x3.IlgpuMmaFragments.SharedFloats(8, emulate: false) <= 48 * 1024);
        Assert.Equal(2L * 9 * 4608, Conv3x3.IlgpuMmaFragments.PackedLength(new ConvDims(72, 128, 5, 5)));   // 2 groups × 9 chunks
        // With a second weight buffer: 46.6 KB.
        Assert.Equal(2720 + 2 * 4608, Conv3x3.IlgpuMmaFragments.SharedFloats(8, emulate: false, asyncWeights: true));
        Assert.True(4 * Conv3x3.IlgpuMmaFragments.SharedFloats(8, emulate: false, asyncWeights: true) <= 48 * 1024);
        Assert.True(4 * Conv3x3.IlgpuMmaFragments.SharedFloats(10, emulate: false, asyncWeights: true) > 48 * 1024);
    }
}
