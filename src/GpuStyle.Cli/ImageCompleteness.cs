using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;

namespace GpuStyle.Cli;

/// <summary>
/// Whether an image file is whole. ImageSharp 2.1.13 decodes a JPEG, BMP, GIF or WebP that was cut off (a partial
/// download, a full disk) without a word, filling the missing part with grey or black, and a style transfer would then
/// paint that; a PNG or TIFF missing its last bytes it decodes too. This walks the file's structure — no pixel is
/// decoded — to the point where the format says the picture ends, and reports where the bytes ran out before it.
/// </summary>
public static class ImageCompleteness
{
    /// <summary>Null when the file holds its whole picture; otherwise why not, in words.</summary>
    public static string? FindTruncation(Stream file, IImageFormat format)
    {
        var reader = new ByteReader(file);
        try
        {
            return format switch
            {
                JpegFormat => Jpeg(reader),
                GifFormat => Gif(reader),
                BmpFormat => Bmp(reader, file.Length),
                WebpFormat => Webp(reader, file.Length),
                PngFormat => Png(reader),
                TiffFormat => Tiff(file),
                _ => null,
            };
        }
        catch (EndOfStreamException)
        {
            return $"the file ends after {file.Length} bytes, before its picture does (cut off?)";
        }
        catch (InvalidDataException)
        {
            return null;        // not the structure this walk knows: the decoder has the last word
        }
    }

    /// <summary>
    /// Markers from SOI to EOI: segments carry their length; after each SOS the entropy-coded data runs to the next
    /// marker (0xFF followed by anything but a stuffed 0x00, a restart marker or fill 0xFF). A progressive file has
    /// several scans; all must be there before EOI.
    /// </summary>
    static string? Jpeg(ByteReader r)
    {
        if (r.Byte() != 0xFF || r.Byte() != 0xD8) throw new InvalidDataException("no SOI marker");   // not ours to judge
        int marker = NextMarker(r);
        while (true)
        {
            switch (marker)
            {
                case 0xD9:                                          // EOI: the picture is complete
                    return null;
                case >= 0xD0 and <= 0xD7 or 0x01:                   // RSTn, TEM: no length
                    marker = NextMarker(r);
                    break;
                case 0xDA:                                          // SOS: header, then entropy-coded data
                    r.Skip(r.UInt16BigEndian() - 2);
                    marker = EntropyCodedDataEnd(r);
                    break;
                default:
                    r.Skip(r.UInt16BigEndian() - 2);
                    marker = NextMarker(r);
                    break;
            }
        }
    }

    static int NextMarker(ByteReader r)
    {
        int b = r.Byte();
        if (b != 0xFF) throw new InvalidDataException("no marker");  // not JPEG's structure: leave it to the decoder
        while (b == 0xFF) b = r.Byte();                              // fill bytes
        return b;
    }

    static int EntropyCodedDataEnd(ByteReader r)
    {
        while (true)
        {
            if (r.Byte() != 0xFF) continue;
            int b = r.Byte();
            while (b == 0xFF) b = r.Byte();
            if (b == 0x00 || b is >= 0xD0 and <= 0xD7) continue;      // stuffed byte or restart marker: same scan
            return b;
        }
    }

    /// <summary>
    /// Header, logical screen descriptor and global colour table, then blocks until the first image's data ends
    /// (its sub-blocks end with a zero length). GpuStyle reads only the first frame, so only it must be whole.
    /// </summary>
    static string? Gif(ByteReader r)
    {
        r.Skip(6 + 4);                                              // "GIF89a", width, height
        int packed = r.Byte();
        r.Skip(2);                                                  // background colour, aspect ratio
        if ((packed & 0x80) != 0) r.Skip(3 << ((packed & 7) + 1));  // global colour table
        while (true)
        {
            int block = r.Byte();
            switch (block)
            {
                case 0x21:                                          // extension: label, then sub-blocks
                    r.Skip(1);
                    SkipSubBlocks(r);
                    break;
                case 0x2C:                                          // image descriptor
                    r.Skip(8);
                    int local = r.Byte();
                    if ((local & 0x80) != 0) r.Skip(3 << ((local & 7) + 1));
                    r.Skip(1);                                      // LZW minimum code size
                    SkipSubBlocks(r);
                    return null;
                case 0x3B:
                    return "it ends before its first frame";
                default:
                    throw new InvalidDataException("not GIF's structure");
            }
        }
    }

    static void SkipSubBlocks(ByteReader r)
    {
        for (int n = r.Byte(); n != 0; n = r.Byte()) r.Skip(n);
    }

    /// <summary>
    /// The pixel array's offset and size from the headers: uncompressed rows are padded to 4 bytes; compressed ones
    /// (RLE) give their size in the header, or, where that is 0, the file size field does.
    /// </summary>
    static string? Bmp(ByteReader r, long length)
    {
        r.Skip(2);
        long fileSize = r.UInt32LittleEndian();
        r.Skip(4);
        long pixelOffset = r.UInt32LittleEndian();
        long headerSize = r.UInt32LittleEndian();
        long needed;
        if (headerSize == 12)                                       // OS/2 BITMAPCOREHEADER
        {
            int width = r.UInt16LittleEndian(), height = r.UInt16LittleEndian();
            r.Skip(2);
            int bits = r.UInt16LittleEndian();
            needed = pixelOffset + Stride(width, bits) * height;
        }
        else
        {
            long width = (int)r.UInt32LittleEndian(), height = Math.Abs((long)(int)r.UInt32LittleEndian());
            r.Skip(2);
            int bits = r.UInt16LittleEndian();
            long compression = r.UInt32LittleEndian();
            long imageSize = r.UInt32LittleEndian();
            bool uncompressed = compression is 0 or 3 or 6;          // BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS
            needed = uncompressed ? pixelOffset + Stride(width, bits) * height
                   : imageSize > 0 ? pixelOffset + imageSize
                   : fileSize;
        }
        return length < needed ? $"it has {length} bytes, and its header says the picture needs {needed} (cut off?)" : null;
    }

