using GpuStyle.Engine;
using GpuStyle.Engine.Ilgpu;

namespace GpuStyle.Tests.Support;

/// <summary>
/// One ILGPU CPU-accelerator backend for the whole suite (kernels compile once per process), with small simulated
/// groups and odd reduction sizes so the strided edges are exercised.
/// </summary>
public sealed class IlgpuCpuFixture : IDisposable
{
    public IlgpuBackend Backend { get; } = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny, CpuSimulation.Small);

    public float[] Read(Tensor t)
    {
        var a = new float[t.Length];
        Backend.Download(t, a);
        return a;
    }

    public Tensor Make(Shape shape, double[] values)
    {
        var t = Backend.Allocate(shape);
        Backend.Upload(t, TestData.ToFloat(values));
        return t;
    }

    /// <summary>An output tensor full of NaN: any element a kernel fails to write stays NaN and fails the test.</summary>
    public Tensor Poisoned(Shape shape)
    {
        var t = Backend.Allocate(shape);
        Backend.Upload(t, Enumerable.Repeat(float.NaN, shape.Size).ToArray());
        return t;
    }

    public void Dispose() => Backend.Dispose();
}

[CollectionDefinition(Name)]
public sealed class IlgpuCpuCollection : ICollectionFixture<IlgpuCpuFixture>
{
    public const string Name = "ILGPU CPU accelerator";
}
