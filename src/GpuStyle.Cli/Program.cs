using System.CommandLine;
using GpuStyle.Engine.Ilgpu;

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
        return parsed.Invoke();
    }

    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("GpuStyle: neural style transfer (Gatys et al.) on hand-written ILGPU kernels.");
        root.Subcommands.Add(DevicesCommand());
        return root;
    }

    static Command DevicesCommand()
    {
        var command = new Command("devices", "List the devices GpuStyle can run on.");
        command.SetAction(_ =>
        {
            var devices = DeviceCatalog.List();
            Console.WriteLine("ILGPU devices:");
            foreach (var d in devices) Console.WriteLine($"  {d}");
            if (!devices.Any(d => d.Kind == "cuda"))
                Console.WriteLine($"  (no CUDA device: {DeviceCatalog.CudaAbsenceReason() ?? "the driver loaded but reports no device"})");
            return 0;
        });
        return command;
    }
}
