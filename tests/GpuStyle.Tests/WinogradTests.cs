using GpuStyle.Engine;
using GpuStyle.Engine.Ilgpu;
using GpuStyle.Kernels;
using GpuStyle.Tests.Support;

namespace GpuStyle.Tests;

/// <summary>
/// Winograd F(2×2, 3×3) beyond the shared agreement test (which runs the CPU backend's version and ILGPU's with
/// 16×16 GEMM blocks): ILGPU's GEMM at the block sides a GPU uses — 64 and 128, where it double-buffers its stages
/// through registers — with several stages, output-channel blocks and passes of tiles; its TF32 variant; the same
/// SGEMM as the fp32 Gram backward (GramGemm); and the weight transform.
/// </summary>
public class WinogradTests
{
    [Theory]
    [InlineData(64, 64, 1, 2)]     // 64 threads, 2 Float4s of A and of B a thread a stage
    [InlineData(64, 128, 1, 2)]    // 128 threads: 1 of A, 2 of B (the kernel with these sides as constants)
    [InlineData(128, 128, 1, 2)]   // 256 threads: 1 of A, 1 of B (likewise: the GPU's default block)
    [InlineData(128, 64, 1, 2)]    // 128 threads: 2 of A, 1 of B
    [InlineData(64, 64, 0, 2)]     // the same block staged without prefetching
    [InlineData(64, 64, 1, 4)]     // F(4×4, 3×3): 36 GEMMs
    [InlineData(64, 64, 1, 2, 1)]  // WinogradGather=1: the input transform's loads without branches (opt-in)
    public void Ilgpu_gemm_blocks_of_a_GPU_size_match_the_reference(int bm, int bn, int prefetch, int tile, int gather = 0)
    {
        var launch = IlgpuLaunchOptions.Tiny with
        {
            Conv = ConvKernel.Winograd, WinogradM = bm, WinogradN = bn, WinogradPrefetch = prefetch, WinogradTile = tile, WinogradGather = gather,
            WinogradScratch = 16 * 136 * bn,   // one block of tiles a pass: 84 tiles → 2 passes at 64, 1 at 128
        };
        using var b = IlgpuBackend.Open("ilgpu-cpu", launch, new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: bm * bn / 64 / 4));
        // 67 inputs: 9 stages of 8 (the last one padded); 70 outputs: two 64-blocks (a layer's block is at most its
        // channels rounded up to 16: 80); with 128-blocks 130 outputs, two blocks, the second mostly padding.
        int cout = bm == 128 ? 130 : 70;
        ConvChecks.ForwardAndBackwardMatch(b, 67, bm * 7 + bn + prefetch, 1e-4, $"Winograd GEMM {bm}×{bn}, prefetch {prefetch}, F({tile}×{tile})", cout);
    }

    [Theory]
    [InlineData(16, 16, 1, 1)]
    [InlineData(17, 19, 13, 11)]
    [InlineData(21, 16, 5, 53)]
    [InlineData(18, 40, 8, 8)]
    [InlineData(33, 17, 9, 30)]
    [InlineData(17, 19, 13, 11, 1)]   // WinogradGather=1: the input transform's loads without branches (opt-in)
    [InlineData(33, 17, 9, 30, 1)]
    public void Ilgpu_f4x4_matches_the_reference_on_awkward_shapes(int cin, int cout, int h, int w, int gather = 0)
    {
        // F(4×4, 3×3) with the tiny 16×16 blocks and 4096-float scratch (several passes past 7 tiles at 16+ channels):
        // maps not multiples of 4 (tiles half outside), one pixel, channel counts off the blocks.
        var launch = IlgpuLaunchOptions.Tiny with { Conv = ConvKernel.Winograd, WinogradTile = 4, WinogradGather = gather };
        using var b = IlgpuBackend.Open("ilgpu-cpu", launch, CpuSimulation.Small);
        Assert.Contains("F(4×4,3×3)", b.Name);
        ConvChecks.ForwardAndBackwardMatch(b, cin, cin * 31 + cout * h + w, 1e-4, $"Winograd F(4×4), {cin}→{cout} {h}×{w}", cout, h, w);
    }

    [Theory]
    [InlineData(1)]   // one warp: 32-sided blocks
    [InlineData(2)]   // 2×2 warps: 64-sided blocks, the GPU's shape (128 simulated threads)
    [InlineData(4)]   // 4×4 warps: 128-sided blocks, MmaTune's second candidate (512 simulated threads)
    [InlineData(3)]   // 3×3 warps (288 threads): a thread's last staging batch half empty (A 768 vectors, B rows 12 apart)
    [InlineData(2, 1)] // MmaGemmBatch=1: each staging load waited for in turn (the comparison's setting)
    public void Ilgpu_tf32_gemms_match_the_reference_to_tf32_precision(int warps, int batch = Gram.IlgpuTensorCore.StagingBatch)
    {
        // WinogradMma: the 16 GEMMs on tensor cores (mma.sync emulated here from its documented fragment layout).
        // U and V are rounded to TF32 (2^-11) after the transforms, so the outputs are compared with the exact
        // convolution at a TF32 level (measured 5–6e-4 of the largest output; the TF32 convolution's 2.4–3.0e-4);
        // a wrong fragment, block or ξ offset is off by O(1) (reading V of the wrong ξ: 1.3–1.4).
        int side = 32 * warps;
        var launch = IlgpuLaunchOptions.Tiny with
        {
            Conv = ConvKernel.Winograd, WinogradMma = 1, MmaGramWarps = warps, WinogradScratch = 16 * 128 * side, MmaGemmBatch = batch,
        };
        using var b = IlgpuBackend.Open("ilgpu-cpu", launch, new CpuSimulation(ThreadsPerWarp: 4,
            WarpsPerGroup: (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(32, 8 * warps * warps))));   // a power of two
        Assert.Contains("TF32 tensor-core GEMMs", b.Name);
        Assert.True(b.Tf32Winograd);
        // 37 inputs: 5 stages of 8; 70 outputs: 3, 2 or 1 output blocks; 84 tiles: 3, 2 or 1 passes.
        ConvChecks.ForwardAndBackwardMatch(b, 37, Environment.TickCount ^ warps, 2e-3, $"Winograd TF32 GEMMs, {warps}×{warps} warps");
    }

    [Fact]
    public void Tf32_gemms_with_f4x4_are_refused()
    {
        // F(4×4, 3×3)'s transforms reach 10× the inputs a stage: with TF32 GEMMs the outputs were 6–9e-3 off (of the
        // largest output), past the 5e-3 bench --check allows TF32 — not a combination to offer.
        var e = Assert.Throws<ArgumentException>(() => IlgpuBackend.Open("ilgpu-cpu",
            IlgpuLaunchOptions.Tiny with { Conv = ConvKernel.Winograd, WinogradMma = 1, WinogradTile = 4 }, CpuSimulation.Small));
        Assert.Contains("WinogradTile=2", e.Message);
    }

    [Theory]
    [InlineData(16, 16, 0, 32, 48)]     // the SGEMM with the tiny blocks: 2 row blocks, 3 column blocks
    [InlineData(16, 16, 0, 48, 80)]
    [InlineData(64, 64, 1, 64, 192)]    // the GPU's 64-sided blocks, prefetching: 8 stages, 3 column blocks
    [InlineData(16, 16, 0, 33, 50)]     // sizes off the blocks: the blocked Gram kernel instead
    [InlineData(64, 128, 1, 64, 256)]   // the 64×128 kernel with constant sides, accumulating (its own entry point)
    [InlineData(128, 128, 1, 128, 128)] // the 128×128 one (256 threads)
    public void Gram_backward_by_the_sgemm_matches_the_reference(int bm, int bn, int prefetch, int c, int n)
    {
        // GramGemm: dF += S·F, S = (dG + dGᵀ)/N, by the fp32 SGEMM where C and N fit its blocks.
        var launch = IlgpuLaunchOptions.Tiny with { Conv = ConvKernel.Blocked, GramGemm = 1, WinogradM = bm, WinogradN = bn, WinogradPrefetch = prefetch };
        using var b = IlgpuBackend.Open("ilgpu-cpu", launch, new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: Math.Max(4, bm * bn / 64 / 4)));
        ConvChecks.GramBackwardMatches(b, c, n, $"SGEMM {bm}×{bn}");
    }

    [Fact]
    public void The_f4x4_transforms_reproduce_the_kernel()
    {
        // F(4×4, 3×3)'s three transforms as the GPU kernels compute them (float): Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A must be the
        // 4×4 correlation of a 6×6 patch d with g, to float rounding.
        var rnd = new Random(Environment.TickCount);
        float R() => (float)(rnd.NextDouble() - 0.5);
        for (int trial = 0; trial < 20; trial++)
        {
            var g = Enumerable.Range(0, 9).Select(_ => R()).ToArray();
            var d = new float[6, 6];
            for (int i = 0; i < 6; i++) for (int j = 0; j < 6; j++) d[i, j] = R();
            Six Row(int i) => new(d[i, 0], d[i, 1], d[i, 2], d[i, 3], d[i, 4], d[i, 5]);
            Conv3x3.IlgpuWinograd.WeightTile4(g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], out var u0, out var u1, out var u2, out var u3, out var u4, out var u5);
            Conv3x3.IlgpuWinograd.InputTile4(Row(0), Row(1), Row(2), Row(3), Row(4), Row(5), out var v0, out var v1, out var v2, out var v3, out var v4, out var v5);
            static Six Times(Six a, Six b) => new(a.A * b.A, a.B * b.B, a.C * b.C, a.D * b.D, a.E * b.E, a.F * b.F);
            Conv3x3.IlgpuWinograd.OutputTile4(Times(u0, v0), Times(u1, v1), Times(u2, v2), Times(u3, v3), Times(u4, v4), Times(u5, v5),
                out var y0, out var y1, out var y2, out var y3);
            var y = new[] { y0, y1, y2, y3 };
            for (int p = 0; p < 4; p++)
                for (int q = 0; q < 4; q++)
                {
                    double want = 0;
                    for (int ky = 0; ky < 3; ky++) for (int kx = 0; kx < 3; kx++) want += g[3 * ky + kx] * (double)d[p + ky, q + kx];
                    float got = q switch { 0 => y[p].A, 1 => y[p].B, 2 => y[p].C, _ => y[p].D };
                    Assert.True(Math.Abs(got - want) < 1e-5, $"F(4×4) output ({p},{q}): {got} vs {want}");
                }
        }
    }

    [Fact]
    public void The_weight_transform_reproduces_the_kernel_through_the_output_transform()
    {
        // One output channel, one input channel: with V = Bᵀ d B for a 4×4 patch d, Aᵀ (U ⊙ V) A must be the 2×2
        // correlation of d with g — checked in float64 on random patches, so a wrong entry of G (or of ξ's order)
        // shows up here on its own, not only through a whole convolution.
        var rnd = new Random(Environment.TickCount);
        var g = Enumerable.Range(0, 9).Select(_ => (float)(rnd.NextDouble() - 0.5)).ToArray();
        var u = new double[16];
        Conv3x3.WinogradWeight(g, u);
        double[,] bt = { { 1, 0, -1, 0 }, { 0, 1, 1, 0 }, { 0, -1, 1, 0 }, { 0, 1, 0, -1 } };
        double[,] at = { { 1, 1, 1, 0 }, { 0, 1, -1, -1 } };
        for (int trial = 0; trial < 20; trial++)
        {
            var dpatch = new double[4, 4];
            for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) dpatch[i, j] = rnd.NextDouble() - 0.5;
            var mm = new double[4, 4];
            for (int a = 0; a < 4; a++)
                for (int c = 0; c < 4; c++)
                {
                    double vac = 0;
                    for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) vac += bt[a, i] * dpatch[i, j] * bt[c, j];
                    mm[a, c] = u[4 * a + c] * vac;
                }
            for (int p = 0; p < 2; p++)
                for (int q = 0; q < 2; q++)
                {
                    double got = 0, want = 0;
                    for (int a = 0; a < 4; a++) for (int c = 0; c < 4; c++) got += at[p, a] * mm[a, c] * at[q, c];
                    for (int ky = 0; ky < 3; ky++) for (int kx = 0; kx < 3; kx++) want += g[3 * ky + kx] * dpatch[p + ky, q + kx];
                    Assert.True(Math.Abs(got - want) < 1e-12, $"output ({p},{q}): {got} vs {want}");
                }
        }
    }

    [Theory]
    // Maps where F(4×4)'s rows of tiles fill less than a group of 8 than F(2×2)'s do: 12 and 16 px (measured 1.6–1.8×
    // faster in F(2×2) at 512 channels), and the tiny ones.
    [InlineData(16, 16, 2)]
    [InlineData(12, 12, 2)]
    [InlineData(8, 8, 2)]
    [InlineData(2, 2, 2)]
    [InlineData(64, 16, 2)]
    // 20, 24 and 32 px measured 1.2–1.4× faster in F(4×4); and every map VGG meets at 512 px.
    [InlineData(20, 20, 4)]
    [InlineData(24, 24, 4)]
    [InlineData(32, 32, 4)]
    [InlineData(16, 64, 4)]
    [InlineData(512, 512, 4)]
    [InlineData(37, 53, 4)]
    public void The_cpu_winograd_tile_is_the_one_with_fewer_products(int h, int w, int edge)
    {
        Assert.Equal(edge, Conv3x3.CpuWinograd.Edge(h, w));
        // The count itself, by hand for 16×16: F(2×2) 8 rows of one group of 8 tiles, 16 positions; F(4×4) 4 rows of
        // one group (4 tiles and 4 empty slots), 36 positions.
        Assert.Equal((8 * 8 * 16, 4 * 8 * 36), (Conv3x3.CpuWinograd.Products(16, 16, 2), Conv3x3.CpuWinograd.Products(16, 16, 4)));
    }

    [Fact]
    public void A_pass_takes_as_many_tiles_as_the_scratch_holds_in_whole_blocks()
    {
        // V and M each hold 16 × max(CinPad, CoutPad) × tiles floats.
        Assert.Equal(4096, Conv3x3.IlgpuWinograd.TilesPerPass(64, 64, 65536, 128, 4 << 20));      // conv1_2 at 512², 16 MB: 16 passes
        Assert.Equal(16384, Conv3x3.IlgpuWinograd.TilesPerPass(64, 64, 65536, 128, 16 << 20));    // with 64 MB: 4 passes
        Assert.Equal(1024, Conv3x3.IlgpuWinograd.TilesPerPass(512, 512, 1024, 128, 16 << 20));    // conv4 at 512²: all in one
        Assert.Equal(128, Conv3x3.IlgpuWinograd.TilesPerPass(64, 64, 100, 128, 16 << 20));        // padded to a block
        Assert.Equal(128, Conv3x3.IlgpuWinograd.TilesPerPass(512, 512, 65536, 128, 1000));        // at least one block
        Assert.Equal(1920, Conv3x3.IlgpuWinograd.TilesPerPass(512, 256, 65536, 128, (16 << 20) - 1)); // 2047.9 tiles → 15 blocks
    }
}
