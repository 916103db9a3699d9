using System.Reflection;
using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace GpuStyle.Engine.Ilgpu;

/// <summary>
/// Kernels loaded with PTX launch bounds (<c>.maxntid</c>, <c>.minnctapersm</c>), which ILGPU does not write. Without
/// them ptxas sizes a kernel's registers for one group an SM: the TF32 convolution's 32×8 tile took 72 registers
/// × 512 threads, so one group an SM, its staging never overlapping another group's tensor work (the H200 profile:
/// occupancy 37.5%, 39% of stalls on the staging loads). Asked for two groups of 512, ptxas for sm_90 fits the same
/// code in 64 registers without spilling (SassTests). The PTX is compiled by the accelerator's own backend, the
/// directives inserted, and the kernel loaded from the edited PTX — through two of ILGPU 1.5.3's internal members
/// (CompiledKernel.EntryPoint and PTXCompiledKernel's constructor): where that fails, the caller loads the kernel as
/// usual.
/// </summary>
public static class LaunchBounds
{
    /// <summary>The PTX with <c>.maxntid maxThreads, 1, 1</c> and <c>.minnctapersm minGroups</c> on its entry point.</summary>
    public static string Insert(string ptx, int maxThreads, int minGroups)
    {
        var entry = Regex.Match(ptx, @"\.entry\s+\w+\s*\([^)]*\)\s*\n", RegexOptions.Singleline);
        if (!entry.Success) throw new ArgumentException("no .entry with a parameter list in the PTX");
        int at = entry.Index + entry.Length;
        return ptx[..at] + $".maxntid {maxThreads}, 1, 1\n.minnctapersm {minGroups}\n" + ptx[at..];
    }

    /// <summary>An explicitly grouped kernel compiled by <paramref name="backend"/>, with launch bounds: a compiled
    /// kernel any CUDA accelerator of that backend's architecture can load.</summary>
    public static PTXCompiledKernel Compile(PTXBackend backend, Context context, MethodInfo method, int maxThreads, int minGroups)
    {
        var compiled = (PTXCompiledKernel)backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(method), KernelSpecialization.Empty);
        return KernelCache.Construct(context, KernelCache.EntryPointOf(compiled), compiled.Info, Insert(compiled.PTXAssembly, maxThreads, minGroups));
    }
}
