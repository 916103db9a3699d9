using GpuStyle.Engine;
using GpuStyle.Engine.Ilgpu;
using GpuStyle.Kernels;
using GpuStyle.Tests.Support;

namespace GpuStyle.Tests;

/// <summary>
/// The tuning cache (TuningCache: the tuning's choices kept between runs of the style commands on a CUDA card). On the
/// CPU accelerator, with a cache given by hand and clocks that say which candidate is fastest: a later run takes the
/// kept choices without timing anything and computes what the reference computes; a choice made among other
/// candidates, in another scope, or in a file that does not read back whole is tuned afresh; two runs' choices merge;
/// a cache that cannot be written says so and the run goes on.
/// </summary>
public sealed class TuningCacheTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), $"gpustyle-tuning-cache-{Guid.NewGuid():N}");
    string CacheFile => Path.Combine(_dir, "tunings", "choices.txt");
    const string Scope = "a test card, driver 1; the tiny launch options";

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
        else if (File.Exists(_dir)) File.Delete(_dir);
    }

    static IlgpuBackend Tuned(TuningCache? cache)
    {
        var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny with { Conv = ConvKernel.Tuned }, CpuSimulation.Small);
        b.TuningCache = cache;
        return b;
    }

    /// <summary>A clock under which the forward's candidate <paramref name="forward"/> and the backward's
    /// <paramref name="backward"/> are fastest, counting its calls.</summary>
    sealed class Clock(ConvAlgorithm forward, ConvAlgorithm backward)
    {
        public int Calls;
        public double Time(ConvDims d, bool isBackward, ConvPlan p)
        {
            Calls++;
            return p.Algorithm == (isBackward ? backward : forward) ? 1e-3 : 2e-3;
        }
    }

    [Fact]
    public void A_later_run_takes_the_kept_choices_without_tuning_and_adds_new_shapes()
    {
        using (var first = Tuned(new TuningCache(CacheFile, Scope)))
        {
            var clock = new Clock(ConvAlgorithm.Winograd4, ConvAlgorithm.Winograd2);
            first.TuningClock = clock.Time;
            ConvChecks.ForwardAndBackwardMatch(first, 19, 7, 1e-4, "first run, tuned", 33, 13, 11);
            Assert.Equal(6, clock.Calls);
            Assert.Equal((0, 2), (first.TuningCache!.Hits, first.TuningCache.Recorded));
            Assert.Null(first.TuningCache.Note);
            Assert.Equal(2, first.Tunings.Count);
        }
        Assert.True(File.Exists(CacheFile));
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(CacheFile)!, "*.tmp"));

        // A run whose clock would choose the blocked kernel: it must not be asked, and the kept choices run (and still
        // compute what the float64 reference computes).
        using var later = Tuned(new TuningCache(CacheFile, Scope));
        var blockedClock = new Clock(ConvAlgorithm.Staged, ConvAlgorithm.Staged);
        later.TuningClock = blockedClock.Time;
        ConvChecks.ForwardAndBackwardMatch(later, 19, 8, 1e-4, "later run, kept choices", 33, 13, 11);
        Assert.Equal(0, blockedClock.Calls);
        Assert.Empty(later.Tunings);
        Assert.Equal(2, later.TuningCache!.Hits);
        Assert.Equal(ConvAlgorithm.Winograd4, later.PlanOf(19, 33, 13, 11, backward: false)?.Algorithm);
        Assert.Equal(ConvAlgorithm.Winograd2, later.PlanOf(33, 19, 13, 11, backward: true)?.Algorithm);

        // Another map size is tuned, and kept beside the first run's choices.
        ConvChecks.ForwardAndBackwardMatch(later, 19, 9, 1e-4, "later run, another size", 33, 6, 9);
        Assert.Equal(6, blockedClock.Calls);
        Assert.Equal(ConvAlgorithm.Staged, later.PlanOf(19, 33, 6, 9, backward: false)?.Algorithm);
        var third = new TuningCache(CacheFile, Scope);
        string[] fp32 = [.. new[] { ConvAlgorithm.Staged, ConvAlgorithm.Winograd2, ConvAlgorithm.Winograd4 }.Select(a => new ConvPlan(a).ToString())];
        Assert.Equal(2, third.Lookup("conv 19→33 13×11 forward", fp32));
        Assert.Equal(1, third.Lookup("conv 33→19 13×11 backward", fp32));
        Assert.Equal(0, third.Lookup("conv 19→33 6×9 forward", fp32));
        Assert.Equal(0, third.Lookup("conv 33→19 6×9 backward", fp32));
    }

    [Theory]
    [InlineData(GramAlgorithm.Sgemm)]
    [InlineData(GramAlgorithm.Blocked)]
    public void The_gram_backwards_choice_is_kept_too(GramAlgorithm fastest)
    {
        int calls = 0;
        using (var first = Tuned(new TuningCache(CacheFile, Scope)))
        {
            first.GramTuningClock = (_, _, a) => { calls++; return a.Algorithm == fastest ? 1e-3 : 2e-3; };
            ConvChecks.GramBackwardMatches(first, 32, 80, "first run, tuned");
            Assert.Equal(2, calls);
        }
        using var later = Tuned(new TuningCache(CacheFile, Scope));
        later.GramTuningClock = (_, _, a) => { calls++; return a.Algorithm == fastest ? 2e-3 : 1e-3; };   // would choose the other
        ConvChecks.GramBackwardMatches(later, 32, 80, "later run, the kept choice");   // accumulates once, as tuned
        Assert.Equal(2, calls);
        Assert.Empty(later.GramTunings);
        Assert.Equal(new GramPlan(fastest), later.GramPlanOf(32, 80));
    }

    [Fact]
    public void The_gram_forwards_choice_is_kept_too()
    {
        const int c = 20, n = 600;   // GramGrid: 9 splits; tuned over 9, 4 and 2
        var fd = new TestData(Environment.TickCount).UniformF32(c * n);
        int calls = 0;
        IlgpuBackend Open(Func<GramForwardPlan, double> clock)
        {
            var b = IlgpuBackend.Open("ilgpu-cpu", IlgpuLaunchOptions.Tiny with { Conv = ConvKernel.Tuned, GramSplits = 0 }, CpuSimulation.Small);
            b.TuningCache = new TuningCache(CacheFile, Scope);
            b.GramForwardTuningClock = (_, _, p) => { calls++; return clock(p); };
            ConvChecks.GramForwardMatches(b, fd, Gram.Reference.Forward(fd, c, n), c, n, "Gram forward");
            return b;
        }
        using (var first = Open(p => p.Splits == 4 ? 1e-3 : 2e-3))
            Assert.Equal(3, calls);
        using var later = Open(p => p.Splits == 4 ? 2e-3 : 1e-3);   // would choose another
        Assert.Equal(3, calls);
        Assert.Empty(later.GramForwardTunings);
        Assert.Equal(new GramForwardPlan(GramForwardAlgorithm.Staged, 4), later.GramForwardPlanOf(c, n));
    }

    [Fact]
    public void A_choice_among_other_candidates_or_in_another_scope_is_not_taken()
    {
        var cache = new TuningCache(CacheFile, Scope);
        cache.Record("conv 64→64 32×32 forward", ["blocked", "F(2×2)", "F(4×4)"], 2);
        Assert.Equal(2, new TuningCache(CacheFile, Scope).Lookup("conv 64→64 32×32 forward", ["blocked", "F(2×2)", "F(4×4)"]));
        // Other candidates (another kernel added or left out): tuned afresh.
        Assert.Null(new TuningCache(CacheFile, Scope).Lookup("conv 64→64 32×32 forward", ["blocked", "F(2×2)"]));
        Assert.Null(new TuningCache(CacheFile, Scope).Lookup("conv 64→64 32×32 forward", ["blocked", "F(4×4)", "F(2×2)"]));
        Assert.Null(new TuningCache(CacheFile, Scope).Lookup("conv 64→64 32×32 backward", ["blocked", "F(2×2)", "F(4×4)"]));
        // Another card, driver or set of launch options, in the same file: nothing is read, and its own choice replaces
        // the file.
        var other = new TuningCache(CacheFile, Scope + ", MmaTune=0");
        Assert.Null(other.Lookup("conv 64→64 32×32 forward", ["blocked", "F(2×2)", "F(4×4)"]));
        other.Record("conv 64→64 32×32 forward", ["blocked", "F(2×2)", "F(4×4)"], 1);
        Assert.Equal(1, new TuningCache(CacheFile, Scope + ", MmaTune=0").Lookup("conv 64→64 32×32 forward", ["blocked", "F(2×2)", "F(4×4)"]));
        Assert.Null(new TuningCache(CacheFile, Scope).Lookup("conv 64→64 32×32 forward", ["blocked", "F(2×2)", "F(4×4)"]));
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Record("conv 1→1 1×1 forward", ["blocked", "F(2×2)"], 2));
    }

    [Fact]
    public void A_file_that_does_not_read_back_whole_is_tuned_afresh_and_replaced()
    {
        string[] plans = ["blocked", "F(2×2)", "F(4×4)"];
        new TuningCache(CacheFile, Scope).Record("conv 8→8 8×8 forward", plans, 1);
        string whole = File.ReadAllText(CacheFile);
        Assert.EndsWith("\nend\n", whole);
        foreach (var damaged in new[]
        {
            whole[..^4],                                                  // cut short: no last line
            whole[..(whole.Length / 2)],                                  // cut in the middle of a line
            whole.Replace("\t1\n", "\t3\n"),                              // a choice past the candidates
            whole.Replace("\t1\n", "\t-1\n"),
            whole.Replace("\t1\n", "\tone\n"),
            whole.Replace("\t1\n", "\n"),                                 // a line without its choice
            whole.Replace("gpustyle tuning cache 1", "gpustyle tuning cache 0"),   // another format
            whole.Replace("\nend\n", "\nconv 8→8 8×8 forward\t" + string.Join(" | ", plans) + "\t2\nend\n"),   // a shape twice
            "",
        })
        {
            File.WriteAllText(CacheFile, damaged);
            var cache = new TuningCache(CacheFile, Scope);
            Assert.Null(cache.Lookup("conv 8→8 8×8 forward", plans));
            cache.Record("conv 8→8 8×8 forward", plans, 2);
            Assert.Equal(2, new TuningCache(CacheFile, Scope).Lookup("conv 8→8 8×8 forward", plans));
            new TuningCache(CacheFile, Scope).Record("conv 8→8 8×8 forward", plans, 1);
            Assert.Equal(whole, File.ReadAllText(CacheFile));
        }
    }

    [Fact]
    public void Two_runs_choices_are_merged()
    {
        string[] plans = ["blocked", "few outputs"];
        var one = new TuningCache(CacheFile, Scope);
        var two = new TuningCache(CacheFile, Scope);   // both read the file before either wrote
        one.Record("conv 64→3 16×16 backward", plans, 1);
        two.Record("conv 64→3 32×32 backward", plans, 0);
        var three = new TuningCache(CacheFile, Scope);
        Assert.Equal(1, three.Lookup("conv 64→3 16×16 backward", plans));
        Assert.Equal(0, three.Lookup("conv 64→3 32×32 backward", plans));
    }

    [Fact]
    public void A_cache_that_cannot_be_written_says_so_and_keeps_the_runs_choices()
    {
        File.WriteAllText(_dir, "a file where the cache's folder would be");
        using var b = Tuned(new TuningCache(CacheFile, Scope));
        var clock = new Clock(ConvAlgorithm.Winograd2, ConvAlgorithm.Winograd4);
        b.TuningClock = clock.Time;
        ConvChecks.ForwardAndBackwardMatch(b, 17, 3, 1e-4, "unwritable tuning cache", 21, 9, 10);
        Assert.Contains("cannot be written", b.TuningCache!.Note);
        Assert.Contains("GPUSTYLE_TUNING_CACHE", b.TuningCache.Note);
        Assert.Equal(2, b.TuningCache.Recorded);
        Assert.Equal(ConvAlgorithm.Winograd2, b.PlanOf(17, 21, 9, 10, backward: false)?.Algorithm);
        Assert.Equal(6, clock.Calls);
    }

    [Fact]
    public void Only_a_CUDA_card_keeps_its_tunings_and_GPUSTYLE_TUNING_CACHE_off_turns_it_off()
    {
        // The CPU accelerator (as OpenCL) tunes every run: no cache even where one is asked for.
        using var b = (IlgpuBackend)Backends.Open("ilgpu-cpu", ConvKernel.Tuned, rememberTunings: true);
        Assert.Null(b.TuningCache);
        Assert.Null(TuningCache.For(new KernelCache(_dir), b.Accelerator, IlgpuLaunchOptions.Tiny));
        string? before = Environment.GetEnvironmentVariable("GPUSTYLE_TUNING_CACHE");
        try
        {
            Environment.SetEnvironmentVariable("GPUSTYLE_TUNING_CACHE", "off");
            Assert.Null(TuningCache.For(new KernelCache(_dir), b.Accelerator, IlgpuLaunchOptions.Tiny));
        }
        finally { Environment.SetEnvironmentVariable("GPUSTYLE_TUNING_CACHE", before); }
        // A scope's file name is its hash: the same scope the same file, another another.
        Assert.Equal(TuningCache.FileNameOf(Scope), TuningCache.FileNameOf(Scope));
        Assert.NotEqual(TuningCache.FileNameOf(Scope), TuningCache.FileNameOf(Scope + " "));
    }
}
