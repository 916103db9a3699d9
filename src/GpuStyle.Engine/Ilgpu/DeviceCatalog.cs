using System.Reflection;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Backends.OpenCL;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace GpuStyle.Engine.Ilgpu;

/// <summary>One device ILGPU can run kernels on. <paramref name="OpenClCpu"/>: an OpenCL device that is a CPU (PoCL,
/// Intel's CPU runtime), which `auto` never takes and <see cref="DeviceCatalog.OpenClCpuRefusal"/> guards.
/// <paramref name="ComputeCapability"/>: a CUDA device's (9.0 for Hopper), null elsewhere.</summary>
public sealed record IlgpuDeviceInfo(string Id, string Kind, string Name, long MemoryBytes, int WarpSize,
    int MaxThreadsPerGroup, long MaxSharedBytesPerGroup = long.MaxValue, bool OpenClCpu = false, Version? ComputeCapability = null)
{
    /// <summary>The compute capability from which NVIDIA GPUs have what the TF32 kernels use: `mma.sync` on TF32
    /// operands and `cp.async` (Ampere, 8.0; then Ada, Hopper, Blackwell). ptxas refuses both for older targets.</summary>
    public static readonly Version Tf32TensorCores = new(8, 0);

    /// <summary>A CUDA device older than <see cref="Tf32TensorCores"/>: the fp32 kernels run there, the TF32 ones cannot.</summary>
    public bool LacksTf32 => ComputeCapability is { } cc && cc < Tf32TensorCores;

    // OpenCL reports no warp size outside NVIDIA and AMD (ILGPU says 0).
    public override string ToString() =>
        $"{Id,-12} {Name} — {MemoryBytes / (1024.0 * 1024 * 1024):0.0} GiB, warp {(WarpSize > 0 ? WarpSize.ToString() : "?")}, ≤{MaxThreadsPerGroup} threads/group" +
        (ComputeCapability is { } cc ? $", compute capability {cc}{(LacksTf32 ? " (no TF32 tensor cores: fp32 only, no --tf32)" : "")}" : "") +
        (OpenClCpu ? " (an OpenCL CPU device)" : "");
}

/// <summary>
/// The simulated CPU device's shape: ILGPU's CPU accelerator runs one OS thread per simulated group thread, so tests
/// keep it small (DESIGN.md §7). <paramref name="SplitsForMultiprocessors"/>: the SM count the tuning's splits over
/// the input channels are offered for (<see cref="IlgpuBackend.SplitsOffered"/>), where not the simulated one — each
/// simulated multiprocessor is its own set of OS threads, and 16 of them at 128 threads a group ran the same tiny
/// convolutions 4–20× slower on 2 cores than 1 (2026-11-29), so tests of the offers for a 16-SM device simulate one.
/// </summary>
public sealed record CpuSimulation(int ThreadsPerWarp = 4, int WarpsPerGroup = 4, int Multiprocessors = 1, int SplitsForMultiprocessors = 0)
{
    public static CpuSimulation Small { get; } = new();
    /// <summary>Groups of up to 64 threads: the TF32 convolution's warps are 32 threads however the CPU simulates them.</summary>
    public static CpuSimulation Warp32 { get; } = new(ThreadsPerWarp: 4, WarpsPerGroup: 16);
}

/// <summary>
/// The one place that creates ILGPU contexts: lists CUDA, OpenCL and the CPU accelerator, and opens one by name.
/// Ids: "cuda", "cuda:N", "opencl", "opencl:N", "ilgpu-cpu".
/// </summary>
public static class DeviceCatalog
{
    static int _resolverInstalled;

    /// <summary>The files a driver library may have on Linux: the unversioned name ILGPU asks for, and the versioned one
    /// the driver packages install.</summary>
    static readonly string[] CudaLibraries = ["libcuda.so", "libcuda.so.1"], OpenClLibraries = ["libOpenCL.so", "libOpenCL.so.1"];

    /// <summary>Whether any of these libraries loads here (each one that does is released again).</summary>
    static bool AnyLoads(IEnumerable<string> libraries)
    {
        foreach (var library in libraries)
            if (NativeLibrary.TryLoad(library, out var handle)) { NativeLibrary.Free(handle); return true; }
        return false;
    }

