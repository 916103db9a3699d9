using GpuStyle.Engine.Weights;
using PureHDF;

namespace GpuStyle.WeightsTools;

/// <summary>What fixture file to write.</summary>
/// <param name="Architecture">"vgg16" or "vgg19".</param>
/// <param name="Blocks">How many of the five blocks (a prefix).</param>
/// <param name="Channels">Output channels of blocks 1–5 (VGG's are 64,128,256,512,512; tests use small ones).</param>
/// <param name="WithTop">Add a (small) classifier on top, which readers must ignore.</param>
/// <param name="UnderModelWeights">Keras 2 only: put the layers under /model_weights, as model.save() does.</param>
public sealed record FixtureSpec(string Architecture, KerasLayout Layout, int Blocks, int[] Channels, int Seed,
    bool WithTop = false, bool UnderModelWeights = false)
{
    public int[] ConvsPerBlock => Architecture switch
    {
        "vgg16" => Vgg.Vgg16Blocks,
        "vgg19" => Vgg.Vgg19Blocks,
        _ => throw new ArgumentException($"architecture must be vgg16 or vgg19, not {Architecture}"),
    };
}

/// <summary>A convolution's raw values in Keras order: kernel (3,3,Cin,Cout) flattened, bias (Cout).</summary>
public sealed record KerasConv(string Name, int InChannels, int OutChannels, float[] Kernel, float[] Bias);

/// <summary>
/// Writes VGG weight files with seeded random He-initialised values in each Keras layout: the fixtures the tests use
/// (the official files cannot be downloaded here, and are 59–80 MB).
/// </summary>
public static class FixtureWeights
{
    /// <summary>The random layers of a spec, in Keras order (deterministic in the seed).</summary>
    public static List<KerasConv> Layers(FixtureSpec spec)
    {
        if (spec.Blocks is < 1 or > 5) throw new ArgumentException($"blocks must be 1–5, not {spec.Blocks}");
        if (spec.Channels.Length != 5 || spec.Channels.Any(c => c < 1)) throw new ArgumentException("five positive channel counts are needed");
        var random = new Random(spec.Seed);
        var layers = new List<KerasConv>();
        int cin = 3;
        for (int b = 1; b <= spec.Blocks; b++)
            for (int k = 1; k <= spec.ConvsPerBlock[b - 1]; k++)
            {
                int cout = spec.Channels[b - 1];
                double std = Math.Sqrt(2.0 / (9 * cin));   // He initialisation keeps activations O(1) with depth
                var kernel = new float[9 * cin * cout];
                for (int i = 0; i < kernel.Length; i++) kernel[i] = (float)(Gaussian(random) * std);
                var bias = new float[cout];
                for (int i = 0; i < cout; i++) bias[i] = (float)(random.NextDouble() * 0.2 - 0.1);
                layers.Add(new KerasConv($"block{b}_conv{k}", cin, cout, kernel, bias));
                cin = cout;
            }
        return layers;
    }

