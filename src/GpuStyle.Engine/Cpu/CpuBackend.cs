using GpuStyle.Kernels;

namespace GpuStyle.Engine.Cpu;

/// <summary>A tensor in host memory.</summary>
public sealed class CpuTensor : Tensor
{
    readonly CpuBackend _backend;

    internal CpuTensor(CpuBackend backend, Shape shape) : base(shape)
    {
        _backend = backend;
        Data = new float[shape.Size];
    }

    public override IBackend Backend => _backend;
    internal float[] Data { get; private set; }

    /// <summary>Bumped on every write, so packed copies of weights know when they are stale.</summary>
    internal int Version { get; set; }

    /// <summary>This tensor as convolution weights, packed for the kernels that use it (made on first use, dropped on a write).</summary>
    internal PackedWeights? Packed { get; set; }

    protected override void Free()
    {
        _backend.Memory.Released(4L * Data.Length);
        Data = [];
        Packed = null;
    }
}

/// <summary>Convolution weights packed for each kernel that reads them, each made the first time it is asked for.</summary>
sealed class PackedWeights(int version, float[] w, int cin, int cout)
{
    float[]? _forward, _backward;
    (int Edge, float[] U)? _winogradForward, _winogradBackward;
    public int Version => version;
    public float[] Forward => _forward ??= Conv3x3.Cpu.PackForward(w, cin, cout);
    public float[] Backward => _backward ??= Conv3x3.Cpu.PackBackward(w, cin, cout);
    /// <summary>U for Winograd tiles of the given edge, kept with its edge (a layer's map, and so its edge, changes only
    /// with the image's size: one pack each way is kept).</summary>
    public float[] WinogradForward(int edge)
    {
        if (_winogradForward is not { } p || p.Edge != edge)
            _winogradForward = p = (edge, Conv3x3.CpuWinograd.PackForward(w, cin, cout, edge));
        return p.U;
    }

    public float[] WinogradBackward(int edge)
    {
        if (_winogradBackward is not { } p || p.Edge != edge)
            _winogradBackward = p = (edge, Conv3x3.CpuWinograd.PackBackward(w, cin, cout, edge));
        return p.U;
    }
}

/// <summary>
/// The fast CPU backend: the multi-threaded kernels of kernels/*.Cpu on AVX2+FMA (x86-64), on 128-bit vectors
/// (ARM64's NEON; x86 too when asked for, so that tests run them), or their scalar fallback (a CPU with neither, or
/// when asked for, so tests cover it). Scratch buffers grow to the largest size seen and are reused, so an
/// optimisation loop allocates nothing large after its first iteration.
/// </summary>
public sealed class CpuBackend(CpuSimd? simd = null, bool? winograd = null, int? winogradEdge = null) : IBackend
{
    float[] _padded = [], _gramScratch = [];
    double[] _partials = new double[64];

    /// <summary>The kernels that run: those asked for, or the widest this CPU has where it lacks them (by default the
    /// widest: AVX2 on x86-64, Vector128 on ARM64).</summary>
    public CpuSimd Simd { get; } = CpuSimdLevels.AtMost(simd ?? CpuSimd.Avx2);

    /// <summary>True when vector kernels run (AVX2 or Vector128), false for the scalar fallback.</summary>
    public bool Vector => Simd != CpuSimd.Scalar;

    /// <summary>True when convolutions with 16 or more channels each way run by Winograd's algorithm (Conv3x3.CpuWinograd;
    /// vector kernels only); the others, and all of them when false, run the direct kernel.</summary>
    public bool Winograd => (winograd ?? true) && Vector;

    /// <summary>Winograd's output tile when fixed: 2 for F(2×2, 3×3), 4 for F(4×4, 3×3); null (the default) takes it
    /// per map from <see cref="Conv3x3.CpuWinograd.Edge"/> — F(4×4) but on maps so small that F(2×2) costs fewer
    /// products.</summary>
    public int? WinogradEdge { get; } = winogradEdge is null or 2 or 4 ? winogradEdge : throw new ArgumentException($"Winograd tiles are 2 or 4 pixels, not {winogradEdge}");

