using System.Diagnostics;
using GpuStyle.Kernels;

namespace GpuStyle.Engine.Ilgpu;

/// <summary>Which kernels the ILGPU backend runs a convolution with: its fp32 staged kernel (blocked; tiled with
/// --conv tiled), Winograd with 2×2 or 4×4 output tiles (fp32 GEMMs), Winograd F(2×2) with TF32 GEMMs, or the TF32
/// tensor-core kernel (version 4; version 5 with its operands in fragment order: Tf32Fragments, its tile's height in
/// the plan's Tile.TileHeight), or for at most 4 output channels a thread's 4 pixels of every output (FewOutputs) or
/// the blocked kernel at 4 channels × 8 pixels a thread (BlockedFewOutputs).</summary>
public enum ConvAlgorithm { Staged, Winograd2, Winograd4, Tf32, Winograd2Tf32, FewOutputs, Tf32Fragments, BlockedFewOutputs }

/// <summary>One way to run a convolution: the algorithm, for TF32 its tile, for Winograd with TF32 GEMMs the GEMM
/// block's warps a side (blocks of 32·GemmWarps), for version 5 of the TF32 kernel its warp shape
/// (Conv3x3.IlgpuMmaFragments.Narrow, Wide or Square).</summary>
public readonly record struct ConvPlan(ConvAlgorithm Algorithm, MmaTile Tile = default, int GemmWarps = 0, int WarpShape = 0, int Splits = 1)
{
    /// <summary>Whether version 5 copies its weights by cp.async a chunk ahead (MmaFragmentsAsync): its tile's
    /// prefetch level 2, as for version 4's asynchronous copies.</summary>
    public bool AsyncWeights => Algorithm == ConvAlgorithm.Tf32Fragments && Tile.Prefetch == 2;

    public override string ToString() => Algorithm switch
    {
        ConvAlgorithm.Winograd2 => "F(2×2)",
        ConvAlgorithm.Winograd4 => "F(4×4)",
        ConvAlgorithm.Winograd2Tf32 => $"F(2×2) TF32 {GemmWarps}×{GemmWarps} warps",
        ConvAlgorithm.Tf32 => $"TF32 {Tile.TileWidth}×{Tile.TileHeight}{Tile.Prefetch switch { 0 => "", 1 => " prefetch", _ => " async" }}",
        ConvAlgorithm.FewOutputs => "few outputs",
        ConvAlgorithm.BlockedFewOutputs => "blocked 4×8" + (Splits > 1 ? $" split {Splits}" : ""),
        ConvAlgorithm.Tf32Fragments => $"TF32 fragments 32×{Tile.TileHeight}{WarpShape switch { Conv3x3.IlgpuMmaFragments.Narrow => "", Conv3x3.IlgpuMmaFragments.Wide => " wide", _ => " 64×64 warps" }}"
            + (AsyncWeights ? " async" : "") + (Splits > 1 ? $" split {Splits}" : ""),
        _ => Splits > 1 ? $"blocked split {Splits}" : "blocked",
    };
}

/// <summary>How the ILGPU backend runs the Gram backward dF += S·F: version 3's blocked kernel (4×4 a thread), or
/// S = (dG + dGᵀ)/N made once and the fp32 SGEMM (8×8 a thread; where C and N are multiples of its blocks), or (under
/// --tf32 with the tensor-core Gram) version 4 on tensor cores, or version 5 (its operands in fragment order; where N
/// is a multiple of 4, a tuning candidate).</summary>
public enum GramAlgorithm { Blocked, Sgemm, Tf32, Tf32Fragments }

/// <summary>One way to run the Gram backward: the algorithm, and for the TF32 kernel the splits of its sum over the
/// channels (Gram.IlgpuTensorCore.BackwardAccumulate: partial products, then AddSplits).</summary>
public readonly record struct GramPlan(GramAlgorithm Algorithm, int Splits = 1)
{
    public override string ToString() => Splits > 1 ? $"{Algorithm} split {Splits}" : Algorithm.ToString();
}

