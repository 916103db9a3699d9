using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using GpuStyle.Tests.Support;

namespace GpuStyle.Tests;

/// <summary>
/// The OpenCL path run for real: every ILGPU kernel built by an OpenCL compiler and run by an OpenCL runtime — PoCL 6
/// on this CPU, in a Debian trixie root that .ci/fetch-pocl makes (bookworm's PoCL lacks the generic address space
/// ILGPU needs). gpustyle runs there with chroot, this machine's .NET and the test's build folder bound in, so these
/// are the very binaries the other tests run. Until this test, the OpenCL kernels had only been written out as
/// OpenCL C: PoCL found that 15 of them did not build (the Float4 shared memory, see Float4.SharedDynamic), that
/// ILGPU looks for libOpenCL.so where distributions install libOpenCL.so.1, and that ILGPU's OpenCL C races where a
/// CPU runs work-groups side by side (DeviceCatalog.OpenClCpuRefusal). Each convolution variant here runs `bench
/// --check` — every op on the OpenCL device against the CPU backend, exit 1 on a disagreement — with PoCL on one
/// thread. Skipped, saying so, without the root (or without root privileges).
/// </summary>
public sealed class OpenClPoclTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("gpustyle-pocl-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [PoclFact]
    public void Devices_lists_PoCL_as_an_OpenCL_CPU_device_and_auto_keeps_the_CPU_backend()
    {
        var devices = RunInRoot(serial: false, "devices");
        Assert.True(devices.Code == 0, devices.Output);
        Assert.Matches(@"opencl:0 +cpu-.*\(an OpenCL CPU device\)", devices.Output);
        Assert.Contains("--device auto picks: cpu", devices.Output);
    }

    [PoclFact]
    public void An_OpenCL_CPU_device_that_runs_groups_side_by_side_is_refused_with_a_reason()
    {
        var bench = RunInRoot(serial: false, "bench", "--device", "opencl", "--size", "32", "--iteration-sizes", "");
        Assert.True(bench.Code == 2, bench.Output);
        Assert.Contains("is an OpenCL CPU device", bench.Output);
        Assert.Contains("--device cpu", bench.Output);
        Assert.Contains("POCL_MAX_PTHREAD_COUNT=1", bench.Output);
    }

    /// <summary>Each ILGPU convolution family and the kernels it brings (the tuned and tile-tuned choices time
    /// Winograd's GEMMs and the Gram backward's SGEMM too; --tf32 runs the tensor-core kernels' emulation, which is
    /// what an OpenCL GPU gets), at a GPU's launch shapes — the CPU accelerator runs only tiny ones (one OS thread a
    /// simulated thread), so this is where the shapes a GPU runs are checked before a GPU runs them.</summary>
    [PoclTheory]
    [InlineData("--conv", "blocked")]
    [InlineData("--conv", "tiled")]
    [InlineData("--conv", "direct")]
    [InlineData("--conv", "winograd", "--launch", "WinogradTile=4")]
    [InlineData("--conv", "tuned")]
    [InlineData("--tf32", "--launch", "MmaGram=1,MmaPrefetch=1")]
    [InlineData("--tf32")]   // the TF32 default: tiles tuned against Winograd (MmaTune=1), the Gram matrices on tensor cores
    [InlineData("--tf32", "--launch", "MmaTune=0,MmaGram=0,MmaFragments=0")]   // the first TF32 default: the 32×8 tile alone
    [InlineData("--tf32", "--launch", "MmaTune=0")]   // version 5 alone (operands in fragment order), 32×8: 512 threads
    [InlineData("--tf32", "--launch", "MmaTune=0,MmaFragments=2")]   // version 5 in 64-channel warps: 256 threads
    [InlineData("--tf32", "--launch", "MmaTune=0,MmaFragments=4")]   // version 5 in 64×64 warp tiles: 128 threads
    [InlineData("--tf32", "--launch", "MmaTune=0,MmaFragmentsAsync=1")]   // version 5's weights copied a chunk ahead (emulated when waited for)
    [InlineData("--tf32", "--launch", "MmaTune=0,MmaGramFragments=1,MmaGramPrefetch=1")]   // the Gram backward's version 5 alone; the forward's loads in flight
    [InlineData("--conv", "winograd", "--launch", "WinogradMma=1")]
    // The other launch shapes and options docs/gpu-check.sh times (steps 7 and 9), which it does not check on the card.
    [InlineData("--conv", "blocked", "--launch", "BlockedWidth=32,BlockedHeight=8,BlockedChunk=16")]
    [InlineData("--conv", "blocked", "--launch", "BlockedWidth=16,BlockedHeight=16")]
    [InlineData("--conv", "winograd", "--launch", "WinogradM=64,WinogradN=128,WinogradPrefetch=0,SgemmFixedBlocks=0")]
    [InlineData("--conv", "winograd", "--launch", "WinogradM=128,WinogradN=64,GramGemm=1,WinogradMma=1")]
    [InlineData("--conv", "winograd", "--launch", "WinogradM=64,WinogradN=64,WinogradTile=4,GramGemm=1,WinogradScratch=16777216")]
    [InlineData("--tf32", "--launch", "MmaTileWidth=64,MmaTileHeight=4")]
    [InlineData("--tf32", "--launch", "MmaWarpsCo=1,MmaTileWidth=32,MmaTileHeight=8,MmaMinGroups=132")]
    [InlineData("--tf32", "--launch", "MmaGram=1,MmaPrefetch=1,MmaMinGroups=132")]
    // Asynchronous copies, emulated at the latest moment their waits allow: the 32×8 tile's kernel and, on the
    // lowered tiles of small maps, the general one.
    [InlineData("--tf32", "--launch", "MmaPrefetch=2,MmaMinGroups=132")]
    public void Every_op_on_PoCL_agrees_with_the_CPU_backend(params string[] variant)
    {
        var check = RunInRoot(serial: true, ["bench", "--check", "--device", "opencl", "--size", "32", "--iteration-sizes", "", "--layer", "relu1_1", .. variant]);
        Assert.True(check.Code == 0, check.Output);
        Assert.Contains("ilgpu/opencl:0", check.Output);
        Assert.Contains("L-BFGS direction", check.Output);   // the last op checked
        Assert.DoesNotContain("FAILED", check.Output);
    }

    [PoclFact]
    public void A_transfer_on_PoCL_starts_where_the_CPU_backend_does()
    {
        var transfer = new SmallTransfer(_dir, weightSeed: 7);
        var opencl = RunInRoot(serial: true, transfer.Args("opencl", "opencl", iterations: 3));
        Assert.True(opencl.Code == 0, opencl.Output);
        var cpu = ChildProcess.Gpustyle(transfer.Args("cpu", "cpu", iterations: 3));
        Assert.True(cpu.Code == 0, cpu.Output);

        Assert.True(new FileInfo(transfer.Picture("opencl")).Length > 0);
        var onOpenCl = File.ReadLines(transfer.Log("opencl")).Select(l => JsonNode.Parse(l)!).ToList();
        var onCpu = File.ReadLines(transfer.Log("cpu")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(onCpu.Count, onOpenCl.Count);
        // Different kernels sum in different orders: the first losses agree to float rounding, not to the bit.
        var losses = new List<(string Name, JsonNode? Cpu, JsonNode? OpenCl)> { ("total", onCpu[0]["total"], onOpenCl[0]["total"]) };
        foreach (string kind in new[] { "content", "style" })
            foreach (var (layer, value) in onCpu[0][kind]!.AsObject())
                losses.Add(($"{kind} {layer}", value, onOpenCl[0][kind]![layer]));
        Assert.Equal(5, losses.Count);
        foreach (var (name, cpuLoss, openClLoss) in losses)
        {
            double expected = cpuLoss!.GetValue<double>(), actual = openClLoss!.GetValue<double>();
            Assert.True(expected > 0 && Math.Abs(actual - expected) <= 1e-4 * expected, $"iteration 0 {name}: OpenCL {actual}, CPU {expected}");
        }
    }

    /// <summary>gpustyle (this build's gpustyle.dll) in the PoCL root: a private mount namespace (so nothing stays
    /// mounted) with /proc, /sys (PoCL's hwloc reads the CPU's topology there), this machine's .NET, the test's build
    /// folder and the test's scratch folder bound at their own paths. serial: PoCL on one thread, the one way an
    /// OpenCL CPU device is accepted.</summary>
    (int Code, string Output) RunInRoot(bool serial, params string[] args)
    {
        string root = Pocl.Root!, bin = AppContext.BaseDirectory.TrimEnd('/'), dotnet = Pocl.DotnetRoot;
        static string Q(string s) => "'" + s.Replace("'", "'\\''") + "'";
        var script = new List<string> { "set -e", $"mount -t proc proc {Q(root + "/proc")}", $"mount --rbind /sys {Q(root + "/sys")}" };
        foreach (string folder in new[] { dotnet, bin, _dir })
            script.Add($"mkdir -p {Q(root + folder)} && mount --bind {Q(folder)} {Q(root + folder)}");
        string environment = "DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1" + (serial ? " POCL_MAX_PTHREAD_COUNT=1" : "");
        script.Add($"exec chroot {Q(root)} env {environment} {Q(dotnet + "/dotnet")} {Q(bin + "/gpustyle.dll")} {string.Join(' ', args.Select(Q))}");
        return ChildProcess.Run("unshare", ["--mount", "sh", "-c", string.Join("\n", script)]);
    }
}

/// <summary>The trixie root with PoCL that .ci/fetch-pocl leaves in .tools/pocl, and what running in it needs.</summary>
public static class Pocl
{
    public static string? Root { get; } =
        File.Exists(Repo.File(Path.Combine(".tools", "pocl", "root", "etc", "OpenCL", "vendors", "pocl.icd")))
        && File.Exists(Repo.File(Path.Combine(".tools", "pocl", "root", "usr", "lib", "x86_64-linux-gnu", "libOpenCL.so.1")))
            ? Repo.File(Path.Combine(".tools", "pocl", "root")) : null;

    /// <summary>The .NET installation running the tests (…/shared/Microsoft.NETCore.App/&lt;version&gt;/ is its runtime).</summary>
    public static string DotnetRoot { get; } = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));

    /// <summary>Whether `unshare --mount` works here (root in a container may still be denied it).</summary>
    static readonly Lazy<bool> PrivateMounts = new(() =>
    {
        try { return ChildProcess.Run("unshare", ["--mount", "true"], timeoutMs: 60_000).Code == 0; }
        catch (Exception) { return false; }   // no unshare at all, or it hung
    });

    public static string? Missing =>
        Root is null ? "needs a Debian trixie root with PoCL in .tools/pocl: run .ci/fetch-pocl (as root)"
        : !Environment.IsPrivilegedProcess ? "runs gpustyle with chroot in the PoCL root, which needs root"
        : !PrivateMounts.Value ? "needs a private mount namespace (`unshare --mount`), which this machine does not permit"
        : !File.Exists(Path.Combine(DotnetRoot, "dotnet")) ? $"found no dotnet in {DotnetRoot} to bind into the PoCL root"
        : null;
}

public sealed class PoclFactAttribute : FactAttribute
{
    public PoclFactAttribute() { if (Pocl.Missing is { } why) Skip = why; }
}

public sealed class PoclTheoryAttribute : TheoryAttribute
{
    public PoclTheoryAttribute() { if (Pocl.Missing is { } why) Skip = why; }
}
