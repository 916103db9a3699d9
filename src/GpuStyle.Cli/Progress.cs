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

    /// <summary>Runs body with a callback to report each iteration.</summary>
    public void Run(string title, int iterations, Action<Action<IterationReport>> body)
    {
        var clock = Stopwatch.StartNew();
        string Describe(IterationReport r)
        {
            double rate = r.Iteration / Math.Max(1e-9, clock.Elapsed.TotalSeconds);
            string content = string.Join(" ", r.Content.Select(c => $"{c.Layer} {c.Loss:0.###e0}"));
            string style = r.Style.Count == 0 ? "" : $"style {r.Style.Sum(s => s.Loss) / r.Style.Count:0.###e0}";
            return $"{title} {r.Iteration}/{iterations}  total {r.Total:0.###e0}  {content} {style}  {rate:0.00} it/s";
        }
        if (_quiet) { body(_ => { }); return; }
        if (Console.IsErrorRedirected || !_console.Profile.Capabilities.Interactive)
        {
            int every = Math.Max(1, iterations / 10);
            body(r =>
            {
                if (r.Iteration % every == 0 || r.Iteration == iterations)
                {
                    double left = r.Iteration == 0 ? 0 : clock.Elapsed.TotalSeconds / r.Iteration * (iterations - r.Iteration);
                    Console.Error.WriteLine($"{Markup.Remove(Describe(r))}  {left:0}s left");
                }
            });
            return;
        }
        _console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(title, maxValue: Math.Max(1, iterations));
                body(r =>
                {
                    task.Description = Markup.Escape(Describe(r));
                    task.Value = r.Iteration;
                });
            });
    }
}
