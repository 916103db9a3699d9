using GpuStyle.Engine.Network;

namespace GpuStyle.Engine.Pipelines;

/// <summary>
/// How much device memory a run needs, counted before anything is allocated, so an image too large for the device
/// is refused up front with the largest size that would fit (DESIGN.md §4).
/// </summary>
public static class MemoryPlan
{
    /// <summary>Bytes for a run at the given output shape (and the largest style picture's shape); long.MaxValue where a
    /// feature map (or its padded scratch) would have more than <see cref="MaxElements"/> values.</summary>
    public static long Estimate(NetworkSpec spec, Shape output, Shape largestStyle, int depth, RunSettings settings)
    {
        // Counted in long: at sizes a user may ask for (8 000 px) an activation has more than 2³¹ elements.
        static long Elements(Shape s) => (long)s.C * s.H * s.W;
        // A tensor the engine cannot index (its kernels and arrays take int indices) never fits, whatever the memory.
        if (spec.OutputShapes(output).Take(depth).Append(output).Concat(spec.OutputShapes(largestStyle).Take(depth))
                .Any(s => (long)s.C * (s.H + 2) * (s.W + 32) > MaxElements))
            return long.MaxValue;
        long Floats(Shape input)
        {
            var shapes = spec.OutputShapes(input);
            long sum = 0;
            for (int i = 0; i < depth; i++) sum += Elements(shapes[i]);
            return sum;
        }
        long network = 2 * Floats(output);                               // activations and their gradients
        long targets = Floats(largestStyle) + Floats(output) / 2;        // a target network at a time, kept features
        long scratch = spec.OutputShapes(output).Take(depth).Max(s => (long)s.C * (s.H + 2) * (s.W + 32));
        // Winograd's V and M on a GPU: 4 values an activation each for F(2×2, 3×3), at most WinogradScratch (4M floats) each.
        long winograd = Math.Min(2L * (4 << 20), 8 * spec.OutputShapes(output).Take(depth).Max(Elements));
        long optimizer = Elements(output) * (settings.Optimizer == OptimizerKind.Adam ? 4 : 6 + 2L * Math.Min(settings.History, Math.Max(1, settings.Iterations)));
        // The weights, their packed copies for the direct kernels (forward and backward) and Winograd's transformed
        // ones (36/9 of them each way for the CPU's F(4×4, 3×3); on a GPU 16/9, or 36/9, of the largest layer's).
        long weights = spec.Layers.Take(depth).OfType<ConvSpec>().Sum(c => (long)c.Weights.Length * 11);
        return 4 * (network + targets + scratch + winograd + optimizer + weights);
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

    /// <summary>The largest longest side (a multiple of 16) whose estimate fits in the budget, or 0.</summary>
    public static int LargestFitting(Func<int, long> estimateAtSize, long budget, int upTo)
    {
        for (int size = upTo / 16 * 16; size >= 16; size -= 16)
            if (estimateAtSize(size) <= budget) return size;
        return 0;
    }
}
