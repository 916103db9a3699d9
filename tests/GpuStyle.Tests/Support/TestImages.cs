using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace GpuStyle.Tests.Support;

/// <summary>Small pictures for the command-line tests: smooth sine patterns in two channels, noise in the third (so
/// that content and style losses have something to match), in the format the file's extension names.</summary>
public static class TestImages
{
    public static string Write(string path, int w, int h, int seed)
    {
        var r = new Random(seed);
        using var image = new Image<Rgb24>(w, h);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                image[x, y] = new Rgb24((byte)(128 + 100 * Math.Sin(0.3 * x + seed)), (byte)(128 + 100 * Math.Cos(0.2 * y)), (byte)r.Next(256));
        image.Save(path);
        return path;
    }
}
