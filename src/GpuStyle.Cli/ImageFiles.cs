using System.Globalization;
using GpuStyle.Engine.Pipelines;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace GpuStyle.Cli;

/// <summary>
/// Image files in and out through ImageSharp 2.1.13: JPEG, PNG, BMP, GIF (first frame), WebP, TIFF; EXIF orientation
/// applied; transparent pictures laid over white. Sizes are checked from the header before any pixel is decoded (a
/// decompression bomb is refused, not decoded), and so is completeness (a file cut off before its picture ends is
/// refused, see <see cref="ImageCompleteness"/>). Outputs are PNG, or the format their extension names, written whole
/// under a temporary name and then renamed.
/// </summary>
public static class ImageFiles
{
    /// <summary>Larger than any photo a style transfer needs, small enough to decode safely (≈ 190 MB as RGB).</summary>
    public const long MaxPixels = 64L * 1024 * 1024;

    public static Image<Rgb24> Load(string path, string role)
    {
        if (Directory.Exists(path)) throw new InputException($"{path}: the {role} is a folder, not an image file");
        if (!File.Exists(path)) throw new InputException($"{path}: no such {role} file");
        if (new FileInfo(path).Length == 0) throw new InputException($"{path}: the {role} file is empty");
        try
        {
            string notAnImage = $"{path}: the {role} file is not an image GpuStyle can read (JPEG, PNG, BMP, GIF, WebP, TIFF)";
            using var file = File.OpenRead(path);
            var format = Image.DetectFormat(file);
            if (format is null) throw new InputException(notAnImage);
            // Completeness before the header's size: ImageSharp's Identify fails on some cut files with no clear word.
            file.Position = 0;
            if (ImageCompleteness.FindTruncation(file, format) is { } truncation)
                throw new InputException($"{path}: the {role} file is an incomplete {format.Name} image: {truncation}");
            file.Position = 0;
            var info = Image.Identify(file);
            if (info is null) throw new InputException(notAnImage);
            if ((long)info.Width * info.Height > MaxPixels)
                throw new InputException($"{path}: {info.Width}×{info.Height} is {(long)info.Width * info.Height / 1e6:0} megapixels, more than the {MaxPixels / 1e6:0} GpuStyle decodes");
            file.Position = 0;
            if (format is JpegFormat)                                        // no alpha channel in JPEG
            {
                var image = Image.Load<Rgb24>(file);
                image.Mutate(c => c.AutoOrient());
                return image;
            }
            using var rgba = Image.Load<Rgba32>(file);
            while (rgba.Frames.Count > 1) rgba.Frames.RemoveFrame(1);       // GIF, TIFF: the first frame
            rgba.Mutate(c => c.AutoOrient());                               // before OverWhite, which keeps no metadata
            return OverWhite(rgba);
        }
        catch (InputException) { throw; }
        catch (Exception e) when (e is UnknownImageFormatException or InvalidImageContentException or ImageFormatException or NotSupportedException)
        {
            throw new InputException($"{path}: the {role} file is not a readable image ({e.Message})");
        }
    }

    /// <summary>
    /// The picture laid over white, as a page or a viewer shows it. Converting to RGB alone would keep what transparent
    /// pixels happen to hold — often black, or colours an editor left there — and the network would paint those.
    /// </summary>
    static Image<Rgb24> OverWhite(Image<Rgba32> rgba)
    {
        var rgb = new Image<Rgb24>(rgba.Width, rgba.Height);
        rgba.ProcessPixelRows(rgb, (from, to) =>
        {
            for (int y = 0; y < from.Height; y++)
            {
                var source = from.GetRowSpan(y);
                var target = to.GetRowSpan(y);
                for (int x = 0; x < source.Length; x++)
                {
                    var p = source[x];
                    int a = p.A, white = 255 * (255 - a) + 127;
                    target[x] = new Rgb24((byte)((p.R * a + white) / 255), (byte)((p.G * a + white) / 255), (byte)((p.B * a + white) / 255));
                }
            }
        });
        return rgb;
    }

    /// <summary>A high-quality (Lanczos-3) resize so the longest side is `longest` (no-op when it already is). A picture
    /// that would be larger than <see cref="MaxPixels"/> is refused before anything is allocated, naming its cause (the
    /// option that asked for it) and role.</summary>
    public static void ResizeLongestSide(Image<Rgb24> image, double longest, string cause, string role)
    {
        double scale = longest / Math.Max(image.Width, image.Height);
        var (w, h) = CheckedSize(image.Width * scale, image.Height * scale, cause, role);
        if (w == image.Width && h == image.Height) return;
        image.Mutate(c => c.Resize(new ResizeOptions { Size = new Size(w, h), Sampler = KnownResamplers.Lanczos3, Mode = ResizeMode.Stretch }));
    }

    /// <summary>A picture's size rounded to whole pixels (at least 1 a side), refused past <see cref="MaxPixels"/> as an
    /// input of that size is: `--size 100000` used to reach ImageSharp's allocator or overflow an int and end in an
    /// internal error.</summary>
    public static (int W, int H) CheckedSize(double width, double height, string cause, string role)
    {
        double w = Math.Max(1, Math.Round(width)), h = Math.Max(1, Math.Round(height));
        if (!(w * h <= MaxPixels))
            throw new InputException($"{cause} makes the {role} {w:0}×{h:0} pixels ({w * h / 1e6:0} megapixels), more than the {MaxPixels / 1e6:0} GpuStyle works on");
        return ((int)w, (int)h);
    }