/// <summary>Which kernel runs the Gram forward's partial sums: the fp32 staged kernel (versions 2–3), version 4 on
/// tensor cores (Gram.IlgpuTensorCore.ForwardPartial: stage a chunk, then its mma.sync), or version 4 with the next
/// chunk's loads in flight (ForwardPrefetch: 2×2 warps, N a multiple of 4).</summary>
public enum GramForwardAlgorithm { Staged, Tf32, Tf32Prefetch }

/// <summary>One way to run the Gram forward: the kernel, and the splits of its sum over the positions (a partial Gram
/// each, summed by the reduction).</summary>
public readonly record struct GramForwardPlan(GramForwardAlgorithm Algorithm, int Splits)
{
    public override string ToString() => $"{Algorithm} split {Splits}";
}

/// <summary>One candidate tried for a shape: its time (the fastest of three runs) and its relative L2 distance from
/// the first candidate's output, and whether that distance let it be chosen; or why it could not run (a kernel the
/// driver would not load or launch).</summary>
public sealed record Trial<TPlan>(TPlan Plan, double Seconds, double Error, bool Agrees, string? Failure = null)
{
    public override string ToString() => Failure is { } failure ? $"{Plan} failed: {failure}"
        : $"{Plan} {Seconds * 1e3:0.###} ms" + (Agrees ? "" : $", {Error:0.#e+0} off: refused");
}

/// <summary>What tuning chose for one convolution's shape and direction, and why.</summary>
public sealed record ConvTuning(int Cin, int Cout, int H, int W, bool Backward, ConvPlan Chosen, IReadOnlyList<Trial<ConvPlan>> Trials)
{
    public override string ToString() =>
        $"{Cin}→{Cout} {H}×{W} {(Backward ? "backward" : "forward")}: {Chosen} ({string.Join(", ", Trials)})";
}

/// <summary>What tuning chose for one Gram backward's shape (C channels, N positions), and why.</summary>
public sealed record GramTuning(int C, int N, GramPlan Chosen, IReadOnlyList<Trial<GramPlan>> Trials)
{
    public override string ToString() => $"gram backward {C}×{N}: {Chosen} ({string.Join(", ", Trials)})";
}

/// <summary>What tuning chose for one Gram forward's shape (C channels, N positions), and why.</summary>
public sealed record GramForwardTuning(int C, int N, GramForwardPlan Chosen, IReadOnlyList<Trial<GramForwardPlan>> Trials)
{
    public override string ToString() => $"gram forward {C}×{N}: {Chosen} ({string.Join(", ", Trials)})";
}

public sealed partial class IlgpuBackend
{
    /// <summary>A candidate whose output is further than this (relative L2) from the first candidate's is never
    /// chosen: fp32 Winograd is ~1e-6 off the blocked kernel, TF32 tiles sum in the same order as each other; a kernel
    /// that computes wrongly on some device is far more.</summary>
    public const double TuningTolerance = 1e-3;

    /// <summary>The same under --tf32, where Winograd's transforms meet TF32's rounding (F(2×2): 5–6e-4 of the largest
    /// output from float64, against the TF32 convolution's 2.4–3.0e-4): the TF32 bound of `bench --check`.</summary>
    public const double Tf32TuningTolerance = 5e-3;

    /// <summary>Why a candidate the options ask for is not tuned (a kernel that did not load), or null.</summary>
    public string? TuningNote { get; private set; }

    readonly Dictionary<(int Cin, int Cout, int H, int W, bool Backward), ConvTuning> _tunings = [];
    /// <summary>Each tunable shape's plan once known (tuned, or its only candidate), so that later calls look it up.</summary>
    readonly Dictionary<(int Cin, int Cout, int H, int W, bool Backward), ConvPlan> _plans = [];

    /// <summary>The choices --conv tuned (or MmaTune=1 under --tf32) has made so far, in the order the shapes were
    /// first met.</summary>
    public IReadOnlyList<ConvTuning> Tunings => [.. _tunings.Values];

