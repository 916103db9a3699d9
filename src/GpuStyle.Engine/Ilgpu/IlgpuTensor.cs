using ILGPU;
using ILGPU.Runtime;

namespace GpuStyle.Engine.Ilgpu;

/// <summary>A tensor in an ILGPU accelerator's memory.</summary>
public sealed class IlgpuTensor : Tensor
{
    readonly IlgpuBackend _backend;
    readonly MemoryBuffer1D<float, Stride1D.Dense> _buffer;

    internal IlgpuTensor(IlgpuBackend backend, Shape shape) : base(shape)
    {
        _backend = backend;
        _buffer = backend.Accelerator.Allocate1D<float>(shape.Size);
    }

    public override IBackend Backend => _backend;

    internal ArrayView<float> View
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            return _buffer.View;
        }
    }

    protected override void Free()
    {
        _buffer.Dispose();
        _backend.Memory.Released(4L * Length);
    }
}