    public static void Write(FixtureSpec spec, string path)
    {
        var convs = Layers(spec);
        var file = spec.Layout switch
        {
            KerasLayout.Keras1 or KerasLayout.Keras2 => Keras12(spec, convs),
            KerasLayout.Keras3 => Keras3(spec, convs),
            _ => throw new ArgumentOutOfRangeException(nameof(spec)),
        };
        // Written whole under a temporary name, then renamed: a failed write leaves no half file behind.
        string tmp = path + ".tmp-" + Environment.ProcessId;
        try
        {
            file.Write(tmp);
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    /// <summary>Keras 1 (the official files) and Keras 2: root attribute layer_names, per-layer weight_names.</summary>
    static H5File Keras12(FixtureSpec spec, List<KerasConv> convs)
    {
        bool k2 = spec.Layout == KerasLayout.Keras2;
        var groups = new List<(string Name, H5Group Group)> { ("input_1", NoWeights()) };
        int n = 0;
        for (int b = 1; b <= spec.Blocks; b++)
        {
            for (int k = 1; k <= spec.ConvsPerBlock[b - 1]; k++, n++)
            {
                var c = convs[n];
                var (wName, bName) = k2 ? ($"{c.Name}/kernel:0", $"{c.Name}/bias:0") : ($"{c.Name}_W_1:0", $"{c.Name}_b_1:0");
                var g = new H5Group { Attributes = new() { ["weight_names"] = new[] { wName, bName } } };
                var kernel = new H5Dataset(c.Kernel, fileDims: [3, 3, (ulong)c.InChannels, (ulong)c.OutChannels]);
                var bias = new H5Dataset(c.Bias, fileDims: [(ulong)c.OutChannels]);
                if (k2) g[c.Name] = new H5Group { ["kernel:0"] = kernel, ["bias:0"] = bias };
                else { g[wName] = kernel; g[bName] = bias; }
                groups.Add((c.Name, g));
            }
            groups.Add(($"block{b}_pool", NoWeights()));
        }
        if (spec.WithTop) groups.AddRange(Top(spec, convs[^1].OutChannels, k2));

        var root = new H5Group { Attributes = new() { ["layer_names"] = groups.Select(g => g.Name).ToArray() } };
        if (k2)
        {
            root.Attributes["backend"] = "tensorflow";
            root.Attributes["keras_version"] = "2.15.0";
        }
        foreach (var (name, g) in groups) root[name] = g;
        if (!spec.UnderModelWeights) return Rooted(root);
        return new H5File { ["model_weights"] = root };
    }

    static H5File Rooted(H5Group g)
    {
        var file = new H5File { Attributes = g.Attributes };
        foreach (var (name, child) in g) file[name] = child;
        return file;
    }

    /// <summary>Keras 3 .weights.h5: layers/&lt;name&gt;/vars/0 (kernel) and vars/1 (bias).</summary>
    static H5File Keras3(FixtureSpec spec, List<KerasConv> convs)
    {
        var layers = new H5Group();
        foreach (var c in convs)
            layers[c.Name] = new H5Group
            {
                ["vars"] = new H5Group
                {
                    ["0"] = new H5Dataset(c.Kernel, fileDims: [3, 3, (ulong)c.InChannels, (ulong)c.OutChannels]),
                    ["1"] = new H5Dataset(c.Bias, fileDims: [(ulong)c.OutChannels]),
                },
            };
        for (int b = 1; b <= spec.Blocks; b++) layers[$"block{b}_pool"] = new H5Group { ["vars"] = new H5Group() };
        if (spec.WithTop)
            foreach (var (name, w, bias) in TopArrays(spec, convs[^1].OutChannels))
                layers[name] = new H5Group { ["vars"] = new H5Group { ["0"] = w, ["1"] = bias } };
        return new H5File { ["layers"] = layers, ["vars"] = new H5Group() };
    }

    static IEnumerable<(string, H5Group)> Top(FixtureSpec spec, int features, bool k2)
    {
        yield return ("flatten", NoWeights());
        foreach (var (name, w, b) in TopArrays(spec, features))
        {
            var (wName, bName) = k2 ? ($"{name}/kernel:0", $"{name}/bias:0") : ($"{name}_W_1:0", $"{name}_b_1:0");
            var g = new H5Group { Attributes = new() { ["weight_names"] = new[] { wName, bName } } };
            if (k2) g[name] = new H5Group { ["kernel:0"] = w, ["bias:0"] = b };
            else { g[wName] = w; g[bName] = b; }
            yield return (name, g);
        }
    }

    /// <summary>A tiny classifier (dense layers), deterministic in the seed.</summary>
    static IEnumerable<(string, H5Dataset, H5Dataset)> TopArrays(FixtureSpec spec, int features)
    {
        var random = new Random(spec.Seed + 1);
        int inputs = features;
        foreach (var (name, outputs) in new[] { ("fc1", 16), ("fc2", 16), ("predictions", 10) })
        {
            var w = Enumerable.Range(0, inputs * outputs).Select(_ => (float)Gaussian(random)).ToArray();
            var b = new float[outputs];
            yield return (name, new H5Dataset(w, fileDims: [(ulong)inputs, (ulong)outputs]), new H5Dataset(b, fileDims: [(ulong)outputs]));
            inputs = outputs;
        }
    }

    /// <summary>Layers without weights carry an empty weight_names, as Keras writes it (an empty float64 array).</summary>
    static H5Group NoWeights() => new() { Attributes = new() { ["weight_names"] = new H5Attribute(Array.Empty<double>(), dimensions: [0]) } };

    static double Gaussian(Random r) => Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());
}
