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

    /// <summary>`--conv`: which convolution runs; the device's own when left out.</summary>
    public static Option<string?> CreateConv()
    {
        var conv = new Option<string?>("--conv")
        {
            Description = "the convolution: direct, tiled, blocked, winograd, tuned (each shape's fastest of blocked and Winograd, timed on first use) or tf32 on an ILGPU device; direct or winograd on the CPU backend (default: the device's own — tuned on a GPU, winograd on the CPU; --tf32 = --conv tf32)",
        };
        conv.AcceptOnlyFromAmong("direct", "tiled", "blocked", "tf32", "winograd", "tuned");
        return conv;
    }

    /// <summary>The kernel --tf32 and --conv ask for together (null: the device's own); both naming different ones is an error.</summary>
    public static GpuStyle.Engine.Ilgpu.ConvKernel? Kernel(bool tf32, string? conv)
    {
        var named = conv is null ? (GpuStyle.Engine.Ilgpu.ConvKernel?)null : Enum.Parse<GpuStyle.Engine.Ilgpu.ConvKernel>(conv, ignoreCase: true);
        if (tf32 && named is not null and not GpuStyle.Engine.Ilgpu.ConvKernel.Tf32)
            throw new InputException($"--tf32 runs the tensor-core convolution; --conv {conv} names another: give one of them");
        return tf32 ? GpuStyle.Engine.Ilgpu.ConvKernel.Tf32 : named;
    }

    /// <summary>Opens the device (<see cref="Backends.Open(string, GpuStyle.Engine.Ilgpu.ConvKernel?, bool, string?, bool)"/>). Options
    /// the device cannot run — a --launch shape past its limits, a kernel's groups larger than it allows — are the
    /// user's to change: said as such (exit 2), not as an internal error.</summary>
    public static IBackend Open(string device, GpuStyle.Engine.Ilgpu.ConvKernel? conv, bool profiling = false, string? launch = null, bool rememberTunings = false)
    {
        try
        {
            return Backends.Open(device, conv, profiling, launch, rememberTunings);
        }
        catch (ArgumentException e)
        {
            throw new InputException(e.Message);
        }
    }

    public static Option<bool> CreateTf32() => new("--tf32")
    {
        Description = "convolutions on the GPU's tensor cores in TF32 (10-bit mantissa products, fp32 sums): faster, about 3 digits per product (default: fp32)",
    };
}
