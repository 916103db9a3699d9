using System.CommandLine;
using GpuStyle.Cli.Commands;
using GpuStyle.Engine.Network;
using GpuStyle.Engine.Weights;

namespace GpuStyle.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var parsed = BuildRoot().Parse(args);
        if (parsed.Errors.Count > 0)
        {
            // Bad usage is exit status 2 (DESIGN.md §4); System.CommandLine's own default would be 1.
            foreach (var error in parsed.Errors) Console.Error.WriteLine($"gpustyle: {error.Message}");
            Console.Error.WriteLine("Try 'gpustyle --help'.");
            return 2;
        }
        try
        {
            // Ctrl-C is ours: the run loop writes the current image before exiting.
            return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null });
        }
        catch (Exception e) when (ExitCodes.IsBadInput(e))
        {
            Console.Error.WriteLine($"gpustyle: {e.Message}");
            return 2;
        }
        catch (WeightsDownloadException e)
        {
            Console.Error.WriteLine($"gpustyle: {e.Message}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("gpustyle: cancelled");
            return 130;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"gpustyle: internal error: {e}");
            return 1;
        }
    }

    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("GpuStyle: neural style transfer (Gatys et al.) on hand-written ILGPU kernels.");
        foreach (var c in RunCommands.Build()) root.Subcommands.Add(c);
        root.Subcommands.Add(DevicesCommand.Build());
        root.Subcommands.Add(BenchCommand.Build());
        root.Subcommands.Add(WeightsCommand.Build());
        return root;
    }
}

/// <summary>Which failures are the user's input (exit 2) rather than ours (exit 1).</summary>
public static class ExitCodes
{
    public static bool IsBadInput(Exception e) => e is InputException or WeightsException or UnknownLayerException
        or GpuStyle.Engine.Ilgpu.DeviceNotFoundException;
}