    public static void Resize(Image<Rgb24> image, int width, int height)
    {
        if (image.Width == width && image.Height == height) return;
        image.Mutate(c => c.Resize(new ResizeOptions { Size = new Size(width, height), Sampler = KnownResamplers.Lanczos3, Mode = ResizeMode.Stretch }));
    }

    public static Picture ToPicture(Image<Rgb24> image)
    {
        var rgb = new byte[3 * image.Width * image.Height];
        image.CopyPixelDataTo(rgb);
        return Picture.FromRgb(rgb, image.Height, image.Width);
    }

    public static Image<Rgb24> FromPicture(Picture p) => Image.LoadPixelData<Rgb24>(p.ToRgb(), p.Width, p.Height);

    /// <summary>
    /// The encoder an output's extension names: .png (lossless, as in the examples), .jpg/.jpeg (quality 95 rather
    /// than ImageSharp's default 75: the fine texture is the point of the picture), .bmp, .gif (256 colours), .webp,
    /// .tif/.tiff. Any other name is refused before a run starts, rather than writing PNG bytes under a name that says
    /// something else.
    /// </summary>
    public static IImageEncoder EncoderFor(string path)
    {
        string extension = Path.GetExtension(path).TrimStart('.');
        var format = extension.Length == 0 ? null : Configuration.Default.ImageFormatsManager.FindFormatByFileExtension(extension);
        if (format is null)
            throw new InputException($"{path}: cannot tell which image format to write from the name; end it in .png, .jpg, .jpeg, .bmp, .gif, .webp, .tif or .tiff");
        return format is JpegFormat ? new JpegEncoder { Quality = 95 } : Configuration.Default.ImageFormatsManager.FindEncoder(format);
    }

    /// <summary>Writes a picture whole or not at all, in the format its extension names (<see cref="EncoderFor"/>):
    /// to a temporary name in the same folder, then renamed over.</summary>
    public static void SaveAtomically(Image<Rgb24> image, string path)
    {
        var encoder = EncoderFor(path);
        string full = Path.GetFullPath(path);
        string tmp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        try
        {
            using (var s = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
                image.Save(s, encoder);
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    /// <summary>
    /// Checks, before a run starts, that the output can be written and overwrites no input: the folder exists and
    /// takes a new file, and the path is not one of the inputs.
    /// </summary>
    public static void CheckOutput(string output, IEnumerable<string> inputs)
    {
        string full = Path.GetFullPath(output);
        foreach (var input in inputs)
            if (SameFile.Check(full, Path.GetFullPath(input)))
                throw new InputException($"{output}: the output would overwrite the input {input}");
        if (Directory.Exists(full)) throw new InputException($"{output}: is a folder, not a file name");
        string dir = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(dir)) throw new InputException($"{output}: the folder {dir} does not exist");
        string probe = Path.Combine(dir, $".gpustyle-write-test-{Environment.ProcessId}");
        try
        {
            using (File.Create(probe)) { }
            File.Delete(probe);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new InputException($"{output}: the folder {dir} is not writable ({e.Message})");
        }
    }

    /// <summary>
    /// Checks, before a run starts, that no snapshot (<see cref="Snapshot"/>, every saveEvery iterations before the last)
    /// would be written over an input or the log: --content out-iter100.png --out out.png --save-every 100 replaced the
    /// photo at iteration 100. An input can only be a snapshot's name if it exists, so the names tried are the folder's
    /// files that fit the pattern (and the log's, which the run creates) rather than every snapshot the run could write.
    /// </summary>
    public static void CheckSnapshots(string output, int saveEvery, int iterations, IEnumerable<string> inputs, string? log)
    {
        if (saveEvery <= 0 || saveEvery >= iterations) return;
        string full = Path.GetFullPath(output), folder = Path.GetDirectoryName(full)!;
        string prefix = Path.GetFileNameWithoutExtension(full) + "-iter", extension = Path.GetExtension(full);
        var others = inputs.Append(log).OfType<string>().Select(i => (Name: i, Full: Path.GetFullPath(i))).ToList();
        var names = Directory.EnumerateFileSystemEntries(folder).Select(e => Path.GetFileName(e));
        if (log is not null) names = names.Append(Path.GetFileName(log));
        foreach (string name in names.Distinct())
        {
            // Matched ignoring case: a case-insensitive file system lists an input under its own spelling.
            if (name.Length <= prefix.Length + extension.Length || !name.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)
                || !name.EndsWith(extension, StringComparison.OrdinalIgnoreCase)
                || !int.TryParse(name.AsSpan(prefix.Length, name.Length - prefix.Length - extension.Length), NumberStyles.None,
                    CultureInfo.InvariantCulture, out int n) || n <= 0 || n % saveEvery != 0 || n >= iterations) continue;
            string snapshot = Snapshot(output, n);
            foreach (var other in others)
                if (SameFile.Check(Path.GetFullPath(snapshot), other.Full))
                    throw new InputException($"{snapshot}: --save-every {saveEvery} would write this snapshot over {other.Name}");
        }
    }

    /// <summary>"out.png", 50 → "out-iter50.png".</summary>
    public static string Snapshot(string output, int iteration) =>
        Path.Combine(Path.GetDirectoryName(output) ?? "", $"{Path.GetFileNameWithoutExtension(output)}-iter{iteration}{Path.GetExtension(output)}");
}
