using System.Text.Json;
using GpuStyle.Cli;
using GpuStyle.Engine.Weights;
using GpuStyle.Tests.Support;
using GpuStyle.WeightsTools;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace GpuStyle.Tests;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ConsoleCollection
{
    public const string Name = "Console (redirected)";
}

/// <summary>
/// The `gpustyle` command as a user runs it (in-process, console captured): every mode writes its picture, the log
/// has its shape, the same seed gives the same bytes, and every bad input gives exit 2, a message and no output.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class CliTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("gpustyle-cli-").FullName;
    readonly string _weights, _photo, _painting, _painting2;

    public CliTests()
    {
        _weights = Path.Combine(_dir, "vgg16-small.h5");
        FixtureWeights.Write(new FixtureSpec("vgg16", KerasLayout.Keras1, 5, [4, 6, 8, 8, 8], Seed: 9), _weights);
        _photo = WriteImage("photo.png", 40, 30, 1);
        _painting = WriteImage("painting.jpg", 30, 36, 2);
        _painting2 = WriteImage("painting2.bmp", 20, 20, 3);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string WriteImage(string name, int w, int h, int seed) => TestImages.Write(Path.Combine(_dir, name), w, h, seed);

    static (int Code, string Out, string Err) Gpustyle(params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o);
        Console.SetError(e);
        try { return (Cli.Program.Main(args), o.ToString(), e.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }

    /// <summary>`gpustyle` in a process of its own, with .NET's heap capped at <paramref name="heapCap"/> bytes (hex):
    /// the CPU backend's memory, for the refusals that size a run to it.</summary>
    static (int Code, string Text) GpustyleUnderCap(string heapCap, params string[] args) =>
        ChildProcess.Run("dotnet", [Path.Combine(AppContext.BaseDirectory, "gpustyle.dll"), .. args],
            new Dictionary<string, string> { ["DOTNET_GCHeapHardLimit"] = heapCap });

    string[] Small(params string[] args) =>
        [.. args, "--weights", _weights, "--size", "24", "--iterations", "3", "--device", "cpu", "--quiet"];

    [Fact]
    public void Devices_says_what_auto_picks_and_why_a_GPU_kind_is_missing()
    {
        var (code, output, err) = Gpustyle("devices");
        Assert.True(code == 0, err);
        Assert.Contains("ilgpu-cpu", output);
        Assert.Contains("--device auto picks: ", output);
        // Each GPU kind is either listed or explained (no loader; or the devices ILGPU turned down, and why).
        Assert.True(output.Contains("  cuda:") || output.Contains("(no CUDA device: "), output);
        Assert.True(output.Contains("  opencl:") || output.Contains("(no OpenCL device: "), output);
        if (!output.Contains("  opencl:"))
            Assert.Matches(@"\(no OpenCL device: (no OpenCL runtime \(libOpenCL\.so\.1\) was found|ILGPU needs OpenCL C 2\.0\+ with the generic address space; turned down: .+|the OpenCL runtime reports no device)", output);
    }

    [Fact]
    public void Transfer_writes_the_picture_and_a_log_with_iteration_zero()
    {
        string output = Path.Combine(_dir, "out.png"), log = Path.Combine(_dir, "run.jsonl");
        var (code, _, err) = Gpustyle(Small("transfer", "--content", _photo, "--style", $"{_painting},{_painting2}",
            "--style-blend", "0.7,0.3", "--out", output, "--log", log, "--save-every", "2"));
        Assert.True(code == 0, err);
        using (var image = Image.Load<Rgb24>(output))
            Assert.Equal((24, 18), (image.Width, image.Height));     // 40×30 photo, longest side 24
        Assert.True(File.Exists(Path.Combine(_dir, "out-iter2.png")));
        var lines = File.ReadAllLines(log);
        Assert.Equal(4, lines.Length);
        for (int i = 0; i < lines.Length; i++)
        {
            using var doc = JsonDocument.Parse(lines[i]);
            var root = doc.RootElement;
            Assert.Equal(i, root.GetProperty("iteration").GetInt32());
            Assert.True(root.GetProperty("content").GetProperty("relu4_2").GetDouble() >= 0);
            Assert.Equal(["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"], root.GetProperty("style").EnumerateObject().Select(p => p.Name));
            Assert.True(root.GetProperty("tv").GetDouble() >= 0);
            Assert.True(root.GetProperty("seconds").GetDouble() >= 0);
            Assert.True(root.GetProperty("total").GetDouble() > 0);
        }
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
    }

    [Theory]
    [InlineData("out.jpg", "JPEG"), InlineData("out.JPEG", "JPEG"), InlineData("out.webp", "Webp"), InlineData("out.tif", "TIFF"),
     InlineData("out.bmp", "BMP"), InlineData("out.png", "PNG")]
    public void The_output_and_its_snapshots_are_in_the_format_their_extension_names(string name, string format)
    {
        string output = Path.Combine(_dir, name);
        var (code, _, err) = Gpustyle(Small("content", "--content", _photo, "--out", output, "--save-every", "2"));
        Assert.True(code == 0, err);
        foreach (var path in new[] { output, ImageFiles.Snapshot(output, 2) })
        {
            Assert.Equal(format, Image.DetectFormat(path)?.Name);
            using var image = Image.Load<Rgb24>(path);
            Assert.Equal((24, 18), (image.Width, image.Height));
        }
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
    }

    [Fact]
    public void Preserve_colors_keeps_the_photos_chroma()
    {
        // The photo as the run sees it (resized to 24 px), and each output's mean distance from its chroma (I, Q of
        // YIQ, 0..255 scale). Without the flag the output's colours are the optimisation's; with it, the photo's, up to
        // 8-bit rounding and pixels clamped at 0 or 255.
        using var photoImage = ImageFiles.Load(_photo, "content");
        ImageFiles.ResizeLongestSide(photoImage, 24, "--size 24", "picture");
        var photo = ImageFiles.ToPicture(photoImage);
        double ChromaDistance(string name, params string[] extra)
        {
            string output = Path.Combine(_dir, name);
            var (code, _, err) = Gpustyle(Small(["transfer", "--content", _photo, "--style", _painting, "--out", output, "--save-every", "2", .. extra]));
            Assert.True(code == 0, err);
            using var image = Image.Load<Rgb24>(output);
            var result = ImageFiles.ToPicture(image);
            double sum = 0;
            for (int p = 0; p < 24 * 18; p++)
            {
                var (_, i, q) = PreserveColorsTests.Yiq(result, p);
                var (_, pi, pq) = PreserveColorsTests.Yiq(photo, p);
                sum += Math.Abs(i - pi) + Math.Abs(q - pq);
            }
            return sum / (24 * 18);
        }
        double plain = ChromaDistance("plain.png"), preserved = ChromaDistance("preserved.png", "--preserve-colors");
        Assert.True(preserved < 3 && preserved < plain / 5, $"chroma distance {preserved:0.00} with --preserve-colors, {plain:0.00} without");
    }

    [Fact]
    public void The_live_progress_line_fits_the_terminal()
    {
        // Five style layers and two content layers: the full line is ≈ 90 characters, past an 80-column terminal's
        // 50 left beside the bar; it gives up the per-layer losses first, then everything but the iteration.
        var report = new GpuStyle.Engine.Pipelines.IterationReport(37, [("relu4_2", 123456.7f), ("relu3_2", 2.5e-3f)],
            [("relu1_1", 1e8f), ("relu2_1", 2e8f), ("relu3_1", 3e8f), ("relu4_1", 4e8f), ("relu5_1", 5e8f)], 12f, 9.87e5f, 40);
        string full = RunProgress.Describe("transfer", 500, report, 3.21, int.MaxValue);
        Assert.Equal("transfer 37/500  total 9.87e5  relu4_2 1.235e5 relu3_2 2.5e-3 style 3e8  3.21 it/s", full);
        foreach (int width in new[] { 120, 80, 50, 20 })
        {
            string line = RunProgress.Describe("transfer", 500, report, 3.21, width);
            Assert.True(line.Length <= width, $"{line.Length} characters for {width}: {line}");
            Assert.StartsWith("transfer 37/500", line);
        }
        Assert.Equal("transfer 37/500  total 9.87e5  3.21 it/s", RunProgress.Describe("transfer", 500, report, 3.21, 50));
    }

    [Fact]
    public void Transfer_by_Winograd_and_by_the_direct_convolution_start_from_the_same_losses()
    {
        // --conv picks the CPU backend's convolution: the two differ only in rounding, so iteration 0's losses agree.
        // Every layer but the first has 16+ channels each way, so Winograd runs there (the small fixture has 4–8).
        string weights = Path.Combine(_dir, "vgg16-16.h5");
        FixtureWeights.Write(new FixtureSpec("vgg16", KerasLayout.Keras1, 5, [16, 17, 20, 24, 24], Seed: 9), weights);
        double Total(string conv)
        {
            string log = Path.Combine(_dir, $"{conv}.jsonl");
            var (code, _, err) = Gpustyle("transfer", "--content", _photo, "--style", _painting, "--conv", conv, "--weights", weights,
                "--size", "40", "--iterations", "2", "--device", "cpu", "--quiet", "--out", Path.Combine(_dir, $"{conv}.png"), "--log", log);
            Assert.True(code == 0, err);
            using var doc = JsonDocument.Parse(File.ReadLines(log).First());
            return doc.RootElement.GetProperty("total").GetDouble();
        }
        double winograd = Total("winograd"), direct = Total("direct");
        Assert.True(Math.Abs(winograd - direct) <= 1e-5 * direct, $"iteration 0: {winograd} by Winograd, {direct} direct");
    }

    [Fact]
    public void Content_texture_and_layers_write_their_pictures()
    {
        foreach (var args in new[]
        {
            Small("content", "--content", _photo, "--out", Path.Combine(_dir, "c.png")),
            Small("texture", "--style", _painting, "--out", Path.Combine(_dir, "t.png"), "--optimizer", "adam"),
            Small("layers", "--image", _photo, "--out", Path.Combine(_dir, "l.png"), "--grid-layers", "relu1_1,relu3_1"),
        })
        {
            var (code, _, err) = Gpustyle(args);
            Assert.True(code == 0, $"{args[0]}: {err}");
            Assert.True(File.Exists(args[Array.IndexOf(args, "--out") + 1]), args[0]);
        }
        using var texture = Image.Load<Rgb24>(Path.Combine(_dir, "t.png"));
        Assert.Equal((20, 24), (texture.Width, texture.Height));      // the painting's proportions at --size
        using var grid = Image.Load<Rgb24>(Path.Combine(_dir, "l.png"));
        Assert.True(grid.Width > 3 * 24);                             // photo + two layers side by side
    }

    [Fact]
    public void The_same_seed_gives_byte_identical_output()
    {
        byte[] Run(string name, string seed)
        {
            string output = Path.Combine(_dir, name);
            var (code, _, err) = Gpustyle(Small("transfer", "--content", _photo, "--style", _painting, "--out", output, "--seed", seed));
            Assert.True(code == 0, err);
            return File.ReadAllBytes(output);
        }
        Assert.Equal(Run("a.png", "5"), Run("b.png", "5"));
        Assert.NotEqual(Run("a.png", "5"), Run("c.png", "6"));
    }

    public static TheoryData<string, string[]> BadInputs() => new()
    {
        { "no such content file", ["transfer", "--content", "{dir}/missing.jpg", "--style", "{painting}"] },
        { "the style is a folder, not an image file", ["transfer", "--content", "{photo}", "--style", "{dir}"] },
        { "is not an image GpuStyle can read", ["transfer", "--content", "{dir}/notes.jpg", "--style", "{painting}"] },
        { "is empty", ["transfer", "--content", "{dir}/empty.png", "--style", "{painting}"] },
        { "style file is an incomplete JPEG image", ["transfer", "--content", "{photo}", "--style", "{dir}/cut.jpg"] },
        { "unknown layer 'relu9_9'", ["transfer", "--content", "{photo}", "--style", "{painting}", "--content-layers", "relu9_9"] },
        { "unknown layer 'conv1'", ["texture", "--style", "{painting}", "--style-layers", "relu1_1,conv1"] },
        { "--style-blend has 3 weights for 2 style image(s)", ["transfer", "--content", "{photo}", "--style", "{painting},{painting2}", "--style-blend", "0.2,0.3,0.5"] },
        { "--size must be positive", ["transfer", "--content", "{photo}", "--style", "{painting}", "--size", "0"] },
        { "--size must be positive", ["content", "--content", "{photo}", "--size", "-5"] },
        { "cannot tell which image format to write", ["transfer", "--content", "{photo}", "--style", "{painting}", "--out", "{dir}/result.txt"] },
        { "cannot tell which image format to write", ["texture", "--style", "{painting}", "--out", "{dir}/result"] },
        { "would overwrite the input", ["transfer", "--content", "{photo}", "--style", "{painting}", "--out", "{photo}"] },
        { "does not exist", ["transfer", "--content", "{photo}", "--style", "{painting}", "--out", "{dir}/no/such/dir/out.png"] },
        { "not writable", ["transfer", "--content", "{photo}", "--style", "{painting}", "--out", "/proc/gpustyle-out.png"] },
        { "not an HDF5 file", ["transfer", "--content", "{photo}", "--style", "{painting}", "--weights", "{photo}"] },
        { "is a folder, not a weights file", ["transfer", "--content", "{photo}", "--style", "{painting}", "--weights", "{dir}"] },
        { "Argument 'sgd' not recognized", ["transfer", "--content", "{photo}", "--style", "{painting}", "--optimizer", "sgd"] },
        { "computes in fp32 only", ["transfer", "--content", "{photo}", "--style", "{painting}", "--tf32"] },   // with --device cpu
        { "runs direct or winograd", ["transfer", "--content", "{photo}", "--style", "{painting}", "--conv", "blocked"] },
        { "give one of them", ["transfer", "--content", "{photo}", "--style", "{painting}", "--tf32", "--conv", "winograd"] },
        // Refused before anything that size is allocated: these used to end in an internal error (ImageSharp's allocator
        // refusing 22.5 GB, or an int overflow counting the memory a run needs).
        { "--size 100000 makes the picture 100000×75000 pixels (7500 megapixels), more than the 67", ["content", "--content", "{photo}", "--size", "100000"] },
        { "--size 24 with --style-scale 5000 makes the painting 100000×120000", ["transfer", "--content", "{photo}", "--style", "{painting}", "--size", "24", "--style-scale", "5000"] },
        { "--size 24 with --style-scale 0.0001 makes the picture 10000×10000", ["texture", "--style", "{painting}", "--size", "24", "--style-scale", "0.0001"] },
        { "--size 2147483647 makes the picture", ["transfer", "--content", "{photo}", "--style", "{painting}", "--size", "2147483647"] },
        { "painting.jpg: the painting at 4×5 (--size 24 with --style-scale 0.2) is too small for these style layers (4 poolings need at least 16 pixels a side)",
            ["transfer", "--content", "{photo}", "--style", "{painting}", "--size", "24", "--style-scale", "0.2"] },
        { "--style-layers names relu1_1 twice (relu1_1, block1_conv1)", ["transfer", "--content", "{photo}", "--style", "{painting}", "--style-layers", "relu1_1,block1_conv1"] },
        { "--content-layers names relu2_1 twice (relu2_1, relu2_1)", ["content", "--content", "{photo}", "--content-layers", "relu2_1,relu2_1"] },
        { "--grid-layers names relu1_1 twice (block1_conv1, relu1_1)", ["layers", "--image", "{photo}", "--grid-layers", "block1_conv1,relu1_1"] },
        // Weights that make the losses meaningless (they used to run to a picture of noise or NaN).
        { "--style-weight must be a number 0 or more, got -1", ["transfer", "--content", "{photo}", "--style", "{painting}", "--style-weight", "-1"] },
        { "--content-weight must be a number 0 or more, got NaN", ["content", "--content", "{photo}", "--content-weight", "NaN"] },
        { "--tv-weight must be a number 0 or more, got Infinity", ["texture", "--style", "{painting}", "--tv-weight", "Infinity"] },
        { "--learning-rate must be positive, got 0", ["transfer", "--content", "{photo}", "--style", "{painting}", "--optimizer", "adam", "--learning-rate", "0"] },
        { "--content-weight, --style-weight, --tv-weight are all 0: there is nothing to optimise",
            ["transfer", "--content", "{photo}", "--style", "{painting}", "--content-weight", "0", "--style-weight", "0", "--tv-weight", "0"] },
        { "--style-weight, --tv-weight are all 0", ["texture", "--style", "{painting}", "--style-weight", "0", "--tv-weight", "0"] },
        // Weights past float32's range, and Adam's steps running off to infinity: "converged" on the noise, or a black
        // picture after the last iteration.
        { "the weighted loss of the starting image is infinite, past float32's range", ["transfer", "--content", "{photo}", "--style", "{painting}", "--style-weight", "3e38", "--content-weight", "3e38"] },
        { "the optimiser diverged (--learning-rate 1E+30 is too large a step); no picture written",
            ["transfer", "--content", "{photo}", "--style", "{painting}", "--optimizer", "adam", "--learning-rate", "1e30", "--log", "{dir}/run.jsonl"] },
        { "--style-scale must be positive, got Infinity", ["transfer", "--content", "{photo}", "--style", "{painting}", "--style-scale", "Infinity"] },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Bad_input_exits_2_with_a_message_and_writes_nothing(string message, string[] template)
    {
        File.WriteAllText(Path.Combine(_dir, "notes.jpg"), "shopping list: eggs, flour\n");
        File.WriteAllBytes(Path.Combine(_dir, "empty.png"), []);
        File.WriteAllBytes(Path.Combine(_dir, "cut.jpg"), File.ReadAllBytes(_painting)[..^100]);   // a download cut off
        string output = Path.Combine(_dir, "result.png");
        var args = template.Select(a => a.Replace("{dir}", _dir).Replace("{photo}", _photo).Replace("{painting2}", _painting2)
            .Replace("{painting}", _painting)).ToList();
        if (!args.Contains("--out")) args.AddRange(["--out", output]);
        if (!args.Contains("--weights")) args.AddRange(["--weights", _weights]);
        args.AddRange(["--iterations", "2", "--device", "cpu", "--quiet"]);
        var before = Directory.GetFiles(_dir).Select(f => (f, File.GetLastWriteTimeUtc(f))).ToList();

        var (code, _, err) = Gpustyle(args.ToArray());

        Assert.Equal(2, code);
        Assert.Contains(message, err);
        Assert.Single(err.Trim().Split('\n'), l => l.StartsWith("gpustyle: "));
        Assert.False(File.Exists(output));
        Assert.Equal(before, Directory.GetFiles(_dir).Select(f => (f, File.GetLastWriteTimeUtc(f))).ToList());   // inputs untouched
    }

    [Fact]
    public void A_snapshot_is_never_written_over_an_input_or_the_log()
    {
        // The photo saved as out-iter2.png, then run with --out out.png --save-every 2: the snapshot of iteration 2
        // replaced the photo (only the output itself was checked against the inputs). The same for a log so named.
        string photo = Path.Combine(_dir, "out-iter2.png"), output = Path.Combine(_dir, "out.png");
        File.Copy(_photo, photo);
        byte[] photoBytes = File.ReadAllBytes(photo);
        foreach (var (args, over) in new[]
        {
            (new[] { "--content", photo, "--style", _painting, "--save-every", "2" }, photo),
            (new[] { "--content", _photo, "--style", photo, "--save-every", "1" }, photo),                   // a painting; 2 is a multiple of 1
            (new[] { "--content", _photo, "--style", _painting, "--save-every", "1", "--log", Path.Combine(_dir, "out-iter1.png") },
                Path.Combine(_dir, "out-iter1.png")),                                                               // a log the run would create
        })
        {
            var (code, _, err) = Gpustyle(Small(["transfer", "--out", output, .. args]));
            Assert.True(code == 2, err);
            Assert.Contains($"would write this snapshot over {over}", err);
            Assert.False(File.Exists(output));
            Assert.False(File.Exists(Path.Combine(_dir, "out-iter1.png")));
            Assert.Equal(photoBytes, File.ReadAllBytes(photo));
        }
        // Snapshots that miss the inputs run: iteration 2 is not written with --save-every 3 (3 iterations: none
        // before the last), nor out-iter02.png's name ever.
        File.Move(photo, Path.Combine(_dir, "out-iter02.png"));
        foreach (var (content, every) in new[] { (Path.Combine(_dir, "out-iter02.png"), "1"), (Path.Combine(_dir, "out-iter02.png"), "3") })
        {
            var (code, _, err) = Gpustyle(Small("transfer", "--content", content, "--style", _painting, "--out", output, "--save-every", every));
            Assert.True(code == 0, err);
        }
        Assert.Equal(photoBytes, File.ReadAllBytes(Path.Combine(_dir, "out-iter02.png")));
        Assert.True(File.Exists(Path.Combine(_dir, "out-iter2.png")));   // the first run's snapshot, beside the photo
    }

    [Fact]
    public void A_run_says_what_it_runs_before_its_first_iteration()
    {
        // Before the targets and the first evaluation (seconds at 1024 px on a CPU, in silence before).
        var (code, _, err) = Gpustyle("transfer", "--content", _photo, "--style", _painting, "--out", Path.Combine(_dir, "o.png"),
            "--weights", _weights, "--size", "24", "--iterations", "3", "--device", "cpu", "--optimizer", "adam");
        Assert.True(code == 0, err);
        int said = err.IndexOf("transfer: 24×18, 3 iterations of Adam on cpu", StringComparison.Ordinal);
        Assert.True(said >= 0, err);
        Assert.True(said < err.IndexOf("transfer 0/3", StringComparison.Ordinal), err);
    }

    [Fact]
    public void A_painting_whose_name_has_a_comma_is_one_painting()
    {
        string painting = Path.Combine(_dir, "Monet, Water Lilies.jpg"), output = Path.Combine(_dir, "out.png");
        File.Copy(_painting, painting);
        var (code, _, err) = Gpustyle(Small("texture", "--style", painting, "--out", output));
        Assert.True(code == 0, err);
        // Beside another painting, with a space after the comma, and with a blend: still these two paintings.
        (code, _, err) = Gpustyle(Small("transfer", "--content", _photo, "--style", $"{_painting}, {painting}", "--style-blend", "0.3,0.7", "--out", output));
        Assert.True(code == 0, err);
        (code, _, err) = Gpustyle(Small("transfer", "--content", _photo, "--style", $"{painting},{Path.Combine(_dir, "missing.jpg")}", "--out", output));
        Assert.True(code == 2, err);
        Assert.Contains($"{Path.Combine(_dir, "missing.jpg")}: no such style file", err);
    }

    [Fact]
    public void A_decompression_bomb_is_refused_before_decoding()
    {
        // A whole, 1 080-byte BMP that decodes to 20000×20000 pixels (1.2 GB as RGB): 8-bit run-length encoded, its
        // pixel data one "end of bitmap" code. Refused from the header alone, before anything is decoded.
        string bomb = Path.Combine(_dir, "bomb.bmp");
        using (var file = new BinaryWriter(File.Create(bomb)))
        {
            file.Write("BM"u8); file.Write(1080); file.Write(0); file.Write(14 + 40 + 1024);
            file.Write(40); file.Write(20000); file.Write(20000); file.Write((short)1); file.Write((short)8);
            file.Write(1 /* BI_RLE8 */); file.Write(2); file.Write(2835); file.Write(2835); file.Write(256); file.Write(0);
            for (int i = 0; i < 256; i++) file.Write(i * 0x010101);
            file.Write(new byte[] { 0, 1 });
        }
        var (code, _, err) = Gpustyle(Small("content", "--content", bomb, "--out", Path.Combine(_dir, "o.png")));
        Assert.Equal(2, code);
        Assert.Contains("megapixels", err);
    }

    [Fact]
    public void Small_pictures_run_where_their_layers_need_no_more_poolings_than_they_have()
    {
        // An 8-px picture has poolings enough for relu1_1, and a painting shrunk by --style-scale for shallow style
        // layers while the content layer is deep: both ran into the memory estimate's walk through every pooling of
        // the network (an internal error).
        foreach (var (name, args) in new[]
        {
            ("tiny.png", new[] { "--size", "8", "--content-layers", "relu1_1", "--style-layers", "relu1_1" }),
            ("shrunk.png", new[] { "--size", "24", "--style-scale", "0.2", "--content-layers", "relu4_1", "--style-layers", "relu1_1,relu2_1" }),
        })
        {
            string output = Path.Combine(_dir, name);
            var (code, _, err) = Gpustyle(["transfer", "--content", _photo, "--style", _painting, "--out", output, "--weights", _weights,
                "--iterations", "2", "--device", "cpu", "--quiet", .. args]);
            Assert.True(code == 0, $"{name}: {err}");
            using var image = Image.Load<Rgb24>(output);
            Assert.Equal(int.Parse(args[1]), image.Width);
        }
    }

    [Fact]
    public void The_layers_grid_leaves_out_layers_too_deep_for_a_small_picture()
    {
        // At 8 × 6 pixels relu1_1 … relu3_1 have poolings enough, relu4_1 and relu5_1 not: the grid shows the first
        // three and says why the others are missing (this ended in an internal error).
        string output = Path.Combine(_dir, "grid.png");
        var (code, stdout, err) = Gpustyle("layers", "--image", _photo, "--out", output, "--weights", _weights, "--size", "8",
            "--iterations", "2", "--device", "cpu");
        Assert.True(code == 0, err);
        string said = stdout + err;
        Assert.Contains("relu4_1: a 8×6 picture is too small for it (3 poolings need at least 8 pixels a side), left out of the grid", said);
        Assert.Contains("relu5_1: a 8×6 picture is too small for it (4 poolings need at least 16 pixels a side), left out of the grid", said);
        Assert.Contains("(3 layers on", said);
        Assert.True(File.Exists(output));
    }

    [Fact]
    public void A_device_that_is_not_there_is_refused_before_the_weights_are_fetched()
    {
        // The default weights (vgg16) are not in the cache here: asking for a device first used to start their 59-MB
        // download (or, offline, fail it) before saying the device does not exist. cuda:7 exists nowhere we run.
        var (code, stdout, err) = Gpustyle("content", "--content", _photo, "--out", Path.Combine(_dir, "o.png"), "--device", "cuda:7", "--size", "24");
        Assert.Equal(2, code);
        Assert.Contains("no ILGPU device 'cuda:7'", err);
        Assert.DoesNotContain("fetching", stdout + err);
        Assert.DoesNotContain("download", stdout + err);
    }

    [Fact]
    public void With_the_weights_at_hand_the_device_is_said_first_and_the_pictures_error_after_it()
    {
        // The weights are a file here, so the pictures and the weights are read while the device opens
        // (RunCommands.OpenAndPrepare): a missing device is still what is said, not the unreadable picture read beside
        // it; with a device there, the picture's error — and in neither case a file written.
        string notes = Path.Combine(_dir, "notes.jpg"), output = Path.Combine(_dir, "o.png");
        File.WriteAllText(notes, "not a picture");
        foreach (var command in new[] { "transfer", "layers" })
        {
            string[] args = command == "transfer"
                ? ["transfer", "--content", notes, "--style", _painting, "--out", output, "--weights", _weights, "--size", "24"]
                : ["layers", "--image", notes, "--out", output, "--weights", _weights, "--size", "24"];
            var (code, _, err) = Gpustyle([.. args, "--device", "cuda:7"]);
            Assert.Equal(2, code);
            Assert.Contains("no ILGPU device 'cuda:7'", err);
            Assert.DoesNotContain("notes.jpg", err);
            (code, _, err) = Gpustyle([.. args, "--device", "cpu"]);
            Assert.Equal(2, code);
            Assert.Contains("notes.jpg: the content file is not an image", err);
            Assert.False(File.Exists(output));
        }
    }

    [Fact]
    public void A_run_too_large_for_memory_is_refused_with_a_size_that_then_runs()
    {
        // The CPU backend's memory is what .NET may allocate: here capped at 128 MB by the GC's hard limit, in a
        // process of its own. A 1500-px run is refused before it starts, naming the largest --size that fits; that
        // size then runs to the end under the same cap (the estimate holds what the run allocates).
        string output = Path.Combine(_dir, "big.png");
        (int, string) Run(string size) => GpustyleUnderCap("0x8000000",
            "transfer", "--content", _photo, "--style", _painting, "--out", output, "--weights", _weights, "--size", size,
            "--iterations", "2", "--device", "cpu", "--quiet");

        var (code, text) = Run("1500");
        Assert.True(code == 2, text);
        var fits = System.Text.RegularExpressions.Regex.Match(text, @"a 1500×1125 run needs about [0-9.]+ GB, more than cpu .* has \(0\.1 GB usable\); the largest --size that fits is (\d+)");
        Assert.True(fits.Success, text);
        Assert.False(File.Exists(output));
        int size = int.Parse(fits.Groups[1].Value);
        Assert.InRange(size, 256, 1499);

        (code, text) = Run(size.ToString());
        Assert.True(code == 0, text);
        using var image = Image.Load<Rgb24>(output);
        Assert.Equal(size, image.Width);
    }

    [Fact]
    public void A_run_whose_LBFGS_history_does_not_fit_is_told_a_history_that_then_runs()
    {
        // Under the same 128-MB cap, a 400-px run fits but for L-BFGS's 100 pairs of picture-sized vectors (≈ 1.4 MB
        // each here): the refusal names a shorter history at this size, and that history then runs under the cap.
        string output = Path.Combine(_dir, "long-history.png");
        (int, string) Run(string history) => GpustyleUnderCap("0x8000000",
            "transfer", "--content", _photo, "--style", _painting, "--out", output, "--weights", _weights, "--size", "400",
            "--history", history, "--iterations", "40", "--device", "cpu", "--quiet");

        var (code, text) = Run("100");
        Assert.True(code == 2, text);
        var fits = System.Text.RegularExpressions.Regex.Match(text,
            @"a 400×300 run needs about [0-9.]+ GB, .*; the largest --size that fits is \d+, or at this size --history (\d+) \(L-BFGS's history is 100 pairs");
        Assert.True(fits.Success, text);
        Assert.False(File.Exists(output));
        int history = int.Parse(fits.Groups[1].Value);
        Assert.InRange(history, 2, 60);

        (code, text) = Run(history.ToString());
        Assert.True(code == 0, text);
        using var image = Image.Load<Rgb24>(output);
        Assert.Equal(400, image.Width);
        // Adam keeps no history: its refusal names no --history.
        (code, text) = GpustyleUnderCap("0x8000000",
            "transfer", "--content", _photo, "--style", _painting, "--out", output + ".adam.png", "--weights", _weights, "--size", "1500",
            "--optimizer", "adam", "--iterations", "2", "--device", "cpu", "--quiet");
        Assert.True(code == 2, text);
        Assert.DoesNotContain("--history", text);
    }

    [Fact]
    public void A_run_with_feature_maps_past_the_tensor_limit_is_refused()
    {
        // 256 channels at 3 400 × 2 550 (padded as the convolutions pad it) is 2.24 billion values in one map: more than an
        // array holds, whatever the memory.
        string weights = Path.Combine(_dir, "block1.h5");
        FixtureWeights.Write(new FixtureSpec("vgg16", KerasLayout.Keras1, 1, [256, 8, 8, 8, 8], Seed: 3), weights);
        string output = Path.Combine(_dir, "huge.png");
        var (code, _, err) = Gpustyle("content", "--content", _photo, "--out", output, "--weights", weights, "--content-layers", "relu1_1",
            "--size", "3400", "--device", "cpu", "--quiet");
        Assert.Equal(2, code);
        Assert.Matches(@"a 3400×2550 run has feature maps of more than [0-9,]+ values, more than GpuStyle's tensors hold; the largest --size that fits is \d+", err);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void Help_lists_every_option_with_its_default()
    {
        var (code, output, _) = Gpustyle("transfer", "--help");
        Assert.Equal(0, code);
        foreach (var option in new[] { "--content", "--style", "--out", "--weights", "--size", "--iterations", "--optimizer",
            "--learning-rate", "--seed", "--content-weight", "--style-weight", "--tv-weight", "--style-blend", "--style-scale",
            "--content-layers", "--style-layers", "--pooling", "--init", "--device", "--save-every", "--log", "--quiet" })
            Assert.Contains(option, output);
        Assert.Contains("[default: 512]", output);
        Assert.Contains("[default: relu4_2]", output);
    }

    [Fact]
    public void Inspect_prints_the_layers_of_a_weights_file()
    {
        var (code, output, _) = Gpustyle("weights", "inspect", _weights);
        Assert.Equal(0, code);
        Assert.Contains("block5_conv3", output);
        Assert.Contains("official:     no", output);
        (code, _, string err) = Gpustyle("weights", "inspect", _dir);
        Assert.Equal(2, code);
        Assert.Contains($"{_dir}: is a folder, not a weights file", err);
    }

    [Fact]
    public void Bench_refuses_launch_shapes_it_cannot_use()
    {
        var (code, _, err) = Gpustyle(["bench", "--device", "ilgpu-cpu", "--conv", "blocked", "--launch", "TileSize=8", "--iteration-sizes", ""]);
        Assert.Equal(2, code);
        Assert.Contains("BlockedWidth", err);
        (code, _, err) = Gpustyle(["bench", "--device", "cpu", "--launch", "BlockedWidth=64"]);
        Assert.Equal(2, code);
        Assert.Contains("CPU backend", err);
        // The CPU backend runs the direct convolution or Winograd's, not the ILGPU kernels' versions.
        (code, _, err) = Gpustyle(["bench", "--device", "cpu", "--conv", "tiled", "--iteration-sizes", ""]);
        Assert.Equal(2, code);
        Assert.Contains("direct or winograd", err);
        (code, _, err) = Gpustyle(["bench", "--device", "ilgpu-cpu", "--conv", "winograd", "--launch", "WinogradM=24", "--iteration-sizes", ""]);
        Assert.Equal(2, code);
        Assert.Contains("WinogradM and WinogradN multiples of 16", err);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-3")]
    public void Bench_refuses_fewer_than_one_iteration(string count)
    {
        // 0 printed an iteration of 1.8e308 s (the fastest of none), -3 an internal error.
        var (code, _, err) = Gpustyle(["bench", "--device", "cpu", "--size", "32", "--iteration-sizes", "32", "--iterations", count]);
        Assert.Equal(2, code);
        Assert.Contains($"--iterations must be at least 1, got {count}", err);
    }

    [Fact]
    public void Bench_refuses_sizes_too_large_for_memory_and_runs_the_one_it_names()
    {
        // Past the tensors' limit, in-process (these ended in an int overflow).
        var (code, _, err) = Gpustyle(["bench", "--device", "cpu", "--size", "100000", "--iteration-sizes", ""]);
        Assert.Equal(2, code);
        Assert.Contains("--size 100000: a 100000×100000 layer has feature maps of more than", err);
        (code, _, err) = Gpustyle(["bench", "--device", "cpu", "--size", "64", "--iteration-sizes", "64,30000"]);
        Assert.Equal(2, code);
        Assert.Contains("--iteration-sizes 30000: a 30000×30000 iteration has feature maps of more than", err);
        Assert.Contains("the largest --iteration-sizes that fits is", err);

        // Past the memory, with .NET's heap capped at 512 MB in a process of its own: the size the refusal names runs
        // its largest layer (relu1_2: 64 → 64 channels at full size) under the same cap.
        (int, string) Bench(params string[] args) =>
            GpustyleUnderCap("0x20000000", ["bench", "--device", "cpu", "--iteration-sizes", "", .. args]);
        var (refused, text) = Bench("--size", "2000");
        Assert.True(refused == 2, text);
        var fits = System.Text.RegularExpressions.Regex.Match(text, @"--size 2000: a 2000×2000 layer needs about [0-9.]+ GB, more than cpu .* has \(0\.4 GB usable\); the largest --size that fits is (\d+)");
        Assert.True(fits.Success, text);
        Assert.InRange(int.Parse(fits.Groups[1].Value), 128, 1999);
        var (ran, output) = Bench("--size", fits.Groups[1].Value, "--layer", "relu1_2");
        Assert.True(ran == 0, output);
        Assert.Contains("relu1_2", output);
    }

    [Fact]
    public void Bench_with_tuned_convolutions_prints_what_each_shape_chose()
    {
        // relu3_1 at 32 px: 128 → 256 channels on 8×8, forward and backward, on ILGPU's CPU accelerator.
        var (code, output, err) = Gpustyle(["bench", "--device", "ilgpu-cpu", "--conv", "tuned", "--size", "32", "--layer", "relu3_1", "--iteration-sizes", ""]);
        Assert.True(code == 0, err);
        Assert.Contains("tuned conv", output);
        Assert.Contains("kernels tuned on first use", output);
        Assert.Matches(@"128→256 8×8 forward: (blocked|F\(2×2\)|F\(4×4\)) \(blocked [0-9.]+ ms, F\(2×2\) [0-9.]+ ms, F\(4×4\) [0-9.]+ ms\)", output);
        Assert.Contains("256→128 8×8 backward: ", output);
        // Where the start went: the device, the kernels (no kernel cache off CUDA), the tuning.
        Assert.Matches(@"start: the device opened in [0-9.]+ s; [1-9][0-9]* kernels compiled and loaded in [0-9.]+ s; tuning [0-9.]+ s", output);
        // The same in --json, for the record a GPU run keeps.
        (code, output, err) = Gpustyle(["bench", "--device", "ilgpu-cpu", "--conv", "tuned", "--size", "32", "--layer", "relu3_1", "--iteration-sizes", "", "--json"]);
        Assert.True(code == 0, err);
        var tunings = System.Text.Json.JsonDocument.Parse(output).RootElement.GetProperty("tunings");
        Assert.Equal(2, tunings.GetArrayLength());
        var forward = tunings[0];
        Assert.Equal((128, 256, false), (forward.GetProperty("cin").GetInt32(), forward.GetProperty("cout").GetInt32(), forward.GetProperty("backward").GetBoolean()));
        Assert.Equal(["blocked", "F(2×2)", "F(4×4)"], forward.GetProperty("candidates").EnumerateArray().Select(c => c.GetProperty("plan").GetString()));
        Assert.All(forward.GetProperty("candidates").EnumerateArray(), c => Assert.True(c.GetProperty("ms").GetDouble() > 0 && c.GetProperty("agrees").GetBoolean()));
        var root = System.Text.Json.JsonDocument.Parse(output).RootElement;
        Assert.True(root.GetProperty("kernels").GetProperty("loaded").GetInt32() > 0);
        Assert.Equal(System.Text.Json.JsonValueKind.Null, root.GetProperty("kernels").GetProperty("cache_hits").ValueKind);   // CUDA only
        // Two shapes tuned, each candidate run four times: more than the sum of the candidates' best times.
        Assert.True(root.GetProperty("tuning_seconds").GetDouble() * 1e3 > tunings.EnumerateArray()
            .Sum(t => t.GetProperty("candidates").EnumerateArray().Sum(c => c.GetProperty("ms").GetDouble())), output);
        (code, _, err) = Gpustyle(["bench", "--device", "cpu", "--conv", "tuned", "--iteration-sizes", ""]);
        Assert.Equal(2, code);
        Assert.Contains("direct or winograd", err);
    }

    [Fact]
    public void The_CPU_backend_runs_Winograd_by_default_and_direct_when_asked()
    {
        using var byDefault = (GpuStyle.Engine.Cpu.CpuBackend)GpuStyle.Engine.Backends.Open("cpu", conv: null);
        using var direct = (GpuStyle.Engine.Cpu.CpuBackend)GpuStyle.Engine.Backends.Open("cpu", GpuStyle.Engine.Ilgpu.ConvKernel.Direct);
        using var scalar = (GpuStyle.Engine.Cpu.CpuBackend)GpuStyle.Engine.Backends.Open("cpu-scalar", conv: null);
        Assert.Equal(GpuStyle.Kernels.CpuSimdLevels.Best != GpuStyle.Kernels.CpuSimd.Scalar, byDefault.Winograd);
        Assert.Equal(GpuStyle.Kernels.CpuSimdLevels.Best, byDefault.Simd);
        Assert.False(direct.Winograd);
        Assert.False(scalar.Winograd);
        Assert.Null(byDefault.WinogradEdge);   // per map: Conv3x3.CpuWinograd.Edge
        using var f2 = (GpuStyle.Engine.Cpu.CpuBackend)GpuStyle.Engine.Backends.Open("cpu", conv: null, launch: "WinogradTile=2");
        Assert.Equal(2, f2.WinogradEdge);
        Assert.Throws<GpuStyle.Engine.Ilgpu.DeviceNotFoundException>(() => GpuStyle.Engine.Backends.Open("cpu", conv: null, launch: "WinogradTile=3"));
        // Simd= picks the kernels (the ARM64 ones on this machine too); cpu-scalar refuses wider ones.
        using var v128 = (GpuStyle.Engine.Cpu.CpuBackend)GpuStyle.Engine.Backends.Open("cpu", conv: null, launch: "Simd=vector128,WinogradTile=4");
        Assert.Equal(GpuStyle.Kernels.CpuSimdLevels.AtMost(GpuStyle.Kernels.CpuSimd.Vector128), v128.Simd);
        Assert.Equal(4, v128.WinogradEdge);
        using var scalarAsked = (GpuStyle.Engine.Cpu.CpuBackend)GpuStyle.Engine.Backends.Open("cpu", conv: null, launch: "simd=Scalar");
        Assert.Equal(GpuStyle.Kernels.CpuSimd.Scalar, scalarAsked.Simd);
        Assert.False(scalarAsked.Winograd);
        Assert.Throws<GpuStyle.Engine.Ilgpu.DeviceNotFoundException>(() => GpuStyle.Engine.Backends.Open("cpu", conv: null, launch: "Simd=avx512"));
        Assert.Throws<GpuStyle.Engine.Ilgpu.DeviceNotFoundException>(() => GpuStyle.Engine.Backends.Open("cpu", conv: null, launch: "Simd=1"));
        Assert.Throws<GpuStyle.Engine.Ilgpu.DeviceNotFoundException>(() => GpuStyle.Engine.Backends.Open("cpu-scalar", conv: null, launch: "Simd=vector128"));
    }
}