    readonly Dictionary<(int C, int N), GramTuning> _gramTunings = [];
    /// <summary>The Gram backward's plan for each tunable shape once known (tuned, or read from the tuning cache).</summary>
    readonly Dictionary<(int C, int N), GramPlan> _gramPlans = [];

    readonly Dictionary<(int C, int N), GramForwardTuning> _gramForwardTunings = [];
    /// <summary>The Gram forward's plan for each tunable shape once known (tuned, or read from the tuning cache).</summary>
    readonly Dictionary<(int C, int N), GramForwardPlan> _gramForwardPlans = [];

    /// <summary>The Gram forward's choices (under --conv tuned, or MmaTune under --tf32), in the order the shapes were
    /// first met.</summary>
    public IReadOnlyList<GramForwardTuning> GramForwardTunings => [.. _gramForwardTunings.Values];

    /// <summary>The Gram forward's plan for C channels and N positions, where it is tuned, once known.</summary>
    public GramForwardPlan? GramForwardPlanOf(int c, int n) => _gramForwardPlans.TryGetValue((c, n), out var plan) ? plan : null;

    /// <summary>For tests: as <see cref="TuningClock"/>, for the Gram forward (C, N, candidate).</summary>
    public Func<int, int, GramForwardPlan, double>? GramForwardTuningClock { get; set; }

    /// <summary>The plan a convolution's shape and direction runs, once known (tuned, read from the tuning cache, or its
    /// only candidate); null before its first use, and for the kernels --conv fixes.</summary>
    public ConvPlan? PlanOf(int cin, int cout, int h, int w, bool backward) =>
        _plans.TryGetValue((cin, cout, h, w, backward), out var plan) ? plan : null;

    /// <summary>The same for the Gram backward of C channels and N positions, where it is tuned.</summary>
    public GramPlan? GramPlanOf(int c, int n) => _gramPlans.TryGetValue((c, n), out var plan) ? plan : null;

    /// <summary>Where the choices are kept between runs (<see cref="Ilgpu.TuningCache"/>): a shape found there is not
    /// tuned, and its choice is not among <see cref="Tunings"/> (which lists what this run timed). Null: every run
    /// tunes (`bench`, the tests, other accelerators than CUDA).</summary>
    public TuningCache? TuningCache { get; set; }

    /// <summary>The Gram backward's choices under --conv tuned, in the order the shapes were first met.</summary>
    public IReadOnlyList<GramTuning> GramTunings => [.. _gramTunings.Values];

    /// <summary>For tests: as <see cref="TuningClock"/>, for the Gram backward (C, N, candidate).</summary>
    public Func<int, int, GramPlan, double>? GramTuningClock { get; set; }

    /// <summary>For tests: the seconds a trial "took", in place of running and timing it (the candidate's output is
    /// still computed and compared).</summary>
    public Func<ConvDims, bool, ConvPlan, double>? TuningClock { get; set; }

    /// <summary>For tests: called on the output after each candidate's first run (the first candidate's aside), before
    /// it is compared — to stand for a kernel that computes wrongly, or (throwing) one that fails, on some device.</summary>
    public Action<ConvPlan, Tensor>? AfterTrialRun { get; set; }

