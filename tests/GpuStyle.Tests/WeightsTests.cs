using System.Text.Json;
using GpuStyle.Engine;
using GpuStyle.Engine.Network;
using GpuStyle.Engine.Weights;
using GpuStyle.Tests.Support;
using GpuStyle.WeightsTools;
using PureHDF;

namespace GpuStyle.Tests;

/// <summary>Reading VGG weights in every Keras layout, the network they make, and every refusal.</summary>
[Collection(IlgpuCpuCollection.Name)]
public sealed class WeightsTests(IlgpuCpuFixture fx) : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("gpustyle-weights-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static readonly int[] SmallChannels = [4, 6, 8, 10, 10];

    public static TheoryData<KerasLayout, string, int, bool, bool> Layouts() => new()
    {
        { KerasLayout.Keras1, "vgg16", 5, true, false },
        { KerasLayout.Keras1, "vgg19", 3, false, false },
        { KerasLayout.Keras2, "vgg16", 5, false, false },
        { KerasLayout.Keras2, "vgg19", 5, true, true },
        { KerasLayout.Keras3, "vgg16", 2, false, false },
        { KerasLayout.Keras3, "vgg19", 5, true, false },
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Each_layout_loads_and_its_taps_equal_the_float64_reference(KerasLayout layout, string arch, int blocks,
        bool top, bool modelWeights)
    {
        var spec = new FixtureSpec(arch, layout, blocks, SmallChannels, Seed: blocks * 10 + (int)layout, top, modelWeights);
        string path = Path.Combine(_dir, $"{arch}-{layout}.h5");
        FixtureWeights.Write(spec, path);

        var weights = KerasWeightsReader.Read(path);
        Assert.Equal(layout, weights.Layout);
        var raw = FixtureWeights.Layers(spec);
        Assert.Equal(raw.Select(r => r.Name), weights.Convs.Select(c => c.KerasName));
        if (blocks >= 3) Assert.Equal(arch, weights.Architecture);

        // 17×19 survives four 2×2 poolings (→ 1×1), so block 5 has a map to work on.
        const int h = 17, w = 19;
        var image = new TestData(3).UniformF32(3 * h * w, 50);
        var expected = KerasReference.Taps(raw, image, h, w);
        var net = Vgg.BuildSpec(weights);
        using var x = fx.Make(new Shape(3, h, w), image);
        using var network = new FeatureNetwork(fx.Backend, net, x.Shape, PoolKind.Max);
        network.Forward(x);
        foreach (var (tap, values) in expected)
            Assertions.Close(values, fx.Read(network.Activation(net.IndexOf(tap))), 1e-4, $"{arch} {layout} {tap}");
    }

    [Fact]
    public void A_file_written_by_h5py_in_the_Keras1_layout_loads_and_matches_numpy()
    {
        string path = Fixtures.Path("vgg19_blocks1-3_small_h5py.h5");
        var weights = KerasWeightsReader.Read(path);
        Assert.Equal(KerasLayout.Keras1, weights.Layout);
        Assert.Equal("vgg19", weights.Architecture);
        Assert.Equal(8, weights.Convs.Count);

        using var json = JsonDocument.Parse(File.ReadAllText(Fixtures.Path("vgg19_blocks1-3_small_h5py.expected.json")));
        int h = json.RootElement.GetProperty("height").GetInt32(), w = json.RootElement.GetProperty("width").GetInt32();
        var spec = Vgg.BuildSpec(weights);
        using var x = fx.Make(new Shape(3, h, w), FixedImage(h, w));
        using var network = new FeatureNetwork(fx.Backend, spec, x.Shape, PoolKind.Max);
        network.Forward(x);
        int checkedTaps = 0;
        foreach (var tap in json.RootElement.GetProperty("taps").EnumerateObject())
        {
            var expected = tap.Value.EnumerateArray().Select(v => v.GetDouble()).ToArray();
            Assertions.Close(expected, fx.Read(network.Activation(spec.IndexOf(tap.Name))), 1e-4, $"h5py fixture {tap.Name} vs numpy");
            checkedTaps++;
        }
        Assert.Equal(8, checkedTaps);
    }

    [SharedFileFact(SharedData.RealWeights)]
    public void The_real_partial_VGG19_loads_and_its_relu1_1_matches_the_reference_and_numpy()
    {
        string path = SharedData.File(SharedData.RealWeights)!;
        var weights = KerasWeightsReader.Read(path);
        Assert.Equal(KerasLayout.Keras1, weights.Layout);
        Assert.Equal(["relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu3_3", "relu3_4"],
            weights.Convs.Select(c => c.TapName));
        Assert.Equal([64, 64, 128, 128, 256, 256, 256, 256], weights.Convs.Select(c => c.OutChannels));

        using var json = JsonDocument.Parse(File.ReadAllText(Fixtures.Path("vgg19_real_relu1_1.expected.json")));
        int h = json.RootElement.GetProperty("height").GetInt32(), w = json.RootElement.GetProperty("width").GetInt32();
        var image = FixedImage(h, w);
        var spec = Vgg.BuildSpec(weights);
        using var x = fx.Make(new Shape(3, h, w), image);
        using var network = new FeatureNetwork(fx.Backend, spec, x.Shape, PoolKind.Max, depth: 1);
        network.Forward(x);
        var actual = fx.Read(network.Activation(0));
        var reference = new ReferenceNetwork(spec with { Layers = spec.Layers.Take(1).ToList() }, maxPool: true).Tap(image, h, w, "relu1_1");
        Assertions.Close(reference, actual, 1e-4, "real relu1_1 vs float64 reference");
        var numpy = json.RootElement.GetProperty("relu1_1").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        Assertions.Close(numpy, actual, 1e-4, "real relu1_1 vs numpy (independent of the engine)");
        Assert.Contains(actual, v => v > 0);
    }

    /// <summary>The formula make_h5py_fixture.py uses: 100·sin(0.3i + 0.7j + 1.1c), rounded to float32.</summary>
    static double[] FixedImage(int h, int w)
    {
        var x = new double[3 * h * w];
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++)
                    x[(c * h + i) * w + j] = (float)(100.0 * Math.Sin(0.3 * i + 0.7 * j + 1.1 * c));
        return x;
    }

    // ---- refusals ---------------------------------------------------------------------------------------

    [Fact]
    public void A_missing_file_is_refused()
    {
        var e = Assert.Throws<WeightsException>(() => KerasWeightsReader.Read(Path.Combine(_dir, "nope.h5")));
        Assert.Contains("no such file", e.Message);
    }

    [Fact]
    public void A_file_that_is_not_HDF5_is_refused()
    {
        string path = Path.Combine(_dir, "photo.h5");
        File.WriteAllText(path, "this is a JPEG, honest\n" + new string('x', 2000));
        var e = Assert.Throws<WeightsException>(() => KerasWeightsReader.Read(path));
        Assert.Contains("not an HDF5 file", e.Message);
        Assert.Contains(path, e.Message);
        File.WriteAllBytes(path, []);
        Assert.Contains("empty file", Assert.Throws<WeightsException>(() => KerasWeightsReader.Read(path)).Message);
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.9)]
    [InlineData(0.999)]
    public void A_truncated_file_is_refused(double keep)
    {
        foreach (var source in new[] { Fixtures.Path("vgg19_blocks1-3_small_h5py.h5"), WriteFixture(KerasLayout.Keras1) })
        {
            var bytes = File.ReadAllBytes(source);
            string path = Path.Combine(_dir, "cut.h5");
            File.WriteAllBytes(path, bytes[..(int)(bytes.Length * keep)]);
            var e = Assert.Throws<WeightsException>(() => KerasWeightsReader.Read(path));
            Assert.Contains("truncated", e.Message);
        }
    }

    [Fact]
    public void A_kernel_of_the_wrong_shape_is_refused()
    {
        string path = WriteKeras1(("block1_conv1", new float[5 * 5 * 3 * 4], [5, 5, 3, 4], new float[4]));
        Assert.Contains("block1_conv1: kernel has shape (5,5,3,4)", Assert.Throws<WeightsException>(() => KerasWeightsReader.Read(path)).Message);

        path = WriteKeras1(("block1_conv1", new float[9 * 3 * 4], [3, 3, 3, 4], new float[5]));
        Assert.Contains("bias has shape (5)", Assert.Throws<WeightsException>(() => KerasWeightsReader.Read(path)).Message);

        path = WriteKeras1(("block1_conv1", new float[9 * 3 * 4], [3, 3, 3, 4], new float[4]),
            ("block1_conv2", new float[9 * 5 * 4], [3, 3, 5, 4], new float[4]));
        Assert.Contains("takes 5 channels but the layer before gives 4", Assert.Throws<WeightsException>(() => KerasWeightsReader.Read(path)).Message);
    }

    [Fact]
    public void A_kernel_of_the_wrong_type_is_refused()
    {
        string path = Path.Combine(_dir, "f64.h5");
        var kernel = new double[9 * 3 * 4];
        new H5File
        {
            Attributes = new() { ["layer_names"] = new[] { "block1_conv1" } },
            ["block1_conv1"] = new H5Group
            {
                Attributes = new() { ["weight_names"] = new[] { "k", "b" } },
                ["k"] = new H5Dataset(kernel, fileDims: [3, 3, 3, 4]),
                ["b"] = new H5Dataset(new float[4], fileDims: [4]),
            },
        }.Write(path);
        var e = Assert.Throws<WeightsException>(() => KerasWeightsReader.Read(path));
        Assert.Contains("expected float32", e.Message);
    }

    [Fact]
    public void Layers_out_of_VGG_order_are_refused()
    {
        string path = WriteKeras1(("block1_conv2", new float[9 * 3 * 4], [3, 3, 3, 4], new float[4]),
            ("block1_conv1", new float[9 * 4 * 4], [3, 3, 4, 4], new float[4]));
        var e = Assert.Throws<WeightsException>(() => KerasWeightsReader.Read(path));
        Assert.Contains("out of VGG order", e.Message);

        path = WriteKeras1(("block1_conv1", new float[9 * 3 * 4], [3, 3, 3, 4], new float[4]),
            ("block2_conv1", new float[9 * 4 * 4], [3, 3, 4, 4], new float[4]));
        Assert.Contains("out of VGG order: block2_conv1 follows block1_conv1", Assert.Throws<WeightsException>(() => KerasWeightsReader.Read(path)).Message);
    }

    [Fact]
    public void A_tap_the_file_does_not_have_is_refused_with_the_taps_it_has()
    {
        var weights = KerasWeightsReader.Read(Fixtures.Path("vgg19_blocks1-3_small_h5py.h5"));
        var spec = Vgg.BuildSpec(weights);
        Assert.Equal(spec.IndexOf("relu3_1"), spec.IndexOf("block3_conv1"));
        var e = Assert.Throws<UnknownLayerException>(() => spec.IndexOf("relu4_2"));
        Assert.Contains("relu1_1, relu1_2, relu2_1, relu2_2, relu3_1, relu3_2, relu3_3, relu3_4", e.Message);
    }

    [Fact]
    public void A_HDF5_file_that_is_not_Keras_weights_is_refused()
    {
        string path = Path.Combine(_dir, "other.h5");
        new H5File { ["data"] = new float[] { 1, 2, 3 } }.Write(path);
        Assert.Contains("not a Keras weights file", Assert.Throws<WeightsException>(() => KerasWeightsReader.Read(path)).Message);
    }

    string WriteFixture(KerasLayout layout)
    {
        string path = Path.Combine(_dir, $"fixture-{layout}.h5");
        FixtureWeights.Write(new FixtureSpec("vgg16", layout, 2, SmallChannels, 1), path);
        return path;
    }

    string WriteKeras1(params (string Name, float[] Kernel, ulong[] Dims, float[] Bias)[] layers)
    {
        string path = Path.Combine(_dir, $"bad-{Guid.NewGuid():N}.h5");
        var file = new H5File { Attributes = new() { ["layer_names"] = layers.Select(l => l.Name).ToArray() } };
        foreach (var l in layers)
            file[l.Name] = new H5Group
            {
                Attributes = new() { ["weight_names"] = new[] { l.Name + "_W_1:0", l.Name + "_b_1:0" } },
                [l.Name + "_W_1:0"] = new H5Dataset(l.Kernel, fileDims: l.Dims),
                [l.Name + "_b_1:0"] = new H5Dataset(l.Bias, fileDims: [(ulong)l.Bias.Length]),
            };
        file.Write(path);
        return path;
    }
}

