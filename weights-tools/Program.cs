using System.CommandLine;
using GpuStyle.Engine.Weights;

namespace GpuStyle.WeightsTools;

/// <summary>
/// weights-tools write  --arch vgg16 --layout keras1 --blocks 3 --channels 4,8,16,32,32 --seed 1 [--top] --out F.h5
/// weights-tools inspect F.h5
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("Writes VGG fixture weight files in each Keras layout, and inspects weight files.");

        var arch = new Option<string>("--arch") { Description = "vgg16 or vgg19", DefaultValueFactory = _ => "vgg16" };
        var layout = new Option<KerasLayout>("--layout") { Description = "Keras1 (the official files), Keras2 or Keras3", DefaultValueFactory = _ => KerasLayout.Keras1 };
        var blocks = new Option<int>("--blocks") { Description = "how many of the 5 blocks", DefaultValueFactory = _ => 5 };
        var channels = new Option<string>("--channels") { Description = "output channels of blocks 1–5", DefaultValueFactory = _ => "64,128,256,512,512" };
        var seed = new Option<int>("--seed") { Description = "random seed", DefaultValueFactory = _ => 1 };
        var top = new Option<bool>("--top") { Description = "add a small classifier on top (readers ignore it)" };
        var modelWeights = new Option<bool>("--model-weights") { Description = "Keras 2: under /model_weights, as model.save() writes" };
        var outFile = new Option<string>("--out") { Description = "the file to write", Required = true };
        var write = new Command("write", "Write random He-initialised VGG weights.") { arch, layout, blocks, channels, seed, top, modelWeights, outFile };
        write.SetAction(r =>
        {
            var spec = new FixtureSpec(r.GetValue(arch)!, r.GetValue(layout), r.GetValue(blocks),
                r.GetValue(channels)!.Split(',').Select(int.Parse).ToArray(), r.GetValue(seed), r.GetValue(top), r.GetValue(modelWeights));
            FixtureWeights.Write(spec, r.GetValue(outFile)!);
            Console.WriteLine($"wrote {r.GetValue(outFile)}");
            return 0;
        });
        root.Subcommands.Add(write);

        var file = new Argument<string>("file") { Description = "a Keras weights file" };
        var inspect = new Command("inspect", "Describe a weights file.") { file };
        inspect.SetAction(r =>
        {
            try
            {
                Console.Write(WeightsReport.Describe(r.GetValue(file)!).ToText());
                return 0;
            }
            catch (WeightsException e)
            {
                Console.Error.WriteLine($"weights-tools: {e.Message}");
                return 2;
            }
        });
        root.Subcommands.Add(inspect);
        return root.Parse(args).Invoke();
    }
}
