namespace GpuStyle.Tests.Support;

/// <summary>Fresh random inputs, seeded per test so a failure can be replayed.</summary>
public sealed class TestData(int seed)
{
    readonly Random _random = new(seed);

    /// <summary>Uniform in [−scale, scale]: never zeros, signs mixed (so ReLU masks and max pools have both cases).</summary>
    public double[] Uniform(int n, double scale = 1.0)
    {
        var a = new double[n];
        for (int i = 0; i < n; i++) a[i] = (_random.NextDouble() * 2 - 1) * scale;
        return a;
    }

    /// <summary>Values that are exactly representable in float32, so float and double runs see the same input.</summary>
    public double[] UniformF32(int n, double scale = 1.0) => Uniform(n, scale).Select(v => (double)(float)v).ToArray();

    /// <summary>He-style conv weights for Cin inputs: keeps activations O(1) through a few layers.</summary>
    public double[] ConvWeights(int cin, int cout) => UniformF32(cout * cin * 9, Math.Sqrt(6.0 / (9 * cin)));

    public int Next(int max) => _random.Next(max);

    public static float[] ToFloat(double[] a) => a.Select(v => (float)v).ToArray();
    public static double[] ToDouble(float[] a) => a.Select(v => (double)v).ToArray();
}
