using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace GpuStyle.Cli;

/// <summary>
/// The `layers` grid: pictures side by side, each labelled underneath. The labels use a tiny 5×7 bitmap font of
/// our own — the only text we draw — since ImageSharp.Drawing (fonts) is not one of the project's packages.
/// </summary>
public static class GridImage
{
    const int Scale = 2, GlyphW = 5, GlyphH = 7, Gap = 8, LabelH = (GlyphH + 4) * Scale;

    public static Image<Rgb24> Compose(IReadOnlyList<(string Label, Image<Rgb24> Picture)> cells)
    {
        // A cell is as wide as its widest picture or label: at small sizes (--size 48) a label is wider than its
        // picture, and the labels ran into each other ("relu1_relu2_1").
        int cellW = Math.Max(cells.Max(c => c.Picture.Width), cells.Max(c => TextWidth(c.Label))), cellH = cells.Max(c => c.Picture.Height);
        int columns = Math.Min(cells.Count, 3), rows = (cells.Count + columns - 1) / columns;
        var grid = new Image<Rgb24>(Gap + columns * (cellW + Gap), Gap + rows * (cellH + LabelH + Gap), new Rgb24(255, 255, 255));
        for (int k = 0; k < cells.Count; k++)
        {
            int x0 = Gap + k % columns * (cellW + Gap), y0 = Gap + k / columns * (cellH + LabelH + Gap);
            var pic = cells[k].Picture;
            for (int y = 0; y < pic.Height; y++)
                for (int x = 0; x < pic.Width; x++)
                    grid[x0 + x, y0 + y] = pic[x, y];
            DrawText(grid, cells[k].Label, x0, y0 + cellH + 2 * Scale);
        }
        return grid;
    }

    /// <summary>Pixels from the first glyph's left edge to the last one's right edge.</summary>
    public static int TextWidth(string text) => text.Length == 0 ? 0 : text.Length * (GlyphW + 1) * Scale - Scale;

    static void DrawText(Image<Rgb24> image, string text, int x0, int y0)
    {
        foreach (char ch in text.ToLowerInvariant())
        {
            if (Glyphs.TryGetValue(ch, out var rows))
                for (int r = 0; r < GlyphH; r++)
                    for (int c = 0; c < GlyphW; c++)
                        if (rows[r][c] == '#')
                            for (int dy = 0; dy < Scale; dy++)
                                for (int dx = 0; dx < Scale; dx++)
                                {
                                    int x = x0 + c * Scale + dx, y = y0 + r * Scale + dy;
                                    if (x < image.Width && y < image.Height) image[x, y] = new Rgb24(0, 0, 0);
                                }
            x0 += (GlyphW + 1) * Scale;
        }
    }

    static readonly Dictionary<char, string[]> Glyphs = new()
    {
        ['0'] = [" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "],
        ['1'] = ["  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "],
        ['2'] = [" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"],
        ['3'] = ["#### ", "    #", "    #", " ### ", "    #", "    #", "#### "],
        ['4'] = ["   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "],
        ['5'] = ["#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "],
        ['6'] = [" ### ", "#    ", "#    ", "#### ", "#   #", "#   #", " ### "],
        ['7'] = ["#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "],
        ['8'] = [" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "],
        ['9'] = [" ### ", "#   #", "#   #", " ####", "    #", "    #", " ### "],
        ['_'] = ["     ", "     ", "     ", "     ", "     ", "     ", "#####"],
        ['c'] = ["     ", "     ", " ####", "#    ", "#    ", "#    ", " ####"],
        ['e'] = ["     ", "     ", " ### ", "#   #", "#####", "#    ", " ### "],
        ['h'] = ["#    ", "#    ", "#### ", "#   #", "#   #", "#   #", "#   #"],
        ['i'] = ["  #  ", "     ", " ##  ", "  #  ", "  #  ", "  #  ", " ### "],
        ['l'] = [" ##  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "],
        ['n'] = ["     ", "     ", "#### ", "#   #", "#   #", "#   #", "#   #"],
        ['o'] = ["     ", "     ", " ### ", "#   #", "#   #", "#   #", " ### "],
        ['p'] = ["     ", "     ", "#### ", "#   #", "#### ", "#    ", "#    "],
        ['r'] = ["     ", "     ", "# ## ", "##  #", "#    ", "#    ", "#    "],
        ['t'] = [" #   ", " #   ", "#### ", " #   ", " #   ", " #  #", "  ## "],
        ['u'] = ["     ", "     ", "#   #", "#   #", "#   #", "#  ##", " ## #"],
    };
}
