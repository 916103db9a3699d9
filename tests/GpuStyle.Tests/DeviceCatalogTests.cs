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
    public void A_GPU_kind_with_no_device_is_refused_saying_why()
    {
        // As `gpustyle devices` explains a missing kind, so does asking for it (OpenCL's refusal used to say nothing).
        var kinds = DeviceCatalog.List().Select(d => d.Kind).ToHashSet();
        foreach (var (kind, reason) in new (string, Func<string?>)[] { ("cuda", DeviceCatalog.CudaAbsenceReason), ("opencl", DeviceCatalog.OpenClAbsenceReason) })
        {
            if (kinds.Contains(kind)) continue;   // a machine with that kind of device opens it instead
            var e = Assert.Throws<DeviceNotFoundException>(() => IlgpuBackend.Open(kind));
            Assert.Contains($"no ILGPU device '{kind}' ({reason()})", e.Message);
        }
    }

    [Fact]
    public void A_device_is_opened_in_a_context_of_its_own_kind_only()
    {
        // A CUDA run need not start the OpenCL drivers (nor a CPU-accelerator run either GPU runtime).
        Assert.Equal(DeviceKinds.Cuda, DeviceCatalog.KindsOf("cuda"));
        Assert.Equal(DeviceKinds.Cuda, DeviceCatalog.KindsOf("cuda:1"));
        Assert.Equal(DeviceKinds.OpenCL, DeviceCatalog.KindsOf("opencl:0"));
        Assert.Equal(DeviceKinds.Cpu, DeviceCatalog.KindsOf("ilgpu-cpu"));
        Assert.Equal(DeviceKinds.All, DeviceCatalog.KindsOf("tpu"));
        using var backend = IlgpuBackend.Open("ilgpu-cpu");
        Assert.All(backend.Accelerator.Context.Devices, d => Assert.Equal(ILGPU.Runtime.AcceleratorType.CPU, d.AcceleratorType));
        Assert.All(DeviceCatalog.List(kinds: DeviceKinds.Cpu), d => Assert.Equal("ilgpu-cpu", d.Kind));
        // …while a device not found is refused naming those of every kind.
        var e = Assert.Throws<DeviceNotFoundException>(() => IlgpuBackend.Open("ilgpu-cpu:7"));
        Assert.Contains("available: ", e.Message);
        Assert.Equal(string.Join(", ", DeviceCatalog.List().Select(d => d.Id)), e.Message[(e.Message.IndexOf("available: ", StringComparison.Ordinal) + 11)..]);
    }

    [Fact]
    public void Auto_takes_CUDA_then_an_OpenCL_GPU_but_never_an_OpenCL_CPU_device()
    {
        IlgpuDeviceInfo Cl(string id, bool cpu) => new(id, "opencl", cpu ? "cpu-haswell" : "gfx1100", 1L << 32, cpu ? 0 : 32, 1024, 65536, OpenClCpu: cpu);
        var simulator = new IlgpuDeviceInfo("ilgpu-cpu", "ilgpu-cpu", "CPUAccelerator", 1L << 32, 4, 16);
        var cuda = new IlgpuDeviceInfo("cuda:0", "cuda", "H100", 1L << 36, 32, 1024, 49152);

        Assert.Null(Backends.AutoGpu([Cl("opencl:0", cpu: true), simulator]));
        Assert.Contains("cpu (the fast CPU backend", Backends.AutoChoice([Cl("opencl:0", cpu: true), simulator]));
        Assert.Equal("opencl:1", Backends.AutoGpu([Cl("opencl:0", cpu: true), Cl("opencl:1", cpu: false), simulator])!.Id);
        Assert.Equal("cuda:0", Backends.AutoGpu([Cl("opencl:1", cpu: false), cuda, simulator])!.Id);
        Assert.Contains("(an OpenCL CPU device)", Cl("opencl:0", cpu: true).ToString());
        Assert.Contains("warp ?", Cl("opencl:0", cpu: true).ToString());
        Assert.DoesNotContain("OpenCL CPU", Cl("opencl:1", cpu: false).ToString());
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
