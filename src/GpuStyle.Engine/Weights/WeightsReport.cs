using System.Security.Cryptography;
using System.Text;

namespace GpuStyle.Engine.Weights;

/// <summary>What a weights file holds: for `gpustyle weights inspect` and weights-tools.</summary>
public sealed record WeightsReport(string Path, long Bytes, string Md5, string? OfficialName, VggWeights Weights)
{
    public static WeightsReport Describe(string path)
    {
        var weights = KerasWeightsReader.Read(path);
        string md5 = Md5Of(path);
        var official = OfficialWeights.All.FirstOrDefault(o => o.Md5 == md5);
        return new WeightsReport(path, new FileInfo(path).Length, md5, official?.FileName, weights);
    }

    public static string Md5Of(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexStringLower(MD5.HashData(s));
    }

    public string ToText()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"file:         {Path}");
        sb.AppendLine($"size:         {Bytes:N0} bytes");
        sb.AppendLine($"md5:          {Md5}");
        sb.AppendLine($"official:     {(OfficialName is null ? "no (not one of the official Keras files)" : $"yes, {OfficialName}")}");
        sb.AppendLine($"layout:       {Weights.Layout}");
        var blocks = Weights.Convs.Select(c => c.Block).Distinct().ToList();
        sb.AppendLine($"network:      {Weights.Architecture}, blocks {blocks.Min()}–{blocks.Max()}, {Weights.Convs.Count} conv layers");
        sb.AppendLine("layers:");
        foreach (var c in Weights.Convs)
            sb.AppendLine($"  {c.KerasName,-14} {c.TapName,-9} kernel (3,3,{c.InChannels},{c.OutChannels}) float32   bias ({c.OutChannels}) float32");
        return sb.ToString();
    }
}
