/// Batch normalization over NCHW tensors, per channel over (B, H, W), as PyTorch's BatchNorm2d:
/// y = (x − μ) / √(σ² + ε) · γ + β.
///
/// Training mode normalizes with the batch statistics (biased variance) and updates the running
/// statistics with `momentum` (the running variance takes the unbiased batch variance); eval mode
/// normalizes with the running statistics. Parameters: `weight` (γ, ones) and `bias` (β, zeros),
/// trainable without weight decay; `running_mean` (zeros) and `running_var` (ones), not trainable.
/// The backward pass needs a training-mode forward, and releases what that forward kept.
public final class BatchNorm2d: Module {
    public let weight: Parameter
    public let bias: Parameter
    public let runningMean: Parameter
    public let runningVar: Parameter
    public let channels: Int
    public let epsilon: Float
    public let momentum: Float
    /// The input of the last training forward, its per-channel mean and 1/√(σ² + ε).
    private var input = Tensor(shape: [0])
    private var batchMean: [Float] = []
    private var inverseStd: [Float] = []

    public init(_ channels: Int, epsilon: Float = 1e-5, momentum: Float = 0.1) {
        precondition(channels > 0, "BatchNorm2d needs channels")
        self.channels = channels
        self.epsilon = epsilon
        self.momentum = momentum
        weight = Parameter(Tensor(shape: [channels], repeating: 1), decays: false)
        bias = Parameter(Tensor(shape: [channels]), decays: false)
        runningMean = Parameter(Tensor(shape: [channels]), trainable: false)
        runningVar = Parameter(Tensor(shape: [channels], repeating: 1), trainable: false)
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        [("weight", weight), ("bias", bias), ("running_mean", runningMean), ("running_var", runningVar)]
    }

    private func dimensions(_ shape: [Int]) -> (batch: Int, area: Int) {
        precondition(shape.count == 4 && shape[1] == channels, "BatchNorm2d(\(channels)) got input \(shape)")
        return (shape[0], shape[2] * shape[3])
    }

