using System.Diagnostics;
using GpuStyle.Engine.Pipelines;
using Spectre.Console;

namespace GpuStyle.Cli;

/// <summary>
/// The progress of a run on stderr: a live Spectre.Console line (iteration, losses, iterations per second, time left)
/// on a terminal; a plain line every tenth of the run when stderr is redirected; nothing with --quiet.
/// </summary>
public sealed class RunProgress
{
    readonly bool _quiet;
    readonly IAnsiConsole _console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });

    public RunProgress(bool quiet) => _quiet = quiet;

    public void Message(string text)
    {
        if (!_quiet) Console.Error.WriteLine(text);
    }

    /// <summary>
    /// One iteration in words, at most width characters: the full line (every content layer's loss, the mean style
    /// loss) where it fits; else without the per-layer losses; else the iteration alone — so that the live line never
    /// wraps on an 80-column terminal, which would scatter the bar and the time left over several rows.
    /// </summary>
    public static string Describe(string title, int iterations, IterationReport r, double rate, int width)
    {
        string head = $"{title} {r.Iteration}/{iterations}";
        string content = string.Join(" ", r.Content.Select(c => $"{c.Layer} {c.Loss:0.###e0}"));
        string style = r.Style.Count == 0 ? "" : $"style {r.Style.Sum(s => s.Loss) / r.Style.Count:0.###e0}";
        string full = $"{head}  total {r.Total:0.###e0}  {string.Join(" ", new[] { content, style }.Where(x => x.Length > 0))}  {rate:0.00} it/s";
        string compact = $"{head}  total {r.Total:0.###e0}  {rate:0.00} it/s";
        return full.Length <= width ? full : compact.Length <= width ? compact : head;
    }

    /// <summary>Runs body with a callback to report each iteration.</summary>
    public void Run(string title, int iterations, Action<Action<IterationReport>> body)
    {
        var clock = Stopwatch.StartNew();
        double Rate(IterationReport r) => r.Iteration / Math.Max(1e-9, clock.Elapsed.TotalSeconds);
        if (_quiet) { body(_ => { }); return; }
        if (Console.IsErrorRedirected || !_console.Profile.Capabilities.Interactive)
        {
            int every = Math.Max(1, iterations / 10);
            body(r =>
            {
                if (r.Iteration % every == 0 || r.Iteration == iterations)
                {
                    double left = r.Iteration == 0 ? 0 : clock.Elapsed.TotalSeconds / r.Iteration * (iterations - r.Iteration);
                    Console.Error.WriteLine($"{Describe(title, iterations, r, Rate(r), int.MaxValue)}  {left:0}s left");
                }
            });
            return;
        }
        _console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(title), maxValue: Math.Max(1, iterations));
                body(r =>
                {
                    // What is left of the terminal's width beside the bar (≥ 10), the percentage and the time left.
                    task.Description = Markup.Escape(Describe(title, iterations, r, Rate(r), _console.Profile.Width - 30));
                    task.Value = r.Iteration;
                });
            });
    }
}
