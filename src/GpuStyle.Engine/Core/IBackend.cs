using GpuStyle.Kernels;

namespace GpuStyle.Engine;

/// <summary>How a 2×2, stride-2 pooling layer combines its window.</summary>
public enum PoolKind { Max, Avg }

/// <summary>
/// Everything the engine computes goes through this interface; the engine never knows which implementation runs
/// (ILGPU kernels on CUDA / OpenCL / ILGPU's CPU accelerator, or the vectorised C# CPU backend).
///
/// Conventions: feature maps are C×H×W float32. Conv weights are laid out [Cout][Cin][3][3], biases [Cout].
/// Ops named "Accumulate…" add into their output (gradients of several losses meet at one activation); the others
/// overwrite every element of it. Scalars (loss values, dot products) are written into a slot of a small
/// "scalars" tensor on the device, so an optimisation loop need not read anything back until it wants to.
/// </summary>
public interface IBackend : IDisposable
{
    string Name { get; }
    /// <summary>Bytes of tensors held now and at most (scratch buffers of the backend itself not included).</summary>
    MemoryMeter Memory { get; }

    Tensor Allocate(Shape shape);
    void Upload(Tensor dst, ReadOnlySpan<float> src);
    void Download(Tensor src, Span<float> dst);
    /// <summary>Waits until every queued op has finished.</summary>
    void Synchronize();

    // ---- 3×3 convolution, stride 1, zero padding 1, bias, optional fused ReLU --------------------------------
    /// <summary>y = [ReLU](conv(x, w) + b). x: Cin×H×W, w: [Cout][Cin][3][3] (as Cout×Cin×9), b: Cout, y: Cout×H×W.</summary>
    void Conv3x3Forward(Tensor x, Tensor w, Tensor b, Tensor y, bool relu);
    /// <summary>
    /// dx = convᵀ(dy ⊙ [y &gt; 0], w). With <paramref name="reluOutput"/> given, ReLU's backward is fused: the mask is
    /// taken from the layer's (post-ReLU) output; with null, dy flows through unmasked.
    /// </summary>
    void Conv3x3BackwardInput(Tensor dy, Tensor? reluOutput, Tensor w, Tensor dx);

    // ---- 2×2 pooling, stride 2, odd sizes floor ---------------------------------------------------------
    void PoolForward(PoolKind kind, Tensor x, Tensor y);
    /// <summary>dx from dy; x is the pooling's input (max pooling routes to the first maximum of each window).</summary>
    void PoolBackward(PoolKind kind, Tensor x, Tensor dy, Tensor dx);

    // ---- Gram matrix G = F·Fᵀ/(H·W) -----------------------------------------------------------------------
    /// <summary>f: C×H×W, g: C×C (shape C×C×1).</summary>
    void GramForward(Tensor f, Tensor g);
    /// <summary>df += (dG + dGᵀ)·F/(H·W).</summary>
    void GramBackwardAccumulate(Tensor f, Tensor dg, Tensor df);

    // ---- Losses: unweighted value into scalars[slot], weight·gradient added into grad --------------------
    /// <summary>L = Σ(F−P)²/(C·H·W); grad += weight·dL/dF.</summary>
    void ContentLoss(Tensor f, Tensor p, float weight, Tensor grad, Tensor scalars, int slot);
    /// <summary>L = Σ(G−A)²/C² (g, a: C×C); dG = weight·dL/dG is written (overwritten) into dg.</summary>
    void StyleLoss(Tensor g, Tensor a, float weight, Tensor dg, Tensor scalars, int slot);
    /// <summary>L = (Σ horizontal² + Σ vertical² differences)/(C·H·W); grad += weight·dL/dx.</summary>
    void TotalVariationLoss(Tensor x, float weight, Tensor grad, Tensor scalars, int slot);

    // ---- Vector operations for the optimisers (on the device; results reduced on the device) --------------
    void Fill(Tensor x, float value);
    void Copy(Tensor src, Tensor dst);
    /// <summary>scalars[slot] = Σ x·y.</summary>
    void Dot(Tensor x, Tensor y, Tensor scalars, int slot);
    /// <summary>scalars[slot] = ‖x‖₂.</summary>
    void Norm(Tensor x, Tensor scalars, int slot);
    /// <summary>y += a·x.</summary>
    void Axpy(float a, Tensor x, Tensor y);
    /// <summary>x *= a.</summary>
    void Scale(Tensor x, float a);
    /// <summary>z = x − y (element-wise).</summary>
    void Subtract(Tensor x, Tensor y, Tensor z);
    /// <summary>z = x ⊙ y (element-wise).</summary>
    void Multiply(Tensor x, Tensor y, Tensor z);
    /// <summary>One Adam step on x with gradient g and moments m, v (all updated in place).</summary>
    void AdamStep(Tensor x, Tensor g, Tensor m, Tensor v, AdamParameters parameters);
    /// <summary>scalars[dst] = Σₖ coefficients[k]·scalars[k], k &lt; coefficients.Length (the total loss, on the device).</summary>
    void WeightedSum(Tensor scalars, Tensor coefficients, int dst);
    /// <summary>One float of a tensor read back to the host (a loss, a dot product).</summary>
    float ReadScalar(Tensor src, int index);

    // ---- L-BFGS's history, vector-free (kernels/Lbfgs.cs). rows: R×1×N, one vector of length N a row ------------
    /// <summary>rows[row] = x − y, or x when y is null.</summary>
    void SetRow(Tensor rows, int row, Tensor x, Tensor? y);
    /// <summary>products[k·R + j] = rows[j]·rows[w_k] for every row j and (w₀, w₁, w₂) = (a, b, c); products: 3R.</summary>
    void RowDots(Tensor rows, int a, int b, int c, Tensor products);
    /// <summary>y = Σⱼ coefficients[j]·rows[j] over the R rows (rows whose coefficient is 0 are not read).</summary>
    void CombineRows(Tensor rows, Tensor coefficients, Tensor y);
    /// <summary>Merges RowDots' products into the R×R dot matrix and runs the two-loop recursion on coefficients:
    /// coefficients[0…R) = δ with the direction −H·g = Σⱼ δⱼ·rows[j], coefficients[R…R+m) = the α's.</summary>
    void LbfgsDirection(Tensor dots, Tensor products, Tensor coefficients, LbfgsRing ring);
}
