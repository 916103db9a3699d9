using GpuStyle.Engine.Cpu;

namespace GpuStyle.Engine.Bench;

/// <summary>One op's result on a device against the CPU backend.</summary>
public sealed record AgreementResult(string Op, string Shape, double RelativeError, double Bound)
{
    public bool Passed => RelativeError <= Bound;
}

/// <summary>
/// Every op of a device (a GPU, typically) against the fast CPU backend on the same random inputs: what a lent GPU
/// runs first, before any timing. GPU math is approximate (ex2.approx, fused multiply-adds in another order), so the
/// bound is 1e-3 of each output's largest magnitude; 5e-3 for the TF32 convolutions (and Gram matrices with MmaGram),
/// whose products keep 11 significant bits (2^-11 ≈ 5e-4 each).
/// </summary>
public static class AgreementCheck
{
    public const double Tolerance = 1e-3, Tf32Tolerance = 5e-3;

    public static List<AgreementResult> Run(IBackend device, int seed = 1)
    {
        using var cpu = new CpuBackend();
        var results = new List<AgreementResult>();
        var random = new Random(seed);
        double convBound = device is Ilgpu.IlgpuBackend { ConvVariant: Ilgpu.ConvKernel.Tf32 } or Ilgpu.IlgpuBackend { Tf32Winograd: true } ? Tf32Tolerance : Tolerance;
        double gramBound = device is Ilgpu.IlgpuBackend { TensorCoreGram: true } ? Tf32Tolerance : Tolerance;
        foreach (var (cin, cout, h, w) in new[] { (3, 64, 37, 29), (64, 128, 32, 32), (17, 5, 13, 17), (256, 256, 16, 16) })
        {
            var x = Values(cin * h * w, random);
            var wt = Values(cout * cin * 9, random, MathF.Sqrt(2f / (9 * cin)));
            var b = Values(cout, random, 0.1f);
            var dy = Values(cout * h * w, random);
            string shape = $"{cin}→{cout} {h}×{w}";
            var (yd, yc) = Both(device, cpu, new Shape(cout, h, w), (k, t) =>
                k.Conv3x3Forward(t(new Shape(cin, h, w), x), t(new Shape(cout, cin, 9), wt), t(Shape.Vector(cout), b), t(new Shape(cout, h, w), null), true));
            results.Add(Compare("conv forward + ReLU", shape, yd, yc, convBound));
            var (dxd, dxc) = Both(device, cpu, new Shape(cin, h, w), (k, t) =>
                k.Conv3x3BackwardInput(t(new Shape(cout, h, w), dy), t(new Shape(cout, h, w), yc), t(new Shape(cout, cin, 9), wt), t(new Shape(cin, h, w), null)));
            results.Add(Compare("conv backward (ReLU mask)", shape, dxd, dxc, convBound));
            var (gd, gc) = Both(device, cpu, new Shape(cout, cout, 1), (k, t) =>
                k.GramForward(t(new Shape(cout, h, w), yc), t(new Shape(cout, cout, 1), null)));
            results.Add(Compare("gram forward", $"{cout}×{h}×{w}", gd, gc, gramBound));
            var dg = Values(cout * cout, random);
            var start = Values(cout * h * w, random);
            var (dfd, dfc) = Both(device, cpu, new Shape(cout, h, w), (k, t) =>
                k.GramBackwardAccumulate(t(new Shape(cout, h, w), yc), t(new Shape(cout, cout, 1), dg), t(new Shape(cout, h, w), start)));
            results.Add(Compare("gram backward", $"{cout}×{h}×{w}", dfd, dfc, gramBound));
            foreach (var kind in new[] { PoolKind.Max, PoolKind.Avg })
            {
                var (pd, pc) = Both(device, cpu, new Shape(cout, h / 2, w / 2), (k, t) =>
                    k.PoolForward(kind, t(new Shape(cout, h, w), yc), t(new Shape(cout, h / 2, w / 2), null)));
                results.Add(Compare($"{kind.ToString().ToLowerInvariant()} pool forward", $"{cout}×{h}×{w}", pd, pc));
                var dp = Values(cout * (h / 2) * (w / 2), random);
                var (bd, bc) = Both(device, cpu, new Shape(cout, h, w), (k, t) =>
                    k.PoolBackward(kind, t(new Shape(cout, h, w), yc), t(new Shape(cout, h / 2, w / 2), dp), t(new Shape(cout, h, w), null)));
                results.Add(Compare($"{kind.ToString().ToLowerInvariant()} pool backward", $"{cout}×{h}×{w}", bd, bc));
            }
            var p = Values(cout * h * w, random);
            var (cd, cc) = Both(device, cpu, new Shape(cout, h, w), (k, t) =>
            {
                var s = t(Shape.Vector(1), null);
                k.ContentLoss(t(new Shape(cout, h, w), yc), t(new Shape(cout, h, w), p), 0.5f, t(new Shape(cout, h, w), start), s, 0);
            });
            results.Add(Compare("content loss gradient", $"{cout}×{h}×{w}", cd, cc));
        }
        var img = Values(3 * 61 * 47, random, 100f);
        var tvStart = Values(3 * 61 * 47, random);
        var (td, tc) = Both(device, cpu, new Shape(3, 61, 47), (k, t) =>
            k.TotalVariationLoss(t(new Shape(3, 61, 47), img), 0.3f, t(new Shape(3, 61, 47), tvStart), t(Shape.Vector(1), null), 0));
        results.Add(Compare("TV gradient", "3×61×47", td, tc));
        // The reductions every loss and the optimiser share: a 512² image's length (several folding groups) and a
        // short vector (the finishing group alone).
        foreach (int n in new[] { 3 * 512 * 512, 37 })
        {
            var u = Values(n, random);
            var v = Values(n, random);
            var (rd, rc) = Both(device, cpu, Shape.Vector(2), (k, t) =>
            {
                var x = t(Shape.Vector(n), u);
                var s = t(Shape.Vector(2), null);
                k.Dot(x, t(Shape.Vector(n), v), s, 0);
                k.Norm(x, s, 1);
            });
            results.Add(Compare("dot product, norm", $"{n}", rd, rc));
        }
        // L-BFGS's history (kernels/Lbfgs.cs) at a 256² image's length: 4 pairs with positive curvature (y = 2s +
        // noise) and a gradient, their products merged pair by pair as the optimiser does, then the direction.
        const int pairs = 4, rowCount = 2 * pairs + 1, len = 3 * 256 * 256;
        var rowValues = Values(rowCount * len, random);
        for (int i = 0; i < pairs * len; i++) rowValues[pairs * len + i] = 2 * rowValues[i] + 0.1f * rowValues[pairs * len + i];
        var (ld, lc) = Both(device, cpu, Shape.Vector(len), (k, t) =>
        {
            var rows = t(new Shape(rowCount, 1, len), rowValues);
            var dots = t(Shape.Vector(rowCount * rowCount), new float[rowCount * rowCount]);
            var products = t(Shape.Vector(3 * rowCount), null);
            var coefficients = t(Shape.Vector(rowCount + pairs), null);
            for (int i = 0; i < pairs; i++)
            {
                k.RowDots(rows, i, pairs + i, 2 * pairs, products);
                k.LbfgsDirection(dots, products, coefficients, new Kernels.LbfgsRing(pairs, i + 1, i, newPair: true));
            }
            k.CombineRows(rows, coefficients, t(Shape.Vector(len), null));
        });
        results.Add(Compare("L-BFGS direction", $"{rowCount}×{len}", ld, lc));
        return results;
    }

