namespace GpuStyle.Engine;

/// <summary>Bytes of device memory a backend holds now — tensors, and on ILGPU its scratch buffers too (Winograd's
/// transformed tiles, packed weights, reduction partials) — and the most it has held (what `bench --profile` reports).</summary>
public sealed class MemoryMeter
{
    long _inUse, _peak;

    public long InUse => Interlocked.Read(ref _inUse);
    public long Peak => Interlocked.Read(ref _peak);

    public void Allocated(long bytes)
    {
        long now = Interlocked.Add(ref _inUse, bytes);
        long peak;
        while (now > (peak = Interlocked.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, now, peak) != peak) { }
    }

    public void Released(long bytes) => Interlocked.Add(ref _inUse, -bytes);

    public void ResetPeak() => Interlocked.Exchange(ref _peak, InUse);
}
