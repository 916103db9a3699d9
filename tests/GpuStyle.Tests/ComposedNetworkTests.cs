using GpuStyle.Engine;
using GpuStyle.Engine.Network;
using GpuStyle.Kernels;
using GpuStyle.Tests.Support;

namespace GpuStyle.Tests;

/// <summary>
/// A small VGG-like stack (conv-relu-conv-relu-pool-conv-relu) with content, style and TV losses: the whole
/// gradient to the pixels against finite differences (float64 reference), and the engine on ILGPU against it.
/// </summary>
[Collection(IlgpuCpuCollection.Name)]
public class ComposedNetworkTests(IlgpuCpuFixture fx)
{
    static NetworkSpec SmallVgg(TestData rnd) => new(3, new LayerSpec[]
    {
        Conv("relu1_1", 3, 5, rnd),
        Conv("relu1_2", 5, 4, rnd),
        new PoolSpec("pool1"),
        Conv("relu2_1", 4, 6, rnd),
    });

    static ConvSpec Conv(string name, int cin, int cout, TestData rnd) =>
        new(name, cin, cout, TestData.ToFloat(rnd.ConvWeights(cin, cout)), TestData.ToFloat(rnd.Uniform(cout, 0.2)));

    static readonly LossWeights Weights = new(Content: 1.5f, Style: 20f, TotalVariation: 0.3f);
    const int H = 9, W = 7;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Whole_network_gradient_matches_finite_differences(bool maxPool)
    {
        var rnd = new TestData(maxPool ? 101 : 102);
        var spec = SmallVgg(rnd);
        var net = new ReferenceNetwork(spec, maxPool);
        var (content, style) = Targets(net, rnd);
        var x = rnd.Uniform(3 * H * W);
        var r = net.Evaluate(x, H, W, content, style, Weights);
        Assert.All(r.Content.Concat(r.Style), l => Assert.True(l > 0));
        GradientCheck.Check(v => net.Evaluate(v, H, W, content, style, Weights).Total, x, r.Gradient,
            $"VGG-like stack, {(maxPool ? "max" : "avg")} pooling", seed: 8);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Engine_objective_on_every_backend_matches_the_reference(bool maxPool)
    {
        var rnd = new TestData(maxPool ? 201 : 202);
        var spec = SmallVgg(rnd);
        var reference = new ReferenceNetwork(spec, maxPool);
        var (content, style) = Targets(reference, rnd);
        var xd = rnd.UniformF32(3 * H * W);
        var expected = reference.Evaluate(xd, H, W, content, style, Weights);

        foreach (var b in fx.AllVariants) EvaluateOn(b, spec, maxPool, content, style, xd, expected);
    }

    [Fact]
    public void Engine_objective_with_TF32_convolutions_matches_the_reference_to_TF32_accuracy()
    {
        // The tensor-core convolutions (emulated here) through the whole stack: losses and the gradient to the pixels
        // within 1e-2 — TF32's 11 significant bits a product, compounded over four convolutions forward and back.
        using var tf32 = GpuStyle.Engine.Ilgpu.IlgpuBackend.Open("ilgpu-cpu", conv: GpuStyle.Engine.Ilgpu.ConvKernel.Tf32);
        Assert.Equal(GpuStyle.Engine.Ilgpu.ConvKernel.Tf32, tf32.ConvVariant);
        var rnd = new TestData(203);
        var spec = SmallVgg(rnd);
        var reference = new ReferenceNetwork(spec, maxPool: true);
        var (content, style) = Targets(reference, rnd);
        var xd = rnd.UniformF32(3 * H * W);
        EvaluateOn(tf32, spec, true, content, style, xd, reference.Evaluate(xd, H, W, content, style, Weights), 1e-2);
    }

    void EvaluateOn(IBackend b, NetworkSpec spec, bool maxPool, List<(string Tap, double[] Target)> content,
        List<(string Tap, double[] Gram)> style, double[] xd, ReferenceNetwork.Result expected, double tolerance = 1e-4)
    {
        var shape = new Shape(3, H, W);
        using var network = new FeatureNetwork(b, spec, shape, maxPool ? PoolKind.Max : PoolKind.Avg);
        var made = new List<Tensor>();
        Tensor Make(Shape s, double[] v) { var t = fx.Make(b, s, v); made.Add(t); return t; }
        var contentTargets = content.Select(c => new ContentTarget(c.Tap, Make(network.Shapes[spec.IndexOf(c.Tap)], c.Target))).ToList();
        var styleTargets = style.Select(s =>
        {
            int ch = network.Shapes[spec.IndexOf(s.Tap)].C;
            return new StyleTarget(s.Tap, Make(new Shape(ch, ch, 1), s.Gram));
        }).ToList();
        try
        {
            using var objective = new StyleObjective(b, network, contentTargets, styleTargets, Weights);
            using var x = fx.Make(b, shape, xd);
            using var grad = fx.Poisoned(b, shape);
            objective.Evaluate(x, grad);
            var scalars = fx.Read(objective.Scalars);
            string on = $" on {b.Name}";
            for (int i = 0; i < content.Count; i++) Assertions.Close(expected.Content[i], scalars[i], tolerance, $"content {content[i].Tap}{on}");
            for (int i = 0; i < style.Count; i++) Assertions.Close(expected.Style[i], scalars[content.Count + i], tolerance, $"style {style[i].Tap}{on}");
            Assertions.Close(expected.TotalVariation, scalars[objective.TotalVariationSlot], tolerance, "TV" + on);
            Assertions.Close(expected.Total, scalars[objective.TotalSlot], tolerance, "total" + on);
            Assertions.Close(expected.Gradient, fx.Read(grad), tolerance, "gradient to the pixels" + on);

            // A second evaluation must give the same result: nothing accumulates across calls.
            objective.Evaluate(x, grad);
            Assertions.Close(expected.Gradient, fx.Read(grad), tolerance, "gradient, second evaluation" + on);
        }
        finally
        {
            foreach (var t in made) t.Dispose();
        }
    }

    [Fact]
    public void Unknown_tap_names_the_layers_there_are()
    {
        var spec = SmallVgg(new TestData(5));
        var e = Assert.Throws<UnknownLayerException>(() => spec.IndexOf("relu5_1"));
        Assert.Contains("relu1_1, relu1_2, relu2_1", e.Message);
    }

    /// <summary>Content at relu1_2 from one random image; style at relu1_1 and relu2_1 from another.</summary>
    static (List<(string Tap, double[] Target)> Content, List<(string Tap, double[] Gram)> Style) Targets(ReferenceNetwork net, TestData rnd)
    {
        var photo = rnd.UniformF32(3 * H * W);
        var painting = rnd.UniformF32(3 * H * W);
        var content = new List<(string Tap, double[] Target)> { ("relu1_2", net.Tap(photo, H, W, "relu1_2")) };
        var outs = net.Forward(painting, H, W);
        var style = new List<(string Tap, double[] Gram)>();
        foreach (var (tap, l) in new[] { ("relu1_1", 0), ("relu2_1", 3) })
        {
            var (f, c, h, w) = outs[l];
            style.Add((tap, Gram.Reference.Forward(f, c, h * w).Select(v => (double)(float)v).ToArray()));
        }
        return (content, style);
    }
}
