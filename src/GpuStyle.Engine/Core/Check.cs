using GpuStyle.Kernels;

namespace GpuStyle.Engine;

/// <summary>
/// Shape checks every backend makes on the host before it launches anything: a kernel reading out of bounds on a GPU
/// is a device fault that ends the CUDA context, so a wrong shape must be an exception here instead.
/// </summary>
public static class Check
{
    public static void Length(int expected, Tensor t, string what)
    {
        if (t.Length != expected) throw new ArgumentException($"{what}: expected {expected} elements, {t} has {t.Length}");
    }

    public static void Same(Tensor expected, Tensor t, string what)
    {
        if (t.Shape != expected.Shape) throw new ArgumentException($"{what}: expected shape {expected.Shape}, got {t.Shape}");
    }

    public static void Slot(Tensor scalars, int slot)
    {
        if ((uint)slot >= (uint)scalars.Length) throw new ArgumentOutOfRangeException(nameof(slot), $"slot {slot} outside {scalars.Length} scalars");
    }

    public static ConvDims Conv(Tensor x, Tensor w, Tensor b, Tensor y)
    {
        int cin = x.Shape.C, cout = y.Shape.C;
        if (y.Shape.H != x.Shape.H || y.Shape.W != x.Shape.W)
            throw new ArgumentException($"conv output {y.Shape} must have the input's spatial size {x.Shape}");
        Length(cout * cin * 9, w, $"conv weights for {cin}→{cout} channels");
        Length(cout, b, "conv bias");
        return new ConvDims(cin, cout, x.Shape.H, x.Shape.W);
    }

    public static ConvDims ConvBackward(Tensor dy, Tensor? reluOutput, Tensor w, Tensor dx)
    {
        if (reluOutput is not null) Same(dy, reluOutput, "conv backward ReLU output");
        if (dy.Shape.H != dx.Shape.H || dy.Shape.W != dx.Shape.W)
            throw new ArgumentException($"conv backward: dx {dx.Shape} must have dy's spatial size {dy.Shape}");
        Length(dy.Shape.C * dx.Shape.C * 9, w, $"conv weights for {dx.Shape.C}→{dy.Shape.C} channels");
        return new ConvDims(dx.Shape.C, dy.Shape.C, dy.Shape.H, dy.Shape.W);
    }

    public static void Pool(Tensor x, Tensor y)
    {
        var want = PooledShape(x.Shape);
        if (y.Shape != want) throw new ArgumentException($"pooling {x.Shape} gives {want}, got {y.Shape}");
    }

    public static Shape PooledShape(Shape s)
    {
        if (s.H < 2 || s.W < 2) throw new ArgumentException($"a {s} map is too small to pool 2×2");
        return new Shape(s.C, s.H / 2, s.W / 2);
    }

    public static void Gram(Tensor f, Tensor g)
    {
        var want = new Shape(f.Shape.C, f.Shape.C, 1);
        if (g.Shape != want) throw new ArgumentException($"the Gram matrix of {f.Shape} is {want}, got {g.Shape}");
    }

    // ---- Op-level checks: one definition of each op's shape rules, called by every backend ----------------------

    public static void ContentLoss(Tensor f, Tensor p, Tensor grad, Tensor scalars, int slot)
    {
        Same(f, p, "content target");
        Same(f, grad, "content gradient");
        Slot(scalars, slot);
    }

    public static void StyleLoss(Tensor g, Tensor a, Tensor dg, Tensor scalars, int slot)
    {
        Same(g, a, "style target");
        Same(g, dg, "style gradient");
        Slot(scalars, slot);
    }

    public static void TotalVariation(Tensor x, Tensor grad, Tensor scalars, int slot)
    {
        Same(x, grad, "TV gradient");
        Slot(scalars, slot);
    }

    public static void PoolBackward(Tensor x, Tensor dy, Tensor dx)
    {
        Pool(x, dy);
        Same(x, dx, "pool backward dx");
    }

    public static void GramBackward(Tensor f, Tensor dg, Tensor df)
    {
        Gram(f, dg);
        Same(f, df, "gram backward df");
    }

    /// <summary>z = x op y element-wise: all three the same length.</summary>
    public static void Elementwise(Tensor x, Tensor y, Tensor z, string what)
    {
        Length(x.Length, y, $"{what} y");
        Length(x.Length, z, $"{what} z");
    }

    public static void Adam(Tensor x, Tensor g, Tensor m, Tensor v)
    {
        Same(x, g, "Adam gradient");
        Same(x, m, "Adam first moment");
        Same(x, v, "Adam second moment");
    }

    /// <summary>rows is R×1×N with vectors of length N and the row in range.</summary>
    public static void Row(Tensor rows, int row, Tensor x, string what)
    {
        if (rows.Shape.Plane != x.Length)
            throw new ArgumentException($"{what}: rows of {rows.Shape.Plane} floats cannot hold a vector of {x.Length}");
        if ((uint)row >= (uint)rows.Shape.C)
            throw new ArgumentOutOfRangeException(nameof(row), $"{what}: row {row} of {rows.Shape.C}");
    }

    /// <summary>Rows a, b, c of the R rows exist, and products holds 3R.</summary>
    public static void RowDots(Tensor rows, int a, int b, int c, Tensor products)
    {
        int r = rows.Shape.C;
        foreach (int w in new[] { a, b, c })
            if ((uint)w >= (uint)r) throw new ArgumentOutOfRangeException(nameof(a), $"row dots: row {w} of {r}");
        Length(3 * r, products, "row dot products");
    }

    /// <summary>y has the rows' length and there is a coefficient for every row.</summary>
    public static void CombineRows(Tensor rows, Tensor coefficients, Tensor y)
    {
        Length(rows.Shape.Plane, y, "combined rows");
        if (coefficients.Length < rows.Shape.C) throw new ArgumentException($"{coefficients.Length} coefficients for {rows.Shape.C} rows");
    }

    public static void LbfgsDirection(Tensor dots, Tensor products, Tensor coefficients, LbfgsRing ring)
    {
        int r = ring.Rows;
        if (ring.History < 1 || ring.Count < 0 || ring.Count > ring.History || (uint)ring.Newest >= (uint)ring.History)
            throw new ArgumentException($"an L-BFGS ring of {ring.Count} pairs in {ring.History} slots, newest {ring.Newest}");
        Length(r * r, dots, "L-BFGS dot matrix");
        Length(3 * r, products, "L-BFGS products");
        Length(r + ring.History, coefficients, "L-BFGS coefficients");
    }

    public static void WeightedSum(Tensor scalars, Tensor coefficients, int dst)
    {
        Slot(scalars, dst);
        if (coefficients.Length > scalars.Length)
            throw new ArgumentException($"{coefficients.Length} coefficients for {scalars.Length} scalars");
    }
}
