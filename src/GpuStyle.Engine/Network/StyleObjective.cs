namespace GpuStyle.Engine.Network;

/// <summary>How much each loss counts in the total (DESIGN.md §3).</summary>
public sealed record LossWeights(float Content, float Style, float TotalVariation);

/// <summary>A content target: the tap's activation for the content image.</summary>
public sealed record ContentTarget(string Tap, Tensor Features);

/// <summary>A style target: the (blended) Gram matrix of the style image(s) at the tap, C×C.</summary>
public sealed record StyleTarget(string Tap, Tensor Gram);

/// <summary>
/// The style-transfer objective on the device:
///   total = w_c · mean over content layers of L_content + w_s · mean over style layers of L_style + w_tv · TV(x)
/// Evaluate writes the gradient with respect to the pixels and leaves every unweighted per-layer loss, and the
/// total, in <see cref="Scalars"/>: slots [content…, style…, tv, total]. Nothing is read back to the host.
/// </summary>
public sealed class StyleObjective : GpuStyle.Engine.Optimizers.IObjectiveFunction, IDisposable
{
    readonly IBackend _backend;
    readonly FeatureNetwork _network;
    readonly (int Layer, Tensor Target)[] _content;
    readonly (int Layer, Tensor Target, Tensor Gram, Tensor GramGrad)[] _style;
    readonly Tensor _coefficients;
    readonly LossWeights _weights;

    public IReadOnlyList<string> ContentTaps { get; }
    public IReadOnlyList<string> StyleTaps { get; }
    public Tensor Scalars { get; }
    public int TotalVariationSlot => _content.Length + _style.Length;
    public int TotalSlot => TotalVariationSlot + 1;

    public StyleObjective(IBackend backend, FeatureNetwork network, IReadOnlyList<ContentTarget> content,
        IReadOnlyList<StyleTarget> style, LossWeights weights)
    {
        _backend = backend;
        _network = network;
        _weights = weights;
        ContentTaps = content.Select(c => c.Tap).ToList();
        StyleTaps = style.Select(s => s.Tap).ToList();
        _content = content.Select(c =>
        {
            int layer = Resolve(c.Tap);
            Check.Same(network.Activation(layer), c.Features, $"content target at {c.Tap}");
            return (layer, c.Features);
        }).ToArray();
        var made = new List<Tensor>();
        try
        {
            _style = style.Select(s =>
            {
                int layer = Resolve(s.Tap);
                int ch = network.Shapes[layer].C;
                var gramShape = new Shape(ch, ch, 1);
                if (s.Gram.Shape != gramShape) throw new ArgumentException($"style target at {s.Tap}: expected a {gramShape} Gram matrix, got {s.Gram.Shape}");
                var g = backend.Allocate(gramShape); made.Add(g);
                var dg = backend.Allocate(gramShape); made.Add(dg);
                return (layer, s.Gram, g, dg);
            }).ToArray();
            Scalars = backend.Allocate(Shape.Vector(TotalSlot + 1)); made.Add(Scalars);
            _coefficients = backend.Allocate(Shape.Vector(TotalSlot)); made.Add(_coefficients);
        }
        catch
        {
            foreach (var t in made) t.Dispose();
            throw;
        }
        var coefficients = new float[TotalSlot];
        for (int i = 0; i < _content.Length; i++) coefficients[i] = ContentLayerWeight;
        for (int i = 0; i < _style.Length; i++) coefficients[_content.Length + i] = StyleLayerWeight;
        coefficients[TotalVariationSlot] = weights.TotalVariation;
        backend.Upload(_coefficients, coefficients);
    }

    float ContentLayerWeight => _content.Length == 0 ? 0f : _weights.Content / _content.Length;
    float StyleLayerWeight => _style.Length == 0 ? 0f : _weights.Style / _style.Length;

    int Resolve(string tap)
    {
        int layer = _network.Spec.IndexOf(tap);
        if (layer >= _network.Depth) throw new ArgumentException($"tap {tap} lies deeper than the network was built ({_network.Depth} layers)");
        return layer;
    }

    /// <summary>Forward, losses, backward: grad (same shape as x) is overwritten with d total / dx.</summary>
    public void Evaluate(Tensor x, Tensor grad)
    {
        _network.Forward(x);
        _network.Backward(x, grad, AddLossGradients);
        _backend.TotalVariationLoss(x, _weights.TotalVariation, grad, Scalars, TotalVariationSlot);
        _backend.WeightedSum(Scalars, _coefficients, TotalSlot);
    }

    void AddLossGradients(int layer)
    {
        var f = _network.Activation(layer);
        var df = _network.Gradient(layer);
        for (int i = 0; i < _content.Length; i++)
            if (_content[i].Layer == layer)
                _backend.ContentLoss(f, _content[i].Target, ContentLayerWeight, df, Scalars, i);
        for (int i = 0; i < _style.Length; i++)
        {
            var s = _style[i];
            if (s.Layer != layer) continue;
            _backend.GramForward(f, s.Gram);
            _backend.StyleLoss(s.Gram, s.Target, StyleLayerWeight, s.GramGrad, Scalars, _content.Length + i);
            _backend.GramBackwardAccumulate(f, s.GramGrad, df);
        }
    }

    public void Dispose()
    {
        foreach (var s in _style) { s.Gram.Dispose(); s.GramGrad.Dispose(); }
        Scalars.Dispose();
        _coefficients.Dispose();
    }
}
