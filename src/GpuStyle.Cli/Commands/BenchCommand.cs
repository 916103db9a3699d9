using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using GpuStyle.Engine;
using GpuStyle.Engine.Bench;
using GpuStyle.Engine.Ilgpu;
using GpuStyle.Engine.Network;
using GpuStyle.Engine.Pipelines;
using GpuStyle.Engine.Weights;

namespace GpuStyle.Cli.Commands;

/// <summary>gpustyle bench: the machine's FMA peak, every conv layer's GFLOP/s, whole iterations (DESIGN.md §6).</summary>
public static class BenchCommand
{
    public static Command Build()
    {
        var size = new Option<int>("--size") { Description = "image size for the per-layer table", DefaultValueFactory = _ => 512 };
        var device = DeviceOption.Create();
        var tf32 = DeviceOption.CreateTf32();
        var conv = DeviceOption.CreateConv();
        var launch = new Option<string?>("--launch") { Description = "ILGPU launch shapes, e.g. BlockedWidth=64,BlockedHeight=8,BlockedChunk=16 (to compare tiles in one run); on the CPU backend WinogradTile=2|4 and Simd=avx2|vector128|scalar" };
        var network = new Option<string>("--network") { Description = "vgg16 or vgg19", DefaultValueFactory = _ => "vgg16" };
        network.AcceptOnlyFromAmong("vgg16", "vgg19");
        var iterationSizes = new Option<string>("--iteration-sizes") { Description = "sizes of the whole-iteration timings (empty: none)", DefaultValueFactory = _ => "256,512" };
        var iterations = new Option<int>("--iterations") { Description = "timed L-BFGS iterations per size", DefaultValueFactory = _ => 3 };
        var layer = new Option<string?>("--layer") { Description = "only this layer in the per-layer table (e.g. relu3_2)" };
        var reference = new Option<bool>("--reference") { Description = "also time the scalar fallback on each layer (ours ÷ reference, same run)" };
        var json = new Option<bool>("--json") { Description = "print JSON instead of a table" };
        var profile = new Option<bool>("--profile") { Description = "time every op of whole iterations at --size, one by one, and the peak device memory" };
        var check = new Option<bool>("--check") { Description = "first run every op on the device and on the CPU backend and compare (exit 1 on disagreement)" };
        var command = new Command("bench", "Measure the FMA peak, each VGG layer's convolution and Gram speed, and whole iterations.")
            { size, device, tf32, conv, launch, network, iterationSizes, iterations, layer, reference, json, check, profile };
        command.SetAction(r =>
        {
            int n = r.GetValue(size);
            if (n < 32) throw new InputException($"--size must be at least 32 (VGG pools four times), got {n}");
            // 0 printed an iteration of 1.8e308 s (the fastest of none), a negative count an internal error.
            if (r.GetValue(iterations) < 1) throw new InputException($"--iterations must be at least 1, got {r.GetValue(iterations)}");
            var sizes = (r.GetValue(iterationSizes) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(s => int.TryParse(s, out int v) && v >= 32 ? v : throw new InputException($"--iteration-sizes: '{s}' is not a size ≥ 32")).ToList();
            var spec = Vgg.BuildSpec(Vgg.Random(r.GetValue(network)!));
            var variant = DeviceOption.Kernel(r.GetValue(tf32), r.GetValue(conv));
            using var backend = DeviceOption.Open(r.GetValue(device)!, variant, profiling: r.GetValue(profile), launch: r.GetValue(launch));
            // Every size is refused up front where what it times would not fit the device (or its maps would pass the
            // tensors' limit), as a run's is: a 20 000-px bench ended in an int overflow. --size times layer by layer,
            // or whole iterations with --profile; --iteration-sizes whole iterations.
            var defaults = new RunSettings();
            int depth = defaults.ContentLayers.Concat(defaults.StyleLayers).Max(spec.IndexOf) + 1;
            long budget = RunCommands.UsableMemory(backend);
            long Iteration(int side) => MemoryPlan.Estimate(spec, new Shape(3, side, side), new Shape(3, side, side), depth, defaults);
            long Layer(int side) => MemoryPlan.LayerEstimate(spec, side);
            var checks = sizes.Select(s => (Side: s, Option: "--iteration-sizes", What: "iteration", Need: (Func<int, long>)Iteration))
                .Prepend(r.GetValue(profile) ? (n, "--size", "iteration", Iteration) : (n, "--size", "layer", Layer));
            foreach (var (side, option, what, need) in checks)
                if (need(side) > budget)
                    throw new InputException(RunCommands.TooLarge($"{option} {side}: a {side}×{side} {what}", need(side), budget, backend.Name,
                        MemoryPlan.LargestFitting(need, budget, side), option));
            if (r.GetValue(check))
            {
                Console.WriteLine($"agreement with the CPU backend ({backend.Name}; error relative to each output's largest value):");
                var results = AgreementCheck.Run(backend);
                foreach (var a in results)
                    Console.WriteLine($"  {a.Op,-26} {a.Shape,-16} {a.RelativeError,9:0.0e0} ≤ {a.Bound:0e0}  {(a.Passed ? "ok" : "FAILED")}");
                if (results.Any(a => !a.Passed)) return 1;
                Console.WriteLine();
            }
            var peak = Benchmark.MeasurePeak();
            // On a GPU the rates are compared with the card's own fp32 FMA peak, measured the same way.
            var gpu = backend is IlgpuBackend { Device.Kind: not "ilgpu-cpu" } g ? g : null;
            double devicePeak = gpu?.MeasureFmaPeak() ?? peak.AllCoresGflops;
            string peakName = gpu is null ? $"this machine's measured CPU FMA peak, {devicePeak:0.0} GFLOP/s" : $"{gpu.Device.Name}'s measured fp32 FMA peak, {devicePeak:0} GFLOP/s";
            if (r.GetValue(profile))
            {
                var prof = Benchmark.Profile(backend, spec, n, new RunSettings(), r.GetValue(iterations));
                var (ops, perIteration) = (prof.Ops, prof.SecondsPerIteration);
                Console.WriteLine($"profile of one L-BFGS iteration at {n}×{n} on {backend.Name}; timed by {prof.Clock}");
                Console.WriteLine($"(%peak: of {peakName})");
                Console.WriteLine($"{"op",-36} {"calls",5} {"ms",9} {"share",6} {"GFLOP/s",8} {"%peak",6}");
                foreach (var o in ops)
                    Console.WriteLine($"{o.Op,-36} {o.Calls,5} {o.Seconds * 1e3,9:0.00} {100 * o.Seconds / perIteration,5:0.0}% " +
                        (o.Gflop > 0 ? $"{o.Gflops,8:0.0} {100 * o.Gflops / devicePeak,5:0}%" : ""));
                Console.WriteLine($"{"iteration",-36} {"",5} {perIteration * 1e3,9:0.00}   (wall clock; ops' sum {ops.Sum(o => o.Seconds) * 1e3:0.00} ms)");
                Console.WriteLine($"peak device memory (tensors and scratch): {prof.PeakBytes / 1e6:0} MB");
                Console.WriteLine($"host reads per iteration: {prof.HostReadsPerIteration:0.#} (each waits for the stream), {prof.HostFloatsPerIteration:0} floats");
                PrintTunings(backend);
                return 0;
            }
            var layers = Benchmark.Layers(backend, spec, n, r.GetValue(layer));
            if (r.GetValue(layer) is { } only && layers.Count == 0) spec.IndexOf(only);   // unknown: refuses, listing them
            var refs = new Dictionary<string, double>();
            if (r.GetValue(reference))
            {
                using var scalar = Backends.Open("cpu-scalar");
                foreach (var l in Benchmark.Layers(scalar, spec, n, r.GetValue(layer), minSeconds: 0.05)) refs[l.Layer] = l.ForwardSeconds;
            }
            var settings = new RunSettings();   // the default layers and weights
            var its = sizes.Select(s => Benchmark.Iteration(backend, spec, s, settings, r.GetValue(iterations))).ToList();
            long peakMemory = Process.GetCurrentProcess().PeakWorkingSet64;
            string machine = MachineName();
            if (r.GetValue(json))
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    date = DateTime.UtcNow.ToString("yyyy-MM-dd"), machine, backend = backend.Name, network = r.GetValue(network), size = n,
                    peak_gflops = new { one_core = peak.OneCoreGflops, all_cores = peak.AllCoresGflops, threads = peak.Threads },
                    device_peak_gflops = gpu is null ? (double?)null : devicePeak,
                    layers = layers.Select(l => new
                    {
                        l.Layer, cin = l.Cin, cout = l.Cout, h = l.H, w = l.W, gflop = l.ForwardGflop,
                        forward_gflops = l.ForwardGflops, backward_gflops = l.BackwardGflops,
                        gram_forward_gflops = l.GramForwardGflops, gram_backward_gflops = l.GramBackwardGflops,
                        reference_speedup = refs.TryGetValue(l.Layer, out var t) ? t / l.ForwardSeconds : (double?)null,
                    }),
                    iterations = its.Select(i => new { size = i.Size, gflop = i.Gflop, ms_per_iteration = i.SecondsPerIteration * 1e3, gflops = i.Gflops,
                        ms_per_iteration_full_history = i.SteadySeconds * 1e3 }),
                    peak_working_set_bytes = peakMemory,
                    device_memory_peak_bytes = backend.Memory.Peak,
                    kernels = (backend as IlgpuBackend)?.Kernels is { } k ? new
                    {
                        loaded = k.Loaded, seconds = k.Seconds, cache_hits = k.Cache?.Hits, cache_misses = k.Cache?.Misses, cache_note = k.Cache?.Note,
                    } : null,
                    device_open_seconds = (backend as IlgpuBackend)?.OpenSeconds,
                    tuning_seconds = (backend as IlgpuBackend)?.TuningSeconds,
                    gram_tunings = (backend as IlgpuBackend)?.GramTunings.Select(t => new
                    {
                        c = t.C, n = t.N, chosen = t.Chosen.ToString(),
                        candidates = Candidates(t.Trials),
                    }),
                    gram_forward_tunings = (backend as IlgpuBackend)?.GramForwardTunings.Select(t => new
                    {
                        c = t.C, n = t.N, chosen = t.Chosen.ToString(),
                        candidates = Candidates(t.Trials),
                    }),
                    tunings = (backend as IlgpuBackend)?.Tunings.Select(t => new
                    {
                        cin = t.Cin, cout = t.Cout, h = t.H, w = t.W, backward = t.Backward, chosen = t.Chosen.ToString(),
                        candidates = Candidates(t.Trials),
                    }),
                }, new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
            else
                Print(machine, backend, r.GetValue(network)!, n, peak, gpu is null ? null : devicePeak, layers, refs, its, peakMemory);
            return 0;
        });
        return command;
    }

