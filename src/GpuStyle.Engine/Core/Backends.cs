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
                var found = DeviceCatalog.List();
                var gpu = found.FirstOrDefault(d => d.Kind == "cuda") ?? found.FirstOrDefault(d => d.Kind == "opencl");
                return gpu is null ? new CpuBackend() : IlgpuBackend.Open(gpu.Id);
            case "cpu": return new CpuBackend();
            case "cpu-scalar": return new CpuBackend(vector: false);
            default:
                if (device is "ilgpu-cpu" || device.StartsWith("cuda", StringComparison.Ordinal) || device.StartsWith("opencl", StringComparison.Ordinal))
                    return IlgpuBackend.Open(device);
                throw new DeviceNotFoundException($"unknown device '{device}'; use one of {string.Join(", ", Names)}");
        }
    }

    /// <summary>What `auto` picks on this machine, and why.</summary>
    public static string AutoChoice()
    {
        var found = DeviceCatalog.List();
        var gpu = found.FirstOrDefault(d => d.Kind == "cuda") ?? found.FirstOrDefault(d => d.Kind == "opencl");
        return gpu is not null ? $"{gpu.Id} ({gpu.Name})" : "cpu (the fast CPU backend: no CUDA or OpenCL GPU found)";
    }

    /// <summary>Memory the backend can use, in bytes.</summary>
    public static long MemoryOf(IBackend backend) => backend switch
    {
        IlgpuBackend g => g.Device.MemoryBytes,
        _ => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes,
    };
}
