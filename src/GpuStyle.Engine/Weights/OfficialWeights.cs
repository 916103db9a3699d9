namespace GpuStyle.Engine.Weights;

/// <summary>The official Keras VGG files (no top) that `--weights vgg16|vgg19` fetches (DESIGN.md §5).</summary>
public sealed record OfficialWeights(string Name, string FileName, string Md5, long Bytes)
{
    public static readonly OfficialWeights Vgg16 = new("vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "6d6bbae143d832006294945121d1f1fc", 58_889_256);
    public static readonly OfficialWeights Vgg19 = new("vgg19", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "253f8cb515780f3b799900260a226db6", 80_134_624);
    public static IReadOnlyList<OfficialWeights> All { get; } = [Vgg16, Vgg19];

    public string Url => $"https://storage.googleapis.com/tensorflow/keras-applications/{Name}/{FileName}";

    public static OfficialWeights? ByName(string name) => All.FirstOrDefault(o => o.Name == name);
}