    static void Print(string machine, IBackend backend, string network, int n, PeakResult peak, double? devicePeak, List<LayerResult> layers,
        Dictionary<string, double> refs, List<IterationResult> its, long peakMemory)
    {
        double p = devicePeak ?? peak.AllCoresGflops;
        Console.WriteLine($"GpuStyle bench — {DateTime.UtcNow:yyyy-MM-dd}, {machine}, {backend.Name}, {network} at {n}×{n}");
        Console.WriteLine($"FMA peak (measured): CPU 1 core {peak.OneCoreGflops:0.0} GFLOP/s, {peak.Threads} threads {peak.AllCoresGflops:0.0} GFLOP/s" +
            (devicePeak is { } d ? $"; device fp32 {d:0} GFLOP/s (the %peak columns)" : ""));
        Console.WriteLine();
        Console.WriteLine($"{"layer",-8} {"Cin",4} {"Cout",4} {"H×W",9} {"GFLOP",7} | {"conv fwd",8} {"%peak",5} | {"conv bwd",8} {"%peak",5} | {"gram fwd",8} {"gram bwd",8}{(refs.Count > 0 ? " | fwd ÷ scalar" : "")}");
        foreach (var l in layers)
            Console.WriteLine($"{l.Layer,-8} {l.Cin,4} {l.Cout,4} {$"{l.H}×{l.W}",9} {l.ForwardGflop,7:0.00} | {l.ForwardGflops,8:0.0} {100 * l.ForwardGflops / p,4:0}% | " +
                $"{l.BackwardGflops,8:0.0} {100 * l.BackwardGflops / p,4:0}% | {l.GramForwardGflops,8:0.0} {l.GramBackwardGflops,8:0.0}" +
                (refs.TryGetValue(l.Layer, out var t) ? $" | {t / l.ForwardSeconds,6:0.0}×" : ""));
        if (layers.Count > 0)
        {
            double fl = layers.Sum(l => l.ForwardGflop);
            Console.WriteLine($"{"all",-8} {"",4} {"",4} {"",9} {fl,7:0.00} | {fl / layers.Sum(l => l.ForwardSeconds),8:0.0} {100 * fl / layers.Sum(l => l.ForwardSeconds) / p,4:0}% | " +
                $"{fl / layers.Sum(l => l.BackwardSeconds),8:0.0} {100 * fl / layers.Sum(l => l.BackwardSeconds) / p,4:0}% |   (GFLOP/s; gram in nominal 2·C²·HW FLOPs)");
        }
        if (its.Count > 0)
        {
            Console.WriteLine();
            Console.WriteLine("whole L-BFGS iterations (to relu5_1; content relu4_2; style relu1_1…relu5_1; TV):");
            Console.WriteLine($"{"size",7} {"GFLOP",7} {"ms/iter",9} {"GFLOP/s",8} {"%peak",5} | {"+ full L-BFGS history",21} {"ms/iter",9}");
            foreach (var i in its)
                Console.WriteLine($"{$"{i.Size}²",7} {i.Gflop,7:0.0} {i.SecondsPerIteration * 1e3,9:0.00} {i.Gflops,8:0.0} {100 * i.Gflops / p,4:0}% | " +
                    $"{$"+{i.FullHistorySeconds * 1e3:0.0} ms",21} {i.SteadySeconds * 1e3,9:0.00}");
        }
        Console.WriteLine();
        Console.WriteLine($"peak working set: {peakMemory / 1e6:0} MB; device memory (tensors and scratch) at most {backend.Memory.Peak / 1e6:0} MB at once");
        if (backend is IlgpuBackend { Kernels: var k } ilgpu)
            Console.WriteLine($"start: the device opened in {ilgpu.OpenSeconds:0.00} s; {k.Loaded} kernels compiled and loaded in {k.Seconds:0.00} s" + (k.Cache is not { } c ? ""
                : c.Note is not null ? $" (the kernel cache off: {c.Note})" : $" ({c.Hits} from the kernel cache in {c.Directory}, {c.Misses} compiled into it)")
                + $"; tuning {ilgpu.TuningSeconds:0.00} s");
        PrintTunings(backend);
    }

