using System.Net;
using System.Security.Cryptography;
using GpuStyle.Engine.Weights;

namespace GpuStyle.Tests;

/// <summary>Fetching official weights into the cache, against a fake server (nothing here reaches the internet).</summary>
public sealed class WeightsStoreTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("gpustyle-cache-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static readonly byte[] Payload = RandomNumberGenerator.GetBytes(300_000);
    static readonly OfficialWeights Entry = new("vgg16", "vgg16_test.h5", Convert.ToHexStringLower(MD5.HashData(Payload)), Payload.Length);

    sealed class FakeServer(Func<HttpRequestMessage, HttpResponseMessage> respond) : HttpMessageHandler
    {
        public int Requests;
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancel)
        {
            Requests++;
            return Task.FromResult(respond(request));
        }
    }

    static HttpResponseMessage Serve(byte[] body) => new(HttpStatusCode.OK) { Content = new ByteArrayContent(body) };

    [Fact]
    public async Task A_download_is_verified_then_renamed_into_the_cache_and_reused()
    {
        var server = new FakeServer(_ => Serve(Payload));
        var store = new WeightsStore(_dir, server);
        var reports = new List<DownloadProgress>();
        string path = await store.EnsureAsync(Entry, new SyncProgress(reports.Add));
        Assert.Equal(Path.Combine(_dir, "vgg16_test.h5"), path);
        Assert.Equal(Payload, File.ReadAllBytes(path));
        Assert.NotEmpty(reports);
        Assert.Equal(Payload.Length, reports[^1].Received);
        Assert.Single(Directory.GetFiles(_dir));

        Assert.Equal(path, await store.EnsureAsync(Entry));
        Assert.Equal(1, server.Requests);   // the second call used the cache
    }

    [Fact]
    public async Task A_corrupt_download_leaves_nothing_in_the_cache()
    {
        var bad = (byte[])Payload.Clone();
        bad[1234] ^= 0xff;
        var store = new WeightsStore(_dir, new FakeServer(_ => Serve(bad)));
        var e = await Assert.ThrowsAsync<WeightsDownloadException>(() => store.EnsureAsync(Entry));
        Assert.Contains("md5", e.Message);
        Assert.Empty(Directory.GetFiles(_dir));
    }

    [Fact]
    public async Task A_short_download_leaves_nothing_in_the_cache()
    {
        var store = new WeightsStore(_dir, new FakeServer(_ => Serve(Payload[..1000])));
        var e = await Assert.ThrowsAsync<WeightsDownloadException>(() => store.EnsureAsync(Entry));
        Assert.Contains("ended after 1,000", e.Message);
        Assert.Empty(Directory.GetFiles(_dir));
    }

    [Fact]
    public async Task Offline_the_message_gives_the_url_and_where_to_put_the_file()
    {
        var store = new WeightsStore(_dir, new FakeServer(_ => throw new HttpRequestException("Name or service not known")));
        var e = await Assert.ThrowsAsync<WeightsDownloadException>(() => store.EnsureAsync(Entry));
        Assert.Contains(Entry.Url, e.Message);
        Assert.Contains(Path.Combine(_dir, "vgg16_test.h5"), e.Message);
        Assert.Contains(Entry.Md5, e.Message);
        Assert.Empty(Directory.GetFiles(_dir));
    }

    [Fact]
    public async Task An_interrupted_download_leaves_nothing_in_the_cache()
    {
        using var cancel = new CancellationTokenSource();
        var store = new WeightsStore(_dir, new FakeServer(_ => Serve(Payload)));
        var progress = new SyncProgress(_ => cancel.Cancel());   // Ctrl-C after the first chunk
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => store.EnsureAsync(Entry, progress, cancel.Token));
        Assert.Empty(Directory.GetFiles(_dir));
    }

    /// <summary>A body that sends some bytes, then fails as a dropped connection does.</summary>
    sealed class BreakingStream(byte[] head, Exception failure) : Stream
    {
        int _at;
        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_at == head.Length) throw failure;
            int n = Math.Min(count, head.Length - _at);
            Array.Copy(head, _at, buffer, offset, n);
            _at += n;
            return n;
        }
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _at; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    [Theory]
    [InlineData("ended")]
    [InlineData("reset")]
    public async Task A_connection_lost_mid_download_is_a_download_failure_and_leaves_nothing(string how)
    {
        // HttpClient's two ways of saying so: the body ended early, or the socket was reset. Both were internal errors.
        Exception failure = how == "ended"
            ? new HttpIOException(HttpRequestError.ResponseEnded, "The response ended prematurely")
            : new IOException("Unable to read data from the transport connection", new System.Net.Sockets.SocketException(104));
        var store = new WeightsStore(_dir, new FakeServer(_ =>
            new HttpResponseMessage(HttpStatusCode.OK) { Content = new StreamContent(new BreakingStream(Payload[..70_000], failure)) }));
        var e = await Assert.ThrowsAsync<WeightsDownloadException>(() => store.EnsureAsync(Entry));
        Assert.Contains($"download of {Entry.Url} broke off", e.Message);
        Assert.Contains(Entry.Md5, e.Message);
        Assert.Empty(Directory.GetFiles(_dir));
    }

    [Fact]
    public async Task A_cache_folder_that_cannot_be_made_or_written_says_so()
    {
        // A file where the cache folder should be (a read-only home has the same effect; the tests run as root here,
        // whom permissions do not stop): an internal error with a stack trace before.
        string blocker = Path.Combine(_dir, "not-a-folder");
        File.WriteAllText(blocker, "");
        var server = new FakeServer(_ => Serve(Payload));
        var e = await Assert.ThrowsAsync<WeightsDownloadException>(() => new WeightsStore(Path.Combine(blocker, "gpustyle"), server).EnsureAsync(Entry));
        Assert.Contains($"cannot create the weights cache folder {Path.Combine(blocker, "gpustyle")}", e.Message);
        Assert.Contains("XDG_CACHE_HOME", e.Message);
        Assert.Equal(0, server.Requests);   // refused before downloading anything
        // A cache folder that exists but takes no file: its name taken by a folder where the partial file goes is not
        // reachable portably; a path too long for the file system is.
        string deep = Path.Combine(_dir, new string('d', 200));
        Directory.CreateDirectory(deep);
        var longName = new OfficialWeights("vgg16", new string('w', 300) + ".h5", Entry.Md5, Entry.Bytes);
        e = await Assert.ThrowsAsync<WeightsDownloadException>(() => new WeightsStore(deep, server).EnsureAsync(longName));
        Assert.Contains($"cannot write vgg16 weights into {deep}", e.Message);
        Assert.Empty(Directory.GetFiles(deep));
    }

    [Fact]
    public async Task A_truncated_file_already_in_the_cache_is_fetched_again()
    {
        File.WriteAllBytes(Path.Combine(_dir, "vgg16_test.h5"), Payload[..10]);
        var server = new FakeServer(_ => Serve(Payload));
        string path = await new WeightsStore(_dir, server).EnsureAsync(Entry);
        Assert.Equal(Payload, File.ReadAllBytes(path));
        Assert.Equal(1, server.Requests);
    }

    [Fact]
    public void The_cache_follows_XDG_CACHE_HOME()
    {
        string? old = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        try
        {
            Environment.SetEnvironmentVariable("XDG_CACHE_HOME", _dir);
            Assert.Equal(Path.Combine(_dir, "gpustyle"), WeightsStore.DefaultDirectory());
            Environment.SetEnvironmentVariable("XDG_CACHE_HOME", null);
            Assert.EndsWith(Path.Combine(".cache", "gpustyle"), WeightsStore.DefaultDirectory());
        }
        finally
        {
            Environment.SetEnvironmentVariable("XDG_CACHE_HOME", old);
        }
    }

    [Fact]
    public void The_official_files_are_the_ones_DESIGN_lists()
    {
        Assert.Equal("https://storage.googleapis.com/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", OfficialWeights.Vgg16.Url);
        Assert.Equal(80_134_624, OfficialWeights.Vgg19.Bytes);
    }

    /// <summary>Progress&lt;T&gt; posts to the thread pool; tests need the callback to run inline.</summary>
    sealed class SyncProgress(Action<DownloadProgress> report) : IProgress<DownloadProgress>
    {
        public void Report(DownloadProgress value) => report(value);
    }
}