    /// <summary>Runs op on both backends; t(shape, values) makes a tensor (values null: NaN-filled output) and the last
    /// tensor made is the one compared.</summary>
    static (float[] Device, float[] Cpu) Both(IBackend device, IBackend cpu, Shape result, Action<IBackend, Func<Shape, float[]?, Tensor>> op)
    {
        float[] RunOn(IBackend k)
        {
            var made = new List<Tensor>();
            Tensor Make(Shape s, float[]? v)
            {
                var t = k.Allocate(s);
                made.Add(t);
                k.Upload(t, v ?? Enumerable.Repeat(float.NaN, s.Size).ToArray());
                return t;
            }
            try
            {
                op(k, Make);
                var last = made.Last(t => t.Shape == result);
                var values = new float[last.Length];
                k.Download(last, values);
                return values;
            }
            finally
            {
                foreach (var t in made) t.Dispose();
            }
        }
        return (RunOn(device), RunOn(cpu));
    }

    static AgreementResult Compare(string op, string shape, float[] device, float[] cpu, double bound = Tolerance)
    {
        double scale = cpu.Max(v => Math.Abs((double)v)), worst = 0;
        for (int i = 0; i < cpu.Length; i++)
        {
            double e = Math.Abs((double)device[i] - cpu[i]);
            if (!double.IsFinite(e)) { worst = double.PositiveInfinity; break; }
            worst = Math.Max(worst, e);
        }
        double rel = scale > 0 ? worst / scale : worst;
        return new AgreementResult(op, shape, rel, bound);
    }

    static float[] Values(int n, Random r, float scale = 1f)
    {
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float)(r.NextDouble() * 2 - 1) * scale;
        return v;
    }
}
