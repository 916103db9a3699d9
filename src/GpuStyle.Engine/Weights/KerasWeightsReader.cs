using System.Buffers.Binary;
using PureHDF;

namespace GpuStyle.Engine.Weights;

/// <summary>
/// Reads the convolution weights of a Keras VGG16/VGG19 HDF5 file in any of the three layouts (DESIGN.md §5).
/// Datasets are found through each layer group's <c>weight_names</c> attribute (Keras 1 and 2), or the
/// <c>layers/&lt;name&gt;/vars/0|1</c> convention (Keras 3); names of datasets are never guessed. A classifier on
/// top is ignored. Every problem is a <see cref="WeightsException"/> naming the file.
/// </summary>
public static class KerasWeightsReader
{
    static readonly byte[] Hdf5Signature = [0x89, (byte)'H', (byte)'D', (byte)'F', 0x0d, 0x0a, 0x1a, 0x0a];

    public static VggWeights Read(string path)
    {
        if (Directory.Exists(path)) throw new WeightsException(path, "is a folder, not a weights file");
        if (!File.Exists(path)) throw new WeightsException(path, "no such file");
        CheckHdf5Container(path);
        try
        {
            using var file = H5File.OpenRead(path);
            var (layout, convs) = ReadLayers(path, file);
            Validate(path, convs);
            return new VggWeights(path, layout, convs);
        }
        catch (WeightsException) { throw; }
        catch (Exception e)
        {
            throw new WeightsException(path, $"the HDF5 structure cannot be read (corrupt or truncated file?): {e.Message}", e);
        }
    }

    /// <summary>
    /// Checks the HDF5 signature (at 0, 512, 1024, … as the format allows a user block) and that the file is as long
    /// as its superblock says: a partial download is refused here with a clear message rather than deep in a read.
    /// </summary>
    static void CheckHdf5Container(string path)
    {
        using var s = File.OpenRead(path);
        long length = s.Length;
        var head = new byte[8];
        for (long at = 0; at + 8 <= length; at = at == 0 ? 512 : at * 2)
        {
            s.Position = at;
            s.ReadExactly(head);
            if (!head.AsSpan().SequenceEqual(Hdf5Signature)) continue;
            long eof = EndOfFileAddress(s, at);
            if (eof > 0 && at + eof > length)
                throw new WeightsException(path, $"truncated: the HDF5 superblock says {at + eof:N0} bytes, the file has {length:N0}");
            return;
        }
        throw new WeightsException(path, length == 0 ? "empty file, not an HDF5 weights file" : "not an HDF5 file (no HDF5 signature)");
    }

