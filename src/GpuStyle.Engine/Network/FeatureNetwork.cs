namespace GpuStyle.Engine.Network;

/// <summary>
/// A feature network living on one backend, sized for one input shape: weights uploaded once, every activation and
/// every gradient buffer allocated once, so forward and backward passes allocate nothing.
/// </summary>
public sealed class FeatureNetwork : IDisposable
{
    readonly IBackend _backend;
    readonly Tensor?[] _weights, _biases;
    readonly Tensor[] _activations, _gradients;

    public NetworkSpec Spec { get; }
    public PoolKind Pooling { get; }
    public Shape InputShape { get; }
    public IReadOnlyList<Shape> Shapes { get; }

    /// <param name="depth">How many layers to instantiate (the deepest tap + 1): nothing past it is computed.</param>
    public FeatureNetwork(IBackend backend, NetworkSpec spec, Shape input, PoolKind pooling, int? depth = null)
    {
        _backend = backend;
        int n = depth ?? spec.Layers.Count;
        if (n < 1 || n > spec.Layers.Count) throw new ArgumentOutOfRangeException(nameof(depth), $"depth {n} of a {spec.Layers.Count}-layer network");
        Spec = spec with { Layers = spec.Layers.Take(n).ToList() };
        Pooling = pooling;
        InputShape = input;
        var shapes = Spec.OutputShapes(input);
        Shapes = shapes;
        _weights = new Tensor?[n];
        _biases = new Tensor?[n];
        _activations = new Tensor[n];
        _gradients = new Tensor[n];
        try
        {
            for (int i = 0; i < n; i++)
            {
                if (Spec.Layers[i] is ConvSpec c)
                {
                    c.Validate();
                    _weights[i] = backend.Allocate(new Shape(c.OutChannels, c.InChannels, 9));
                    backend.Upload(_weights[i]!, c.Weights);
                    _biases[i] = backend.Allocate(Shape.Vector(c.OutChannels));
                    backend.Upload(_biases[i]!, c.Bias);
                }
                _activations[i] = backend.Allocate(shapes[i]);
                _gradients[i] = backend.Allocate(shapes[i]);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public int Depth => _activations.Length;

    /// <summary>The output of layer i from the last forward pass.</summary>
    public Tensor Activation(int i) => _activations[i];

    /// <summary>The gradient buffer of layer i's output, used by the backward pass (and losses add into it).</summary>
    public Tensor Gradient(int i) => _gradients[i];

    public void Forward(Tensor x)
    {
        if (x.Shape != InputShape) throw new ArgumentException($"the network was built for {InputShape}, got {x.Shape}");
        var input = x;
        for (int i = 0; i < Depth; i++)
        {
            switch (Spec.Layers[i])
            {
                case ConvSpec:
                    _backend.Conv3x3Forward(input, _weights[i]!, _biases[i]!, _activations[i], relu: true);
                    break;
                case PoolSpec:
                    _backend.PoolForward(Pooling, input, _activations[i]);
                    break;
            }
            input = _activations[i];
        }
    }

    /// <summary>
    /// Backward from the gradients of the layer outputs to the input. <paramref name="addLossGradients"/>(i) is
    /// called for every layer i from the deepest down, after Gradient(i) holds what flowed from above (zero for the
    /// deepest) and before it flows further down, so the losses tapped at layer i can add into it.
    /// </summary>
    public void Backward(Tensor x, Tensor dx, Action<int> addLossGradients)
    {
        Check.Same(x, dx, "input gradient");
        _backend.Fill(_gradients[Depth - 1], 0f);
        for (int i = Depth - 1; i >= 0; i--)
        {
            addLossGradients(i);
            var input = i == 0 ? x : _activations[i - 1];
            var dInput = i == 0 ? dx : _gradients[i - 1];
            switch (Spec.Layers[i])
            {
                case ConvSpec:
                    _backend.Conv3x3BackwardInput(_gradients[i], _activations[i], _weights[i]!, dInput);
                    break;
                case PoolSpec:
                    _backend.PoolBackward(Pooling, input, _gradients[i], dInput);
                    break;
            }
        }
    }

    public void Dispose()
    {
        foreach (var t in _weights.Concat(_biases).Concat(_activations).Concat(_gradients)) t?.Dispose();
    }
}
