using System.Diagnostics;
using GpuStyle.Kernels;

namespace GpuStyle.Engine.Bench;

/// <summary>Time spent in one kind of op (one shape of convolution, say) over a profiled stretch.</summary>
public sealed record OpProfile(string Op, int Calls, double Seconds, double Gflop)
{
    public double Gflops => Gflop / Seconds;
}

/// <summary>
/// `bench --profile`: wraps a backend and times every op, synchronising before and after each so the time is the
/// op's own (on a GPU's single stream this serialises nothing that was not serial already; it only adds the wait).
/// Convolutions and Gram matrices are keyed by shape and carry their FLOPs. The tensors are the inner backend's.
/// </summary>
public sealed class ProfilingBackend(IBackend inner) : IBackend
{
    readonly Dictionary<string, (int Calls, double Seconds, double Gflop)> _ops = new();

    public string Name => inner.Name;
    public MemoryMeter Memory => inner.Memory;

    public IReadOnlyList<OpProfile> Results() =>
        _ops.Select(kv => new OpProfile(kv.Key, kv.Value.Calls, kv.Value.Seconds, kv.Value.Gflop)).OrderByDescending(o => o.Seconds).ToList();

    public void Reset() => _ops.Clear();

    void Time(string op, double gflop, Action action)
    {
        inner.Synchronize();
        long start = Stopwatch.GetTimestamp();
        action();
        inner.Synchronize();
        double s = Stopwatch.GetElapsedTime(start).TotalSeconds;
        _ops[op] = _ops.TryGetValue(op, out var p) ? (p.Calls + 1, p.Seconds + s, p.Gflop + gflop) : (1, s, gflop);
    }

    static double ConvGflop(int cin, int cout, Shape s) => 2.0 * 9 * cin * cout * s.Plane / 1e9;

    public Tensor Allocate(Shape shape) => inner.Allocate(shape);
    public void Upload(Tensor dst, ReadOnlySpan<float> src) => inner.Upload(dst, src);
    public void Download(Tensor src, Span<float> dst) => inner.Download(src, dst);
    public void Synchronize() => inner.Synchronize();

    public void Conv3x3Forward(Tensor x, Tensor w, Tensor b, Tensor y, bool relu) =>
        Time($"conv forward {x.Shape.C}→{y.Shape.C} {y.Shape.H}×{y.Shape.W}", ConvGflop(x.Shape.C, y.Shape.C, y.Shape),
            () => inner.Conv3x3Forward(x, w, b, y, relu));
    public void Conv3x3BackwardInput(Tensor dy, Tensor? reluOutput, Tensor w, Tensor dx) =>
        Time($"conv backward {dy.Shape.C}→{dx.Shape.C} {dx.Shape.H}×{dx.Shape.W}", ConvGflop(dx.Shape.C, dy.Shape.C, dx.Shape),
            () => inner.Conv3x3BackwardInput(dy, reluOutput, w, dx));
    public void PoolForward(PoolKind kind, Tensor x, Tensor y) => Time("pool forward", 0, () => inner.PoolForward(kind, x, y));
    public void PoolBackward(PoolKind kind, Tensor x, Tensor dy, Tensor dx) => Time("pool backward", 0, () => inner.PoolBackward(kind, x, dy, dx));
    public void GramForward(Tensor f, Tensor g) =>
        Time($"gram forward {f.Shape}", 2.0 * f.Shape.C * f.Shape.C * f.Shape.Plane / 1e9, () => inner.GramForward(f, g));
    public void GramBackwardAccumulate(Tensor f, Tensor dg, Tensor df) =>
        Time($"gram backward {f.Shape}", 2.0 * f.Shape.C * f.Shape.C * f.Shape.Plane / 1e9, () => inner.GramBackwardAccumulate(f, dg, df));
    public void ContentLoss(Tensor f, Tensor p, float weight, Tensor grad, Tensor scalars, int slot) =>
        Time("content loss", 0, () => inner.ContentLoss(f, p, weight, grad, scalars, slot));
    public void StyleLoss(Tensor g, Tensor a, float weight, Tensor dg, Tensor scalars, int slot) =>
        Time("style loss", 0, () => inner.StyleLoss(g, a, weight, dg, scalars, slot));
    public void TotalVariationLoss(Tensor x, float weight, Tensor grad, Tensor scalars, int slot) =>
        Time("total variation", 0, () => inner.TotalVariationLoss(x, weight, grad, scalars, slot));
    public void Fill(Tensor x, float value) => Time("vector ops (optimiser)", 0, () => inner.Fill(x, value));
    public void Copy(Tensor src, Tensor dst) => Time("vector ops (optimiser)", 0, () => inner.Copy(src, dst));
    public void Dot(Tensor x, Tensor y, Tensor scalars, int slot) => Time("vector ops (optimiser)", 0, () => inner.Dot(x, y, scalars, slot));
    public void Norm(Tensor x, Tensor scalars, int slot) => Time("vector ops (optimiser)", 0, () => inner.Norm(x, scalars, slot));
    public void Axpy(float a, Tensor x, Tensor y) => Time("vector ops (optimiser)", 0, () => inner.Axpy(a, x, y));
    public void AxpyScalar(Tensor scalars, int slot, float factor, Tensor x, Tensor y) =>
        Time("vector ops (optimiser)", 0, () => inner.AxpyScalar(scalars, slot, factor, x, y));
    public void Scale(Tensor x, float a) => Time("vector ops (optimiser)", 0, () => inner.Scale(x, a));
    public void Subtract(Tensor x, Tensor y, Tensor z) => Time("vector ops (optimiser)", 0, () => inner.Subtract(x, y, z));
    public void Multiply(Tensor x, Tensor y, Tensor z) => Time("vector ops (optimiser)", 0, () => inner.Multiply(x, y, z));
    public void AdamStep(Tensor x, Tensor g, Tensor m, Tensor v, AdamParameters parameters) =>
        Time("vector ops (optimiser)", 0, () => inner.AdamStep(x, g, m, v, parameters));
    public void ScalarOp(Tensor scalars, int op, int a, int b, int dst) => Time("scalar ops", 0, () => inner.ScalarOp(scalars, op, a, b, dst));
    public void WeightedSum(Tensor scalars, Tensor coefficients, int dst) => Time("scalar ops", 0, () => inner.WeightedSum(scalars, coefficients, dst));

    public void Dispose() { }   // the inner backend belongs to the caller
}