    int EdgeFor(int h, int w) => WinogradEdge ?? Conv3x3.CpuWinograd.Edge(h, w);

    public string Name => !Vector ? $"cpu (scalar, {Environment.ProcessorCount} threads)"
        : $"cpu ({CpuSimdLevels.Describe(Simd)}{(!Winograd ? "" : WinogradEdge is { } e ? $", Winograd F({e}×{e},3×3)" : ", Winograd F(4×4,3×3), F(2×2,3×3) on small maps")}, {Environment.ProcessorCount} threads)";

    public MemoryMeter Memory { get; } = new();

    public Tensor Allocate(Shape shape)
    {
        var t = new CpuTensor(this, shape);
        Memory.Allocated(4L * shape.Size);
        return t;
    }

    public void Upload(Tensor dst, ReadOnlySpan<float> src)
    {
        Check.Length(src.Length, dst, "upload source");
        src.CopyTo(W(dst));
    }

    public void Download(Tensor src, Span<float> dst)
    {
        Check.Length(dst.Length, src, "download destination");
        R(src).CopyTo(dst);
    }

    public void Synchronize() { }

    public void Conv3x3Forward(Tensor x, Tensor w, Tensor b, Tensor y, bool relu)
    {
        var d = Check.Conv(x, w, b, y);
        var packed = Packed(w, d);
        if (Winograd && Conv3x3.CpuWinograd.Applies(d.Cin, d.Cout))
        {
            int e = EdgeFor(d.H, d.W);
            var wp = Scratch(ref _padded, Conv3x3.CpuWinograd.PaddedSize(d.Cin, d.H, d.W, e));
            Conv3x3.CpuWinograd.Pad(R(x), null, wp, d.Cin, d.H, d.W, e);
            Conv3x3.CpuWinograd.Convolve(wp, packed.WinogradForward(e), R(b), W(y), d.Cin, d.Cout, d.H, d.W, relu, e, Simd);
            return;
        }
        var forward = packed.Forward;
        var padded = Scratch(ref _padded, Conv3x3.Cpu.PaddedSize(d.Cin, d.H, d.W));
        Conv3x3.Cpu.Pad(R(x), null, padded, d.Cin, d.H, d.W);
        Conv3x3.Cpu.Convolve(padded, forward, R(b), W(y), d.Cin, d.Cout, d.H, d.W, relu, Simd);
    }

    public void Conv3x3BackwardInput(Tensor dy, Tensor? reluOutput, Tensor w, Tensor dx)
    {
        var d = Check.ConvBackward(dy, reluOutput, w, dx);
        var packed = Packed(w, d);
        if (Winograd && Conv3x3.CpuWinograd.Applies(d.Cout, d.Cin))
        {
            int e = EdgeFor(d.H, d.W);
            var wp = Scratch(ref _padded, Conv3x3.CpuWinograd.PaddedSize(d.Cout, d.H, d.W, e));
            Conv3x3.CpuWinograd.Pad(R(dy), reluOutput is null ? null : R(reluOutput), wp, d.Cout, d.H, d.W, e);
            Conv3x3.CpuWinograd.Convolve(wp, packed.WinogradBackward(e), null, W(dx), d.Cout, d.Cin, d.H, d.W, relu: false, e, Simd);
            return;
        }
        var backward = packed.Backward;
        var padded = Scratch(ref _padded, Conv3x3.Cpu.PaddedSize(d.Cout, d.H, d.W));
        Conv3x3.Cpu.Pad(R(dy), reluOutput is null ? null : R(reluOutput), padded, d.Cout, d.H, d.W);
        Conv3x3.Cpu.Convolve(padded, backward, null, W(dx), d.Cout, d.Cin, d.H, d.W, relu: false, Simd);
    }

