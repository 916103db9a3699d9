using System.Diagnostics;
using System.Linq.Expressions;
using System.Reflection;
using ILGPU;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace GpuStyle.Engine.Ilgpu;

/// <summary>
/// Compiles and loads the backend's kernels, with launchers on the accelerator's default stream — on CUDA from the
/// <see cref="KernelCache"/> where one is given, elsewhere (or without one) by ILGPU as usual. Counts what it loaded
/// and the time it took (the start-up a run pays before its first iteration: `bench` prints it).
/// </summary>
public sealed class KernelLoader(Accelerator accelerator, KernelCache? cache)
{
    readonly CudaAccelerator? _cuda = accelerator as CudaAccelerator;
    readonly Stopwatch _clock = new();

    /// <summary>Kernels loaded, and the seconds spent compiling and loading them (ILGPU's compile, or the cache's
    /// read, and the driver's load).</summary>
    public int Loaded => _methods.Count;
    public double Seconds => _clock.Elapsed.TotalSeconds;
    public KernelCache? Cache => _cuda is null ? null : cache;

    /// <summary>The kernels' methods, in the order they were loaded (which kernels a configuration needs: the fp32 ones
    /// must not include a TF32 one, which an older GPU cannot load).</summary>
    public IReadOnlyList<MethodInfo> Methods => _methods;
    readonly List<MethodInfo> _methods = [];

    /// <summary>An implicitly grouped kernel (its first parameter an index: Index1D, …), the group size chosen by the
    /// accelerator, launched on the default stream: ILGPU's LoadAutoGroupedStreamKernel.</summary>
    public TLauncher AutoGrouped<TLauncher>(TLauncher kernel) where TLauncher : Delegate =>
        OnDefaultStream<TLauncher>(Timed(kernel.Method, () => UseCache
            ? accelerator.LoadAutoGroupedKernel(cache!.GetOrCompile(_cuda!.Backend, EntryPointDescription.FromImplicitlyGroupedKernel(kernel.Method), KernelSpecialization.Empty))
            : accelerator.LoadAutoGroupedKernel(kernel.Method)));

    /// <summary>An explicitly grouped kernel (its first parameter a KernelConfig) on the default stream: ILGPU's
    /// LoadStreamKernel.</summary>
    /// <typeparam name="TLauncher">Action&lt;KernelConfig, …the kernel's parameters&gt;.</typeparam>
    public TLauncher Grouped<TLauncher>(Delegate kernel) where TLauncher : Delegate => GroupedKernel<TLauncher>(kernel).Launch;

    /// <summary><see cref="Grouped"/>, with the kernel object (for the occupancy calculator).</summary>
    public (Kernel Kernel, TLauncher Launch) GroupedKernel<TLauncher>(Delegate kernel) where TLauncher : Delegate
    {
        var loaded = Timed(kernel.Method, () => UseCache
            ? accelerator.LoadKernel(cache!.GetOrCompile(_cuda!.Backend, EntryPointDescription.FromExplicitlyGroupedKernel(kernel.Method), KernelSpecialization.Empty))
            : accelerator.LoadKernel(kernel.Method));
        return (loaded, OnDefaultStream<TLauncher>(loaded));
    }

    /// <summary>An explicitly grouped kernel with PTX launch bounds (<see cref="LaunchBounds"/>), on a CUDA accelerator:
    /// the kernel object and its launcher (the stream its first parameter).</summary>
    public (Kernel Kernel, TStreamLauncher Launch) Bounded<TStreamLauncher>(MethodInfo method, int maxThreads, int minGroups)
        where TStreamLauncher : Delegate
    {
        var cuda = _cuda ?? throw new InvalidOperationException("launch bounds are PTX: CUDA only");
        PTXCompiledKernel Compile() => LaunchBounds.Compile(cuda.Backend, cuda.Context, method, maxThreads, minGroups);
        var loaded = Timed(method, () => cuda.LoadKernel(UseCache
            ? cache!.GetOrCompile(cuda.Backend, EntryPointDescription.FromExplicitlyGroupedKernel(method), KernelSpecialization.Empty,
                Compile, $"launch bounds {maxThreads} {minGroups}")
            : Compile()));
        return (loaded, loaded.CreateLauncherDelegate<TStreamLauncher>());
    }

    bool UseCache => _cuda is not null && cache is not null && cache.Note is null;

    Kernel Timed(MethodInfo method, Func<Kernel> load)
    {
        _clock.Start();
        try
        {
            var kernel = load();
            _methods.Add(method);
            return kernel;
        }
        finally { _clock.Stop(); }
    }

    /// <summary>The kernel's launcher (the stream first, then <typeparamref name="TLauncher"/>'s parameters) with the
    /// default stream bound: a delegate of <typeparamref name="TLauncher"/>'s type, as ILGPU's stream kernels are.</summary>
    TLauncher OnDefaultStream<TLauncher>(Kernel kernel) where TLauncher : Delegate
    {
        var parameters = typeof(TLauncher).GetMethod("Invoke")!.GetParameters().Select(p => Expression.Parameter(p.ParameterType, p.Name)).ToArray();
        var launcherType = Expression.GetActionType([typeof(AcceleratorStream), .. parameters.Select(p => p.Type)]);
        var launcher = (Delegate)CreateLauncher.MakeGenericMethod(launcherType).Invoke(kernel, null)!;
        var call = Expression.Invoke(Expression.Constant(launcher), [Expression.Constant(accelerator.DefaultStream, typeof(AcceleratorStream)), .. parameters]);
        return Expression.Lambda<TLauncher>(call, parameters).Compile();
    }

    static readonly MethodInfo CreateLauncher = typeof(Kernel).GetMethod(nameof(Kernel.CreateLauncherDelegate))!;
}
