namespace GpuStyle.Engine.Network;

/// <summary>One layer of a VGG-style feature network, as data (no device memory).</summary>
public abstract record LayerSpec(string Name);

/// <summary>
/// A 3×3 convolution (stride 1, padding 1) with bias and ReLU. Its output — after the ReLU — is the tap named
/// <see cref="LayerSpec.Name"/> (e.g. "relu3_1"). Weights are [Cout][Cin][3][3], biases [Cout].
/// </summary>
public sealed record ConvSpec(string Name, int InChannels, int OutChannels, float[] Weights, float[] Bias) : LayerSpec(Name)
{
    public void Validate()
    {
        if (Weights.Length != OutChannels * InChannels * 9)
            throw new ArgumentException($"{Name}: {Weights.Length} weights for a 3×3 {InChannels}→{OutChannels} convolution (want {OutChannels * InChannels * 9})");
        if (Bias.Length != OutChannels)
            throw new ArgumentException($"{Name}: {Bias.Length} biases for {OutChannels} output channels");
    }
}

/// <summary>2×2 pooling with stride 2 (max or average, chosen for the whole network).</summary>
public sealed record PoolSpec(string Name) : LayerSpec(Name);

/// <summary>A feature network: an input channel count and a chain of layers.</summary>
public sealed record NetworkSpec(int InputChannels, IReadOnlyList<LayerSpec> Layers)
{
    /// <summary>The index of the layer whose output is the named tap; throws listing the taps there are.</summary>
    public int IndexOf(string tap)
    {
        string name = GpuStyle.Engine.Weights.Vgg.NormalizeTap(tap);
        for (int i = 0; i < Layers.Count; i++)
            if (Layers[i].Name == name) return i;
        throw new UnknownLayerException(tap, Layers.OfType<ConvSpec>().Select(l => l.Name).ToList());
    }

    /// <summary>The 2×2 poolings among the first <paramref name="depth"/> layers: an input needs 2^that pixels a side.</summary>
    public int PoolingsThrough(int depth) => Layers.Take(depth).Count(l => l is PoolSpec);

    /// <summary>The shape of every layer's output for an input of the given shape.</summary>
    public Shape[] OutputShapes(Shape input)
    {
        if (input.C != InputChannels) throw new ArgumentException($"the network takes {InputChannels} channels, got {input.C}");
        var shapes = new Shape[Layers.Count];
        var s = input;
        for (int i = 0; i < Layers.Count; i++)
        {
            s = Layers[i] switch
            {
                ConvSpec c when c.InChannels != s.C => throw new ArgumentException($"{c.Name} takes {c.InChannels} channels but receives {s.C}"),
                ConvSpec c => s with { C = c.OutChannels },
                PoolSpec => Check.PooledShape(s),
                _ => throw new NotSupportedException(Layers[i].GetType().Name),
            };
            shapes[i] = s;
        }
        return shapes;
    }
}

/// <summary>A layer was asked for that the network (or its weights file) does not have.</summary>
public sealed class UnknownLayerException(string layer, IReadOnlyList<string> available)
    : Exception($"unknown layer '{layer}'; this network has: {string.Join(", ", available)}")
{
    public string Layer { get; } = layer;
    public IReadOnlyList<string> Available { get; } = available;
}