    /// <summary>The end-of-file address from the superblock (versions 0–3), or −1 if it cannot be parsed.</summary>
    static long EndOfFileAddress(Stream s, long at)
    {
        var b = new byte[128];
        s.Position = at;
        int n = s.ReadAtLeast(b, b.Length, throwOnEndOfStream: false);
        if (n < 16) return -1;
        int version = b[8];
        int offsetSize, pos;
        switch (version)
        {
            case 0 or 1:
                offsetSize = b[13];
                pos = 24 + (version == 1 ? 4 : 0) + 2 * offsetSize;   // base address, free-space address, then EOF
                break;
            case 2 or 3:
                offsetSize = b[9];
                pos = 12 + 2 * offsetSize;                              // base address, extension address, then EOF
                break;
            default: return -1;
        }
        if (offsetSize != 8 || pos + 8 > n) return -1;
        ulong eof = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(pos));
        return eof == ulong.MaxValue ? -1 : (long)eof;
    }

    static (KerasLayout, List<ConvWeights>) ReadLayers(string path, IH5Group file)
    {
        IH5Group? root = file.AttributeExists("layer_names") ? file
            : file.LinkExists("model_weights") && file.Get("model_weights") is IH5Group mw && mw.AttributeExists("layer_names") ? mw
            : null;
        if (root is not null) return ReadKeras12(path, root);
        if (file.LinkExists("layers") && file.Get("layers") is IH5Group layers) return (KerasLayout.Keras3, ReadKeras3(path, layers));
        throw new WeightsException(path, "not a Keras weights file: no 'layer_names' attribute (Keras 1/2) and no 'layers' group (Keras 3)");
    }

    static (KerasLayout, List<ConvWeights>) ReadKeras12(string path, IH5Group root)
    {
        var layerNames = ReadStrings(root.Attribute("layer_names"));
        var convs = new List<ConvWeights>();
        KerasLayout layout = KerasLayout.Keras1;
        foreach (var layer in layerNames)
        {
            if (!root.LinkExists(layer)) throw new WeightsException(path, $"layer '{layer}' is listed in layer_names but has no group");
            var group = (IH5Group)root.Get(layer);
            var weightNames = group.AttributeExists("weight_names") ? ReadStrings(group.Attribute("weight_names")) : [];
            var m = Vgg.KerasConvName().Match(layer);
            if (!m.Success) continue;   // input, pooling, flatten and the classifier on top: not needed
            if (weightNames.Length != 2)
                throw new WeightsException(path, $"{layer} lists {weightNames.Length} weights, expected a kernel and a bias");
            if (weightNames.Any(n => n.Contains("kernel"))) layout = KerasLayout.Keras2;
            convs.Add(ReadConv(path, layer, int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value),
                Dataset(path, group, layer, weightNames[0]), Dataset(path, group, layer, weightNames[1])));
        }
        return (layout, convs);
    }

    static List<ConvWeights> ReadKeras3(string path, IH5Group layers)
    {
        var convs = new List<ConvWeights>();
        foreach (var child in layers.Children())
        {
            var m = Vgg.KerasConvName().Match(child.Name);
            if (!m.Success || child is not IH5Group group) continue;
            if (!group.LinkExists("vars") || group.Get("vars") is not IH5Group vars)
                throw new WeightsException(path, $"{child.Name} has no 'vars' group");
            convs.Add(ReadConv(path, child.Name, int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value),
                Dataset(path, vars, child.Name, "0"), Dataset(path, vars, child.Name, "1")));
        }
        // Keras 3 keeps no layer list; HDF5 lists links by name, so order by (block, conv).
        return convs.OrderBy(c => c.Block).ThenBy(c => c.Index).ToList();
    }

    static IH5Dataset Dataset(string path, IH5Group group, string layer, string name)
    {
        if (!group.LinkExists(name) || group.Get(name) is not IH5Dataset d)
            throw new WeightsException(path, $"{layer}: weight '{name}' named in the file is missing");
        return d;
    }

    static ConvWeights ReadConv(string path, string layer, int block, int index, IH5Dataset kernel, IH5Dataset bias)
    {
        RequireFloat32(path, layer, "kernel", kernel);
        RequireFloat32(path, layer, "bias", bias);
        var kd = kernel.Space.Dimensions;
        if (kd.Length != 4 || kd[0] != 3 || kd[1] != 3)
            throw new WeightsException(path, $"{layer}: kernel has shape ({string.Join(",", kd)}), expected (3,3,Cin,Cout)");
        int cin = checked((int)kd[2]), cout = checked((int)kd[3]);
        var bd = bias.Space.Dimensions;
        if (bd.Length != 1 || bd[0] != (ulong)cout)
            throw new WeightsException(path, $"{layer}: bias has shape ({string.Join(",", bd)}), expected ({cout})");
        var k = kernel.Read<float[]>();
        var b = bias.Read<float[]>();
        if (k.Length != 9 * cin * cout || b.Length != cout)
            throw new WeightsException(path, $"{layer}: read {k.Length} kernel values and {b.Length} biases, expected {9 * cin * cout} and {cout}");
        // Keras: K[ky][kx][i][o]  →  engine: w[o][i][ky][kx]. TensorFlow convolutions are correlations, as ours.
        var w = new float[k.Length];
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++)
                for (int i = 0; i < cin; i++)
                    for (int o = 0; o < cout; o++)
                        w[((o * cin + i) * 3 + ky) * 3 + kx] = k[((ky * 3 + kx) * cin + i) * cout + o];
        if (w.Any(v => !float.IsFinite(v)) || b.Any(v => !float.IsFinite(v)))
            throw new WeightsException(path, $"{layer}: weights contain NaN or infinity");
        return new ConvWeights(block, index, cin, cout, w, b);
    }

    static void RequireFloat32(string path, string layer, string what, IH5Dataset d)
    {
        if (d.Type.Class != H5DataTypeClass.FloatingPoint || d.Type.Size != 4)
            throw new WeightsException(path, $"{layer}: {what} is {d.Type.Class} of {d.Type.Size} bytes, expected float32");
    }

    /// <summary>Reads a string-array attribute (fixed or variable length); an empty non-string one (Keras writes an
    /// empty float64 array for layers without weights) reads as no strings.</summary>
    static string[] ReadStrings(IH5Attribute attribute)
    {
        // Fixed-length strings (h5py, Keras) are class String; PureHDF and some writers use variable-length ones.
        if (attribute.Type.Class is not (H5DataTypeClass.String or H5DataTypeClass.VariableLength))
            return attribute.Space.Dimensions.Aggregate(1UL, (a, d) => a * d) == 0 ? []
                : throw new InvalidDataException($"attribute {attribute.Name} is {attribute.Type.Class}, expected strings");
        return attribute.Read<string[]>().Select(s => s.TrimEnd('\0')).ToArray();
    }

    /// <summary>The conv layers must follow VGG's order and chain their channels: 3 → … .</summary>
    static void Validate(string path, List<ConvWeights> convs)
    {
        if (convs.Count == 0) throw new WeightsException(path, "holds no VGG convolution layers (blockB_convK)");
        int expectBlock = 1, expectIndex = 1, channels = 3;
        for (int n = 0; n < convs.Count; n++)
        {
            var c = convs[n];
            bool sameBlock = c.Block == expectBlock && c.Index == expectIndex;
            bool nextBlock = n > 0 && c.Block == expectBlock + 1 && c.Index == 1 && expectIndex > 2;
            if (!sameBlock && !nextBlock)
                throw new WeightsException(path, $"layers out of VGG order: {c.KerasName} follows {(n == 0 ? "nothing" : convs[n - 1].KerasName)}");
            if (c.InChannels != channels)
                throw new WeightsException(path, $"{c.KerasName}: kernel takes {c.InChannels} channels but the layer before gives {channels}");
            if (c.Index > (c.Block <= 2 ? 2 : 4))
                throw new WeightsException(path, $"{c.KerasName}: VGG block {c.Block} has at most {(c.Block <= 2 ? 2 : 4)} convolutions");
            channels = c.OutChannels;
            expectBlock = c.Block;
            expectIndex = c.Index + 1;
            if (c.Block > 5) throw new WeightsException(path, $"{c.KerasName}: VGG has 5 blocks");
        }
        var perBlock = convs.GroupBy(c => c.Block).Select(g => g.Count()).ToArray();
        for (int b = 0; b < perBlock.Length - 1; b++)
        {
            int want = b < 2 ? 2 : perBlock[2];
            if (perBlock[b] != want)
                throw new WeightsException(path, $"block{b + 1} has {perBlock[b]} convolutions, expected {want} (VGG16: 2,2,3,3,3; VGG19: 2,2,4,4,4)");
        }
    }
}