    /// <summary>Each candidate a tuning tried, for --json.</summary>
    static IEnumerable<object> Candidates<TPlan>(IEnumerable<Trial<TPlan>> trials) => trials.Select(c => new
    {
        plan = c.Plan!.ToString(), ms = double.IsNaN(c.Seconds) ? (double?)null : c.Seconds * 1e3,
        relative_error = double.IsNaN(c.Error) ? (double?)null : c.Error, agrees = c.Agrees, failure = c.Failure,
    });

    /// <summary>With --conv tuned (or MmaTune=1), what each convolution's shape and direction, and each Gram backward's
    /// and forward's, got, and every candidate's time.</summary>
    static void PrintTunings(IBackend backend)
    {
        if (backend is not IlgpuBackend ilgpu || ilgpu.Tunings.Count + ilgpu.GramTunings.Count + ilgpu.GramForwardTunings.Count == 0) return;
        Console.WriteLine();
        Console.WriteLine("kernels tuned on first use (the choice, then each candidate's fastest of 3 runs):");
        foreach (var t in ilgpu.Tunings) Console.WriteLine($"  {t}");
        foreach (var t in ilgpu.GramTunings) Console.WriteLine($"  {t}");
        foreach (var t in ilgpu.GramForwardTunings) Console.WriteLine($"  {t}");
    }

    static string MachineName()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            if (line is not null) return $"{line[(line.IndexOf(':') + 1)..].Trim()} ({Environment.ProcessorCount} CPUs)";
        }
        catch (IOException) { }
        // macOS and most ARM64 Linux kernels name no model there: the architecture, at least.
        return $"{System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture} ({Environment.ProcessorCount} CPUs)";
    }
}