    /// <summary>How this backend runs a convolution of these dimensions (for the backward, d is the forward it stands
    /// for), the direct kernel aside: fixed by --conv, or tuned — the fastest candidate that agrees with the first, found
    /// the first time this shape and direction are met (<paramref name="run"/> computes <paramref name="output"/> by a
    /// candidate; the caller then runs the choice, so the output is its result even where the last candidate tried
    /// was refused). Candidates: with --conv tuned the blocked kernel, F(2×2) and F(4×4); with --tf32 and MmaTune=1
    /// the configured TF32 tile and each lower one down to two warps of pixels (MmaTileCandidates; with MmaPrefetch,
    /// the same heights without prefetching too, so that the tuning says where prefetching pays), Winograd F(2×2)
    /// with TF32 GEMMs in the configured block (MmaGramWarps) and in one twice its side where that fits the device
    /// (Tf32GemmWarps), and fp32 F(2×2) and F(4×4) — no less accurate than TF32, so where one of them is faster it is
    /// what --tf32 should run. Both tunings time a convolution with at most 4 output channels (the backward to the
    /// colour channels) by the blocked kernel, the few-outputs one and the blocked kernel at 4 outputs × 8 pixels a thread
    /// (the blocked ones also split over the inputs). With MmaFragments, MmaTune tries version 5 of the
    /// TF32 kernel (fragment-ordered operands) too, at the configured height and each half down to 2 rows, in the warp
    /// shapes MmaFragments names (FragmentPlans), each also with its weights copied by cp.async a chunk ahead where
    /// MmaFragmentsAsync asks — and version 4 at its configured tile only.</summary>
    ConvPlan PlanFor(ConvDims d, bool backward, Tensor output, Action<ConvPlan> run)
    {
        bool winogradApplies = Conv3x3.CpuWinograd.MinChannels <= Math.Min(d.Cin, d.Cout);
        Func<IReadOnlyList<ConvPlan>> candidates;
        if (OnTensorCores(d))
        {
            if (_launch.MmaTune == 0)
                return _launch.MmaFragments != 0 ? FragmentsPlan(_launch.MmaTileHeight, UntunedShape(_launch), _launch.MmaFragmentsAsync != 0) : new(ConvAlgorithm.Tf32, TileFor(d));
            // With version 5 among the candidates, version 4 is tried at its configured tile only: its lower tiles lost
            // all 38 tunings on an H200 (2026-11-28), their general kernel cost ≈ 1 s of a start, and version 5
            // covers the lower heights with one compiled kernel.
            candidates = () => [.. MmaTuneTiles(_mma, _launch.MmaFragments != 0 ? _ => false : LaunchesOrFails).Select(t => new ConvPlan(ConvAlgorithm.Tf32, t)),
                .. _launch.MmaFragments != 0 ? FragmentPlansWithSplits(d) : [],
                .. _winogradMma is not null && winogradApplies ? Tf32GemmWarps().Select(w => new ConvPlan(ConvAlgorithm.Winograd2Tf32, GemmWarps: w)) : [],
                .. winogradApplies ? [new ConvPlan(ConvAlgorithm.Winograd2), new ConvPlan(ConvAlgorithm.Winograd4)] : Array.Empty<ConvPlan>()];
        }
        else if (_launch.Conv == ConvKernel.Winograd && winogradApplies)
            return _launch.WinogradMma != 0 ? new(ConvAlgorithm.Winograd2Tf32, GemmWarps: _launch.MmaGramWarps)
                : new(_launch.WinogradTile == 4 ? ConvAlgorithm.Winograd4 : ConvAlgorithm.Winograd2);
        else if (_launch.Conv == ConvKernel.Tuned && winogradApplies)
            candidates = () => [new(ConvAlgorithm.Staged), new(ConvAlgorithm.Winograd2), new(ConvAlgorithm.Winograd4)];
        else if (TunesFewOutputs(_launch) && d.Cout <= Conv3x3.IlgpuFewOutputs.MaxOutputs)
            candidates = () => [new(ConvAlgorithm.Staged), new(ConvAlgorithm.FewOutputs),
                .. BlockedSplitsOffered(d.Cin, _launch.BlockedChunk, _launch.BlockedSplits)
                    .Select(s => new ConvPlan(ConvAlgorithm.Staged, Splits: s)),
                new(ConvAlgorithm.BlockedFewOutputs),
                .. BlockedSplitsOffered(d.Cin, _launch.BlockedChunk, _launch.BlockedSplits)
                    .Select(s => new ConvPlan(ConvAlgorithm.BlockedFewOutputs, Splits: s))];
        else
            return new(ConvAlgorithm.Staged);
        var key = (d.Cin, d.Cout, d.H, d.W, backward);
        if (_plans.TryGetValue(key, out var plan)) return plan;
        return Choose(_plans, key, $"conv {d.Cin}→{d.Cout} {d.H}×{d.W} {(backward ? "backward" : "forward")}", candidates(),
            list => Tune(list, output, run, TuningClock is { } clock ? plan => clock(d, backward, plan) : null, AfterTrialRun,
                _launch.Conv == ConvKernel.Tf32 ? Tf32TuningTolerance : TuningTolerance),
            (chosen, trials) => _tunings[key] = new ConvTuning(d.Cin, d.Cout, d.H, d.W, backward, chosen, trials));
    }

