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

    /// <summary>Luminance weights of Rec. 601 (YIQ's Y) for the BGR channels.</summary>
    static readonly float[] LumaBgr = [0.114f, 0.587f, 0.299f];

    /// <summary>
    /// This picture's luminance with the colours of another of the same size: "preserving colour" by luminance-only
    /// transfer (Gatys et al., 2016). In YIQ, Y = 0.299 R + 0.587 G + 0.114 B, and I and Q weigh the channels with
    /// coefficients that sum to zero, so adding the same amount to R, G and B changes Y alone. Each pixel is therefore
    /// the colour picture's, shifted on all three channels by the difference of the two luminances: Y from this
    /// picture, I and Q from the other. The means cancel in the difference, so it works on preprocessed values.
    /// </summary>
    public Picture WithColorsOf(Picture colors)
    {
        if (colors.Shape != Shape) throw new ArgumentException($"colours from a {colors.Width}×{colors.Height} picture for a {Width}×{Height} one");
        int plane = Height * Width;
        var v = new float[Values.Length];
        for (int p = 0; p < plane; p++)
        {
            float shift = 0f;
            for (int c = 0; c < 3; c++) shift += LumaBgr[c] * (Values[c * plane + p] - colors.Values[c * plane + p]);
            for (int c = 0; c < 3; c++) v[c * plane + p] = colors.Values[c * plane + p] + shift;
        }
        return new Picture(Shape, v);
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
