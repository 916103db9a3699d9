using GpuStyle.Cli;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace GpuStyle.Tests;

public sealed class GridImageTests
{
    [Theory]
    [InlineData(20)]    // pictures narrower than their labels (the `layers` grid at --size 20)
    [InlineData(120)]
    public void Labels_stay_apart_whatever_the_pictures_width(int width)
    {
        var random = new Random();
        var labels = new[] { "photo", "relu1_1", "relu2_1", "relu3_1", "relu4_1" };
        var cells = labels.Select(l =>
        {
            var picture = new Image<Rgb24>(width, 15, new Rgb24(255, 255, 255));
            picture[random.Next(width), random.Next(15)] = new Rgb24(200, 0, 0);   // a picture is not blank
            return (l, picture);
        }).ToList();
        using var grid = GridImage.Compose(cells);
        // The first row's label band: columns with black pixels, in runs; a run is a label (blank columns inside one: 8 at most),
        // and labels must be separate runs, each as wide as its text.
        var inkColumns = Enumerable.Range(0, grid.Width)
            .Where(x => Enumerable.Range(15 + 8, 22).Any(y => y < grid.Height && grid[x, y] == new Rgb24(0, 0, 0))).ToList();
        var runs = new List<(int Start, int End)>();
        foreach (int x in inkColumns)
            if (runs.Count > 0 && x - runs[^1].End <= 9) runs[^1] = (runs[^1].Start, x);
            else runs.Add((x, x));
        Assert.Equal(3, runs.Count);   // three cells a row
        for (int k = 0; k < 3; k++)
            Assert.True(runs[k].End - runs[k].Start + 1 <= GridImage.TextWidth(labels[k]), $"label {labels[k]}: {runs[k]}");
        Assert.True(runs[1].Start - runs[0].End > 8 && runs[2].Start - runs[1].End > 8, string.Join(", ", runs));
        foreach (var (_, picture) in cells) picture.Dispose();
    }
}