    /// <summary>The steps every tuned choice takes once a shape's candidates are known (its plan not yet in
    /// <paramref name="plans"/>): a single candidate is taken as it is; a choice the tuning cache kept for the same
    /// candidates is taken untimed; otherwise <paramref name="tune"/> times them, <paramref name="keep"/> keeps its
    /// trials (for `bench` and the tests), and the cache records the choice under <paramref name="shape"/>.</summary>
    TPlan Choose<TKey, TPlan>(Dictionary<TKey, TPlan> plans, TKey key, string shape, IReadOnlyList<TPlan> candidates,
        Func<IReadOnlyList<TPlan>, (TPlan Chosen, List<Trial<TPlan>> Trials)> tune, Action<TPlan, List<Trial<TPlan>>> keep)
        where TKey : notnull where TPlan : struct
    {
        if (candidates.Count == 1) return plans[key] = candidates[0];
        var names = candidates.Select(p => p.ToString()!).ToList();
        if (TuningCache?.Lookup(shape, names) is { } known) return plans[key] = candidates[known];
        var (chosen, trials) = tune(candidates);
        keep(chosen, trials);
        TuningCache?.Record(shape, names, candidates.ToList().IndexOf(chosen));
        return plans[key] = chosen;
    }

    /// <summary>The blocked kernel's splits over the input channels the few-outputs tuning tries: 2, 4 … up to
    /// <paramref name="maxSplits"/>, while each split keeps at least one chunk of <paramref name="chunk"/> channels.</summary>
    public static IEnumerable<int> BlockedSplitsOffered(int cin, int chunk, int maxSplits)
    {
        int chunks = (cin + chunk - 1) / chunk;
        for (int s = 2; s <= maxSplits && s <= chunks; s *= 2)
            yield return s;
    }

    /// <summary>Version 5's plan for a tile of <paramref name="rows"/> rows (32 pixels wide, 64 channels) in a warp shape:
    /// 32-channel warps (the tile's WarpsCo 2), 64-channel ones or 64×64 warp tiles (WarpsCo 1); with
    /// <paramref name="asyncWeights"/>, the weights copied by cp.async a chunk ahead (the tile's prefetch level 2).</summary>
    ConvPlan FragmentsPlan(int rows, int shape, bool asyncWeights = false) => new(ConvAlgorithm.Tf32Fragments,
        new MmaTile(Conv3x3.IlgpuMmaFragments.TileWidth, rows, shape == Conv3x3.IlgpuMmaFragments.Narrow ? 2 : 1, Conv3x3.IlgpuMmaFragments.Chunk, _mma.Emulate != 0,
            prefetch: asyncWeights ? 2 : 0),
        WarpShape: shape);

    /// <summary>The TF32 tiles MmaTune tries: the configured one and each lower one that launches, and where the
    /// configured tile prefetches (MmaPrefetch 1 or 2), the same heights without prefetching too — so that the tuning
    /// times, per shape, whether prefetching pays.</summary>
    public static IEnumerable<MmaTile> MmaTuneTiles(MmaTile configured, Func<MmaTile, bool> launches) =>
        MmaTileCandidates(configured, launches)
            .Concat(configured.Prefetch != 0 ? MmaTileCandidates(configured with { Prefetch = 0 }, launches) : [])
            .Distinct();

