using GpuStyle.Engine.Network;

namespace GpuStyle.Engine.Pipelines;

/// <summary>
/// How much device memory a run needs, counted before anything is allocated, so an image too large for the device
/// is refused up front with the largest size that would fit (DESIGN.md §4).
/// </summary>
public static class MemoryPlan
{
    /// <summary>Bytes for a run at the given output shape (the network to <paramref name="depth"/> layers) and the
    /// largest style picture's (its network to <paramref name="styleDepth"/> layers, the deepest style layer's; depth
    /// when not given). long.MaxValue where a feature map (or its padded scratch) would have more than
    /// <see cref="MaxElements"/> values, or a picture is too small for the poolings its network has: neither can run.</summary>
    public static long Estimate(NetworkSpec spec, Shape output, Shape largestStyle, int depth, RunSettings settings, int? styleDepth = null)
    {
        // Counted in long: at sizes a user may ask for (8 000 px) an activation has more than 2³¹ elements.
        static long Elements(Shape s) => (long)s.C * s.H * s.W;
        static long Padded(Shape s) => (long)s.C * (s.H + 2) * (s.W + 32);
        // Only the layers a run instantiates (FeatureNetwork's depth): a 16-px run to relu1_1 has no business with the
        // poolings past it, which used to throw here.
        var shapes = Shapes(spec, output, depth);
        var styleShapes = Shapes(spec, largestStyle, styleDepth ?? depth);
        // A tensor the engine cannot index (its kernels and arrays take int indices) never fits, whatever the memory.
        if (shapes is null || styleShapes is null || shapes.Append(output).Concat(styleShapes).Any(s => Padded(s) > MaxElements))
            return long.MaxValue;
        long network = 2 * shapes.Sum(Elements);                                        // activations and their gradients
        long targets = styleShapes.Sum(Elements) + shapes.Sum(Elements) / 2;            // a target network at a time, kept features
        long scratch = shapes.Max(Padded);
        // Winograd's V and M on a GPU: 4 values an activation each for F(2×2, 3×3), at most WinogradScratch (4M floats) each.
        long winograd = Math.Min(2L * (4 << 20), 8 * shapes.Max(Elements));
        long optimizer = Elements(output) * (settings.Optimizer == OptimizerKind.Adam ? 4 : 6 + 2L * Math.Min(settings.History, Math.Max(1, settings.Iterations)));
        // The weights, their packed copies for the direct kernels (forward and backward) and Winograd's transformed
        // ones (36/9 of them each way for the CPU's F(4×4, 3×3); on a GPU 16/9, or 36/9, of the largest layer's).
        long weights = spec.Layers.Take(depth).OfType<ConvSpec>().Sum(c => (long)c.Weights.Length * 11);
        return 4 * (network + targets + scratch + winograd + optimizer + weights);
    }

    /// <summary>The output shapes of the first <paramref name="depth"/> layers for this input, or null where a pooling
    /// among them would get a map under 2 pixels a side.</summary>
    static Shape[]? Shapes(NetworkSpec spec, Shape input, int depth)
    {
        return Math.Min(input.H, input.W) >> spec.PoolingsThrough(depth) >= 1
            ? (spec with { Layers = spec.Layers.Take(depth).ToList() }).OutputShapes(input)
            : null;
    }

    /// <summary>Bytes for `bench`'s per-layer table at size×size: one conv layer at a time, with its input, output and their
    /// gradients, the convolution's padded scratch (twice: the CPU's padded input and Winograd's, or a GPU's V and M) and
    /// the weights' copies; long.MaxValue where a map would pass <see cref="MaxElements"/>.</summary>
    public static long LayerEstimate(NetworkSpec spec, int size)
    {
        var input = new Shape(3, size, size);
        var shapes = spec.OutputShapes(input);
        long most = 0;
        for (int i = 0; i < spec.Layers.Count; i++)
        {
            if (spec.Layers[i] is not ConvSpec conv) continue;
            var s = shapes[i];
            long padded = (long)Math.Max(conv.InChannels, conv.OutChannels) * (s.H + 2) * (s.W + 32);
            if (padded > MaxElements) return long.MaxValue;
            long maps = 2L * conv.InChannels * s.H * s.W + 2L * conv.OutChannels * s.H * s.W;
            most = Math.Max(most, maps + 2 * padded + 11L * conv.Weights.Length + 2L * conv.OutChannels * conv.OutChannels);
        }
        return 4 * most;
    }

    /// <summary>The most elements one tensor (or a layer's padded scratch) may have: .NET's largest float array.</summary>
    public static readonly long MaxElements = Array.MaxLength;

    /// <summary>The largest L-BFGS history under <paramref name="current"/> whose estimate fits in the budget at this
    /// size, or 0. The history is 2·H picture-sized vectors: at 2048 px, 100 pairs are 10 GB, more than the network's
    /// own memory, so on a smaller card a shorter history can run the size the user asked for. (On the partial VGG19
    /// here a history of 20 ended 500 iterations within 0.1% of 100's loss: 46 888 against 46 847 at 256 px.)</summary>
    public static int LargestHistoryFitting(Func<int, long> estimateWithHistory, long budget, int current)
    {
        // The estimate grows with the history: the largest that fits, by bisection over 1 … current − 1.
        int lo = 0, hi = current - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) / 2;
            if (estimateWithHistory(mid) <= budget) lo = mid;
            else hi = mid - 1;
        }
        return lo >= 1 && estimateWithHistory(lo) <= budget ? lo : 0;
    }

    /// <summary>The largest longest side (a multiple of 16) whose estimate fits in the budget, or 0.</summary>
    public static int LargestFitting(Func<int, long> estimateAtSize, long budget, int upTo)
    {
        for (int size = upTo / 16 * 16; size >= 16; size -= 16)
            if (estimateAtSize(size) <= budget) return size;
        return 0;
    }
}
