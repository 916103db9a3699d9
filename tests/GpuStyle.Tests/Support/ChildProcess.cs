using System.Diagnostics;

namespace GpuStyle.Tests.Support;

/// <summary>Runs another program to its end (gpustyle under an emulator or in a chroot, clang, ptxas): its exit
/// status and everything it printed, stdout then stderr (both read at once, so neither pipe can fill and stall it).
/// A run past the time limit is killed and fails the test.</summary>
public static class ChildProcess
{
    public static (int Code, string Output) Run(string program, IEnumerable<string> args,
        IReadOnlyDictionary<string, string>? environment = null, int timeoutMs = 600_000)
    {
        var start = new ProcessStartInfo(program, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeoutMs))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{program} {string.Join(' ', args)} took over {timeoutMs / 1000} s");
        }
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    /// <summary>This build's gpustyle (the gpustyle.dll beside the tests) as a program of its own, run here.</summary>
    public static (int Code, string Output) Gpustyle(IEnumerable<string> args) =>
        Run("dotnet", [Path.Combine(AppContext.BaseDirectory, "gpustyle.dll"), .. args]);
}
