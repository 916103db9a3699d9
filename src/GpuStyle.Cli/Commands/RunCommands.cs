using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using GpuStyle.Engine;
using GpuStyle.Engine.Ilgpu;
using GpuStyle.Engine.Network;
using GpuStyle.Engine.Pipelines;
using GpuStyle.Engine.Weights;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace GpuStyle.Cli.Commands;

/// <summary>Defaults chosen by looking at results (README, "Choosing the weights").</summary>
public static class Defaults
{
    public const float ContentWeight = 1f;
    public const float StyleWeight = 1e-3f;
    public const float TvWeight = 1f;
    public const int Size = 512;
    public const int Iterations = 500;
    public const float LearningRate = 4f;
    public const string ContentLayers = "relu4_2";
    public const string StyleLayers = "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1";
    public const string LayerGrid = "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1";
}

/// <summary>The options every optimisation command shares (DESIGN.md §4).</summary>
sealed class RunOptions
{
    public readonly Option<string> Out = new("--out") { Description = "the picture to write: PNG, or JPEG, BMP, GIF, WebP, TIFF by its extension", Required = true };
    public readonly Option<string> Weights = new("--weights") { Description = "vgg16, vgg19 (fetched into the cache on first use) or a Keras .h5 file", DefaultValueFactory = _ => "vgg16" };
    public readonly Option<int> Size = new("--size") { Description = "longest side of the output, in pixels", DefaultValueFactory = _ => Defaults.Size };
    public readonly Option<int> Iterations = new("--iterations") { Description = "optimiser steps", DefaultValueFactory = _ => Defaults.Iterations };
    public readonly Option<string> Optimizer = new("--optimizer") { Description = "lbfgs or adam", DefaultValueFactory = _ => "lbfgs" };
    public readonly Option<float> LearningRate = new("--learning-rate") { Description = "Adam's step size, in pixel units", DefaultValueFactory = _ => Defaults.LearningRate };
    public readonly Option<int> History = new("--history") { Description = "L-BFGS history length", DefaultValueFactory = _ => 100 };
    public readonly Option<int> Seed = new("--seed") { Description = "random seed of the starting noise", DefaultValueFactory = _ => 1 };
    public readonly Option<float> ContentWeight = new("--content-weight") { Description = "weight of the content loss", DefaultValueFactory = _ => Defaults.ContentWeight };
    public readonly Option<float> StyleWeight = new("--style-weight") { Description = "weight of the style loss", DefaultValueFactory = _ => Defaults.StyleWeight };
    public readonly Option<float> TvWeight = new("--tv-weight") { Description = "weight of the total-variation (smoothness) loss", DefaultValueFactory = _ => Defaults.TvWeight };
    public readonly Option<string?> StyleBlend = new("--style-blend") { Description = "blend weights of several paintings, e.g. 0.7,0.3 (default: equal)" };
    public readonly Option<float> StyleScale = new("--style-scale") { Description = "size of the paintings relative to the output", DefaultValueFactory = _ => 1f };
    public readonly Option<string> ContentLayers = new("--content-layers") { Description = "layers whose features the content matches", DefaultValueFactory = _ => Defaults.ContentLayers };
    public readonly Option<string> StyleLayers = new("--style-layers") { Description = "layers whose Gram matrices the style matches", DefaultValueFactory = _ => Defaults.StyleLayers };
    public readonly Option<string> Pooling = new("--pooling") { Description = "max or avg", DefaultValueFactory = _ => "max" };
    public readonly Option<string> Init = new("--init") { Description = "random, content, style or an image file", DefaultValueFactory = _ => "random" };
    public readonly Option<string> Device = DeviceOption.Create();
    public readonly Option<bool> Tf32 = DeviceOption.CreateTf32();
    public readonly Option<string?> Conv = DeviceOption.CreateConv();
    public readonly Option<int> SaveEvery = new("--save-every") { Description = "also write OUT-iterN.EXT every N iterations (0: never)", DefaultValueFactory = _ => 0 };
    public readonly Option<string?> Log = new("--log") { Description = "write a JSON-lines log of the losses to this file" };
    public readonly Option<bool> Quiet = new("--quiet") { Description = "no progress output" };

