using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using GpuStyle.Kernels;
using GpuStyle.Tests.Support;

namespace GpuStyle.Tests;

/// <summary>
/// Every ILGPU kernel compiled by ILGPU's PTX backend for SM_90 (no GPU needed). A kernel that runs on the CPU
/// accelerator but calls something PTX lacks (MathF.FusedMultiplyAdd, say) leaves an `.extern` in the PTX and
/// would fail to load on a real GPU: this catches it here.
/// </summary>
public class PtxCompileTests
{
    /// <summary>Every public static method of every nested "Ilgpu" class of the kernels namespace.</summary>
    public static IEnumerable<object[]> Kernels() => AllKernels().Select(m => new object[] { Name(m) });

    internal static string Name(MethodInfo m) => $"{m.DeclaringType!.DeclaringType!.Name}.{(m.DeclaringType.Name == "Ilgpu" ? "" : m.DeclaringType.Name + ".")}{m.Name}";

    internal static IEnumerable<MethodInfo> AllKernels() =>
        typeof(Conv3x3).Assembly.GetTypes()
            .Where(t => t.Namespace == "GpuStyle.Kernels" && t.IsNested && t.Name.StartsWith("Ilgpu", StringComparison.Ordinal))
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly))
            .Where(m => m.ReturnType == typeof(void) && m.GetParameters().Length > 0 && m.GetParameters().Any(p => p.ParameterType.Name.StartsWith("ArrayView")));

    [Fact]
    public void The_catalogue_finds_the_kernels()
    {
        var names = Kernels().Select(k => (string)k[0]).ToList();
        Assert.Contains("Conv3x3.Forward", names);
        Assert.Contains("Conv3x3.BackwardInput", names);
        Assert.Contains("Gram.BackwardAccumulate", names);
        Assert.Contains("Conv3x3.Forward", names);
        Assert.Contains(names, n => n.EndsWith(".TransposeFlip"));
        Assert.True(names.Count >= 20, $"only {names.Count} kernels found: {string.Join(", ", names)}");
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void Kernel_compiles_to_PTX_for_SM90_without_externs(string kernel)
    {
        var method = AllKernels().Single(m => Name(m) == kernel);
        string ptx = Ptx(method);
        Assert.Contains(".entry", ptx);
        Keep(kernel + ".ptx", ptx);
        // Every kernel carries a readable name for Nsight Compute, and the PTX entry point has it.
        var named = method.GetCustomAttribute<KernelNameAttribute>();
        Assert.True(named is not null, $"{kernel} has no [KernelName]");
        Assert.Contains(named!.KernelName, ptx);
        // `.extern .shared … []` is how PTX declares dynamic shared memory (sized at launch): that one is legitimate.
        // Every other `.extern` (an undefined function, above all) is something the driver cannot resolve.
        var externs = ptx.Split('\n').Where(l => l.Contains(".extern") && !l.Contains(".extern .shared")).ToList();
        Assert.True(externs.Count == 0, $"{kernel}: PTX has undefined externals:\n{string.Join("\n", externs)}");
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void Kernel_compiles_to_OpenCL_C(string kernel)
    {
        // OpenCL GPUs (AMD, Intel, NVIDIA's OpenCL) get the same kernels as OpenCL C 2.0. The TF32 kernel's inline PTX
        // sits behind CudaAsm.IsSupported and must not stop the OpenCL backend: every kernel is loaded at start.
        string source = OpenClSource(AllKernels().Single(m => Name(m) == kernel));
        Keep(kernel + ".cl", source);
        Assert.Contains("kernel", source);
    }

    /// <summary>
    /// The OpenCL C that ILGPU writes is only text until a compiler reads it: clang's OpenCL front end (the one PoCL
    /// and most GPU drivers build on) checks each kernel's, per kernel and in a fraction of a second, here. It found
    /// 15 kernels whose dynamic shared memory of Float4s ILGPU wrote as `len / ()16` (see Float4.SharedDynamic);
    /// OpenClPoclTests then builds and runs them all on a real OpenCL runtime.
    /// </summary>
    [ClangTheory]
    [MemberData(nameof(Kernels))]
    public void Kernel_OpenCL_C_compiles_under_clang(string kernel)
    {
        string file = Path.Combine(Path.GetTempPath(), $"gpustyle-{Guid.NewGuid():N}.cl");
        File.WriteAllText(file, OpenClSource(AllKernels().Single(m => Name(m) == kernel)));
        try
        {
            var (code, output) = ChildProcess.Run(Clang.Path!,
                ["-x", "cl", "-cl-std=CL2.0", "-Xclang", "-finclude-default-header", "-fsyntax-only", "-w", file], timeoutMs: 120_000);
            Assert.True(code == 0, $"{kernel}: clang rejects ILGPU's OpenCL C:\n{output}");
        }
        finally { File.Delete(file); }
    }

    /// <summary>A kernel as ILGPU's OpenCL backend writes it for an OpenCL C 2.0 device without extensions.</summary>
    static string OpenClSource(MethodInfo method)
    {
        using var context = FreshContext();
        using var backend = new ILGPU.Backends.OpenCL.CLBackend(context,
            new ILGPU.Runtime.OpenCL.CLCapabilityContext(false, false, false, false, false),
            ILGPU.Runtime.OpenCL.CLDeviceVendor.Nvidia, new ILGPU.Backends.OpenCL.CLCVersion(2, 0));
        return ((ILGPU.Backends.OpenCL.CLCompiledKernel)backend.Compile(Entry(method), KernelSpecialization.Empty)).Source;
    }

    /// <summary>A kernel's PTX as ILGPU's PTX backend writes it for SM_90 (or another architecture).</summary>
    internal static string Ptx(MethodInfo method, CudaArchitecture? architecture = null) =>
        WithBackend(architecture ?? CudaArchitecture.SM_90, (_, backend) => ((PTXCompiledKernel)backend.Compile(Entry(method), KernelSpecialization.Empty)).PTXAssembly);

    /// <summary>Runs compile with ILGPU's PTX backend for SM_90 (PTX ISA 8.8) in a fresh context.</summary>
    internal static T WithSm90Backend<T>(Func<Context, PTXBackend, T> compile) => WithBackend(CudaArchitecture.SM_90, compile);

    /// <summary>Runs compile with ILGPU's PTX backend for an architecture (PTX ISA 8.8, as a current driver gives
    /// ILGPU for every one) in a fresh context.</summary>
    static T WithBackend<T>(CudaArchitecture architecture, Func<Context, PTXBackend, T> compile)
    {
        using var context = FreshContext();
        using var backend = new PTXBackend(context, new CudaCapabilityContext(architecture), architecture, CudaInstructionSet.ISA_88, null);
        return compile(context, backend);
    }

    /// <summary>A fresh context per kernel: after one failed compile a context can fail on later, valid kernels.</summary>
    static Context FreshContext() => Context.Create(b => b.CPU().EnableAlgorithms().Optimize(OptimizationLevel.O1));

    /// <summary>Kernels whose first parameter is an index are implicitly grouped; the rest take a KernelConfig.</summary>
    static EntryPointDescription Entry(MethodInfo method)
    {
        var first = method.GetParameters()[0].ParameterType;
        return first == typeof(Index1D) || first == typeof(Index2D) || first == typeof(Index3D)
            ? EntryPointDescription.FromImplicitlyGroupedKernel(method)
            : EntryPointDescription.FromExplicitlyGroupedKernel(method);
    }

    /// <summary>GPUSTYLE_PTX_DIR=folder keeps the generated code, to read what a kernel became (local memory, inline asm).</summary>
    static void Keep(string file, string code)
    {
        if (Environment.GetEnvironmentVariable("GPUSTYLE_PTX_DIR") is { Length: > 0 } dir)
            File.WriteAllText(Path.Combine(dir, file), code);
    }
}

/// <summary>A clang on PATH (clang, or clang-N as Debian names it: clang-14 on these machines), for the OpenCL C check.</summary>
public static class Clang
{
    public static string? Path { get; } = Find();

    static string? Find()
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(System.IO.Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            if (!Directory.Exists(dir)) continue;
            if (File.Exists(System.IO.Path.Combine(dir, "clang"))) return System.IO.Path.Combine(dir, "clang");
            var versioned = Directory.EnumerateFiles(dir, "clang-*")
                .Where(f => int.TryParse(System.IO.Path.GetFileName(f)["clang-".Length..], out _))
                .OrderByDescending(f => int.Parse(System.IO.Path.GetFileName(f)["clang-".Length..])).FirstOrDefault();
            if (versioned is not null) return versioned;
        }
        return null;
    }
}

public sealed class ClangTheoryAttribute : TheoryAttribute
{
    public ClangTheoryAttribute() { if (Clang.Path is null) Skip = "needs clang (its OpenCL front end) on PATH: Debian's clang-14, say"; }
}
