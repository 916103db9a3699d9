using GpuStyle.Kernels;

namespace GpuStyle.Engine.Optimizers;

/// <summary>
/// What an optimiser minimises: Evaluate writes d total / dx into grad and leaves the total (and whatever else the
/// objective reports) in <see cref="Scalars"/>, on the device.
/// </summary>
public interface IObjectiveFunction
{
    Tensor Scalars { get; }
    int TotalSlot { get; }
    void Evaluate(Tensor x, Tensor grad);
}

/// <summary>
/// An optimiser over the pixels. <see cref="Start"/> evaluates the starting image (iteration 0); each
/// <see cref="Step"/> moves the image and leaves the objective's scalars describing the new <see cref="Current"/>.
/// </summary>
public interface IOptimizer : IDisposable
{
    /// <summary>The image being optimised (the optimiser's own buffer; read it, do not keep it across steps).</summary>
    Tensor Current { get; }
    /// <summary>The total loss of <see cref="Current"/> (read back from the device).</summary>
    float Loss { get; }
    void Start();
    /// <summary>One iteration; returns how many times the objective was evaluated.</summary>
    int Step();
    /// <summary>True once no step lowers the loss any more (a stationary point, to float precision).</summary>
    bool Converged { get; }
}

/// <summary>Adam on the device: one evaluation per step.</summary>
public sealed class AdamOptimizer : IOptimizer
{
    readonly IBackend _b;
    readonly IObjectiveFunction _f;
    readonly Tensor _x, _g, _m, _v;
    readonly float _learningRate;
    readonly float[] _readback;
    int _t;

    public AdamOptimizer(IBackend backend, IObjectiveFunction objective, Tensor start, float learningRate)
    {
        _b = backend;
        _f = objective;
        _learningRate = learningRate;
        _x = backend.Allocate(start.Shape);
        _g = backend.Allocate(start.Shape);
        _m = backend.Allocate(start.Shape);
        _v = backend.Allocate(start.Shape);
        backend.Copy(start, _x);
        backend.Fill(_m, 0f);
        backend.Fill(_v, 0f);
        _readback = new float[objective.Scalars.Length];
    }

    public Tensor Current => _x;
    public float Loss { get; private set; } = float.NaN;
    public bool Converged => false;   // Adam has no line search to tell; it runs its iterations

    public void Start() => Evaluate();

    public int Step()
    {
        _t++;
        _b.AdamStep(_x, _g, _m, _v, new AdamParameters(_learningRate, 0.9f, 0.999f, 1e-8f, _t));
        Evaluate();
        return 1;
    }

    void Evaluate()
    {
        _f.Evaluate(_x, _g);
        _b.Download(_f.Scalars, _readback);
        Loss = _readback[_f.TotalSlot];
    }

    public void Dispose()
    {
        _x.Dispose(); _g.Dispose(); _m.Dispose(); _v.Dispose();
    }
}

/// <summary>
/// L-BFGS on the device, vector-free (kernels/Lbfgs.cs): the pairs and the gradient are rows of one history tensor,
/// their pairwise dot products a small matrix kept up to date with one pass over the history an iteration, and the
/// two-loop recursion runs on coefficients in one kernel — a handful of launches an iteration however long the
/// history, where the classical recursion makes four a pair (≈ 1 000 with 100 pairs). The host reads back one
/// number per evaluation (the loss, for the line search) plus g·d and the new pair's sᵀy once per iteration. The line
/// search backtracks (Armijo, halving) from t = 1, or from t = min(1, 1/‖g‖∞)·initialStep on the first iteration and
/// after a reset, so every accepted step lowers the loss.
/// </summary>
public sealed class LbfgsOptimizer : IOptimizer
{
    const float Armijo = 1e-4f;
    const int MaxEvaluations = 12;

    readonly IBackend _b;
    readonly IObjectiveFunction _f;
    readonly int _history;
    Tensor _x, _g, _xNew, _gNew;
    readonly Tensor _d, _sc;          // direction; scalars [tmp]
    readonly Tensor _rows;            // R = 2m + 1 rows: s₀…sₘ₋₁, y₀…yₘ₋₁, g (LbfgsRing)
    readonly Tensor _dots;            // R×R: the rows' dot products (current for the pairs in use and g)
    readonly Tensor _products;        // 3×R: the newest pair's s and y, and g, against every row
    readonly Tensor _coefficients;    // R + m: the direction's coefficients, then the α's
    readonly float[] _readback;
    readonly float _initialStep;
    int _count, _newest, _stalls;
    bool _pairPending;                // _products holds a pair not merged into _dots yet
    bool _gradientInRows;             // _g is in the gradient row and its products in _products

    /// <summary>The most pairs a history can hold for vectors of length n: R·n floats must fit one tensor.</summary>
    public static int MaxHistory(int n) => Math.Max(1, (int.MaxValue / n - 1) / 2);

    /// <summary>The pairs kept (the requested history, capped by <see cref="MaxHistory"/>).</summary>
    public int History => _history;