/// <summary>
/// A float64 VGG forward that reads kernels in Keras's own (3,3,Cin,Cout) order — independent of the reader's
/// conversion to the engine's layout, so a transposed conversion cannot agree with it by accident.
/// </summary>
static class KerasReference
{
    public static List<(string Tap, double[] Values)> Taps(List<KerasConv> convs, double[] image, int h, int w)
    {
        var taps = new List<(string, double[])>();
        var x = image;
        int c = 3, block = 1;
        foreach (var conv in convs)
        {
            int b = int.Parse(conv.Name[5..conv.Name.IndexOf('_')]);
            if (b != block)
            {
                x = GpuStyle.Kernels.Pooling.Reference.Forward(true, x, c, h, w);
                h /= 2; w /= 2; block = b;
            }
            var y = new double[conv.OutChannels * h * w];
            for (int o = 0; o < conv.OutChannels; o++)
                for (int r = 0; r < h; r++)
                    for (int s = 0; s < w; s++)
                    {
                        double z = conv.Bias[o];
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++)
                            {
                                int rr = r + ky - 1, ss = s + kx - 1;
                                if (rr < 0 || rr >= h || ss < 0 || ss >= w) continue;
                                for (int i = 0; i < conv.InChannels; i++)
                                    z += conv.Kernel[((ky * 3 + kx) * conv.InChannels + i) * conv.OutChannels + o] * x[(i * h + rr) * w + ss];
                            }
                        y[(o * h + r) * w + s] = Math.Max(z, 0);
                    }
            x = y;
            c = conv.OutChannels;
            taps.Add(($"relu{conv.Name[5..].Replace("_conv", "_")}", y));
        }
        return taps;
    }
}
