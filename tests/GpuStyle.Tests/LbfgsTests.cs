using GpuStyle.Engine;
using GpuStyle.Engine.Ilgpu;
using GpuStyle.Kernels;
using GpuStyle.Tests.Support;

namespace GpuStyle.Tests;

/// <summary>
/// The vector-free L-BFGS ops (kernels/Lbfgs.cs) on every backend: the passes over the history against float64
/// sums, and the whole direction — rows written, products merged into the dot matrix, the recursion on coefficients,
/// the rows combined — against the classical two-loop recursion on the vectors, through a ring that wraps around
/// and a pair that is not kept. Outputs start as NaN.
/// </summary>
[Collection(IlgpuCpuCollection.Name)]
public class LbfgsTests(IlgpuCpuFixture fx)
{
    IEnumerable<IBackend> Backends()
    {
        yield return fx.Backend;    // 3-thread groups
        yield return fx.CpuVector;
        yield return fx.CpuV128;
        yield return fx.CpuScalar;
    }

    [Theory]
    [InlineData(5, 1)]
    [InlineData(7, 203)]     // several chunks of the 3-thread groups, and a tail
    [InlineData(3, 37)]
    [InlineData(19, 37)]     // the combination's 8 rows a step: two steps and a tail of 3, a poisoned row in each
    public void Row_dots_and_combinations_match_float64_sums(int rowCount, int n)
    {
        var rnd = new TestData(Environment.TickCount ^ rowCount ^ n);
        var rows = Enumerable.Range(0, rowCount).Select(_ => rnd.UniformF32(n)).ToArray();
        var coefficients = rnd.UniformF32(rowCount);
        coefficients[1] = 0;   // rows 1 and rowCount − 2 are poisoned below: a zero coefficient must not add them
        coefficients[rowCount - 2] = 0;
        int a = rowCount - 1, b = 0, c = rowCount / 2;
        foreach (var be in Backends())
        {
            using var t = be.Make(new Shape(rowCount, 1, n), rows.SelectMany(r => r).ToArray());
            using var products = be.Make(Shape.Vector(3 * rowCount), null);
            be.RowDots(t, a, b, c, products);
            var got = be.Read(products);
            for (int k = 0; k < 3; k++)
                for (int j = 0; j < rowCount; j++)
                {
                    var w = rows[new[] { a, b, c }[k]];
                    double expected = VectorOps.Reference.Dot(rows[j], w), scale = rows[j].Zip(w, (p, q) => Math.Abs(p * q)).Sum();
                    Assert.True(Math.Abs(got[k * rowCount + j] - expected) <= 1e-5 * scale,
                        $"{be.Name}: row {j}·row {w} = {got[k * rowCount + j]}, expected {expected}");
                }

            var poisoned = rows.Select((r, j) => coefficients[j] == 0 ? Enumerable.Repeat(double.NaN, n).ToArray() : r).SelectMany(r => r).ToArray();
            using var p = be.Make(new Shape(rowCount, 1, n), poisoned);
            using var coef = be.Make(Shape.Vector(rowCount), coefficients);
            using var y = be.Make(Shape.Vector(n), null);
            be.CombineRows(p, coef, y);
            var expectedY = new double[n];
            var magnitude = new double[n];   // Σ|c_j·row_j|: the terms can cancel (n = 1 once left 2e-5 of a result 8× smaller than them)
            for (int j = 0; j < rowCount; j++)
                if (coefficients[j] != 0)
                {
                    expectedY = VectorOps.Reference.Axpy(coefficients[j], rows[j], expectedY);
                    magnitude = VectorOps.Reference.Axpy(Math.Abs(coefficients[j]), rows[j].Select(Math.Abs).ToArray(), magnitude);
                }
            var gotY = be.Read(y);
            for (int i = 0; i < n; i++)
                Assert.True(float.IsFinite(gotY[i]) && Math.Abs(gotY[i] - expectedY[i]) <= 1e-5 * magnitude[i],
                    $"combined rows on {be.Name}, element {i}: {gotY[i]}, expected {expectedY[i]} (Σ|terms| {magnitude[i]})");
        }
    }

