using System.CommandLine;
using GpuStyle.Engine.Weights;

namespace GpuStyle.Cli.Commands;

/// <summary>gpustyle weights fetch vgg16|vgg19 ; gpustyle weights inspect FILE</summary>
public static class WeightsCommand
{
    public static Command Build()
    {
        var command = new Command("weights", "Fetch the official VGG weights, or describe a weights file.");

        var name = new Argument<string>("network") { Description = "vgg16 or vgg19" };
        name.AcceptOnlyFromAmong(OfficialWeights.All.Select(o => o.Name).ToArray());
        var fetch = new Command("fetch", "Download an official Keras VGG file into the cache (checked by size and md5).") { name };
        fetch.SetAction(async (r, cancel) =>
        {
            var official = OfficialWeights.ByName(r.GetValue(name)!)!;
            var store = WeightsStore.Default();
            bool had = store.IsCached(official);
            string path = await store.EnsureAsync(official, new DownloadProgressLine(official.Name), cancel);
            Console.WriteLine(had ? $"already cached: {path}" : $"fetched: {path}");
            return 0;
        });
        command.Subcommands.Add(fetch);

        var file = new Argument<string>("file") { Description = "a Keras .h5 weights file" };
        var inspect = new Command("inspect", "Describe a weights file: layout, layers with shapes and types, md5, and whether it is an official file.") { file };
        inspect.SetAction(r =>
        {
            Console.Write(WeightsReport.Describe(r.GetValue(file)!).ToText());
            return 0;
        });
        command.Subcommands.Add(inspect);
        return command;
    }
}

/// <summary>A download progress line on stderr: redrawn in place on a terminal, every 10% otherwise.</summary>
public sealed class DownloadProgressLine(string what) : IProgress<Engine.Weights.DownloadProgress>
{
    int _lastTenth = -1;
    long _lastDraw;

    public void Report(Engine.Weights.DownloadProgress p)
    {
        double mb = p.Received / 1e6;
        if (p.Total is not { } total || total <= 0)
        {
            if (!Console.IsErrorRedirected) Console.Error.Write($"\rdownloading {what}: {mb:0.0} MB");
            return;
        }
        int tenth = (int)(10 * p.Received / total);
        if (Console.IsErrorRedirected)
        {
            if (tenth == _lastTenth) return;
            _lastTenth = tenth;
            Console.Error.WriteLine($"downloading {what}: {mb:0.0} / {total / 1e6:0.0} MB ({100 * p.Received / total}%)");
            return;
        }
        long now = Environment.TickCount64;
        if (now - _lastDraw < 100 && p.Received < total) return;
        _lastDraw = now;
        Console.Error.Write($"\rdownloading {what}: {mb:0.0} / {total / 1e6:0.0} MB ({100 * p.Received / total}%)   ");
        if (p.Received >= total) Console.Error.WriteLine();
    }
}