    public func forward(_ x: Tensor, training: Bool = true) -> Tensor {
        let (batch, area) = dimensions(x.shape)
        let cs = channels
        var y = SpatialKernels.uninitializedTensor(x.shape)
        if !training {
            var scale = [Float](repeating: 0, count: cs), shift = [Float](repeating: 0, count: cs)
            for c in 0..<cs {
                scale[c] = weight.value.storage[c] / (runningVar.value.storage[c] + epsilon).squareRoot()
                shift[c] = bias.value.storage[c] - runningMean.value.storage[c] * scale[c]
            }
            x.withUnsafePointer { xp in
                y.withUnsafeMutablePointer { yp in
                    SpatialKernels.parallelRanges(batch * cs, grain: max(1, 8192 / max(area, 1))) { lo, hi in
                        for plane in lo..<hi {
                            let a = scale[plane % cs], b = shift[plane % cs]
                            let src = xp + plane * area, dst = yp + plane * area
                            for i in 0..<area { dst[i] = src[i] * a + b }
                        }
                    }
                }
            }
            input = Tensor(shape: [0])
            return y
        }

        let n = batch * area
        precondition(n > 1, "BatchNorm2d: training needs more than one value per channel (input \(x.shape))")
        var means = [Float](repeating: 0, count: cs), variances = [Float](repeating: 0, count: cs)
        var invStd = [Float](repeating: 0, count: cs)
        let gamma = weight.value.storage, beta = bias.value.storage
        x.withUnsafePointer { xp in
            y.withUnsafeMutablePointer { yp in
                means.withUnsafeMutableBufferPointer { mp in
                    variances.withUnsafeMutableBufferPointer { vp in
                        invStd.withUnsafeMutableBufferPointer { ip in
                            SpatialKernels.parallelRanges(cs, grain: max(1, 16384 / n)) { lo, hi in
                                for c in lo..<hi {
                                    // One pass over the channel: sums of (x − K) and (x − K)² with K one of
                                    // its values, which keeps the variance free of cancellation.
                                    let shift = xp[c * area]
                                    var s1 = 0.0, s2 = 0.0
                                    for b in 0..<batch {
                                        let m = SpatialKernels.shiftedMoments(xp + (b * cs + c) * area, area, shift: shift)
                                        s1 += Double(m.sum)
                                        s2 += Double(m.sumOfSquares)
                                    }
                                    let d = s1 / Double(n)
                                    let variance = Float(max(0, s2 / Double(n) - d * d))
                                    let mean = shift + Float(d)
                                    let inv = 1 / (variance + epsilon).squareRoot()
                                    mp[c] = mean
                                    vp[c] = variance
                                    ip[c] = inv
                                    let scale = gamma[c] * inv, offset = beta[c] - mean * scale
                                    for b in 0..<batch {
                                        let off = (b * cs + c) * area
                                        let src = xp + off, dst = yp + off
                                        for i in 0..<area { dst[i] = src[i] * scale + offset }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let unbias = Float(n) / Float(n - 1)
        for c in 0..<cs {
            runningMean.value.storage[c] = (1 - momentum) * runningMean.value.storage[c] + momentum * means[c]
            runningVar.value.storage[c] = (1 - momentum) * runningVar.value.storage[c] + momentum * variances[c] * unbias
        }
        input = x
        batchMean = means
        inverseStd = invStd
        return y
    }

    /// With x̂ = (x − μ)·r, r = 1/√(σ² + ε): dγ += Σ dy·x̂, dβ += Σ dy,
    /// dx = γ·r · (dy − mean(dy) − x̂·mean(dy·x̂)).
    public func backward(_ dy: Tensor) -> Tensor {
        precondition(input.count > 0 && dy.shape == input.shape,
                     "BatchNorm2d.backward without a matching training forward")
        let (batch, area) = dimensions(dy.shape)
        let cs = channels, n = batch * area
        var dx = SpatialKernels.uninitializedTensor(dy.shape)
        let gamma = weight.value.storage, invStd = inverseStd, means = batchMean
        var dGamma = [Float](repeating: 0, count: cs), dBeta = [Float](repeating: 0, count: cs)
        dy.withUnsafePointer { dyp in
            input.withUnsafePointer { xp in
                dx.withUnsafeMutablePointer { dxp in
                    dGamma.withUnsafeMutableBufferPointer { dgp in
                        dBeta.withUnsafeMutableBufferPointer { dbp in
                            SpatialKernels.parallelRanges(cs, grain: max(1, 16384 / n)) { lo, hi in
                                for c in lo..<hi {
                                    let mean = means[c], r = invStd[c]
                                    var sdy = 0.0, sdyx = 0.0
                                    for b in 0..<batch {
                                        let off = (b * cs + c) * area
                                        let m = SpatialKernels.centeredDot(dyp + off, xp + off, area, mean: mean)
                                        sdy += Double(m.sum)
                                        sdyx += Double(m.dot)
                                    }
                                    let sdyh = sdyx * Double(r)
                                    dgp[c] = Float(sdyh)
                                    dbp[c] = Float(sdy)
                                    // dx = k·dy + a·x + b0 with the x̂ term expanded.
                                    let k = gamma[c] * r
                                    let meanDy = Float(sdy / Double(n)), meanDyh = Float(sdyh / Double(n))
                                    let a = -k * meanDyh * r
                                    let b0 = -k * meanDy + k * meanDyh * r * mean
                                    for b in 0..<batch {
                                        let off = (b * cs + c) * area
                                        let g = dyp + off, xv = xp + off, d = dxp + off
                                        for i in 0..<area { d[i] = k * g[i] + (a * xv[i] + b0) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        for c in 0..<cs {
            weight.grad.storage[c] += dGamma[c]
            bias.grad.storage[c] += dBeta[c]
        }
        input = Tensor(shape: [0])  // one backward per forward; frees the activation early
        return dx
    }
}