    public LbfgsOptimizer(IBackend backend, IObjectiveFunction objective, Tensor start, int history = 100, float initialStep = 10f)
    {
        if (history < 1) throw new ArgumentOutOfRangeException(nameof(history), "L-BFGS needs a history of at least 1");
        _b = backend;
        _f = objective;
        _history = Math.Min(history, MaxHistory(start.Length));
        _initialStep = initialStep;
        var shape = start.Shape;
        var ring = Ring(false);
        var made = new List<Tensor>();
        Tensor Make(Shape s) { var t = backend.Allocate(s); made.Add(t); return t; }
        try
        {
            _x = Make(shape); _g = Make(shape); _xNew = Make(shape); _gNew = Make(shape); _d = Make(shape);
            _sc = Make(Shape.Vector(1));
            _rows = Make(new Shape(ring.Rows, 1, start.Length));
            _dots = Make(Shape.Vector(ring.Rows * ring.Rows));
            _products = Make(Shape.Vector(3 * ring.Rows));
            _coefficients = Make(Shape.Vector(ring.Rows + _history));
        }
        catch
        {
            foreach (var t in made) t.Dispose();
            throw;
        }
        // Zeros, not garbage: rows and dot products of unused slots are multiplied by zero coefficients.
        backend.Fill(_rows, 0f);
        backend.Fill(_dots, 0f);
        backend.Copy(start, _x);
        _readback = new float[objective.Scalars.Length];
    }

    public Tensor Current => _x;
    public float Loss { get; private set; } = float.NaN;
    public bool Converged { get; private set; }

    public void Start()
    {
        Loss = Evaluate(_x, _g);
        _gradientInRows = false;
    }

    LbfgsRing Ring(bool newPair) => new(_history, _count, _newest, newPair);

    public int Step()
    {
        Direction();
        float gd = ReadDot(_g, _d);
        if (!(gd < 0))
        {
            // Not a descent direction (curvature pairs gone bad): forget them and go down the gradient.
            _count = 0;
            _b.Copy(_g, _d);
            _b.Scale(_d, -1f);
            gd = ReadDot(_g, _d);
        }
        float t = _count == 0 ? FirstStep() : 1f;
        float f0 = Loss;
        for (int evals = 1; ; evals++)
        {
            _b.Copy(_x, _xNew);
            _b.Axpy(t, _d, _xNew);
            float f = Evaluate(_xNew, _gNew);
            if (float.IsFinite(f) && f <= f0 + Armijo * t * gd)
            {
                Accept(f);
                return evals;
            }
            if (evals == MaxEvaluations)
            {
                // No decrease along this direction at any tried step: keep the image, drop the history. If the
                // direction was already plain steepest descent, nothing lowers the loss: converged.
                Converged = _count == 0;
                _count = 0;
                _pairPending = false;
                Loss = Evaluate(_x, _g);
                _gradientInRows = false;
                return evals + 1;
            }
            t *= 0.5f;
        }
    }

    float FirstStep()
    {
        _b.Norm(_g, _sc, 0);
        float norm = _b.ReadScalar(_sc, 0);
        // Scale so the first step moves pixels by about initialStep (RMS, in 0..255 units), whatever the loss scale.
        return norm > 0 ? _initialStep * MathF.Sqrt(_g.Length) / norm : 1f;
    }

    /// <summary>d = −H·g: the recursion on the coefficients, then one pass combining the rows.</summary>
    void Direction()
    {
        var ring = Ring(false);
        if (!_gradientInRows)
        {
            // A gradient that did not come with a new pair (the first iteration, or after a reset): its products only.
            _b.SetRow(_rows, ring.Gradient, _g, null);
            _b.RowDots(_rows, ring.Gradient, ring.Gradient, ring.Gradient, _products);
            _gradientInRows = true;
            _pairPending = false;
        }
        _b.LbfgsDirection(_dots, _products, _coefficients, Ring(_pairPending));
        _pairPending = false;
        _b.CombineRows(_rows, _coefficients, _d);
    }

    void Accept(float f)
    {
        // Three accepted steps in a row that each lower the loss by less than a millionth: nothing left to gain.
        _stalls = Loss - f <= 1e-6f * MathF.Abs(Loss) ? _stalls + 1 : 0;
        if (_stalls >= 3) Converged = true;
        int i = _count == 0 ? 0 : (_newest + 1) % _history, gradient = Ring(false).Gradient;
        _b.SetRow(_rows, i, _xNew, _x);
        _b.SetRow(_rows, _history + i, _gNew, _g);
        _b.SetRow(_rows, gradient, _gNew, null);
        _b.RowDots(_rows, i, _history + i, gradient, _products);
        _gradientInRows = true;
        float sy = _b.ReadScalar(_products, _history + i);   // row i's product with row m + i: sᵢ·yᵢ
        if (sy > 1e-10f)
        {
            // Keep the pair only with positive curvature: H stays positive definite.
            _newest = i;
            _count = Math.Min(_count + 1, _history);
            _pairPending = true;
        }
        else
        {
            // Slot i is overwritten: when the ring was full it held the oldest pair, which is gone now.
            if (_count == _history) _count--;
            _pairPending = false;
        }
        (_x, _xNew) = (_xNew, _x);
        (_g, _gNew) = (_gNew, _g);
        Loss = f;
    }

    float ReadDot(Tensor a, Tensor b)
    {
        _b.Dot(a, b, _sc, 0);
        return _b.ReadScalar(_sc, 0);
    }

    float Evaluate(Tensor x, Tensor g)
    {
        _f.Evaluate(x, g);
        _b.Download(_f.Scalars, _readback);
        return _readback[_f.TotalSlot];
    }

    public void Dispose()
    {
        foreach (var t in new[] { _x, _g, _xNew, _gNew, _d, _sc, _rows, _dots, _products, _coefficients }) t.Dispose();
    }
}
