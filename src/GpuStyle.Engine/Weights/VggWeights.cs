using System.Text.RegularExpressions;

namespace GpuStyle.Engine.Weights;

/// <summary>The three Keras weight-file layouts GpuStyle reads (DESIGN.md §5).</summary>
public enum KerasLayout { Keras1, Keras2, Keras3 }

/// <summary>
/// One VGG convolution's weights as read from a file, already in the engine's layout:
/// kernel [Cout][Cin][3][3] (converted once from Keras's H,W,Cin,Cout), bias [Cout].
/// </summary>
public sealed record ConvWeights(int Block, int Index, int InChannels, int OutChannels, float[] Kernel, float[] Bias)
{
    public string KerasName => $"block{Block}_conv{Index}";
    public string TapName => $"relu{Block}_{Index}";
}

/// <summary>The convolution layers of a VGG16 or VGG19 file (or of a prefix of one), in network order.</summary>
public sealed record VggWeights(string Path, KerasLayout Layout, IReadOnlyList<ConvWeights> Convs)
{
    /// <summary>"vgg16", "vgg19", or "vgg" when the blocks present cannot tell (only blocks 1–2).</summary>
    public string Architecture => Vgg.ArchitectureOf(Convs);
}

/// <summary>A weights file that cannot be used: names the file and what is wrong with it.</summary>
public sealed class WeightsException(string path, string problem, Exception? inner = null)
    : Exception($"{path}: {problem}", inner)
{
    public string FilePath { get; } = path;
    public string Problem { get; } = problem;
}

/// <summary>VGG's topology, and the names of its layers.</summary>
public static partial class Vgg
{
    public static readonly int[] Vgg16Blocks = [2, 2, 3, 3, 3];
    public static readonly int[] Vgg19Blocks = [2, 2, 4, 4, 4];
    public static readonly int[] Channels = [64, 128, 256, 512, 512];

    [GeneratedRegex(@"^block(\d+)_conv(\d+)$")]
    public static partial Regex KerasConvName();

    [GeneratedRegex(@"^relu(\d+)_(\d+)$")]
    private static partial Regex TapConvName();

    [GeneratedRegex(@"^block(\d+)_pool$")]
    private static partial Regex KerasPoolName();

    /// <summary>Accepts either naming — "relu4_2" or Keras's "block4_conv2" (and "block4_pool" for "pool4").</summary>
    public static string NormalizeTap(string name)
    {
        var m = KerasConvName().Match(name);
        if (m.Success) return $"relu{m.Groups[1].Value}_{m.Groups[2].Value}";
        m = KerasPoolName().Match(name);
        if (m.Success) return $"pool{m.Groups[1].Value}";
        return name;
    }

    public static bool IsTapName(string name) => TapConvName().IsMatch(NormalizeTap(name));

    /// <summary>
    /// The feature network of the weights: the convolutions (each followed by ReLU, tapped as reluB_K) with a
    /// pooling layer (poolB) between blocks. A pooling after the last convolution would feed nothing, so none is added.
    /// </summary>
    public static GpuStyle.Engine.Network.NetworkSpec BuildSpec(VggWeights weights)
    {
        var layers = new List<GpuStyle.Engine.Network.LayerSpec>();
        for (int n = 0; n < weights.Convs.Count; n++)
        {
            var c = weights.Convs[n];
            if (n > 0 && c.Block != weights.Convs[n - 1].Block)
                layers.Add(new GpuStyle.Engine.Network.PoolSpec($"pool{weights.Convs[n - 1].Block}"));
            layers.Add(new GpuStyle.Engine.Network.ConvSpec(c.TapName, c.InChannels, c.OutChannels, c.Kernel, c.Bias));
        }
        return new GpuStyle.Engine.Network.NetworkSpec(3, layers);
    }

    /// <summary>VGG16 or VGG19 with seeded random He-initialised weights (for benchmarks: timings ignore values).</summary>
    public static VggWeights Random(string architecture, int seed = 1)
    {
        var blocks = architecture switch
        {
            "vgg16" => Vgg16Blocks,
            "vgg19" => Vgg19Blocks,
            _ => throw new ArgumentException($"unknown network '{architecture}' (vgg16 or vgg19)"),
        };
        var random = new System.Random(seed);
        var convs = new List<ConvWeights>();
        int cin = 3;
        for (int b = 0; b < 5; b++)
            for (int k = 1; k <= blocks[b]; k++)
            {
                int cout = Channels[b];
                float std = MathF.Sqrt(2f / (9 * cin));
                var w = new float[cout * cin * 9];
                for (int i = 0; i < w.Length; i++) w[i] = (float)(random.NextDouble() * 2 - 1) * std * 1.73f;
                convs.Add(new ConvWeights(b + 1, k, cin, cout, w, new float[cout]));
                cin = cout;
            }
        return new VggWeights($"random {architecture}", KerasLayout.Keras1, convs);
    }

    public static string ArchitectureOf(IReadOnlyList<ConvWeights> convs)
    {
        int block3 = convs.Count(c => c.Block == 3);
        if (convs.Any(c => c.Block >= 3 && c.Index == 4)) return "vgg19";
        if (block3 == 3 && convs.Any(c => c.Block > 3)) return "vgg16";
        return "vgg";
    }
}
