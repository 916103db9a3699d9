using GpuStyle.Engine.Ilgpu;

namespace GpuStyle.Tests;

/// <summary>The suite's ILGPU contexts check bounds: Support/BoundsChecks.cs turns the checks on for the whole run.</summary>
public class BoundsCheckTests
{
    [Fact]
    public void Test_contexts_check_every_view_access()
    {
        Assert.True(DeviceCatalog.CheckBounds);
        using var b = IlgpuBackend.Open("ilgpu-cpu");
        Assert.True(b.Accelerator.Context.Properties.EnableAssertions);
    }
}
