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
/// L-BFGS on the device. The two-loop recursion runs entirely there — its ρ, α and β live in a scalars buffer and
/// steps use <see cref="IBackend.AxpyScalar"/> — and the host reads back one number per evaluation (the loss, for
/// the line search) plus g·d once per iteration. The line search backtracks (Armijo, halving) from t = 1, or from
/// t = min(1, 1/‖g‖∞)·initialStep on the first iteration and after a reset, so every accepted step lowers the loss.
/// </summary>
public sealed class LbfgsOptimizer : IOptimizer
{
    const float Armijo = 1e-4f;
    const int MaxEvaluations = 12;

    readonly IBackend _b;
    readonly IObjectiveFunction _f;
    readonly int _history;
    readonly Tensor[] _s, _y;
    Tensor _x, _g, _xNew, _gNew;
    readonly Tensor _d, _q, _sc;      // direction, recursion vector, scalars: [ρ₀…ρₘ₋₁, α₀…αₘ₋₁, tmp, tmp2, one]
    readonly float[] _readback, _sync;
    readonly float _initialStep;
    int _count, _newest = -1, _stalls;

    int Rho(int i) => i;
    int Alpha(int i) => _history + i;
    int Tmp => 2 * _history;
    int Tmp2 => 2 * _history + 1;
    int One => 2 * _history + 2;

    public LbfgsOptimizer(IBackend backend, IObjectiveFunction objective, Tensor start, int history = 100, float initialStep = 10f)
    {
        if (history < 1) throw new ArgumentOutOfRangeException(nameof(history), "L-BFGS needs a history of at least 1");
        _b = backend;
        _f = objective;
        _history = history;
        _initialStep = initialStep;
        var shape = start.Shape;
        _x = backend.Allocate(shape); _g = backend.Allocate(shape);
        _xNew = backend.Allocate(shape); _gNew = backend.Allocate(shape);
        _d = backend.Allocate(shape); _q = backend.Allocate(shape);
        _s = new Tensor[history];
        _y = new Tensor[history];
        for (int i = 0; i < history; i++) { _s[i] = backend.Allocate(shape); _y[i] = backend.Allocate(shape); }
        _sc = backend.Allocate(Shape.Vector(2 * history + 3));
        backend.Fill(_sc, 1f);
        backend.Copy(start, _x);
        _readback = new float[objective.Scalars.Length];
        _sync = new float[_sc.Length];
    }

    public Tensor Current => _x;
    public float Loss { get; private set; } = float.NaN;
    public bool Converged { get; private set; }

    public void Start() => Loss = Evaluate(_x, _g);

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
                Loss = Evaluate(_x, _g);
                return evals + 1;
            }
            t *= 0.5f;
        }
    }

    float FirstStep()
    {
        _b.Norm(_g, _sc, Tmp);
        _b.Download(_sc, _sync);
        float norm = _sync[Tmp];
        // Scale so the first step moves pixels by about initialStep (RMS, in 0..255 units), whatever the loss scale.
        return norm > 0 ? _initialStep * MathF.Sqrt(_g.Length) / norm : 1f;
    }

    /// <summary>d = −H·g by the two-loop recursion over the stored (s, y) pairs, on the device.</summary>
    void Direction()
    {
        _b.Copy(_g, _q);
        for (int k = 0; k < _count; k++)
        {
            int i = Slot(k);   // newest first
            _b.Dot(_s[i], _q, _sc, Tmp);
            _b.ScalarOp(_sc, ScalarOps.Multiply, Rho(i), Tmp, Alpha(i));
            _b.AxpyScalar(_sc, Alpha(i), -1f, _y[i], _q);
        }
        _b.Fill(_d, 0f);
        if (_count == 0)
            _b.Axpy(1f, _q, _d);
        else
        {
            // Initial Hessian γI with γ = sᵀy / yᵀy of the newest pair.
            _b.Dot(_s[_newest], _y[_newest], _sc, Tmp);
            _b.Dot(_y[_newest], _y[_newest], _sc, Tmp2);
            _b.ScalarOp(_sc, ScalarOps.Divide, Tmp, Tmp2, Tmp);
            _b.AxpyScalar(_sc, Tmp, 1f, _q, _d);
        }
        for (int k = _count - 1; k >= 0; k--)
        {
            int i = Slot(k);   // oldest first
            _b.Dot(_y[i], _d, _sc, Tmp);
            _b.ScalarOp(_sc, ScalarOps.Multiply, Rho(i), Tmp, Tmp);          // β
            _b.ScalarOp(_sc, ScalarOps.Subtract, Alpha(i), Tmp, Tmp);        // α − β
            _b.AxpyScalar(_sc, Tmp, 1f, _s[i], _d);
        }
        _b.Scale(_d, -1f);
    }

    int Slot(int k) => ((_newest - k) % _history + _history) % _history;

    void Accept(float f)
    {
        // Three accepted steps in a row that each lower the loss by less than a millionth: nothing left to gain.
        _stalls = Loss - f <= 1e-6f * MathF.Abs(Loss) ? _stalls + 1 : 0;
        if (_stalls >= 3) Converged = true;
        int i = (_newest + 1) % _history;
        _b.Subtract(_xNew, _x, _s[i]);
        _b.Subtract(_gNew, _g, _y[i]);
        _b.Dot(_s[i], _y[i], _sc, Tmp);
        _b.Download(_sc, _sync);
        if (_sync[Tmp] > 1e-10f)
        {
            // Keep the pair only with positive curvature: H stays positive definite.
            _b.ScalarOp(_sc, ScalarOps.Divide, One, Tmp, Rho(i));
            _newest = i;
            _count = Math.Min(_count + 1, _history);
        }
        (_x, _xNew) = (_xNew, _x);
        (_g, _gNew) = (_gNew, _g);
        Loss = f;
    }

    float ReadDot(Tensor a, Tensor b)
    {
        _b.Dot(a, b, _sc, Tmp);
        _b.Download(_sc, _sync);
        return _sync[Tmp];
    }

    float Evaluate(Tensor x, Tensor g)
    {
        _f.Evaluate(x, g);
        _b.Download(_f.Scalars, _readback);
        return _readback[_f.TotalSlot];
    }

    public void Dispose()
    {
        foreach (var t in _s.Concat(_y).Concat([_x, _g, _xNew, _gNew, _d, _q, _sc])) t.Dispose();
    }
}