    /// <summary>
    /// ILGPU asks for the library "cuda"; container images often have only libcuda.so.1, and then CUDA devices vanish
    /// without a word. Resolve the name to libcuda.so.1 as well (DESIGN.md §7). Likewise "OpenCL": Linux distributions
    /// install the ICD loader as libOpenCL.so.1, and the unversioned libOpenCL.so ILGPU looks for comes only with the
    /// OpenCL development package (seen on Debian: PoCL's devices did not show until this resolved the name).
    /// </summary>
    public static void InstallDriverResolver()
    {
        if (Interlocked.Exchange(ref _resolverInstalled, 1) != 0) return;
        try
        {
            NativeLibrary.SetDllImportResolver(typeof(Context).Assembly, (name, _, _) =>
            {
                string[] candidates = name switch
                {
                    "cuda" or "nvcuda" => CudaLibraries,
                    "OpenCL" => OpenClLibraries,
                    _ => [],
                };
                foreach (var candidate in candidates)
                    if (NativeLibrary.TryLoad(candidate, out var handle)) return handle;
                return IntPtr.Zero;
            });
        }
        catch (InvalidOperationException)
        {
            // Someone else registered a resolver for ILGPU's assembly; theirs stands.
        }
    }

    /// <summary>Why no CUDA device shows, when none does (null when the driver library loads).</summary>
    public static string? CudaAbsenceReason()
    {
        return AnyLoads([.. CudaLibraries, "nvcuda.dll"]) ? null : "no NVIDIA driver library (libcuda.so.1) was found on this machine";
    }

