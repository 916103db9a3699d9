using GpuStyle.Engine;
using GpuStyle.Engine.Ilgpu;

namespace GpuStyle.Tests;

public class DeviceCatalogTests
{
    [Fact]
    public void The_cpu_accelerator_is_always_listed_with_its_properties()
    {
        var devices = DeviceCatalog.List(new CpuSimulation(ThreadsPerWarp: 4, WarpsPerGroup: 2));
        var cpu = Assert.Single(devices, d => d.Id == "ilgpu-cpu");
        Assert.Equal(4, cpu.WarpSize);
        Assert.Equal(8, cpu.MaxThreadsPerGroup);
        Assert.False(string.IsNullOrWhiteSpace(cpu.Name));
        Assert.True(cpu.MemoryBytes > 0);
    }

    [Fact]
    public void An_unknown_device_is_refused_with_what_there_is()
    {
        var e = Assert.Throws<DeviceNotFoundException>(() => IlgpuBackend.Open("tpu"));
        Assert.Contains("ilgpu-cpu", e.Message);
    }

    [Fact]
    public void Workspace_hands_back_the_same_tensor_and_frees_everything()
    {
        using var backend = IlgpuBackend.Open("ilgpu-cpu");
        Tensor a, b;
        using (var ws = new Workspace(backend))
        {
            a = ws.Get("grad", new Shape(3, 4, 5));
            b = ws.Get("grad", new Shape(3, 4, 5));
            Assert.Same(a, b);
            Assert.Throws<InvalidOperationException>(() => ws.Get("grad", new Shape(3, 4, 6)));
            Assert.Equal(1, ws.Count);
        }
        Assert.True(a.IsDisposed);
    }
}