    /// <summary>The weights' packed forms, made once per weights tensor (and again after a write).</summary>
    static PackedWeights Packed(Tensor w, ConvDims d)
    {
        var t = (CpuTensor)w;
        R(t);
        if (t.Packed is not { } p || p.Version != t.Version)
            t.Packed = p = new PackedWeights(t.Version, t.Data, d.Cin, d.Cout);
        return p;
    }

    public void PoolForward(PoolKind kind, Tensor x, Tensor y)
    {
        Check.Pool(x, y);
        Pooling.Cpu.Forward(kind == PoolKind.Max, R(x), W(y), x.Shape.C, x.Shape.H, x.Shape.W, Simd);
    }

    public void PoolBackward(PoolKind kind, Tensor x, Tensor dy, Tensor dx)
    {
        Check.PoolBackward(x, dy, dx);
        Pooling.Cpu.Backward(kind == PoolKind.Max, R(x), R(dy), W(dx), x.Shape.C, x.Shape.H, x.Shape.W, Simd);
    }

    public void GramForward(Tensor f, Tensor g)
    {
        Check.Gram(f, g);
        int c = f.Shape.C;
        Gram.Cpu.Forward(R(f), W(g), Scratch(ref _gramScratch, Gram.Cpu.ScratchSize(c)), c, f.Shape.Plane, Simd);
    }

    public void GramBackwardAccumulate(Tensor f, Tensor dg, Tensor df)
    {
        Check.GramBackward(f, dg, df);
        int c = f.Shape.C;
        Gram.Cpu.BackwardAccumulate(R(f), R(dg), W(df), Scratch(ref _gramScratch, Gram.Cpu.BackwardScratchSize(c)), c, f.Shape.Plane, Simd);
    }

    public void ContentLoss(Tensor f, Tensor p, float weight, Tensor grad, Tensor scalars, int slot)
    {
        Check.ContentLoss(f, p, grad, scalars, slot);
        int n = f.Length;
        double s = Losses.Cpu.Content(R(f), R(p), W(grad), weight * 2f / n, Partials(n));
        W(scalars)[slot] = (float)(s / n);
    }

    public void StyleLoss(Tensor g, Tensor a, float weight, Tensor dg, Tensor scalars, int slot)
    {
        Check.StyleLoss(g, a, dg, scalars, slot);
        float c2 = (float)g.Shape.C * g.Shape.C;
        double s = Losses.Cpu.Style(R(g), R(a), W(dg), weight * 2f / c2);
        W(scalars)[slot] = (float)(s / c2);
    }

    public void TotalVariationLoss(Tensor x, float weight, Tensor grad, Tensor scalars, int slot)
    {
        Check.TotalVariation(x, grad, scalars, slot);
        int n = x.Length;
        var s = x.Shape;
        double sum = Losses.Cpu.TotalVariation(R(x), W(grad), s.C, s.H, s.W, weight / n, Partials(n));
        W(scalars)[slot] = (float)(sum / n);
    }

    public void Fill(Tensor x, float value) => Array.Fill(W(x), value);

    public void Copy(Tensor src, Tensor dst)
    {
        Check.Length(src.Length, dst, "copy destination");
        R(src).CopyTo(W(dst), 0);
    }

    public void Dot(Tensor x, Tensor y, Tensor scalars, int slot)
    {
        Check.Length(x.Length, y, "dot operand");
        Check.Slot(scalars, slot);
        float[] a = R(x), b = R(y);
        var v = Simd;
        W(scalars)[slot] = (float)VectorOps.Cpu.Reduce(a.Length, Partials(a.Length), (s, e) => VectorOps.Cpu.Dot(a, b, s, e, v));
    }

    public void Norm(Tensor x, Tensor scalars, int slot)
    {
        Check.Slot(scalars, slot);
        float[] a = R(x);
        var v = Simd;
        W(scalars)[slot] = (float)Math.Sqrt(VectorOps.Cpu.Reduce(a.Length, Partials(a.Length), (s, e) => VectorOps.Cpu.Dot(a, a, s, e, v)));
    }

