using GpuStyle.Cli;
using GpuStyle.Tests.Support;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;

namespace GpuStyle.Tests;

/// <summary>
/// Loading pictures: a whole file of every format loads; a file cut off anywhere before its picture ends is refused
/// with a message (ImageSharp itself decodes a cut JPEG, BMP, GIF or WebP silently, filling the rest).
/// </summary>
public sealed class ImageFilesTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("gpustyle-images-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string WriteRandomImage(string extension, Random random, int w = 67, int h = 45)
    {
        using var image = new Image<Rgb24>(w, h);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                image[x, y] = new Rgb24((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256));
        string path = Path.Combine(_dir, $"whole.{extension}");
        image.Save(path);
        return path;
    }

    [Theory]
    [InlineData("jpg"), InlineData("png"), InlineData("bmp"), InlineData("gif"), InlineData("webp"), InlineData("tiff")]
    public void A_whole_file_loads_and_a_cut_one_is_refused(string extension)
    {
        var random = new Random();
        string whole = WriteRandomImage(extension, random);
        using (var image = ImageFiles.Load(whole, "content"))
            Assert.Equal((67, 45), (image.Width, image.Height));

        // A GIF's last byte is its trailer, after the (only) frame, and ImageSharp's TIFF ends with a byte that pads
        // its last value to an even offset: cuts end before them. Fresh cut points each run, and always one just
        // before the end, where a decoder is most likely to make up the last pixels. Every cut past the 16 bytes that
        // name the format is refused by our walk, before ImageSharp reads the header.
        var bytes = File.ReadAllBytes(whole);
        int last = extension is "gif" or "tiff" ? bytes.Length - 2 : bytes.Length - 1;
        foreach (int cut in new[] { last, 16 + random.Next(last - 16), 16 + random.Next(last - 16) })
        {
            string path = Path.Combine(_dir, $"cut.{extension}");
            File.WriteAllBytes(path, bytes[..cut]);
            var e = Assert.Throws<InputException>(() => ImageFiles.Load(path, "content"));
            Assert.Contains($"{path}: the content file is an incomplete", e.Message);
        }
    }

    [Theory]
    [InlineData("png"), InlineData("webp")]
    public void A_transparent_picture_is_laid_over_white(string extension)
    {
        // Opaque red, invisible red, invisible black, half-transparent blue: what a viewer shows over white, not the
        // colours the transparent pixels hold.
        string path = Path.Combine(_dir, $"alpha.{extension}");
        using (var image = new Image<Rgba32>(4, 1))
        {
            image[0, 0] = new Rgba32(255, 0, 0, 255); image[1, 0] = new Rgba32(255, 0, 0, 0);
            image[2, 0] = new Rgba32(0, 0, 0, 0); image[3, 0] = new Rgba32(0, 0, 255, 128);
            image.Save(path, extension == "png" ? new PngEncoder() : new WebpEncoder { FileFormat = WebpFileFormatType.Lossless });
        }
        using var loaded = ImageFiles.Load(path, "style");
        Assert.Equal(new Rgb24(255, 0, 0), loaded[0, 0]);
        Assert.Equal(new Rgb24(255, 255, 255), loaded[1, 0]);
        Assert.Equal(new Rgb24(255, 255, 255), loaded[2, 0]);
        Assert.Equal(new Rgb24(127, 127, 255), loaded[3, 0]);
    }

    [Theory]
    [InlineData("jpg"), InlineData("png"), InlineData("webp")]
    public void The_EXIF_orientation_is_applied(string extension)
    {
        // A 6×2 picture, left half black, right half white, marked "rotate 90° clockwise to display" (orientation 6):
        // it loads 2×6, black on top.
        string path = Path.Combine(_dir, $"rotated.{extension}");
        using (var image = new Image<Rgb24>(6, 2))
        {
            for (int y = 0; y < 2; y++)
                for (int x = 0; x < 6; x++)
                    image[x, y] = x < 3 ? new Rgb24(0, 0, 0) : new Rgb24(255, 255, 255);
            image.Metadata.ExifProfile = new SixLabors.ImageSharp.Metadata.Profiles.Exif.ExifProfile();
            image.Metadata.ExifProfile.SetValue(SixLabors.ImageSharp.Metadata.Profiles.Exif.ExifTag.Orientation, (ushort)6);
            image.Save(path, extension switch
            {
                "jpg" => new JpegEncoder { Quality = 100 },
                "png" => new PngEncoder(),
                _ => new WebpEncoder { FileFormat = WebpFileFormatType.Lossless },
            });
        }
        using var loaded = ImageFiles.Load(path, "content");
        Assert.Equal((2, 6), (loaded.Width, loaded.Height));
        Assert.True(loaded[0, 0].R < 60 && loaded[1, 5].R > 200, $"top-left {loaded[0, 0]}, bottom-right {loaded[1, 5]}");
    }

    [Fact]
    public void Bytes_after_a_JPEG_end_marker_do_not_matter()
    {
        string whole = WriteRandomImage("jpg", new Random());
        File.AppendAllText(whole, "trailing bytes some cameras and tools append");
        using var image = ImageFiles.Load(whole, "style");
        Assert.Equal(67, image.Width);
    }

    /// <summary>
    /// The JPEG walk on a hand-made marker sequence of what ImageSharp never writes: several scans (a progressive
    /// file), restart markers, stuffed bytes and fill bytes inside the entropy-coded data, a comment after a scan.
    /// </summary>
    [Fact]
    public void The_JPEG_walk_follows_scans_restarts_and_stuffed_bytes()
    {
        byte[] soi = [0xFF, 0xD8], eoi = [0xFF, 0xD9];
        byte[] app0 = [0xFF, 0xE0, 0x00, 0x06, 1, 2, 3, 4];
        byte[] sos = [0xFF, 0xDA, 0x00, 0x04, 9, 9];
        byte[] scan = [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56, 0xFF, 0xFF, 0x00, 0x78, 0xFF, 0xD0, 0x9A];
        byte[] comment = [0xFF, 0xFE, 0x00, 0x05, 0xFF, 0xD9, 0x00];     // an EOI inside a segment is not the end
        byte[] file = [.. soi, .. app0, .. sos, .. scan, .. comment, .. sos, .. scan, .. eoi];

        Assert.Null(Walk(file));
        for (int cut = 2; cut < file.Length; cut++)
            Assert.NotNull(Walk(file[..cut]));

        static string? Walk(byte[] bytes) => ImageCompleteness.FindTruncation(new MemoryStream(bytes), JpegFormat.Instance);
    }

    [SharedFileFact("images/tubingen.jpg")]
    public void A_real_photograph_is_whole() => RealFileIsWhole("images/tubingen.jpg");      // with a COM segment

    [SharedFileFact("images/skateboarding.jpg")]
    public void A_real_WebP_is_whole() => RealFileIsWhole("images/skateboarding.jpg");       // VP8X, named .jpg

    static void RealFileIsWhole(string relative)
    {
        string path = SharedData.File(relative)!;
        using var stream = File.OpenRead(path);
        var format = Image.DetectFormat(stream);
        stream.Position = 0;
        Assert.Null(ImageCompleteness.FindTruncation(stream, format));
        var bytes = File.ReadAllBytes(path);
        Assert.NotNull(ImageCompleteness.FindTruncation(new MemoryStream(bytes[..(bytes.Length * 9 / 10)]), format));
    }
}
