using GpuStyle.Engine.Network;
using GpuStyle.Engine.Optimizers;

namespace GpuStyle.Engine.Pipelines;

/// <summary>The three things GpuStyle optimises an image for (the layers grid is `Content` at one layer at a time).</summary>
public enum RunMode { Transfer, Content, Texture }

public enum OptimizerKind { Lbfgs, Adam }

/// <summary>Everything a run needs besides its pictures.</summary>
public sealed record RunSettings
{
    public RunMode Mode { get; init; } = RunMode.Transfer;
    public IReadOnlyList<string> ContentLayers { get; init; } = ["relu4_2"];
    public IReadOnlyList<string> StyleLayers { get; init; } = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"];
    public LossWeights Weights { get; init; } = new(1f, 1e3f, 1e-3f);
    public PoolKind Pooling { get; init; } = PoolKind.Max;
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Lbfgs;
    public float LearningRate { get; init; } = 2f;
    public int History { get; init; } = 100;
    public int Iterations { get; init; } = 500;
}

/// <summary>One line of a run's log: the unweighted per-layer losses (DESIGN.md §3) after an iteration.</summary>
public sealed record IterationReport(int Iteration, IReadOnlyList<(string Layer, float Loss)> Content,
    IReadOnlyList<(string Layer, float Loss)> Style, float TotalVariation, float Total, int Evaluations);

/// <summary>
/// One optimisation of the pixels: builds the network at the output's size, the targets from the content picture
/// and the style pictures (blended Gram matrices), the objective and the optimiser — all on one backend — then steps.
/// Pure engine: pictures in, pictures out, no files, no console.
/// </summary>
public sealed class StyleRun : IDisposable
{
    readonly IBackend _b;
    readonly FeatureNetwork _network;
    readonly StyleObjective _objective;
    readonly IOptimizer _optimizer;
    readonly List<Tensor> _owned = new();
    readonly float[] _scalars;
    int _iteration;

    public RunSettings Settings { get; }
    public Shape OutputShape { get; }

    /// <param name="content">The photo (required for Transfer and Content).</param>
    /// <param name="styles">The paintings (required for Transfer and Texture), with blend weights summing to 1.</param>
    /// <param name="start">The starting image, at the output's size.</param>
    public StyleRun(IBackend backend, NetworkSpec spec, RunSettings settings, Picture? content,
        IReadOnlyList<(Picture Picture, float Blend)> styles, Picture start)
    {
        _b = backend;
        Settings = settings;
        var contentLayers = settings.Mode == RunMode.Texture ? [] : settings.ContentLayers;
        var styleLayers = settings.Mode == RunMode.Content ? [] : settings.StyleLayers;
        if (contentLayers.Count > 0 && content is null) throw new ArgumentException("this mode needs a content picture");
        if (styleLayers.Count > 0 && styles.Count == 0) throw new ArgumentException("this mode needs at least one style picture");
        if (contentLayers.Count + styleLayers.Count == 0) throw new ArgumentException("no layers to match");
        if (content is not null && contentLayers.Count > 0 && content.Shape != start.Shape)
            throw new ArgumentException($"the start image {start.Shape} must have the content's size {content.Shape}");
        OutputShape = start.Shape;
        int depth = contentLayers.Concat(styleLayers).Max(spec.IndexOf) + 1;   // forward no further than the deepest tap
        try
        {
            var contentTargets = content is null || contentLayers.Count == 0 ? []
                : Features(spec, settings.Pooling, content, contentLayers).Select((t, i) => new ContentTarget(contentLayers[i], t)).ToList();
            var styleTargets = BlendedGrams(spec, settings.Pooling, styles, styleLayers).Select((t, i) => new StyleTarget(styleLayers[i], t)).ToList();
            _network = new FeatureNetwork(backend, spec, start.Shape, settings.Pooling, depth);
            _objective = new StyleObjective(backend, _network, contentTargets, styleTargets, settings.Weights);
            using var x0 = Upload(start);
            _optimizer = settings.Optimizer == OptimizerKind.Adam
                ? new AdamOptimizer(backend, _objective, x0, settings.LearningRate)
                : new LbfgsOptimizer(backend, _objective, x0, Math.Max(1, Math.Min(settings.History, settings.Iterations)));
        }
        catch
        {
            Dispose();
            throw;
        }
        _scalars = new float[_objective.Scalars.Length];
    }

