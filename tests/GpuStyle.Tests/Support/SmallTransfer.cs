using GpuStyle.Engine.Weights;
using GpuStyle.WeightsTools;

namespace GpuStyle.Tests.Support;

/// <summary>
/// A tiny real transfer for the tests that run gpustyle as another program (under an emulator, in a chroot) and
/// compare it with a run here: fixture VGG16 weights whose channel counts take Winograd (16+ each way) and the
/// 3-channel direct kernel, and two 40×28 PNG pictures at the output's size (no decoder or resampler differences).
/// </summary>
public sealed class SmallTransfer
{
    readonly string _dir;
    public string Weights { get; }
    public string Content { get; }
    public string Style { get; }

    public SmallTransfer(string dir, int weightSeed)
    {
        _dir = dir;
        Weights = Path.Combine(dir, "vgg16-small.h5");
        FixtureWeights.Write(new FixtureSpec("vgg16", KerasLayout.Keras1, 3, [16, 20, 24, 24, 24], Seed: weightSeed), Weights);
        Content = TestImages.Write(Path.Combine(dir, "content.png"), 40, 28, 1);
        Style = TestImages.Write(Path.Combine(dir, "style.png"), 40, 28, 2);
    }

    /// <summary>gpustyle's arguments for one run on <paramref name="device"/>, writing NAME.png and NAME.jsonl.</summary>
    public string[] Args(string name, string device, int iterations) =>
    [
        "transfer", "--content", Content, "--style", Style, "--weights", Weights, "--size", "40", "--iterations", iterations.ToString(),
        "--content-layers", "relu3_1", "--style-layers", "relu1_1,relu2_1,relu3_1", "--device", device, "--quiet",
        "--out", Picture(name), "--log", Log(name),
    ];

    public string Picture(string name) => Path.Combine(_dir, name + ".png");
    public string Log(string name) => Path.Combine(_dir, name + ".jsonl");
}
