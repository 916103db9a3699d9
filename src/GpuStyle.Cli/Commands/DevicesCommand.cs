using System.CommandLine;
using GpuStyle.Engine.Ilgpu;

namespace GpuStyle.Cli.Commands;

public static class DevicesCommand
{
    public static Command Build()
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