    public void Axpy(float a, Tensor x, Tensor y)
    {
        Check.Length(x.Length, y, "axpy y");
        VectorOps.Cpu.Axpy(a, R(x), W(y));
    }

    public void Scale(Tensor x, float a)
    {
        var d = W(x);
        VectorOps.Cpu.For(d.Length, (s, e) => { for (int i = s; i < e; i++) d[i] *= a; });
    }

    public void Subtract(Tensor x, Tensor y, Tensor z)
    {
        Check.Elementwise(x, y, z, "subtract");
        float[] a = R(x), b = R(y), c = W(z);
        VectorOps.Cpu.For(a.Length, (s, e) => { for (int i = s; i < e; i++) c[i] = a[i] - b[i]; });
    }

    public void Multiply(Tensor x, Tensor y, Tensor z)
    {
        Check.Elementwise(x, y, z, "multiply");
        float[] a = R(x), b = R(y), c = W(z);
        VectorOps.Cpu.For(a.Length, (s, e) => { for (int i = s; i < e; i++) c[i] = a[i] * b[i]; });
    }

    public void WeightedSum(Tensor scalars, Tensor coefficients, int dst)
    {
        Check.WeightedSum(scalars, coefficients, dst);
        float[] s = W(scalars), c = R(coefficients);
        float total = 0f;   // float, in slot order: the same arithmetic as the ILGPU kernel
        for (int k = 0; k < c.Length; k++) total += c[k] * s[k];
        s[dst] = total;
    }

    public void AdamStep(Tensor x, Tensor g, Tensor m, Tensor v, AdamParameters parameters)
    {
        Check.Adam(x, g, m, v);
        VectorOps.Cpu.AdamStep(W(x), R(g), W(m), W(v), parameters);
    }

    public float ReadScalar(Tensor src, int index)
    {
        Check.Slot(src, index);
        return R(src)[index];
    }

    public void SetRow(Tensor rows, int row, Tensor x, Tensor? y)
    {
        Check.Row(rows, row, x, "set row");
        if (y is not null) Check.Same(x, y, "set row y");
        float[] d = W(rows), a = R(x), b = y is null ? a : R(y);
        int off = row * a.Length;
        bool subtract = y is not null;
        VectorOps.Cpu.For(a.Length, (s, e) => { for (int i = s; i < e; i++) d[off + i] = subtract ? a[i] - b[i] : a[i]; });
    }

    public void RowDots(Tensor rows, int a, int b, int c, Tensor products)
    {
        Check.RowDots(rows, a, b, c, products);
        Lbfgs.Cpu.RowDots(R(rows), rows.Shape.Plane, rows.Shape.C, a, b, c, W(products), Simd);
    }

    public void CombineRows(Tensor rows, Tensor coefficients, Tensor y)
    {
        Check.CombineRows(rows, coefficients, y);
        Lbfgs.Cpu.Combine(R(rows), rows.Shape.Plane, rows.Shape.C, R(coefficients), W(y), Simd);
    }

    public void LbfgsDirection(Tensor dots, Tensor products, Tensor coefficients, LbfgsRing ring)
    {
        Check.LbfgsDirection(dots, products, coefficients, ring);
        Lbfgs.Cpu.Direction(W(dots), R(products), W(coefficients), ring);
    }

    double[] Partials(int n)
    {
        int chunks = VectorOps.Cpu.Chunks(n);
        if (_partials.Length < chunks) _partials = new double[chunks];
        return _partials;
    }

    static float[] Scratch(ref float[] buffer, int size)
    {
        if (buffer.Length < size) buffer = new float[size];
        return buffer;
    }

    static float[] R(Tensor t) => t is CpuTensor c
        ? (c.IsDisposed ? throw new ObjectDisposedException(t.ToString()) : c.Data)
        : throw new ArgumentException($"{t} does not belong to the CPU backend");

    static float[] W(Tensor t)
    {
        var data = R(t);
        ((CpuTensor)t).Version++;
        return data;
    }

    public void Dispose()
    {
        _padded = [];
        _gramScratch = [];
    }
}