    /// <summary>
    /// Why no OpenCL device shows, when none does: no OpenCL loader at all, or the devices ILGPU turned down and why
    /// (it needs OpenCL C 2.0 or 3.0 with the generic address space: Debian 12's PoCL 3.1, macOS's OpenCL 1.2 and
    /// older GPU drivers lack it).
    /// </summary>
    public static string OpenClAbsenceReason()
    {
        InstallDriverResolver();
        if (!AnyLoads([.. OpenClLibraries, "OpenCL.dll", "/System/Library/Frameworks/OpenCL.framework/OpenCL"]))
            return "no OpenCL runtime (libOpenCL.so.1) was found on this machine";
        var turnedDown = new List<string>();
        try
        {
            // Every OpenCL device, whatever ILGPU thinks of it, to say which it refuses.
            using var context = Context.Create(b => b.OpenCL(_ => true));
            foreach (var d in context.GetCLDevices())
            {
                var lacks = new List<string>();
                if (d.CLStdVersion < CLBackend.MinimumVersion) lacks.Add($"OpenCL C {d.CVersion}");
                if (!d.Capabilities.GenericAddressSpace) lacks.Add("no generic address space");
                if (lacks.Count > 0) turnedDown.Add($"{d.Name} on {d.PlatformName}: {string.Join(", ", lacks)}");
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return $"the OpenCL runtime loaded, but listing its devices failed ({e.Message})";
        }
        return turnedDown.Count == 0
            ? "the OpenCL runtime reports no device"
            : $"ILGPU needs OpenCL C 2.0+ with the generic address space; turned down: {string.Join("; ", turnedDown)}";
    }

    /// <summary>Contexts created while this is set check every view access (ILGPU's assertions): on the CPU
    /// accelerator an index outside its view stops the process, naming the kernel, instead of reading or writing
    /// past a buffer unnoticed — where a GPU would fault or, worse, compute on garbage. The test suite sets it for
    /// every test; it adds a check to every access, so nothing else does.</summary>
    public static bool CheckBounds { get; set; }

    /// <summary>A context with the devices of the given kinds: opening a device asks only its own runtime (a CUDA run
    /// need not start the OpenCL drivers, nor an OpenCL or CPU-accelerator run CUDA).</summary>
    internal static Context CreateContext(CpuSimulation cpu, bool profiling = false, DeviceKinds kinds = DeviceKinds.All)
    {
        InstallDriverResolver();
        return Context.Create(b =>
        {
            if (kinds.HasFlag(DeviceKinds.Cuda)) b.Cuda();
            if (kinds.HasFlag(DeviceKinds.OpenCL)) b.OpenCL();
            if (kinds.HasFlag(DeviceKinds.Cpu)) b.CPU(new CPUDevice(cpu.ThreadsPerWarp, cpu.WarpsPerGroup, cpu.Multiprocessors));
            b.EnableAlgorithms().Optimize(OptimizationLevel.O1);
            if (profiling) b.Profiling();   // lets streams record profiling markers (CUDA events)
            if (CheckBounds) b.Assertions();
        });
    }

    /// <summary>The kind of device an id names (cuda, cuda:N → CUDA; opencl… → OpenCL; ilgpu-cpu… → the CPU
    /// accelerator); All for anything else.</summary>
    public static DeviceKinds KindsOf(string id) =>
        id.StartsWith("cuda", StringComparison.Ordinal) ? DeviceKinds.Cuda
        : id.StartsWith("opencl", StringComparison.Ordinal) ? DeviceKinds.OpenCL
        : id.StartsWith("ilgpu-cpu", StringComparison.Ordinal) ? DeviceKinds.Cpu
        : DeviceKinds.All;

    public static IReadOnlyList<IlgpuDeviceInfo> List(CpuSimulation? cpu = null, DeviceKinds kinds = DeviceKinds.All)
    {
        using var context = CreateContext(cpu ?? CpuSimulation.Small, kinds: kinds);
        return Enumerate(context).Select(e => e.Info).ToList();
    }

    internal static List<(IlgpuDeviceInfo Info, Device Device)> Enumerate(Context context)
    {
        var found = new List<(IlgpuDeviceInfo, Device)>();
        var cuda = context.GetCudaDevices();
        for (int i = 0; i < cuda.Count; i++) found.Add((Describe(cuda[i], $"cuda:{i}", "cuda"), cuda[i]));
        var cl = context.GetCLDevices();
        for (int i = 0; i < cl.Count; i++) found.Add((Describe(cl[i], $"opencl:{i}", "opencl"), cl[i]));
        var cpus = context.GetCPUDevices();
        for (int i = 0; i < cpus.Count; i++)
            found.Add((Describe(cpus[i], i == 0 ? "ilgpu-cpu" : $"ilgpu-cpu:{i}", "ilgpu-cpu"), cpus[i]));
        return found;
    }

    static IlgpuDeviceInfo Describe(Device d, string id, string kind) =>
        // The CPU accelerator reports an unbounded size; what it really has is the host's memory.
        // The CPU accelerator's shared memory is host memory: its groups (with the TF32 emulation's scratch) are not
        // held to a GPU's limit.
        new(id, kind, d.Name, d is CPUDevice ? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes : d.MemorySize,
            d.WarpSize, d.MaxNumThreadsPerGroup, d is CPUDevice ? long.MaxValue : d.MaxSharedMemoryPerGroup,
            OpenClCpu: d is CLDevice cl && cl.DeviceType.HasFlag(CLDeviceType.CL_DEVICE_TYPE_CPU),
            ComputeCapability: d is CudaDevice { Architecture: { } sm } ? new Version(sm.Major, sm.Minor) : null);

    /// <summary>
    /// Why an OpenCL CPU device cannot run GpuStyle's kernels (null where it can). ILGPU's OpenCL C keeps a kernel's
    /// dynamic shared-memory pointer in a program-scope variable that every work-item sets at its start and reads
    /// later: on a GPU every group writes the same value (a local-memory pointer is an offset into the group's own
    /// window), but a CPU runtime that runs work-groups side by side gives each its own buffer, and groups overwrite
    /// each other's pointer — measured on PoCL 6.0: the tiled convolution off by 0.3–1.3 of its largest output (once
    /// 370×), and every kernel with shared memory at risk. PoCL limited to one thread (POCL_MAX_PTHREAD_COUNT=1) runs
    /// groups one after another, which is safe; the tests run the OpenCL kernels that way.
    /// </summary>
    internal static string? OpenClCpuRefusal(IlgpuDeviceInfo info, Device device)
    {
        if (!info.OpenClCpu) return null;
        if (device is CLDevice { PlatformName: "Portable Computing Language" } && Environment.GetEnvironmentVariable("POCL_MAX_PTHREAD_COUNT") == "1")
            return null;
        return $"{info.Id} ({info.Name}) is an OpenCL CPU device, where ILGPU's OpenCL code gives wrong results when work-groups run side " +
            "by side (they share one shared-memory pointer); use --device cpu, GpuStyle's own CPU backend (faster, too). " +
            "On PoCL, POCL_MAX_PTHREAD_COUNT=1 runs one work-group at a time, and is accepted";
    }

    /// <summary>Finds a device by id ("cuda" means the first CUDA device) within a context.</summary>
    internal static (IlgpuDeviceInfo Info, Device Device) Find(Context context, string id)
    {
        var found = Enumerate(context);
        var match = found.FirstOrDefault(e => e.Info.Id == id || e.Info.Id == id + ":0");
        if (match.Device is not null) return match;
        // The context may hold one kind only: the devices there are, of every kind, for the message.
        var all = List();
        // Where no device of the kind asked for shows at all, why (as `gpustyle devices` says it).
        string have = all.Count == 0 ? "none" : string.Join(", ", all.Select(e => e.Id));
        string why = id.StartsWith("cuda", StringComparison.Ordinal) && all.All(e => e.Kind != "cuda") && CudaAbsenceReason() is { } r ? $" ({r})"
            : id.StartsWith("opencl", StringComparison.Ordinal) && all.All(e => e.Kind != "opencl") ? $" ({OpenClAbsenceReason()})"
            : "";
        throw new DeviceNotFoundException($"no ILGPU device '{id}'{why}; available: {have}");
    }
}

/// <summary>The runtimes a context asks for devices.</summary>
[Flags]
public enum DeviceKinds { Cuda = 1, OpenCL = 2, Cpu = 4, All = Cuda | OpenCL | Cpu }

/// <summary>The requested device does not exist on this machine.</summary>
public sealed class DeviceNotFoundException(string message) : Exception(message);
