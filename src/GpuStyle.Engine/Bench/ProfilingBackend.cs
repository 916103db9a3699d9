using System.Diagnostics;
using GpuStyle.Engine.Ilgpu;
using GpuStyle.Kernels;
using ILGPU.Runtime;

namespace GpuStyle.Engine.Bench;

/// <summary>Time spent in one kind of op (one shape of convolution, say) over a profiled stretch.</summary>
public sealed record OpProfile(string Op, int Calls, double Seconds, double Gflop)
{
    public double Gflops => Gflop / Seconds;
}

/// <summary>
/// `bench --profile`: wraps a backend and times every op. On an ILGPU backend opened with profiling, each op is
/// bracketed by two profiling markers (CUDA events on a GPU) in the one stream, and nothing waits: the iteration runs
/// as it would unprofiled, and the times are read when <see cref="Results"/> synchronises. Elsewhere (the CPU
/// backend, whose ops are synchronous) a stopwatch times each op. Convolutions and Gram matrices are keyed by shape
/// and carry their FLOPs. The tensors are the inner backend's.
/// </summary>
public sealed class ProfilingBackend(IBackend inner) : IBackend
{
    readonly Dictionary<string, (int Calls, double Seconds, double Gflop)> _ops = new();
    readonly List<(string Op, double Gflop, ProfilingMarker Start, ProfilingMarker End)> _pending = new();
    readonly IlgpuBackend? _markers = inner is IlgpuBackend { Profiling: true } g ? g : null;

    public string Name => inner.Name;
    public MemoryMeter Memory => inner.Memory;

    /// <summary>How the ops are timed, for the report.</summary>
    public string Clock => _markers is not null ? "profiling markers in the stream (no synchronisation between ops)" : "a stopwatch around each op";

    public IReadOnlyList<OpProfile> Results()
    {
        Collect();
        return _ops.Select(kv => new OpProfile(kv.Key, kv.Value.Calls, kv.Value.Seconds, kv.Value.Gflop)).OrderByDescending(o => o.Seconds).ToList();
    }

    public void Reset()
    {
        Collect();
        _ops.Clear();
        HostReads = 0;
        HostFloatsRead = 0;
    }

    /// <summary>Device-to-host copies since the last reset (each one waits for the stream) and the floats they
    /// carried: the optimisation loop should read a few scalars an iteration, never an image.</summary>
    public int HostReads { get; private set; }
    public long HostFloatsRead { get; private set; }

    void Time(string op, double gflop, Action action)
    {
        if (_markers is not null)
        {
            var start = _markers.Mark();
            action();
            _pending.Add((op, gflop, start, _markers.Mark()));
            return;
        }
        inner.Synchronize();
        long t0 = Stopwatch.GetTimestamp();
        action();
        inner.Synchronize();
        Add(op, gflop, Stopwatch.GetElapsedTime(t0).TotalSeconds);
    }

    void Add(string op, double gflop, double seconds) =>
        _ops[op] = _ops.TryGetValue(op, out var p) ? (p.Calls + 1, p.Seconds + seconds, p.Gflop + gflop) : (1, seconds, gflop);

    /// <summary>Waits for the stream, then turns marker pairs into times.</summary>
    void Collect()
    {
        if (_pending.Count == 0) return;
        inner.Synchronize();
        foreach (var (op, gflop, start, end) in _pending)
        {
            Add(op, gflop, end.MeasureFrom(start).TotalSeconds);
            start.Dispose();
            end.Dispose();
        }
        _pending.Clear();
    }

    static double ConvGflop(int cin, int cout, Shape s) => 2.0 * 9 * cin * cout * s.Plane / 1e9;

    public Tensor Allocate(Shape shape) => inner.Allocate(shape);
    public void Upload(Tensor dst, ReadOnlySpan<float> src) => inner.Upload(dst, src);
    public void Download(Tensor src, Span<float> dst)
    {
        HostReads++;
        HostFloatsRead += dst.Length;
        inner.Download(src, dst);
    }
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
    public void Scale(Tensor x, float a) => Time("vector ops (optimiser)", 0, () => inner.Scale(x, a));
    public void Subtract(Tensor x, Tensor y, Tensor z) => Time("vector ops (optimiser)", 0, () => inner.Subtract(x, y, z));
    public void Multiply(Tensor x, Tensor y, Tensor z) => Time("vector ops (optimiser)", 0, () => inner.Multiply(x, y, z));
    public void AdamStep(Tensor x, Tensor g, Tensor m, Tensor v, AdamParameters parameters) =>
        Time("vector ops (optimiser)", 0, () => inner.AdamStep(x, g, m, v, parameters));
    public void WeightedSum(Tensor scalars, Tensor coefficients, int dst) => Time("scalar ops", 0, () => inner.WeightedSum(scalars, coefficients, dst));
    public float ReadScalar(Tensor src, int index)
    {
        HostReads++;
        HostFloatsRead++;
        return inner.ReadScalar(src, index);
    }
    public void SetRow(Tensor rows, int row, Tensor x, Tensor? y) => Time("L-BFGS history", 0, () => inner.SetRow(rows, row, x, y));
    public void RowDots(Tensor rows, int a, int b, int c, Tensor products) => Time("L-BFGS history", 0, () => inner.RowDots(rows, a, b, c, products));
    public void CombineRows(Tensor rows, Tensor coefficients, Tensor y) => Time("L-BFGS history", 0, () => inner.CombineRows(rows, coefficients, y));
    public void LbfgsDirection(Tensor dots, Tensor products, Tensor coefficients, LbfgsRing ring) =>
        Time("L-BFGS recursion", 0, () => inner.LbfgsDirection(dots, products, coefficients, ring));

    public void Dispose() => Collect();   // the inner backend belongs to the caller; the markers are ours
}
