namespace GpuStyle.Tests.Support;

public static class Assertions
{
    /// <summary>
    /// Every element finite (an element the kernel never wrote keeps its NaN) and
    /// max|actual − expected| ≤ tolerance · max|expected|.
    /// </summary>
    /// <summary>Every element written and within tolerance of the largest expected one; returns the largest error as
    /// that fraction (for a test that also needs to see rounding happen).</summary>
    public static double Close(double[] expected, float[] actual, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Max(Math.Abs), worst = 0;
        int worstAt = -1;
        for (int i = 0; i < actual.Length; i++)
        {
            if (!float.IsFinite(actual[i])) Assert.Fail($"{what}: element {i} is {actual[i]} (not written, or overflowed)");
            double e = Math.Abs(actual[i] - expected[i]);
            if (e > worst) { worst = e; worstAt = i; }
        }
        double rel = scale > 0 ? worst / scale : worst;
        Assert.True(rel <= tolerance,
            $"{what}: relative error {rel:E2} > {tolerance:E0} (element {worstAt}: {actual[Math.Max(worstAt, 0)]} vs {expected[Math.Max(worstAt, 0)]})");
        return rel;
    }

    public static void Close(double expected, float actual, double tolerance, string what)
    {
        Assert.True(float.IsFinite(actual), $"{what}: {actual}");
        double rel = Math.Abs(actual - expected) / Math.Max(Math.Abs(expected), 1e-30);
        Assert.True(rel <= tolerance, $"{what}: {actual} vs {expected} (relative error {rel:E2} > {tolerance:E0})");
    }
}