    /// <summary>The TF32 Winograd GEMM's blocks MmaTune tries: the configured warps a side (MmaGramWarps), and twice
    /// as many where the group's threads and shared memory fit the device — 4×4 warps, 128-sided blocks, by default:
    /// each warp's work is the same 32×32, but a group stages its tiles for four times the outputs, so staging (≈ 160
    /// of the 282 instructions a chunk at 2×2 warps, in the sm_90 SASS) is halved per mma.</summary>
    IEnumerable<int> Tf32GemmWarps()
    {
        int w = _launch.MmaGramWarps;
        yield return w;
        if (Gram.IlgpuTensorCore.Threads(2 * w) <= Device.MaxThreadsPerGroup
            && 4L * Gram.IlgpuTensorCore.BackwardSharedFloats(2 * w, _mma.Emulate) <= Device.MaxSharedBytesPerGroup)
            yield return 2 * w;
    }

    /// <summary>Launches, for a tile candidate: a kernel the driver will not load is not a candidate.</summary>
    bool LaunchesOrFails(MmaTile t)
    {
        try
        {
            return Launches(t);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return false;
        }
    }

    /// <summary>How the Gram backward runs for this shape (d: C channels, N positions): the SGEMM where GramGemm asks
    /// for it; under --conv tuned, where the SGEMM's blocks fit, the faster of it and the blocked kernel, found the first
    /// time the shape is met; under --tf32 with the tensor-core Gram, the TF32 kernel, or with MmaTune, where the SGEMM
    /// fits, the faster of the two (on an H200, 2026-11-28, relu1_1's backward took 0.16 ms in TF32 and 0.12 by the
    /// SGEMM in the fp32 default), and where the TF32 grid is too small to give each SM two groups, the TF32 kernel
    /// split over the channels as version 5's convolution is (SplitsOffered, up to MmaSplits), and where N is a multiple
    /// of 4 version 5, its operands in fragment order (Gram.IlgpuTensorCore.BackwardFragments), whole and split likewise
    /// (MmaTune=0: version 4 alone, or version 5 with MmaGramFragments=1). dF is accumulated into,
    /// so each trial starts from a copy of dF as it was (<paramref name="run"/> computes dF += S·F; the caller runs the
    /// choice once more on the original dF).</summary>
    GramPlan GramPlanFor(int c, int n, bool sgemmFits, Tensor df, Action<GramPlan> run)
    {
        bool tf32 = _gramMmaBackward is not null;
        if (tf32 && _launch.MmaTune == 0)
            return new(_launch.MmaGramFragments != 0 && Gram.IlgpuTensorCore.FragmentsFit(n) ? GramAlgorithm.Tf32Fragments : GramAlgorithm.Tf32);
        if (!tf32 && !sgemmFits) return new(GramAlgorithm.Blocked);
        if (!tf32 && _launch.Conv != ConvKernel.Tuned) return new(_launch.GramGemm != 0 ? GramAlgorithm.Sgemm : GramAlgorithm.Blocked);
        if (_gramPlans.TryGetValue((c, n), out var kept)) return kept;
        GramPlan[] list = tf32
            ? [new(GramAlgorithm.Tf32), .. Tf32GramSplitsOffered(c, n, Gram.IlgpuTensorCore.Side(_launch.MmaGramWarps)).Select(s => new GramPlan(GramAlgorithm.Tf32, s)),
                .. Gram.IlgpuTensorCore.FragmentsFit(n) && Accelerator.MaxNumThreadsPerGroup >= Gram.IlgpuTensorCore.FragmentsThreads
                    ? [new GramPlan(GramAlgorithm.Tf32Fragments), .. Tf32GramSplitsOffered(c, n, Gram.IlgpuTensorCore.FragmentsSide).Select(s => new GramPlan(GramAlgorithm.Tf32Fragments, s))]
                    : Array.Empty<GramPlan>(),
                .. sgemmFits ? [new GramPlan(GramAlgorithm.Sgemm)] : Array.Empty<GramPlan>()]
            : [new(GramAlgorithm.Blocked), new(GramAlgorithm.Sgemm)];
        var clock = GramTuningClock;
        return Choose(_gramPlans, (c, n), $"gram backward {c}×{n}", list, candidates =>
        {
            using var original = Allocate(df.Shape);
            Copy(df, original);
            var tuned = Tune(candidates, df, plan =>
            {
                Copy(original, df);
                run(plan);
            }, clock is null ? null : plan => clock(c, n, plan), afterRun: null, tf32 ? Tf32TuningTolerance : TuningTolerance);
            Copy(original, df);
            return tuned;
        }, (chosen, trials) => _gramTunings[(c, n)] = new GramTuning(c, n, chosen, trials));
    }