    [Fact]
    public void Set_row_writes_one_row_only()
    {
        var rnd = new TestData(Environment.TickCount);
        var x = rnd.UniformF32(11);
        var y = rnd.UniformF32(11);
        foreach (var be in Backends())
        {
            using var rows = be.Make(new Shape(3, 1, 11), null);
            using var tx = be.Make(Shape.Vector(11), x);
            using var ty = be.Make(Shape.Vector(11), y);
            be.SetRow(rows, 2, tx, ty);
            be.SetRow(rows, 0, tx, null);
            var got = be.Read(rows);
            Assertions.Close(x, got[..11], 0, $"copied row on {be.Name}");
            Assert.All(got[11..22], v => Assert.True(float.IsNaN(v), $"{be.Name}: row 1 was written"));
            Assertions.Close(VectorOps.Reference.Subtract(x, y), got[22..], 1e-7, $"subtracted row on {be.Name}");
            Assert.Throws<ArgumentOutOfRangeException>(() => be.SetRow(rows, 3, tx, null));
        }
    }

    /// <summary>
    /// Pairs with positive curvature (y = A·s + noise for a symmetric positive definite A) go into a ring of
    /// <paramref name="history"/> slots as <see cref="GpuStyle.Engine.Optimizers.LbfgsOptimizer"/> puts them, and
    /// after each the direction for a fresh gradient must equal the classical recursion over the pairs in use.
    /// </summary>
    [Theory]
    [InlineData(3, 29, 7)]     // wraps around the ring twice
    [InlineData(1, 10, 3)]
    [InlineData(4, 203, 5)]
    public void The_vector_free_direction_is_the_two_loop_recursion(int history, int n, int pairs)
    {
        int seed = Environment.TickCount ^ history ^ n;
        foreach (var be in Backends())
        {
            var rnd = new TestData(seed);
            var diag = rnd.Uniform(n).Select(v => 1.5 + v).ToArray();   // A = diag(0.5 … 2.5)
            var ring = new LbfgsRing(history, 0, 0, false);
            using var rows = be.Make(new Shape(ring.Rows, 1, n), new double[ring.Rows * n]);
            using var dots = be.Make(Shape.Vector(ring.Rows * ring.Rows), new double[ring.Rows * ring.Rows]);
            using var products = be.Make(Shape.Vector(3 * ring.Rows), null);
            using var coefficients = be.Make(Shape.Vector(ring.Rows + history), null);
            using var d = be.Make(Shape.Vector(n), null);
            var kept = new List<(double[] S, double[] Y)>();   // newest first
            int count = 0, newest = 0;

            // The first direction, with no pairs: −g.
            var g0 = rnd.UniformF32(n);
            using (var tg = be.Make(Shape.Vector(n), g0))
            {
                be.SetRow(rows, ring.Gradient, tg, null);
                be.RowDots(rows, ring.Gradient, ring.Gradient, ring.Gradient, products);
            }
            be.LbfgsDirection(dots, products, coefficients, new LbfgsRing(history, 0, 0, false));
            be.CombineRows(rows, coefficients, d);
            Assertions.Close(g0.Select(v => -v).ToArray(), be.Read(d), 1e-6, $"{be.Name}: the direction with no pairs");

            for (int p = 0; p < pairs; p++)
            {
                var s = rnd.UniformF32(n);
                var y = s.Select((v, i) => (double)(float)(diag[i] * v + 0.01 * rnd.Uniform(1)[0])).ToArray();
                bool keep = p != 2;    // the third pair is dropped, as one with sᵀy ≤ 0 would be
                int slot = count == 0 ? 0 : (newest + 1) % history;
                using var ts = be.Make(Shape.Vector(n), s);
                using var ty = be.Make(Shape.Vector(n), y);
                using var zero = be.Make(Shape.Vector(n), new double[n]);
                var g = rnd.UniformF32(n);
                using var tg = be.Make(Shape.Vector(n), g);
                be.SetRow(rows, slot, ts, zero);
                be.SetRow(rows, history + slot, ty, null);
                be.SetRow(rows, ring.Gradient, tg, null);
                be.RowDots(rows, slot, history + slot, ring.Gradient, products);
                if (keep)
                {
                    newest = slot;
                    count = Math.Min(count + 1, history);
                    kept.Insert(0, (s, y));
                    if (kept.Count > history) kept.RemoveAt(kept.Count - 1);
                }
                else if (count == history)
                {
                    count--;
                    kept.RemoveAt(kept.Count - 1);   // its slot held the oldest pair
                }
                be.LbfgsDirection(dots, products, coefficients, new LbfgsRing(history, count, newest, keep));
                be.CombineRows(rows, coefficients, d);
                var expected = Lbfgs.Reference.Direction(kept, g);
                double scale = expected.Max(Math.Abs);
                var got = be.Read(d);
                for (int i = 0; i < n; i++)
                    Assert.True(Math.Abs(got[i] - expected[i]) <= 1e-4 * scale,
                        $"{be.Name}, pair {p}: d[{i}] = {got[i]}, the two-loop recursion gives {expected[i]}");
            }
        }
    }