    public RunOptions()
    {
        Optimizer.AcceptOnlyFromAmong("lbfgs", "adam");
        Pooling.AcceptOnlyFromAmong("max", "avg");
    }

    public void AddTo(Command c, bool content, bool style, bool contentLayers = true)
    {
        c.Options.Add(Out);
        c.Options.Add(Weights); c.Options.Add(Size); c.Options.Add(Iterations); c.Options.Add(Optimizer);
        c.Options.Add(LearningRate); c.Options.Add(History); c.Options.Add(Seed);
        if (content) c.Options.Add(ContentWeight);
        if (style) { c.Options.Add(StyleWeight); c.Options.Add(StyleBlend); c.Options.Add(StyleScale); }
        c.Options.Add(TvWeight);
        if (content && contentLayers) c.Options.Add(ContentLayers);
        if (style) c.Options.Add(StyleLayers);
        c.Options.Add(Pooling); c.Options.Add(Init); c.Options.Add(Device); c.Options.Add(Tf32); c.Options.Add(Conv); c.Options.Add(SaveEvery); c.Options.Add(Log); c.Options.Add(Quiet);
    }
}

public static class RunCommands
{
    public static IEnumerable<Command> Build()
    {
        var o = new RunOptions();
        var contentFile = new Option<string>("--content") { Description = "the photo", Required = true };
        var styleFiles = new Option<string>("--style") { Description = "the painting(s), comma-separated", Required = true };
        var imageFile = new Option<string>("--image") { Description = "the photo", Required = true };

        var transfer = new Command("transfer", "Paint a photo in the style of one or more paintings.") { contentFile, styleFiles };
        o.AddTo(transfer, content: true, style: true);
        var preserveColors = new Option<bool>("--preserve-colors") { Description = "keep the photo's colours: the result's luminance with the photo's chroma (YIQ)" };
        transfer.Options.Add(preserveColors);
        transfer.SetAction((r, cancel) => Task.FromResult(Run(r, o, RunMode.Transfer, r.GetValue(contentFile), Paintings(r.GetValue(styleFiles)),
            r.GetValue(preserveColors))));

        var content = new Command("content", "Reconstruct a photo's content from noise (Gatys et al.'s first experiment).") { contentFile };
        o.AddTo(content, content: true, style: false);
        content.SetAction((r, cancel) => Task.FromResult(Run(r, o, RunMode.Content, r.GetValue(contentFile), [])));

        var texture = new Command("texture", "Synthesise a painting's style from noise (their second).") { styleFiles };
        o.AddTo(texture, content: false, style: true);
        texture.SetAction((r, cancel) => Task.FromResult(Run(r, o, RunMode.Texture, null, Paintings(r.GetValue(styleFiles)))));

        var layers = new Command("layers", "What each layer sees: one reconstruction of the photo per layer, in a labelled grid.") { imageFile };
        o.AddTo(layers, content: true, style: false, contentLayers: false);
        var gridLayers = new Option<string>("--grid-layers") { Description = "the layers to reconstruct from", DefaultValueFactory = _ => Defaults.LayerGrid };
        layers.Options.Add(gridLayers);
        layers.SetAction((r, cancel) => Task.FromResult(Layers(r, o, r.GetValue(imageFile)!, Split(r.GetValue(gridLayers)))));
        return [transfer, content, texture, layers];
    }

    /// <summary>--style's paintings, comma-separated — where a run of the parts, rejoined, names a file, that file: a
    /// painting whose own name has a comma ("Monet, Water Lilies.jpg") was split into two files that did not exist.</summary>
    static List<string> Paintings(string? s)
    {
        var parts = (s ?? "").Split(',');
        var paintings = new List<string>();
        for (int i = 0; i < parts.Length; i++)
        {
            int end = i;   // the shortest run of parts from i that names a file
            while (end < parts.Length && !File.Exists(string.Join(',', parts[i..(end + 1)]).Trim())) end++;
            if (end < parts.Length)
            {
                paintings.Add(string.Join(',', parts[i..(end + 1)]).Trim());
                i = end;
            }
            else if (parts[i].Trim() is { Length: > 0 } part) paintings.Add(part);   // no such file: said when it is loaded
        }
        return paintings;
    }

