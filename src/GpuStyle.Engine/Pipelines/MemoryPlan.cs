using GpuStyle.Engine.Network;

namespace GpuStyle.Engine.Pipelines;

/// <summary>
/// How much device memory a run needs, counted before anything is allocated, so an image too large for the device
/// is refused up front with the largest size that would fit (DESIGN.md §4).
/// </summary>
public static class MemoryPlan
{
    /// <summary>Bytes for a run at the given output shape (and the largest style picture's shape).</summary>
    public static long Estimate(NetworkSpec spec, Shape output, Shape largestStyle, int depth, RunSettings settings)
    {
        long Floats(Shape input)
        {
            var shapes = spec.OutputShapes(input);
            long sum = 0;
            for (int i = 0; i < depth; i++) sum += shapes[i].Size;
            return sum;
        }
        long network = 2 * Floats(output);                               // activations and their gradients
        long targets = Floats(largestStyle) + Floats(output) / 2;        // a target network at a time, kept features
        long scratch = spec.OutputShapes(output).Take(depth).Max(s => (long)s.C * (s.H + 2) * (s.W + 32));
        // Winograd's V and M on a GPU: 4 values an activation each for F(2×2, 3×3), at most WinogradScratch (4M floats) each.
        long winograd = Math.Min(2L * (4 << 20), 8 * spec.OutputShapes(output).Take(depth).Max(s => (long)s.Size));
        long optimizer = (long)output.Size * (settings.Optimizer == OptimizerKind.Adam ? 4 : 6 + 2L * Math.Min(settings.History, Math.Max(1, settings.Iterations)));
        // The weights, their packed copies for the direct kernels (forward and backward) and Winograd's transformed
        // ones (36/9 of them each way for the CPU's F(4×4, 3×3); on a GPU 16/9, or 36/9, of the largest layer's).
        long weights = spec.Layers.Take(depth).OfType<ConvSpec>().Sum(c => (long)c.Weights.Length * 11);
        return 4 * (network + targets + scratch + winograd + optimizer + weights);
    }

    /// <summary>The largest longest side (a multiple of 16) whose estimate fits in the budget, or 0.</summary>
    public static int LargestFitting(Func<int, long> estimateAtSize, long budget, int upTo)
    {
        for (int size = upTo / 16 * 16; size >= 16; size -= 16)
            if (estimateAtSize(size) <= budget) return size;
        return 0;
    }
}