    static long Stride(long width, int bitsPerPixel) => (width * bitsPerPixel + 31) / 32 * 4;

    /// <summary>A RIFF file: "RIFF", the size of what follows, "WEBP".</summary>
    static string? Webp(ByteReader r, long length)
    {
        r.Skip(4);
        long needed = 8 + (long)r.UInt32LittleEndian();
        return length < needed ? $"it has {length} bytes, and its RIFF header says {needed} (cut off?)" : null;
    }

    /// <summary>Chunks (length, type, data, CRC) after the 8-byte signature, to the end of IEND.</summary>
    static string? Png(ByteReader r)
    {
        r.Skip(8);
        while (true)
        {
            long length = r.UInt32BigEndian();
            long type = r.UInt32BigEndian();
            r.Skip(length + 4);
            if (type == 0x49454E44) return null;                   // "IEND"
        }
    }

    /// <summary>
    /// The first directory (GpuStyle reads the first page), the values it stores apart and every strip or tile it
    /// points to must lie inside the file. BigTIFF is left to the decoder.
    /// </summary>
    static string? Tiff(Stream file)
    {
        var header = ReadAt(file, 0, 8);
        bool little = header[0] == (byte)'I';
        long U16(byte[] b, int at) => little ? b[at] | b[at + 1] << 8 : b[at] << 8 | b[at + 1];
        long U32(byte[] b, int at) => little ? (uint)(b[at] | b[at + 1] << 8 | b[at + 2] << 16 | b[at + 3] << 24)
                                             : (uint)(b[at] << 24 | b[at + 1] << 16 | b[at + 2] << 8 | b[at + 3]);
        if (U16(header, 2) != 42) return null;
        long directory = U32(header, 4);
        int entries = (int)U16(ReadAt(file, directory, 2), 0);
        var table = ReadAt(file, directory + 2, 12 * entries + 4);
        long[]? offsets = null, counts = null;
        long needed = directory + 2 + table.Length;
        for (int e = 0; e < entries; e++)
        {
            int at = 12 * e;
            long tag = U16(table, at), type = U16(table, at + 2), count = U32(table, at + 4);
            int size = type switch { 1 or 2 or 6 or 7 => 1, 3 or 8 => 2, 4 or 9 or 11 or 13 => 4, 5 or 10 or 12 => 8, _ => 0 };
            if (count * size > 4) needed = Math.Max(needed, U32(table, at + 8) + count * size);   // a value stored apart
            if (tag is not (273 or 279 or 324 or 325)) continue;   // Strip/TileOffsets, Strip/TileByteCounts
            if (size is not (2 or 4) || count > 1 << 24) throw new InvalidDataException("not a baseline strip table");
            var values = count * size <= 4 ? table[(at + 8)..(at + 12)] : ReadAt(file, U32(table, at + 8), (int)count * size);
            var list = new long[count];
            for (int i = 0; i < count; i++) list[i] = size == 2 ? U16(values, 2 * i) : U32(values, 4 * i);
            if (tag is 273 or 324) offsets = list; else counts = list;
        }
        if (offsets is not null && counts is not null && offsets.Length == counts.Length)
            needed = Math.Max(needed, offsets.Zip(counts, (o, c) => o + c).DefaultIfEmpty(0).Max());
        return file.Length < needed ? $"it has {file.Length} bytes, and its first page reaches byte {needed} (cut off?)" : null;
    }

    static byte[] ReadAt(Stream file, long offset, int count)
    {
        if (offset + count > file.Length) throw new EndOfStreamException();
        var bytes = new byte[count];
        file.Position = offset;
        file.ReadExactly(bytes);
        return bytes;
    }

    /// <summary>Sequential reads through a buffer; running out of bytes throws EndOfStreamException.</summary>
    sealed class ByteReader(Stream stream)
    {
        readonly byte[] _buffer = new byte[1 << 16];
        int _position, _count;

        public int Byte()
        {
            if (_position == _count)
            {
                _count = stream.Read(_buffer, 0, _buffer.Length);
                _position = 0;
                if (_count == 0) throw new EndOfStreamException();
            }
            return _buffer[_position++];
        }

        public void Skip(long n)
        {
            if (n < 0) throw new InvalidDataException("negative length");
            long buffered = Math.Min(n, _count - _position);
            _position += (int)buffered;
            n -= buffered;
            if (n == 0) return;
            if (stream.Position + n > stream.Length) throw new EndOfStreamException();
            stream.Seek(n, SeekOrigin.Current);
        }

        public int UInt16BigEndian() => Byte() << 8 | Byte();
        public int UInt16LittleEndian() => Byte() | Byte() << 8;
        public long UInt32BigEndian() => (uint)(Byte() << 24 | Byte() << 16 | Byte() << 8 | Byte());
        public long UInt32LittleEndian() => (uint)(Byte() | Byte() << 8 | Byte() << 16 | Byte() << 24);
    }
}