    /// <summary>How the Gram forward runs C channels and N positions: fixed — the staged kernel in fp32, under --tf32
    /// version 4 (with MmaGramPrefetch=1 its loads in flight, where that kernel fits), at GramGrid's splits — or tuned
    /// (--conv tuned in fp32, MmaTune under --tf32), the first time the shape is met: each kernel (under --tf32 both
    /// version 4 kernels, where the prefetching one fits) at each of GramForwardSplitsOffered (GramSplits fixes them).
    /// Why tune: the prefetching kernel holds 106 registers against 63 (4 groups an SM instead of 8), expected to win on
    /// the deep layers and not at relu1_1 or relu2_1, and the splits trade filling the SMs against partial Grams to
    /// write and sum (at relu1_1, 512², 16 MB of them against F's 67 MB) — neither is known before a GPU times it.
    /// <paramref name="run"/> computes G by a candidate (the partials and their reduction); the caller runs the choice.</summary>
    GramForwardPlan GramForwardPlanFor(int c, int n, Tensor g, Action<GramForwardPlan> run)
    {
        bool tf32 = _gramMmaForward is not null;
        int side = GramForwardSide;
        var (tiles, splits) = GramGrid(c, n, side);
        var algorithm = !tf32 ? GramForwardAlgorithm.Staged
            : _launch.MmaGramPrefetch != 0 && GramPrefetchFits(n) ? GramForwardAlgorithm.Tf32Prefetch : GramForwardAlgorithm.Tf32;
        if (tf32 ? _launch.MmaTune == 0 : _launch.Conv != ConvKernel.Tuned) return new(algorithm, splits);
        if (_gramForwardPlans.TryGetValue((c, n), out var kept)) return kept;
        GramForwardAlgorithm[] algorithms = !tf32 ? [GramForwardAlgorithm.Staged]
            : GramPrefetchFits(n) ? [GramForwardAlgorithm.Tf32, GramForwardAlgorithm.Tf32Prefetch] : [GramForwardAlgorithm.Tf32];
        int[] splitsList = _launch.GramSplits > 0 ? [splits] : [.. GramForwardSplitsOffered(splits, tiles * (tiles + 1) / 2, n, side, Multiprocessors)];
        GramForwardPlan[] list = [.. algorithms.SelectMany(a => splitsList.Select(s => new GramForwardPlan(a, s)))];
        var clock = GramForwardTuningClock;
        return Choose(_gramForwardPlans, (c, n), $"gram forward {c}×{n}", list,
            candidates => Tune(candidates, g, run, clock is null ? null : plan => clock(c, n, plan), afterRun: null,
                tf32 ? Tf32TuningTolerance : TuningTolerance),
            (chosen, trials) => _gramForwardTunings[(c, n)] = new GramForwardTuning(c, n, chosen, trials));
    }

