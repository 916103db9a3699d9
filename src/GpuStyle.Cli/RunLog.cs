using System.Globalization;
using System.Text;
using GpuStyle.Engine.Pipelines;

namespace GpuStyle.Cli;

/// <summary>
/// The JSON-lines log: one object per iteration, iteration 0 the starting image, with the unweighted per-layer losses
/// (DESIGN.md §4). Written to a temporary file and renamed into place when the run ends, so the log too is whole or absent.
/// </summary>
public sealed class RunLog : IDisposable
{
    readonly string? _path, _tmp;
    readonly StreamWriter? _writer;

    public RunLog(string? path)
    {
        if (path is null) return;
        _path = Path.GetFullPath(path);
        _tmp = Path.Combine(Path.GetDirectoryName(_path)!, $".{Path.GetFileName(_path)}.{Environment.ProcessId}.tmp");
        _writer = new StreamWriter(_tmp, append: false, new UTF8Encoding(false));
    }

    public static string Line(IterationReport r, double seconds)
    {
        var sb = new StringBuilder();
        sb.Append("{\"iteration\":").Append(r.Iteration);
        sb.Append(",\"content\":{").AppendJoin(',', r.Content.Select(c => $"\"{c.Layer}\":{Num(c.Loss)}")).Append('}');
        sb.Append(",\"style\":{").AppendJoin(',', r.Style.Select(c => $"\"{c.Layer}\":{Num(c.Loss)}")).Append('}');
        sb.Append(",\"tv\":").Append(Num(r.TotalVariation));
        sb.Append(",\"total\":").Append(Num(r.Total));
        sb.Append(",\"evaluations\":").Append(r.Evaluations);
        sb.Append(",\"seconds\":").Append(seconds.ToString("0.000", CultureInfo.InvariantCulture));
        return sb.Append('}').ToString();
    }

    static string Num(float v) => float.IsFinite(v) ? v.ToString("R", CultureInfo.InvariantCulture) : "null";

    public void Write(IterationReport r, double seconds) => _writer?.WriteLine(Line(r, seconds));

    /// <summary>Puts the finished log in place.</summary>
    public void Complete()
    {
        if (_writer is null) return;
        _writer.Dispose();
        File.Move(_tmp!, _path!, overwrite: true);
    }

    public void Dispose()
    {
        _writer?.Dispose();
        if (_tmp is not null && File.Exists(_tmp)) File.Delete(_tmp);
    }
}
