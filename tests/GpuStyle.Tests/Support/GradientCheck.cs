namespace GpuStyle.Tests.Support;

/// <summary>Central finite differences of a float64 scalar function against an analytic gradient.</summary>
public static class GradientCheck
{
    public const double Tolerance = 1e-6;

    /// <summary>
    /// Compares the analytic gradient with (f(x+h·eᵢ) − f(x−h·eᵢ))/2h for every coordinate, or for
    /// <paramref name="maxCoordinates"/> random ones of a large input, plus three random directions (which see every
    /// coordinate at once). Error: ‖g_fd − g‖ / max(‖g_fd‖, ‖g‖).
    /// </summary>
    public static void Check(Func<double[], double> f, double[] x, double[] analytic, string what,
        int seed, int maxCoordinates = 400, double h = 1e-5)
    {
        Assert.Equal(x.Length, analytic.Length);
        var random = new Random(seed);
        var coordinates = Enumerable.Range(0, x.Length).ToArray();
        if (coordinates.Length > maxCoordinates)
            coordinates = coordinates.OrderBy(_ => random.Next()).Take(maxCoordinates).ToArray();
        var probe = (double[])x.Clone();
        double diff2 = 0, fd2 = 0, an2 = 0;
        foreach (int i in coordinates)
        {
            probe[i] = x[i] + h; double plus = f(probe);
            probe[i] = x[i] - h; double minus = f(probe);
            probe[i] = x[i];
            double fd = (plus - minus) / (2 * h);
            diff2 += (fd - analytic[i]) * (fd - analytic[i]);
            fd2 += fd * fd;
            an2 += analytic[i] * analytic[i];
        }
        AssertSmall(diff2, fd2, an2, $"{what} ({coordinates.Length} coordinates)");

        for (int d = 0; d < 3; d++)
        {
            var v = new double[x.Length];
            for (int i = 0; i < v.Length; i++) v[i] = random.NextDouble() * 2 - 1;
            var plus = x.Select((xi, i) => xi + h * v[i]).ToArray();
            var minus = x.Select((xi, i) => xi - h * v[i]).ToArray();
            double fd = (f(plus) - f(minus)) / (2 * h);
            double an = analytic.Select((g, i) => g * v[i]).Sum();
            AssertSmall((fd - an) * (fd - an), fd * fd, an * an, $"{what} (random direction {d})");
        }
    }

    static void AssertSmall(double diff2, double fd2, double an2, string what)
    {
        double denominator = Math.Sqrt(Math.Max(fd2, an2));
        Assert.True(denominator > 0, $"{what}: the gradient is identically zero, so the check would prove nothing");
        double rel = Math.Sqrt(diff2) / denominator;
        Assert.True(rel <= Tolerance, $"{what}: finite-difference relative error {rel:E2} > {Tolerance:E0}");
    }
}