    static List<string> Split(string? s) => (s ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();

    /// <summary>Everything a run needs, checked and loaded, before any device work.</summary>
    sealed record Prepared(NetworkSpec Spec, RunSettings Settings, Picture? Content, List<(Picture, float)> Styles,
        Picture Start, string WeightsPath, bool PreserveColors = false)
    {
        /// <summary>What is written of the optimised image: itself, or with the photo's colours (--preserve-colors).</summary>
        public Picture Finish(Picture x) => PreserveColors && Content is not null ? x.WithColorsOf(Content) : x;
    }

    static int Run(ParseResult r, RunOptions o, RunMode mode, string? contentPath, List<string> stylePaths, bool preserveColors = false)
    {
        string output = r.GetValue(o.Out)!;
        var progress = new RunProgress(r.GetValue(o.Quiet));
        // The device first: one that is not there (or refuses the options) is said before the weights are downloaded.
        var (backend, prepared) = OpenAndPrepare(r, o, () => Prepare(r, o, mode, contentPath, stylePaths, output, r.GetValue(o.ContentLayers)!, progress));
        using var _ = backend;
        var p = prepared with { PreserveColors = preserveColors };
        CheckMemory(backend, p);
        // What runs, said before the seconds (at 1024 px on a CPU, ≈ 7–15) that the targets and the first evaluation
        // take in silence.
        string title = mode.ToString().ToLowerInvariant();
        progress.Message($"{title}: {p.Start.Width}×{p.Start.Height}, {p.Settings.Iterations} iterations of "
            + $"{(p.Settings.Optimizer == OptimizerKind.Adam ? "Adam" : "L-BFGS")} on {backend.Name}; computing the targets");
        var result = Optimise(r, o, backend, p, output, progress, title, r.GetValue(o.Log));
        ImageFiles.SaveAtomically(ImageFiles.FromPicture(result.Picture), output);
        progress.Message($"wrote {output} ({result.Picture.Width}×{result.Picture.Height}, {result.Iterations} iterations, {result.Seconds:0.0} s on {backend.Name}; {StartUp(backend)})");
        return result.Cancelled ? 130 : 0;
    }

    /// <summary>The whole command's seconds so far, and on an ILGPU device what of them went to opening it, to compiling
    /// and loading its kernels (the kernel cache spares most of that after the first run) and to tuning (the tuning
    /// cache spares that, and says how many shapes it gave): the start that a short run on a GPU mostly is.</summary>
    static string StartUp(IBackend backend)
    {
        double total = (DateTime.Now - Process.GetCurrentProcess().StartTime).TotalSeconds;
        if (backend is not IlgpuBackend { Kernels: var k } ilgpu) return $"{total:0.0} s since the command started";
        string cache = k.Cache is not { } c ? "" : c.Note is not null ? $"; the kernel cache off: {c.Note}" : $", {c.Hits} from the kernel cache";
        string tunings = ilgpu.TuningCache is not { } t ? "" : t.Note is not null ? $"; the tuning cache off: {t.Note}" : (t.Hits, t.Recorded) switch
        {
            (0, 0) => "",
            (_, 0) => $" ({t.Hits} shapes' choices from the tuning cache)",
            (0, _) => $" ({t.Recorded} shapes' choices kept in the tuning cache)",
            _ => $" ({t.Hits} shapes' choices from the tuning cache, {t.Recorded} more kept in it)",
        };
        return $"{total:0.0} s since the command started, of it: opening the device {ilgpu.OpenSeconds:0.0} s, compiling and loading "
            + $"{k.Loaded} kernels {k.Seconds:0.0} s{cache}, tuning {ilgpu.TuningSeconds:0.0} s{tunings}";
    }

    static Prepared Prepare(ParseResult r, RunOptions o, RunMode mode, string? contentPath, List<string> stylePaths,
        string output, string contentLayers, RunProgress progress)
    {
        int size = r.GetValue(o.Size), iterations = r.GetValue(o.Iterations), history = r.GetValue(o.History);
        float styleScale = mode == RunMode.Content ? 1f : r.GetValue(o.StyleScale);   // content and layers have no paintings
        if (size <= 0) throw new InputException($"--size must be positive, got {size}");
        if (iterations < 0) throw new InputException($"--iterations must be 0 or more, got {iterations}");
        if (history < 1) throw new InputException($"--history must be at least 1, got {history}");
        if (!(styleScale > 0) || float.IsInfinity(styleScale)) throw new InputException($"--style-scale must be positive, got {styleScale}");
        // A negative weight turns minimising into maximising that loss (the picture runs off to noise), and NaN or an
        // infinity makes every loss NaN: refused, where they used to run to a meaningless picture.
        foreach (var (option, value) in new[] { (o.ContentWeight, r.GetValue(o.ContentWeight)), (o.StyleWeight, r.GetValue(o.StyleWeight)), (o.TvWeight, r.GetValue(o.TvWeight)) })
            if (!(value >= 0) || float.IsInfinity(value))
                throw new InputException($"{option.Name} must be a number 0 or more, got {value.ToString(CultureInfo.InvariantCulture)}");
        // All the weights this run uses at 0: the loss is 0 everywhere, and the optimiser "converged" on the start.
        var used = new[] { (o.ContentWeight, mode != RunMode.Texture), (o.StyleWeight, mode != RunMode.Content), (o.TvWeight, true) }
            .Where(u => u.Item2).Select(u => u.Item1).ToList();
        if (used.All(option => r.GetValue(option) == 0))
            throw new InputException($"{string.Join(", ", used.Select(option => option.Name))} are all 0: there is nothing to optimise");
        float learningRate = r.GetValue(o.LearningRate);
        if (!(learningRate > 0) || float.IsInfinity(learningRate))
            throw new InputException($"--learning-rate must be positive, got {learningRate.ToString(CultureInfo.InvariantCulture)}");
        if (r.GetValue(o.SaveEvery) < 0) throw new InputException("--save-every must be 0 or more");
        if (mode != RunMode.Content && stylePaths.Count == 0) throw new InputException("--style names no painting");
        var blend = Blend(r.GetValue(o.StyleBlend), stylePaths.Count);
        string init = r.GetValue(o.Init)!;
        var inputs = new List<string>();
        if (contentPath is not null) inputs.Add(contentPath);
        inputs.AddRange(stylePaths);
        if (init is not ("random" or "content" or "style")) inputs.Add(init);
        string weights = r.GetValue(o.Weights)!;
        if (OfficialWeights.ByName(weights) is null) inputs.Add(weights);
        string? log = r.GetValue(o.Log);
        ImageFiles.CheckOutput(output, inputs);
        ImageFiles.EncoderFor(output);
        if (log is not null) ImageFiles.CheckOutput(log, inputs.Append(output));
        ImageFiles.CheckSnapshots(output, r.GetValue(o.SaveEvery), iterations, inputs, log);

        Picture? content = null;
        int outW, outH;
        if (contentPath is not null)
        {
            using var image = ImageFiles.Load(contentPath, "content");
            ImageFiles.ResizeLongestSide(image, size, $"--size {size}", "picture");
            content = ImageFiles.ToPicture(image);
            (outW, outH) = (content.Width, content.Height);
        }
        else (outW, outH) = (0, 0);
        var styles = new List<(Picture, float)>();
        // What sets the paintings' size, for the messages that refuse one.
        string paintingSize = styleScale == 1f ? $"--size {size}" : $"--size {size} with --style-scale {styleScale.ToString(CultureInfo.InvariantCulture)}";
        for (int i = 0; i < stylePaths.Count; i++)
        {
            using var image = ImageFiles.Load(stylePaths[i], "style");
            ImageFiles.ResizeLongestSide(image, Math.Max(1, Math.Round(size * (double)styleScale)), paintingSize, "painting");
            styles.Add((ImageFiles.ToPicture(image), blend[i]));
            if (outW == 0)   // texture: the output has the first painting's proportions, its longest side --size
                (outW, outH) = ImageFiles.CheckedSize(image.Width / (double)styleScale, image.Height / (double)styleScale, paintingSize, "picture");
        }

        var start = init switch
        {
            "random" => Picture.Noise(outH, outW, r.GetValue(o.Seed)),
            "content" => content ?? throw new InputException("--init content needs a content image"),
            "style" => ResizedTo(stylePaths.FirstOrDefault() ?? throw new InputException("--init style needs a style image"), outW, outH, "style"),
            _ => ResizedTo(init, outW, outH, "--init"),
        };

        string weightsPath = ResolveWeights(weights, progress);
        var spec = Vgg.BuildSpec(KerasWeightsReader.Read(weightsPath));
        var settings = new RunSettings
        {
            Mode = mode,
            ContentLayers = Split(contentLayers),
            StyleLayers = Split(r.GetValue(o.StyleLayers)),
            Weights = new LossWeights(r.GetValue(o.ContentWeight), r.GetValue(o.StyleWeight), r.GetValue(o.TvWeight)),
            Pooling = r.GetValue(o.Pooling) == "avg" ? PoolKind.Avg : PoolKind.Max,
            Optimizer = r.GetValue(o.Optimizer) == "adam" ? OptimizerKind.Adam : OptimizerKind.Lbfgs,
            LearningRate = learningRate,
            History = history,
            Iterations = iterations,
        };
        foreach (var layer in (mode == RunMode.Texture ? [] : settings.ContentLayers).Concat(mode == RunMode.Content ? [] : settings.StyleLayers))
            if (!Vgg.IsTapName(layer)) throw new InputException($"unknown layer '{layer}': layers are named reluB_K or blockB_convK");
            else spec.IndexOf(layer);   // throws UnknownLayerException listing the layers the weights have
        if (mode != RunMode.Texture) RefuseNamedTwice("--content-layers", settings.ContentLayers);
        if (mode != RunMode.Content) RefuseNamedTwice("--style-layers", settings.StyleLayers);
        if (mode != RunMode.Texture && settings.ContentLayers.Count == 0) throw new InputException("--content-layers names no layer");
        if (mode != RunMode.Content && settings.StyleLayers.Count == 0) throw new InputException("--style-layers names no layer");
        int smallest = Math.Min(outW, outH);
        int pools = spec.PoolingsThrough(settings.ContentLayers.Concat(settings.StyleLayers).Max(spec.IndexOf) + 1);
        if (smallest >> pools < 1)
            throw new InputException($"a {outW}×{outH} image is too small for these layers ({PoolingsNeed(pools)})");
        // The paintings run to the deepest style layer: a painting made small by --style-scale must still reach it (it
        // used to end in an internal error).
        if (mode != RunMode.Content)
        {
            int stylePools = spec.PoolingsThrough(settings.StyleLayers.Max(spec.IndexOf) + 1);
            for (int i = 0; i < styles.Count; i++)
                if (Math.Min(styles[i].Item1.Width, styles[i].Item1.Height) >> stylePools < 1)
                    throw new InputException($"{stylePaths[i]}: the painting at {styles[i].Item1.Width}×{styles[i].Item1.Height} ({paintingSize}) " +
                        $"is too small for these style layers ({PoolingsNeed(stylePools)})");
        }
        return new Prepared(spec, settings, content, styles, start, weightsPath);
    }

    static string PoolingsNeed(int pools) => $"{pools} poolings need at least {1 << pools} pixels a side";

    /// <summary>A layer named twice (relu1_1,relu1_1 or relu1_1,block1_conv1) would count twice in the mean, and write
    /// its loss twice under one name in the log's JSON.</summary>
    static void RefuseNamedTwice(string option, IEnumerable<string> layers)
    {
        if (layers.GroupBy(Vgg.NormalizeTap).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw new InputException($"{option} names {twice.Key} twice ({string.Join(", ", twice)})");
    }

    static Picture ResizedTo(string path, int w, int h, string role)
    {
        using var image = ImageFiles.Load(path, role);
        ImageFiles.Resize(image, w, h);
        return ImageFiles.ToPicture(image);
    }

    static float[] Blend(string? text, int count)
    {
        if (text is null) return Enumerable.Repeat(1f / Math.Max(1, count), count).ToArray();
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        if (parts.Length != count)
            throw new InputException($"--style-blend has {parts.Length} weights for {count} style image(s)");
        var w = parts.Select(s => float.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v >= 0 && float.IsFinite(v)
            ? v : throw new InputException($"--style-blend: '{s}' is not a non-negative number")).ToArray();
        float sum = w.Sum();
        if (!(sum > 0)) throw new InputException("--style-blend weights add up to zero");
        return w.Select(v => v / sum).ToArray();   // blend weights sum to 1 (DESIGN.md §3)
    }

    static string ResolveWeights(string weights, RunProgress progress)
    {
        var store = WeightsStore.Default();
        var official = OfficialWeights.ByName(weights);
        if (official is not null && !store.IsCached(official))
            progress.Message($"fetching the {official.Name} weights ({official.Bytes / 1e6:0} MB) into {store.Directory}");
        return store.ResolveAsync(weights, official is null ? null : new DownloadProgressLine(official.Name)).GetAwaiter().GetResult();
    }

    /// <summary>Opens the device and prepares the run (checks the options, reads the pictures and the weights) side by
    /// side: both are start-up a GPU run waits for (here ≈ 0.3 s each: the weights 0.15 s, two pictures 0.12 s; on a
    /// GPU the driver's context and the kernels' load). The device opens on this thread (a CUDA context is current on
    /// the thread that made it); the preparing is host work on another. What each throws is said as before: the
    /// device's error first. Where the official weights must be downloaded, the device opens alone first, so that a
    /// missing one is said before the download starts.</summary>
    static (IBackend Backend, Prepared Prepared) OpenAndPrepare(ParseResult r, RunOptions o, Func<Prepared> prepare)
    {
        if (OfficialWeights.ByName(r.GetValue(o.Weights)!) is { } official && !WeightsStore.Default().IsCached(official))
        {
            var alone = OpenBackend(r, o);
            try { return (alone, prepare()); }
            catch { alone.Dispose(); throw; }
        }
        var preparing = Task.Run(prepare);
        IBackend backend;
        try { backend = OpenBackend(r, o); }
        catch
        {
            try { preparing.Wait(); } catch (AggregateException) { }   // its own error, if any, comes after the device's
            throw;
        }
        try { return (backend, preparing.GetAwaiter().GetResult()); }
        catch { backend.Dispose(); throw; }
    }

    static IBackend OpenBackend(ParseResult r, RunOptions o) =>
        DeviceOption.Open(r.GetValue(o.Device)!, DeviceOption.Kernel(r.GetValue(o.Tf32), r.GetValue(o.Conv)), rememberTunings: true);

    static void CheckMemory(IBackend backend, Prepared p)
    {
        var s = p.Settings;
        var layers = (s.Mode == RunMode.Texture ? [] : s.ContentLayers).Concat(s.Mode == RunMode.Content ? [] : s.StyleLayers).ToList();
        int depth = layers.Max(p.Spec.IndexOf) + 1;
        var style = p.Styles.Count == 0 ? p.Start.Shape : p.Styles.Select(t => t.Item1.Shape).MaxBy(t => t.Size);
        int? styleDepth = p.Styles.Count == 0 ? null : s.StyleLayers.Max(p.Spec.IndexOf) + 1;   // the paintings' networks'
        long budget = UsableMemory(backend);
        long need = MemoryPlan.Estimate(p.Spec, p.Start.Shape, style, depth, s, styleDepth);
        if (need <= budget) return;
        int longest = Math.Max(p.Start.Width, p.Start.Height);
        Shape At(Shape sh, int size) => new(3, Math.Max(1, sh.H * size / longest), Math.Max(1, sh.W * size / longest));
        int fits = MemoryPlan.LargestFitting(size => MemoryPlan.Estimate(p.Spec, At(p.Start.Shape, size), At(style, size), depth, s, styleDepth), budget, longest);
        // L-BFGS's history may be what does not fit (2·H picture-sized vectors): a shorter one runs the asked size.
        int history = s.Optimizer != OptimizerKind.Lbfgs || need == long.MaxValue ? 0
            : MemoryPlan.LargestHistoryFitting(h => MemoryPlan.Estimate(p.Spec, p.Start.Shape, style, depth, s with { History = h }, styleDepth), budget, s.History);
        throw new InputException(TooLarge($"a {p.Start.Width}×{p.Start.Height} run", need, budget, backend.Name, fits)
            + (history > 0 ? $", or at this size --history {history} (L-BFGS's history is {s.History} pairs of picture-sized vectors)" : ""));
    }

    /// <summary>What a run may plan to use of the device's memory (the rest for the runtime, drivers and fragmentation).</summary>
    internal static long UsableMemory(IBackend backend) => (long)(Backends.MemoryOf(backend) * 0.8);

    /// <summary>Why a run of this size cannot start (its estimate: <see cref="MemoryPlan.Estimate"/>), and what can.</summary>
    internal static string TooLarge(string run, long need, long budget, string device, int fits, string option = "--size") =>
        (need == long.MaxValue
            ? $"{run} has feature maps of more than {MemoryPlan.MaxElements:N0} values, more than GpuStyle's tensors hold; "
            : $"{run} needs about {need / 1e9:0.0} GB, more than {device} has ({budget / 1e9:0.0} GB usable); ")
        + (fits > 0 ? $"the largest {option} that fits is {fits}" : "no size fits");

    sealed record Outcome(Picture Picture, int Iterations, double Seconds, bool Cancelled);

    /// <summary>The optimisation loop: log, progress, snapshots, and Ctrl-C writing the current image.</summary>
    static Outcome Optimise(ParseResult r, RunOptions o, IBackend backend, Prepared p, string output, RunProgress progress,
        string title, string? logPath)
    {
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancel.Cancel(); };
        Console.CancelKeyPress += onCancel;
        // SIGTERM (a `timeout`, a job scheduler) also ends the run with the current image written.
        using var onTerm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
            System.Runtime.InteropServices.PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; cancel.Cancel(); });
        try
        {
            using var run = new StyleRun(backend, p.Spec, p.Settings, p.Content, p.Styles, p.Start);
            if (run.History is { } kept && kept < Math.Min(p.Settings.History, p.Settings.Iterations))
                progress.Message($"L-BFGS keeps {kept} pairs, not {p.Settings.History}: at this size a longer history would not fit one tensor");
            using var log = new RunLog(logPath);
            int saveEvery = r.GetValue(o.SaveEvery), iterations = p.Settings.Iterations, done = 0;
            var clock = Stopwatch.StartNew();
            progress.Run(title, iterations, report =>
            {
                var first = run.Start();
                log.Write(first, clock.Elapsed.TotalSeconds);
                report(first);
                // Weights so large that the weighted loss passes float32's range: every step would be refused, and
                // the run "converged" on the noise it started from.
                if (!float.IsFinite(first.Total))
                    throw new InputException($"the weighted loss of the starting image is {Describe(first.Total)}, past float32's range (3.4e38): lower the loss weights");
                for (int i = 1; i <= iterations && !cancel.IsCancellationRequested && !run.Converged; i++)
                {
                    var step = run.Step();
                    done = i;
                    log.Write(step, clock.Elapsed.TotalSeconds);
                    report(step);
                    // Adam with too large a step runs off to infinities and NaN (L-BFGS's line search refuses such
                    // steps); it used to carry on to the last iteration and write a black picture.
                    if (!float.IsFinite(step.Total))
                        throw new InputException($"the loss became {Describe(step.Total)} at iteration {i}: the optimiser diverged"
                            + (p.Settings.Optimizer == OptimizerKind.Adam ? $" (--learning-rate {p.Settings.LearningRate.ToString(CultureInfo.InvariantCulture)} is too large a step)" : "")
                            + "; no picture written");
                    if (saveEvery > 0 && i % saveEvery == 0 && i < iterations)
                        ImageFiles.SaveAtomically(ImageFiles.FromPicture(p.Finish(run.Current())), ImageFiles.Snapshot(output, i));
                }
            });
            log.Complete();
            if (cancel.IsCancellationRequested) progress.Message($"interrupted after {done} iterations: writing the current image");
            else if (run.Converged && done < iterations) progress.Message($"converged after {done} iterations: no step lowers the loss any more");
            return new Outcome(p.Finish(run.Current()), done, clock.Elapsed.TotalSeconds, cancel.IsCancellationRequested);
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    static string Describe(float loss) => float.IsNaN(loss) ? "NaN" : loss > 0 ? "infinite" : "−infinite";

    /// <summary>`layers`: a content reconstruction from noise at each layer, tiled with the photo in a labelled grid.</summary>
    static int Layers(ParseResult r, RunOptions o, string imagePath, List<string> layers)
    {
        string output = r.GetValue(o.Out)!;
        var progress = new RunProgress(r.GetValue(o.Quiet));
        if (layers.Count == 0) throw new InputException("--grid-layers names no layer");
        RefuseNamedTwice("--grid-layers", layers);
        var (backend, p) = OpenAndPrepare(r, o, () => Prepare(r, o, RunMode.Content, imagePath, [], output, layers[0], progress));
        using var _ = backend;
        var available = layers.Where(l => p.Spec.Layers.Any(x => x.Name == Vgg.NormalizeTap(l))).ToList();
        foreach (var missing in layers.Except(available))
            progress.Message($"{missing}: not in these weights, left out of the grid");
        if (available.Count == 0) p.Spec.IndexOf(layers[0]);   // refuses, listing the layers there are
        // A layer past more poolings than the picture has pixels for is left out too (Prepare checked the first).
        int smallest = Math.Min(p.Start.Width, p.Start.Height);
        foreach (var deep in available.Where(l => smallest >> p.Spec.PoolingsThrough(p.Spec.IndexOf(l) + 1) < 1).ToList())
        {
            progress.Message($"{deep}: a {p.Start.Width}×{p.Start.Height} picture is too small for it ({PoolingsNeed(p.Spec.PoolingsThrough(p.Spec.IndexOf(deep) + 1))}), left out of the grid");
            available.Remove(deep);
        }
        CheckMemory(backend, p with { Settings = p.Settings with { ContentLayers = [available.MaxBy(p.Spec.IndexOf)!] } });
        var cells = new List<(string, Image<Rgb24>)> { ("photo", ImageFiles.FromPicture(p.Content!)) };
        bool cancelled = false;
        foreach (var layer in available)
        {
            var q = p with { Settings = p.Settings with { ContentLayers = [layer] } };
            var result = Optimise(r, o, backend, q, output, progress, layer, null);
            cells.Add((Vgg.NormalizeTap(layer), ImageFiles.FromPicture(result.Picture)));
            if (result.Cancelled) { cancelled = true; break; }
        }
        using var grid = GridImage.Compose(cells);
        ImageFiles.SaveAtomically(grid, output);
        foreach (var (_, image) in cells) image.Dispose();
        progress.Message($"wrote {output} ({cells.Count - 1} layers on {backend.Name})");
        return cancelled ? 130 : 0;
    }
}
