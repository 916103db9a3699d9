using GpuStyle.Engine;

namespace GpuStyle.Tests.Support;

/// <summary>Making and reading tensors on any backend in tests.</summary>
public static class TensorIo
{
    /// <summary>A tensor holding <paramref name="values"/>, or NaN everywhere when null (an output: any element a
    /// kernel fails to write stays NaN and fails the comparison).</summary>
    public static Tensor Make(this IBackend b, Shape shape, double[]? values)
    {
        var t = b.Allocate(shape);
        b.Upload(t, values is null ? Enumerable.Repeat(float.NaN, shape.Size).ToArray() : TestData.ToFloat(values));
        return t;
    }

    public static float[] Read(this IBackend b, Tensor t)
    {
        var a = new float[t.Length];
        b.Download(t, a);
        return a;
    }
}
