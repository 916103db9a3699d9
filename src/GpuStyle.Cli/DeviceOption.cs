using System.CommandLine;
using GpuStyle.Engine;

namespace GpuStyle.Cli;

/// <summary>The `--device` option every command that computes shares.</summary>
public static class DeviceOption
{
    public static Option<string> Create()
    {
        var device = new Option<string>("--device") { Description = "auto, cuda[:N], opencl[:N], cpu, cpu-scalar, ilgpu-cpu", DefaultValueFactory = _ => "auto" };
        device.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string>() is { } d && !Backends.IsValidName(d))
                r.AddError($"unknown device '{d}': use {string.Join(", ", Backends.Names)}, or cuda:N / opencl:N");
        });
        return device;
    }

    public static Option<bool> CreateTf32() => new("--tf32")
    {
        Description = "convolutions on the GPU's tensor cores in TF32 (10-bit mantissa products, fp32 sums): faster, about 3 digits per product (default: fp32)",
    };
}
