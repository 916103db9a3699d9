using System.Diagnostics;
using GpuStyle.Kernels;

namespace GpuStyle.Engine.Ilgpu;

/// <summary>One way the fp32 ILGPU backend runs a convolution: its staged kernel (blocked; tiled with --conv tiled),
/// or Winograd with 2×2 or 4×4 output tiles.</summary>
public enum ConvAlgorithm { Staged, Winograd2, Winograd4 }

/// <summary>One candidate tried for a shape: its time (the fastest of three runs) and its relative L2 distance from
/// the staged kernel's output, and whether that distance let it be chosen.</summary>
public sealed record ConvTrial(ConvAlgorithm Algorithm, double Seconds, double Error, bool Agrees);

/// <summary>What --conv tuned chose for one convolution's shape and direction, and why.</summary>
public sealed record ConvTuning(int Cin, int Cout, int H, int W, bool Backward, ConvAlgorithm Chosen, IReadOnlyList<ConvTrial> Trials)
{
    public static string Describe(ConvAlgorithm a) => a switch
    {
        ConvAlgorithm.Winograd2 => "F(2×2)",
        ConvAlgorithm.Winograd4 => "F(4×4)",
        _ => "blocked",
    };

    public override string ToString() =>
        $"{Cin}→{Cout} {H}×{W} {(Backward ? "backward" : "forward")}: {Describe(Chosen)} ("
        + string.Join(", ", Trials.Select(t => $"{Describe(t.Algorithm)} {t.Seconds * 1e3:0.###} ms"
            + (t.Agrees ? "" : $", {t.Error:0.#e+0} off: refused"))) + ")";
}

public sealed partial class IlgpuBackend
{
    /// <summary>A candidate whose output is further than this (relative L2) from the staged kernel's is never chosen:
    /// fp32 Winograd is ~1e-6 off; a kernel that computes wrongly on some device is far more.</summary>
    public const double TuningTolerance = 1e-3;

    readonly Dictionary<(int Cin, int Cout, int H, int W, bool Backward), ConvTuning> _tunings = [];

    /// <summary>The choices --conv tuned has made so far, in the order the shapes were first met.</summary>
    public IReadOnlyList<ConvTuning> Tunings => [.. _tunings.Values];

    /// <summary>For tests: the seconds a trial "took", in place of running and timing it (the candidate's output is
    /// still computed and compared).</summary>
    public Func<ConvDims, bool, ConvAlgorithm, double>? TuningClock { get; set; }

    /// <summary>For tests: called on the output after each candidate's first run, before it is compared — to stand for a
    /// kernel that computes wrongly on some device.</summary>
    public Action<ConvAlgorithm, Tensor>? AfterTrialRun { get; set; }

    /// <summary>How this backend runs an fp32 convolution of these dimensions (for the backward, d is the forward it
    /// stands for): fixed by --conv, or with --conv tuned the fastest candidate that agrees with the staged kernel,
    /// found the first time this shape and direction are met (<paramref name="run"/> computes <paramref name="output"/>
    /// by a candidate; the caller then runs the choice, so the output is its result even where the last candidate
    /// tried was refused).</summary>
    ConvAlgorithm AlgorithmFor(ConvDims d, bool backward, Tensor output, Action<ConvAlgorithm> run)
    {
        bool winogradApplies = Conv3x3.CpuWinograd.MinChannels <= Math.Min(d.Cin, d.Cout);
        if (_launch.Conv == ConvKernel.Winograd && winogradApplies)
            return _launch.WinogradTile == 4 ? ConvAlgorithm.Winograd4 : ConvAlgorithm.Winograd2;
        if (_launch.Conv != ConvKernel.Tuned || !winogradApplies) return ConvAlgorithm.Staged;
        var key = (d.Cin, d.Cout, d.H, d.W, backward);
        if (!_tunings.TryGetValue(key, out var tuning))
            _tunings[key] = tuning = Tune(d, backward, output, run);
        return tuning.Chosen;
    }

    /// <summary>Runs every candidate: the staged kernel first (the reference: its output is kept), then each Winograd
    /// variant, compared on the device with the reference (two norms read back); each timed as the fastest of three
    /// synchronised runs after a first, untimed one (which compiles the SGEMM block it needs). Chooses the fastest
    /// that agrees.</summary>
    ConvTuning Tune(ConvDims d, bool backward, Tensor output, Action<ConvAlgorithm> run)
    {
        var trials = new List<ConvTrial>();
        using var reference = Allocate(output.Shape);
        using var difference = Allocate(output.Shape);
        using var norms = Allocate(Shape.Vector(2));
        float referenceNorm = 0;
        foreach (var algorithm in Enum.GetValues<ConvAlgorithm>())
        {
            run(algorithm);
            double error = 0;
            if (algorithm == ConvAlgorithm.Staged)
            {
                Copy(output, reference);
                Norm(reference, norms, 0);
                referenceNorm = ReadScalar(norms, 0);
            }
            else
            {
                AfterTrialRun?.Invoke(algorithm, output);
                Subtract(output, reference, difference);
                Norm(difference, norms, 1);
                float distance = ReadScalar(norms, 1);
                error = referenceNorm > 0 ? distance / referenceNorm : distance;
            }
            double seconds = TuningClock?.Invoke(d, backward, algorithm) ?? TimeTrial(() => run(algorithm));
            trials.Add(new ConvTrial(algorithm, seconds, error, error <= TuningTolerance));
        }
        var chosen = trials.Where(t => t.Agrees).MinBy(t => t.Seconds)!.Algorithm;   // the staged one always agrees
        return new ConvTuning(d.Cin, d.Cout, d.H, d.W, backward, chosen, trials);
    }

    /// <summary>The fastest of three runs, each waited for: launches queue asynchronously, so the stream is drained
    /// before the clock starts and after each run.</summary>
    double TimeTrial(Action run)
    {
        Accelerator.Synchronize();
        double best = double.MaxValue;
        for (int i = 0; i < 3; i++)
        {
            long start = Stopwatch.GetTimestamp();
            run();
            Accelerator.Synchronize();
            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
        return best;
    }
}
