namespace GpuStyle.Engine.Pipelines;

/// <summary>
/// An image as the network sees it: 3×H×W float32 in Keras's "caffe" preprocessing — BGR channel order, 0..255,
/// minus the ImageNet mean (B, G, R) = (103.939, 116.779, 123.68) (DESIGN.md §3).
/// </summary>
public sealed record Picture(Shape Shape, float[] Values)
{
    public static readonly float[] MeanBgr = [103.939f, 116.779f, 123.68f];

    public int Height => Shape.H;
    public int Width => Shape.W;

    /// <summary>From interleaved 8-bit RGB (row-major, 3 bytes a pixel).</summary>
    public static Picture FromRgb(ReadOnlySpan<byte> rgb, int height, int width)
    {
        if (rgb.Length != 3 * height * width) throw new ArgumentException($"{rgb.Length} bytes for a {width}×{height} RGB image");
        int plane = height * width;
        var v = new float[3 * plane];
        for (int p = 0; p < plane; p++)
            for (int c = 0; c < 3; c++)                      // c: BGR channel; source RGB index 2 − c
                v[c * plane + p] = rgb[3 * p + 2 - c] - MeanBgr[c];
        return new Picture(new Shape(3, height, width), v);
    }

    /// <summary>Back to interleaved 8-bit RGB: mean added, clamped to 0..255, rounded.</summary>
    public byte[] ToRgb()
    {
        int plane = Height * Width;
        var rgb = new byte[3 * plane];
        for (int p = 0; p < plane; p++)
            for (int c = 0; c < 3; c++)
                rgb[3 * p + 2 - c] = (byte)Math.Clamp(MathF.Round(Values[c * plane + p] + MeanBgr[c]), 0, 255);
        return rgb;
    }

    /// <summary>Gaussian noise around the mean image (a grey), σ in pixel units; the same seed, the same picture.</summary>
    public static Picture Noise(int height, int width, int seed, float sigma = 32f)
    {
        var random = new Random(seed);
        var v = new float[3 * height * width];
        for (int i = 0; i < v.Length; i++)
            v[i] = sigma * (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        return new Picture(new Shape(3, height, width), v);
    }
}