    /// <summary>Evaluates the starting image: iteration 0 of the log.</summary>
    public IterationReport Start()
    {
        _optimizer.Start();
        return Report(0);
    }

    public IterationReport Step()
    {
        int evaluations = _optimizer.Step();
        return Report(evaluations);
    }

    public int Iteration => _iteration;

    /// <summary>True once the optimiser can lower the loss no further: further steps would change nothing.</summary>
    public bool Converged => _optimizer.Converged;

    /// <summary>The L-BFGS pairs kept: the requested history, unless the image is so large that its history would not
    /// fit one tensor (<see cref="LbfgsOptimizer.MaxHistory"/>); null with Adam.</summary>
    public int? History => (_optimizer as LbfgsOptimizer)?.History;

    /// <summary>The current image.</summary>
    public Picture Current()
    {
        var v = new float[OutputShape.Size];
        _b.Download(_optimizer.Current, v);
        return new Picture(OutputShape, v);
    }

    IterationReport Report(int evaluations)
    {
        _b.Download(_objective.Scalars, _scalars);
        int nc = _objective.ContentTaps.Count;
        var content = _objective.ContentTaps.Select((l, i) => (l, _scalars[i])).ToList();
        var style = _objective.StyleTaps.Select((l, i) => (l, _scalars[nc + i])).ToList();
        var report = new IterationReport(_iteration, content, style, _scalars[_objective.TotalVariationSlot],
            _scalars[_objective.TotalSlot], evaluations);
        _iteration++;
        return report;
    }

    Tensor Upload(Picture p)
    {
        var t = _b.Allocate(p.Shape);
        _b.Upload(t, p.Values);
        return t;
    }

    /// <summary>The picture's activations at the taps, kept on the device as targets (one forward pass).</summary>
    List<Tensor> Features(NetworkSpec spec, PoolKind pooling, Picture picture, IReadOnlyList<string> taps)
    {
        var layers = taps.Select(spec.IndexOf).ToList();
        using var x = Upload(picture);
        using var net = new FeatureNetwork(_b, spec, picture.Shape, pooling, layers.Max() + 1);
        net.Forward(x);
        return layers.Select(layer =>
        {
            var target = _b.Allocate(net.Shapes[layer]);
            _owned.Add(target);
            _b.Copy(net.Activation(layer), target);
            return target;
        }).ToList();
    }

    /// <summary>A = Σₛ bₛ·Gram(Fₛ) at each tap: each painting at its own size (one forward pass each), blended.</summary>
    List<Tensor> BlendedGrams(NetworkSpec spec, PoolKind pooling, IReadOnlyList<(Picture Picture, float Blend)> styles,
        IReadOnlyList<string> taps)
    {
        var layers = taps.Select(spec.IndexOf).ToList();
        var blended = new List<Tensor>();
        if (layers.Count == 0) return blended;
        foreach (var (picture, blend) in styles)
        {
            using var x = Upload(picture);
            using var net = new FeatureNetwork(_b, spec, picture.Shape, pooling, layers.Max() + 1);
            net.Forward(x);
            for (int k = 0; k < layers.Count; k++)
            {
                int c = net.Shapes[layers[k]].C;
                if (blended.Count == k)
                {
                    var a = _b.Allocate(new Shape(c, c, 1));
                    _owned.Add(a);
                    _b.Fill(a, 0f);
                    blended.Add(a);
                }
                using var g = _b.Allocate(new Shape(c, c, 1));
                _b.GramForward(net.Activation(layers[k]), g);
                _b.Axpy(blend, g, blended[k]);
            }
        }
        return blended;
    }

    public void Dispose()
    {
        _optimizer?.Dispose();
        _objective?.Dispose();
        _network?.Dispose();
        foreach (var t in _owned) t.Dispose();
    }
}
