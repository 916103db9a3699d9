using GpuStyle.Engine;
using GpuStyle.Engine.Ilgpu;
using GpuStyle.Kernels;
using GpuStyle.Tests.Support;

namespace GpuStyle.Tests;

/// <summary>
/// The ILGPU reductions' group shapes (<see cref="VectorOps.Ilgpu.SumGroups"/>, <see cref="VectorOps.Ilgpu.Finish"/>):
/// several folding groups, two folding passes (the buffers swap), a finishing group with fewer partials than threads
/// and with a stride, group sizes that are not powers of two — each against the float64 dot product and norm.
/// </summary>
public class ReductionTests
{
    [Theory]
    [InlineData(200, 5)]    // 200 partials → 10 groups of 20 → a second pass → 1 → finish
    [InlineData(50, 4)]     // 50 → 4 groups → finish adds 4 partials in a tree of 4
    [InlineData(600, 7)]    // 600 → 22 → 1: uneven groups, a 7-thread tree
    [InlineData(64, 16)]    // 64 → 1 group of 16 threads × 4
    public void Dot_and_norm_match_the_reference_for_any_group_shape(int reductionThreads, int finishThreads)
    {
        using var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny with { ReductionThreads = reductionThreads, FinishThreads = finishThreads });
        foreach (int n in new[] { 1, 3, 999, 40_000 })
        {
            var rnd = new TestData(Environment.TickCount ^ n ^ reductionThreads);
            var xd = rnd.UniformF32(n);
            var yd = rnd.UniformF32(n);
            using var x = b.Make(Shape.Vector(n), xd);
            using var y = b.Make(Shape.Vector(n), yd);
            using var scalars = b.Make(Shape.Vector(3), null);   // NaN until written
            b.Dot(x, y, scalars, 0);
            b.Norm(x, scalars, 2);
            var got = b.Read(scalars);
            // Relative to Σ|x·y|: a dot of random signs may cancel to almost nothing.
            double dot = VectorOps.Reference.Dot(xd, yd), scale = xd.Zip(yd, (p, q) => Math.Abs(p * q)).Sum();
            Assert.True(Math.Abs(got[0] - dot) <= 1e-6 * scale, $"dot of {n} ({reductionThreads}/{finishThreads}): {got[0]} vs {dot}");
            Assertions.Close(VectorOps.Reference.Norm(xd), got[2], 1e-5, $"norm of {n} ({reductionThreads}/{finishThreads})");
            Assert.True(float.IsNaN(got[1]), "a reduction wrote outside its slot");
        }
    }

    [Fact]
    public void A_finishing_group_larger_than_the_device_allows_is_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny with { FinishThreads = 100_000 }));
        Assert.Contains("reductions", e.Message);
    }
}
