namespace GpuStyle.Engine;

/// <summary>The shape of a feature map or image: channels × height × width, stored row-major (C, H, W).</summary>
public readonly record struct Shape(int C, int H, int W)
{
    public int Size => checked(C * H * W);
    public int Plane => H * W;
    public static Shape Vector(int n) => new(n, 1, 1);
    public override string ToString() => $"{C}×{H}×{W}";
}
