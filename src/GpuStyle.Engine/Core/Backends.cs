using GpuStyle.Kernels;
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

    /// <summary>Opens a device. <paramref name="tf32"/> asks for the tensor-core convolutions (TF32 products, fp32
    /// sums): native on CUDA, emulated elsewhere in ILGPU; the fast CPU backend has no TF32 and refuses it.
    /// <paramref name="profiling"/> turns on ILGPU's profiling markers (for `bench --profile`).</summary>
    public static IBackend Open(string device, bool tf32 = false, bool profiling = false) =>
        Open(device, tf32 ? ConvKernel.Tf32 : null, profiling);

    /// <summary>Opens a device with a given ILGPU convolution kernel (null: the device's default).
    /// <paramref name="rememberTunings"/>: a CUDA device keeps its tuning's choices for later runs (the style runs; not
    /// `bench`, which measures every candidate each time).</summary>
    public static IBackend Open(string device, ConvKernel? conv, bool profiling = false, string? launch = null, bool rememberTunings = false)
    {
        switch (device)
        {
            case "auto":
                // CUDA alone first: where it has a GPU, the OpenCL drivers are never started.
                if ((AutoGpu(DeviceCatalog.List(kinds: DeviceKinds.Cuda)) ?? AutoGpu(DeviceCatalog.List(kinds: DeviceKinds.OpenCL))) is { } gpu) return IlgpuBackend.Open(gpu.Id, profiling: profiling, conv: conv, overrides: launch, kernelCache: KernelCache.Default(), rememberTunings: rememberTunings);
                return Cpu(null, conv, "no CUDA or OpenCL GPU was found, and the CPU backend", launch, device);
            case "cpu":
            case "cpu-scalar":
                return Cpu(device == "cpu" ? null : CpuSimd.Scalar, conv, $"--device {device} is the CPU backend, which", launch, device);
            default:
                if (device is "ilgpu-cpu" || device.StartsWith("cuda", StringComparison.Ordinal) || device.StartsWith("opencl", StringComparison.Ordinal))
                    return IlgpuBackend.Open(device, profiling: profiling, conv: conv, overrides: launch, kernelCache: KernelCache.Default(), rememberTunings: rememberTunings);
                throw new DeviceNotFoundException($"unknown device '{device}'; use one of {string.Join(", ", Names)}");
        }
    }

    /// <summary>The CPU backend runs the direct convolution or Winograd's (the default, with AVX2: F(4×4, 3×3),
    /// measured 1.15–1.3× over F(2×2, 3×3) here, but F(2×2) on maps where it costs fewer products).</summary>
    static CpuBackend Cpu(CpuSimd? simd, ConvKernel? conv, string what, string? launch, string device)
    {
        var (edge, asked) = CpuLaunch(launch, device);
        if (asked is { } a && simd == CpuSimd.Scalar && a != CpuSimd.Scalar)
            throw new DeviceNotFoundException($"--device cpu-scalar runs the scalar kernels: Simd={a} asks for others (use --device cpu)");
        simd = asked ?? simd;
        return conv switch
        {
            null or ConvKernel.Winograd => new CpuBackend(simd, winogradEdge: edge),
            ConvKernel.Direct => new CpuBackend(simd, winograd: false),
            _ => throw NoVariant(conv.Value, what),
        };
    }

    /// <summary>The launch options the CPU backend takes: WinogradTile=2 or 4 (its Winograd tile on every map; by
    /// default chosen per map), and Simd=avx2, vector128 or scalar (which kernels run; by default the widest this CPU
    /// has — to compare them in one run, e.g. the ARM64 kernels on an x86 machine).</summary>
    static (int? Edge, CpuSimd? Simd) CpuLaunch(string? launch, string device)
    {
        int? edge = null;
        CpuSimd? simd = null;
        foreach (var item in (launch ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = item.Split('=', 2, StringSplitOptions.TrimEntries);
            if (kv.Length == 2 && kv[0].Equals("WinogradTile", StringComparison.OrdinalIgnoreCase) && kv[1] is "2" or "4")
                edge = int.Parse(kv[1]);
            else if (kv.Length == 2 && kv[0].Equals("Simd", StringComparison.OrdinalIgnoreCase) && Enum.TryParse<CpuSimd>(kv[1], ignoreCase: true, out var level)
                && Enum.IsDefined(level) && !int.TryParse(kv[1], out _))
            {
                if (level > CpuSimdLevels.Best)
                    throw new DeviceNotFoundException($"--launch Simd={kv[1]}: this CPU lacks it (it runs {CpuSimdLevels.Best.ToString().ToLowerInvariant()} at most)");
                simd = level;
            }
            else
                throw new DeviceNotFoundException($"--launch sets ILGPU launch shapes: --device {device} is the CPU backend, which takes only WinogradTile=2 or 4 and Simd=avx2, vector128 or scalar");
        }
        return (edge, simd);
    }

    static DeviceNotFoundException NoVariant(ConvKernel conv, string why) => conv == ConvKernel.Tf32
        ? new($"--tf32 runs the convolutions on a GPU's tensor cores: {why} computes in fp32 only (leave out --tf32, or use --device cuda)")
        : new($"--conv {conv.ToString().ToLowerInvariant()} chooses among the ILGPU kernels: {why} runs direct or winograd (leave out --conv, or use --device cuda)");

    /// <summary>The GPU `auto` takes among the devices found: the first CUDA device, else the first OpenCL one that is
    /// not a CPU (an OpenCL CPU runtime such as PoCL runs these kernels far slower than the CPU backend — VGG16's
    /// convolutions at 64 px here: PoCL 6 2.0 GFLOP/s on one thread, 3.8 on two, the CPU backend 128 — and can run
    /// them only one work-group at a time, see <see cref="DeviceCatalog.OpenClCpuRefusal"/>).</summary>
    public static IlgpuDeviceInfo? AutoGpu(IReadOnlyList<IlgpuDeviceInfo> found) =>
        found.FirstOrDefault(d => d.Kind == "cuda") ?? found.FirstOrDefault(d => d.Kind == "opencl" && !d.OpenClCpu);

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