    /// <summary>The splits of its positions a Gram forward is tuned with: the default (<paramref name="defaultSplits"/>,
    /// GramGrid's: about 1 024 groups) first, as the tuning's reference; half and a quarter of it (fewer partial Grams
    /// to write and sum); and twice it where the active groups (<paramref name="activeTiles"/>, the tiles on or above
    /// the diagonal, each split) leave an SM without two and each slice keeps 2 tiles' <paramref name="side"/> of
    /// positions (relu5_1 at 512²: 36 tiles × 4 splits for 132 SMs).</summary>
    public static IEnumerable<int> GramForwardSplitsOffered(int defaultSplits, int activeTiles, int n, int side, long sms)
    {
        var offered = new List<int> { defaultSplits };
        foreach (int s in new[] { defaultSplits / 2, defaultSplits / 4 })
            if (s >= 1 && !offered.Contains(s)) offered.Add(s);
        int twice = 2 * defaultSplits;
        if ((long)activeTiles * defaultSplits < 2 * sms && n / twice >= 2 * side) offered.Add(twice);
        return offered;
    }

    /// <summary>Runs every candidate: the first is the reference (its output is kept), each other is compared with it
    /// on the device (two norms read back); each is timed as the fastest of three synchronised runs after a first,
    /// untimed one (which compiles what it needs: an SGEMM block, a TF32 entry point). A candidate other than the first
    /// that throws (a kernel the driver will not load or launch) is recorded as failed. Chooses the fastest that
    /// agrees. <paramref name="clock"/> (tests) stands in for the timing, <paramref name="afterRun"/> (tests) for a
    /// kernel that computes wrongly or fails.</summary>
    (TPlan Chosen, List<Trial<TPlan>> Trials) Tune<TPlan>(IReadOnlyList<TPlan> candidates, Tensor output, Action<TPlan> run,
        Func<TPlan, double>? clock, Action<TPlan, Tensor>? afterRun, double tolerance)
    {
        long started = Stopwatch.GetTimestamp();
        double loading = _loader.Seconds;
        try
        {
            return TryCandidates(candidates, output, run, clock, afterRun, tolerance);
        }
        finally
        {
            TuningSeconds += Stopwatch.GetElapsedTime(started).TotalSeconds - (_loader.Seconds - loading);
        }
    }

    /// <summary>Seconds spent tuning so far (running, checking and timing the candidates), the kernels' compile and
    /// load aside (<see cref="KernelLoader.Seconds"/>): a part of a run's start.</summary>
    public double TuningSeconds { get; private set; }

    (TPlan Chosen, List<Trial<TPlan>> Trials) TryCandidates<TPlan>(IReadOnlyList<TPlan> candidates, Tensor output, Action<TPlan> run,
        Func<TPlan, double>? clock, Action<TPlan, Tensor>? afterRun, double tolerance)
    {
        var trials = new List<Trial<TPlan>>();
        using var reference = Allocate(output.Shape);
        using var difference = Allocate(output.Shape);
        using var norms = Allocate(Shape.Vector(2));
        float referenceNorm = 0;
        for (int i = 0; i < candidates.Count; i++)
        {
            var plan = candidates[i];
            bool first = i == 0;
            try
            {
                run(plan);
                if (!first) afterRun?.Invoke(plan, output);
            }
            catch (Exception e) when (!first && e is not OutOfMemoryException)
            {
                trials.Add(new Trial<TPlan>(plan, double.NaN, double.NaN, Agrees: false, Failure: e.Message));
                continue;
            }
            double error = 0;
            if (first)
            {
                Copy(output, reference);
                Norm(reference, norms, 0);
                referenceNorm = ReadScalar(norms, 0);
            }
            else
            {
                Subtract(output, reference, difference);
                Norm(difference, norms, 1);
                float distance = ReadScalar(norms, 1);
                error = referenceNorm > 0 ? distance / referenceNorm : distance;
            }
            double seconds = clock?.Invoke(plan) ?? TimeTrial(() => run(plan));
            trials.Add(new Trial<TPlan>(plan, seconds, error, error <= tolerance));
        }
        return (trials.Where(t => t.Agrees).MinBy(t => t.Seconds)!.Plan, trials);   // the first always agrees
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
