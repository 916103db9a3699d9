using System.Runtime.CompilerServices;

namespace GpuStyle.Tests.Support;

/// <summary>Every ILGPU context the tests create checks its kernels' view accesses (DeviceCatalog.CheckBounds): a
/// kernel that indexes outside a buffer on the CPU accelerator stops the test run, naming itself, where without the
/// checks it would read a neighbour's memory and might still pass.</summary>
static class BoundsChecks
{
    [ModuleInitializer]
    internal static void TurnOn() => GpuStyle.Engine.Ilgpu.DeviceCatalog.CheckBounds = true;
}
