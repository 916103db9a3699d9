using System.Security.Cryptography;

namespace GpuStyle.Engine.Weights;

/// <summary>Bytes received so far, and the total when known.</summary>
public readonly record struct DownloadProgress(long Received, long? Total);

/// <summary>Official weights could not be fetched; the message says how to put the file in place by hand.</summary>
public sealed class WeightsDownloadException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The cache of official weight files: $XDG_CACHE_HOME/gpustyle, else ~/.cache/gpustyle. A file is fetched on first
/// use to a temporary name in the cache folder, its size and md5 checked, and only then renamed into place — so an
/// interrupted or failed download never leaves anything that passes for a valid file.
/// </summary>
public sealed class WeightsStore(string directory, HttpMessageHandler? handler = null)
{
    public string Directory { get; } = directory;

    public static string DefaultDirectory()
    {
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        string root = !string.IsNullOrEmpty(xdg) ? xdg
            : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return System.IO.Path.Combine(root, "gpustyle");
    }

    public static WeightsStore Default() => new(DefaultDirectory());

    public string PathOf(OfficialWeights w) => System.IO.Path.Combine(Directory, w.FileName);

    /// <summary>True when the cached file is there with the right size (its md5 was checked when it arrived).</summary>
    public bool IsCached(OfficialWeights w) => new FileInfo(PathOf(w)) is { Exists: true } f && f.Length == w.Bytes;

    /// <summary>The path of the cached file, downloading it first when it is missing.</summary>
    public async Task<string> EnsureAsync(OfficialWeights w, IProgress<DownloadProgress>? progress = null,
        CancellationToken cancel = default)
    {
        string path = PathOf(w);
        if (IsCached(w)) return path;
        try
        {
            System.IO.Directory.CreateDirectory(Directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A read-only home, or a file where the folder should be: this was an internal error with a stack trace.
            throw new WeightsDownloadException($"cannot create the weights cache folder {Directory} ({e.Message}); set XDG_CACHE_HOME to a folder you can write, or download {w.Url} and pass --weights FILE.h5", e);
        }
        string partial = $"{path}.partial-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            using var client = handler is null ? new HttpClient() : new HttpClient(handler, disposeHandler: false);
            client.Timeout = Timeout.InfiniteTimeSpan;   // large files on slow links; cancellation ends it instead
            using var response = await client.GetAsync(w.Url, HttpCompletionOption.ResponseHeadersRead, cancel);
            response.EnsureSuccessStatusCode();
            long? total = response.Content.Headers.ContentLength ?? w.Bytes;
            using var md5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
            long received = 0;
            await using (var body = await response.Content.ReadAsStreamAsync(cancel))
            await using (var file = new FileStream(partial, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                var buffer = new byte[1 << 16];
                int n;
                while ((n = await body.ReadAsync(buffer, cancel)) > 0)
                {
                    await file.WriteAsync(buffer.AsMemory(0, n), cancel);
                    md5.AppendData(buffer, 0, n);
                    received += n;
                    progress?.Report(new DownloadProgress(received, total));
                }
            }
            if (received != w.Bytes)
                throw new WeightsDownloadException($"download of {w.Url} ended after {received:N0} of {w.Bytes:N0} bytes; {HandInstructions(w)}");
            string got = Convert.ToHexStringLower(md5.GetHashAndReset());
            if (got != w.Md5)
                throw new WeightsDownloadException($"download of {w.Url} has md5 {got}, expected {w.Md5}; {HandInstructions(w)}");
            File.Move(partial, path, overwrite: true);
            return path;
        }
        catch (HttpRequestException e)
        {
            throw new WeightsDownloadException($"cannot download {w.Name} weights from {w.Url} ({e.Message}); {HandInstructions(w)}", e);
        }
        catch (IOException e) when (e is HttpIOException || e.InnerException is System.Net.Sockets.SocketException)
        {
            // The connection ended or was reset while the body was arriving (an internal error before).
            throw new WeightsDownloadException($"download of {w.Url} broke off ({e.Message}); {HandInstructions(w)}", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Writing the cache: a full disk, a folder that takes no new file.
            throw new WeightsDownloadException($"cannot write {w.Name} weights into {Directory} ({e.Message}); set XDG_CACHE_HOME to another folder, or {HandInstructions(w)}", e);
        }
        finally
        {
            if (File.Exists(partial)) File.Delete(partial);
        }
    }

    string HandInstructions(OfficialWeights w) =>
        $"download it by hand and put it at {PathOf(w)} (md5 {w.Md5}, {w.Bytes:N0} bytes), or pass --weights FILE.h5";

    /// <summary>
    /// What `--weights` names: "vgg16"/"vgg19" (the cached official file, fetched on first use) or a local .h5 file.
    /// </summary>
    public async Task<string> ResolveAsync(string weights, IProgress<DownloadProgress>? progress = null,
        CancellationToken cancel = default)
    {
        if (OfficialWeights.ByName(weights) is { } official) return await EnsureAsync(official, progress, cancel);
        // Something there (a folder, a file that is not HDF5) is for the reader to name; nothing there, for the hint.
        if (!System.IO.Path.Exists(weights))
            throw new WeightsException(weights, $"no such file (--weights takes {string.Join(", ", OfficialWeights.All.Select(o => o.Name))} or a Keras .h5 file)");
        return weights;
    }
}