    [Theory]
    [InlineData(3 * 512 * 512)]
    [InlineData(3 * 2048 * 2048)]    // 84 pairs: 169 rows of 12.6 M floats
    [InlineData(3 * 4000 * 3000)]
    public void The_history_is_capped_where_its_rows_would_not_fit_one_tensor(int n)
    {
        int m = GpuStyle.Engine.Optimizers.LbfgsOptimizer.MaxHistory(n);
        Assert.True((2L * m + 1) * n <= int.MaxValue, $"{m} pairs of {n} floats do not fit");
        Assert.True((2L * (m + 1) + 1) * n > int.MaxValue, $"{m + 1} pairs of {n} floats would fit too");
    }

    [Fact]
    public void Group_sizes_that_are_not_powers_of_two_give_the_same_direction()
    {
        // The recursion's per-thread ownership (j ≡ thread mod group size) with more threads than rows and fewer.
        var rnd = new TestData(Environment.TickCount);
        const int history = 5, n = 64;
        var ring = new LbfgsRing(history, history, 2, true);
        var rowValues = rnd.UniformF32(ring.Rows * n);
        for (int i = 0; i < history; i++)   // y = 2s + noise: positive curvature
            for (int k = 0; k < n; k++)
                rowValues[(history + i) * n + k] = 2 * rowValues[i * n + k] + 0.1 * rowValues[(history + i) * n + k];
        float[]? first = null;
        foreach (int threads in new[] { 1, 3, 7, 16 })
        {
            using var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny with { FinishThreads = threads });
            using var rows = b.Make(new Shape(ring.Rows, 1, n), rowValues);
            using var dots = b.Make(Shape.Vector(ring.Rows * ring.Rows), new double[ring.Rows * ring.Rows]);
            using var products = b.Make(Shape.Vector(3 * ring.Rows), null);
            using var coefficients = b.Make(Shape.Vector(ring.Rows + history), null);
            // Every pair's products, then the gradient's with the last: the dot matrix fills as the optimiser's would.
            for (int i = 0; i < history; i++)
            {
                int slot = (ring.Newest + 1 + i) % history;
                b.RowDots(rows, slot, history + slot, ring.Gradient, products);
                b.LbfgsDirection(dots, products, coefficients, new LbfgsRing(history, i + 1, slot, true));
            }
            var got = b.Read(coefficients)[..ring.Rows];
            Assert.All(got, v => Assert.True(float.IsFinite(v)));
            if (first is null) first = got;
            else Assertions.Close(TestData.ToDouble(first), got, 1e-5, $"coefficients with {threads}-thread groups");
        }
    }
}
