using GpuStyle.Engine.Cpu;
using GpuStyle.Engine.Ilgpu;

namespace GpuStyle.Engine;

/// <summary>
/// `--device`: auto takes CUDA, else an OpenCL GPU, else the fast CPU backend (DESIGN.md §4); cuda, opencl name
/// ILGPU's GPU backends (cuda:N for another card); cpu the fast CPU backend (cpu-scalar its fallback path);
/// ilgpu-cpu ILGPU's CPU accelerator (for checking kernels, not for speed).
/// </summary>
public static class Backends
{
    public static readonly string[] Names = ["auto", "cuda", "opencl", "cpu", "cpu-scalar", "ilgpu-cpu"];

    /// <summary>A name `Open` understands: one of <see cref="Names"/>, or cuda:N / opencl:N for another card.</summary>
    public static bool IsValidName(string device) =>
        Names.Contains(device) || System.Text.RegularExpressions.Regex.IsMatch(device, @"^(cuda|opencl):\d+$");

    public static IBackend Open(string device)
    {
        switch (device)
        {
            case "auto":
                return AutoGpu(DeviceCatalog.List()) is { } gpu ? IlgpuBackend.Open(gpu.Id) : new CpuBackend();
            case "cpu": return new CpuBackend();
            case "cpu-scalar": return new CpuBackend(vector: false);
            default:
                if (device is "ilgpu-cpu" || device.StartsWith("cuda", StringComparison.Ordinal) || device.StartsWith("opencl", StringComparison.Ordinal))
                    return IlgpuBackend.Open(device);
                throw new DeviceNotFoundException($"unknown device '{device}'; use one of {string.Join(", ", Names)}");
        }
    }

    /// <summary>The GPU `auto` takes among the devices found: the first CUDA device, else the first OpenCL one.</summary>
    public static IlgpuDeviceInfo? AutoGpu(IReadOnlyList<IlgpuDeviceInfo> found) =>
        found.FirstOrDefault(d => d.Kind == "cuda") ?? found.FirstOrDefault(d => d.Kind == "opencl");

    /// <summary>What `auto` picks among the devices found, and why.</summary>
    public static string AutoChoice(IReadOnlyList<IlgpuDeviceInfo> found) =>
        AutoGpu(found) is { } gpu ? $"{gpu.Id} ({gpu.Name})" : "cpu (the fast CPU backend: no CUDA or OpenCL GPU found)";

    /// <summary>Memory the backend can use, in bytes.</summary>
    public static long MemoryOf(IBackend backend) => backend switch
    {
        IlgpuBackend g => g.Device.MemoryBytes,
        _ => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes,
    };
}
