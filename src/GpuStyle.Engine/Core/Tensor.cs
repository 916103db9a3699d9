namespace GpuStyle.Engine;

/// <summary>
/// A float32 buffer with a shape, owned by one backend. Ops take tensors of their own backend only.
/// Disposal frees the device memory at once (deterministically), never on the finaliser.
/// </summary>
public abstract class Tensor : IDisposable
{
    protected Tensor(Shape shape)
    {
        if (shape.C <= 0 || shape.H <= 0 || shape.W <= 0)
            throw new ArgumentOutOfRangeException(nameof(shape), $"a tensor needs positive dimensions, got {shape}");
        Shape = shape;
    }

    public Shape Shape { get; }
    public int Length => Shape.Size;
    public abstract IBackend Backend { get; }
    public bool IsDisposed { get; private set; }

    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        Free();
        GC.SuppressFinalize(this);
    }

    protected abstract void Free();

    public override string ToString() => $"Tensor {Shape} on {Backend.Name}";
}
