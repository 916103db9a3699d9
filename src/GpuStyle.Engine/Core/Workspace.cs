namespace GpuStyle.Engine;

/// <summary>
/// Named scratch tensors for a loop: the first request allocates, later requests with the same name and shape
/// return the same tensor, so an optimisation loop allocates nothing after its first iteration.
/// </summary>
public sealed class Workspace(IBackend backend) : IDisposable
{
    readonly Dictionary<string, Tensor> _tensors = new();

    public Tensor Get(string name, Shape shape)
    {
        if (_tensors.TryGetValue(name, out var t))
        {
            if (t.Shape != shape) throw new InvalidOperationException($"workspace tensor '{name}' is {t.Shape}, asked for {shape}");
            return t;
        }
        t = backend.Allocate(shape);
        _tensors.Add(name, t);
        return t;
    }

    public int Count => _tensors.Count;

    public void Dispose()
    {
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors.Clear();
    }
}
