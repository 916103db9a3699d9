using System.Text.Json.Nodes;
using GpuStyle.Kernels;
using GpuStyle.Tests.Support;

namespace GpuStyle.Tests;

/// <summary>
/// gpustyle as ARM64 code: published self-contained for linux-arm64 from this checkout's sources and run under qemu's
/// user-mode emulator (.ci/fetch-arm64 puts it and an arm64 C runtime in .tools/arm64), so that .NET's JIT emits
/// AArch64 code and the CPU backend runs its NEON kernels — the AdvSimd branches of kernels/CpuSimd.cs's shuffles
/// included, which no x86 test reaches. Emulation says nothing about speed; it checks that the NEON backend picks
/// itself, agrees with the scalar fallback on every op (`bench --check`), and computes a transfer's first losses as
/// the x86 run does here, digit for digit where this machine has AVX2 and FMA (the same fused operations in the same
/// order). Skipped, saying so, where the emulator is absent.
/// </summary>
public sealed class Arm64EmulationTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("gpustyle-arm64-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Arm64EmulatorFact]
    public void The_ARM64_build_runs_the_NEON_kernels_and_agrees_with_x86()
    {
        string app = PublishForArm64();

        var devices = RunArm64(app, "devices");
        Assert.True(devices.Code == 0, devices.Output);
        Assert.Contains("NEON (Vector128)", devices.Output);

        // Every op of the default (NEON) backend against the scalar fallback, on ARM64: exit 1 on any disagreement.
        var check = RunArm64(app, "bench", "--device", "cpu-scalar", "--check", "--iteration-sizes", "", "--size", "32", "--layer", "relu1_1");
        Assert.True(check.Code == 0, check.Output);
        Assert.Contains("L-BFGS direction", check.Output);

        // One transfer on both machines.
        var transfer = new SmallTransfer(_dir, weightSeed: 5);
        var arm = RunArm64(app, transfer.Args("arm64", "cpu", iterations: 2));
        Assert.True(arm.Code == 0, arm.Output);
        var x86 = ChildProcess.Gpustyle(transfer.Args("x86", "cpu", iterations: 2));
        Assert.True(x86.Code == 0, x86.Output);

        var first = FirstRecord(transfer.Log("x86"));
        var firstArm = FirstRecord(transfer.Log("arm64"));
        if (CpuSimdLevels.Avx2Supported)
            Assert.Equal(first.ToJsonString(), firstArm.ToJsonString());
        else   // x86 without FMA3 multiplies and adds apart: rounding differs from ARM64's fused kernels
            Assert.Equal(first["total"]!.GetValue<double>(), firstArm["total"]!.GetValue<double>(), 1e-4 * Math.Abs(first["total"]!.GetValue<double>()));
    }

    /// <summary>The iteration-0 record of a run's log, without its timing.</summary>
    static JsonObject FirstRecord(string log)
    {
        var record = JsonNode.Parse(File.ReadLines(log).First())!.AsObject();
        record.Remove("seconds");
        return record;
    }

    /// <summary>Publishes gpustyle for linux-arm64 from a copy of the sources (the checkout's obj/ folders keep their
    /// own restore); the runtime pack comes from the NuGet cache (.ci/fetch-arm64 restores it) or the feed.</summary>
    string PublishForArm64()
    {
        string source = Path.Combine(_dir, "source");
        foreach (string folder in new[] { "kernels", Path.Combine("src", "GpuStyle.Engine"), Path.Combine("src", "GpuStyle.Cli") })
            CopySources(Path.Combine(Repo.Root, folder), Path.Combine(source, folder));
        string output = Path.Combine(_dir, "arm64");
        var publish = ChildProcess.Run("dotnet", ["publish", Path.Combine(source, "src", "GpuStyle.Cli", "GpuStyle.Cli.csproj"), "-c", "Release",
            "-r", "linux-arm64", "--self-contained", "-o", output, "-nologo", "-v", "quiet"]);
        Assert.True(publish.Code == 0, $"dotnet publish -r linux-arm64 failed:\n{publish.Output}");
        return Path.Combine(output, "gpustyle");
    }

    static void CopySources(string from, string to)
    {
        foreach (string file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            string relative = Path.GetRelativePath(from, file);
            if (relative.Split(Path.DirectorySeparatorChar)[0] is "bin" or "obj") continue;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(to, relative))!);
            File.Copy(file, Path.Combine(to, relative));
        }
    }

    static (int Code, string Output) RunArm64(string app, params string[] args) =>
        ChildProcess.Run(Arm64Emulator.Qemu!, ["-L", Arm64Emulator.Sysroot!, app, .. args],
            // .NET maps its JIT's code writable and executable at once under emulation (W^X needs a second mapping
            // qemu does not give); the sysroot has no ICU.
            new Dictionary<string, string> { ["DOTNET_EnableWriteXorExecute"] = "0", ["DOTNET_SYSTEM_GLOBALIZATION_INVARIANT"] = "1" });
}

/// <summary>qemu's AArch64 user-mode emulator and the arm64 sysroot it loads programs from: .tools/arm64 in the
/// checkout, as .ci/fetch-arm64 leaves them.</summary>
public static class Arm64Emulator
{
    public static string? Sysroot { get; } = Directory.Exists(Repo.File(Path.Combine(".tools", "arm64", "root", "lib")))
        ? Repo.File(Path.Combine(".tools", "arm64", "root")) : null;

    public static string? Qemu { get; } = Sysroot is { } root && File.Exists(Path.Combine(root, "usr", "bin", "qemu-aarch64-static"))
        ? Path.Combine(root, "usr", "bin", "qemu-aarch64-static") : null;

    public const string Missing = "needs qemu's AArch64 emulator and an arm64 C runtime in .tools/arm64: run .ci/fetch-arm64";
}

public sealed class Arm64EmulatorFactAttribute : FactAttribute
{
    public Arm64EmulatorFactAttribute() { if (Arm64Emulator.Qemu is null) Skip = Arm64Emulator.Missing; }
}
