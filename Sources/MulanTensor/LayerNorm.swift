/// Layer normalization over the last dimension: y = (x − mean) / √(var + ε) · weight + bias, with
/// the biased variance (PyTorch's `nn.LayerNorm`). BERT uses ε = 1e-12; PyTorch's default is 1e-5.
///
/// Rows are processed in parallel in fixed blocks of `LayerNorm.blockRows`; the weight and bias
/// gradients are summed per block and the blocks added in order, so results do not depend on
/// `BLAS.threads`.
public final class LayerNorm: Module {
    public let weight: Parameter
    public let bias: Parameter
    public let dim: Int
    public let epsilon: Float
    /// x̂ = (x − mean)·rstd of the last training forward, and rstd per row.
    private var normalized = Tensor(shape: [0])
    private var rstd: [Float] = []

    static let blockRows = 32

    public init(_ dim: Int, epsilon: Float = 1e-5) {
        precondition(dim > 0, "LayerNorm(\(dim))")
        self.dim = dim
        self.epsilon = epsilon
        weight = Parameter(Tensor(shape: [dim], repeating: 1), decays: false)
        bias = Parameter(Tensor(shape: [dim]), decays: false)
    }

    public var namedParameters: [(name: String, parameter: Parameter)] { [("weight", weight), ("bias", bias)] }

    public func forward(_ x: Tensor, training: Bool = true) -> Tensor {
        forward(x, adding: nil, training: training)
    }

    /// LayerNorm(x + residual), with the sum formed row by row inside the kernel (the same values as
    /// adding first: a residual connection without its own pass over memory). `residual` holds as
    /// many elements as x; the backward pass is that of LayerNorm alone (the sum's gradient goes to
    /// both terms unchanged).
    public func forward(_ x: Tensor, adding residual: Tensor?, training: Bool = true) -> Tensor {
        precondition(x.shape.last == dim, "LayerNorm(\(dim)) got input \(x.shape)")
        precondition(residual == nil || residual!.count == x.count, "LayerNorm: residual \(residual!.shape) for \(x.shape)")
        let d = dim, rows = x.count / d, eps = epsilon
        var y = Tensor(uninitializedShape: x.shape)
        // (One element when not training, so that every buffer has an address.)
        var xhat = Tensor(uninitializedShape: training ? x.shape : [1])
        var rstd = [Float](repeating: 0, count: training ? rows : 1)
        let blocks = (rows + Self.blockRows - 1) / Self.blockRows
        let other = residual ?? Tensor(shape: [1])
        let adds = residual != nil
        x.withUnsafePointer { xp in
            other.withUnsafePointer { op in
                weight.value.withUnsafePointer { gp in
                    bias.value.withUnsafePointer { bp in
                        y.withUnsafeMutablePointer { yp in
                            xhat.withUnsafeMutablePointer { hp in
                                rstd.withUnsafeMutableBufferPointer { rp in
                                    Parallel.forEach(blocks) { blk in
                                        let r0 = blk * Self.blockRows, r1 = min(rows, r0 + Self.blockRows)
                                        for r in r0..<r1 {
                                            let yr = yp + r * d, hr = hp + (training ? r * d : 0)
                                            let rr = rp.baseAddress! + (training ? r : 0)
                                            if adds {
                                                // The sum goes to the output row, then is normalized in place.
                                                let xr = xp + r * d, orow = op + r * d
                                                for j in 0..<d { yr[j] = xr[j] + orow[j] }
                                                normalizeRow(yr, yr, d, eps, gp, bp, training ? hr : nil, rr)
                                            } else {
                                                normalizeRow(xp + r * d, yr, d, eps, gp, bp, training ? hr : nil, rr)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        normalized = training ? xhat : Tensor(shape: [0])
        self.rstd = training ? rstd : []
        return y
    }

    /// dx = rstd · (g − mean(g) − x̂ · mean(g·x̂)) with g = dy·weight; d weight += Σ dy·x̂; d bias += Σ dy.
    public func backward(_ dy: Tensor) -> Tensor {
        let d = dim, rows = dy.count / d
        precondition(normalized.count == dy.count && rstd.count == rows, "LayerNorm.backward without a matching forward")
        let blocks = (rows + Self.blockRows - 1) / Self.blockRows
        var dx = Tensor(shape: normalized.shape)
        // Per block: [d weight partial | d bias partial].
        var partial = [Float](repeating: 0, count: blocks * 2 * d)
        dy.withUnsafePointer { dp in
            normalized.withUnsafePointer { hp in
                weight.value.withUnsafePointer { gp in
                    dx.withUnsafeMutablePointer { xp in
                        rstd.withUnsafeBufferPointer { rp in
                            partial.withUnsafeMutableBufferPointer { pp in
                                let pbase = pp.baseAddress!
                                Parallel.forEach(blocks) { blk in
                                    let r0 = blk * Self.blockRows, r1 = min(rows, r0 + Self.blockRows)
                                    let pw = pbase + blk * 2 * d, pb = pw + d
                                    for r in r0..<r1 {
                                        let dr = dp + r * d, hr = hp + r * d, xr = xp + r * d
                                        var a: Float = 0, b: Float = 0
                                        for j in 0..<d {
                                            let g = dr[j] * gp[j]
                                            a += g
                                            b += g * hr[j]
                                            pw[j] += dr[j] * hr[j]
                                            pb[j] += dr[j]
                                        }
                                        let ma = a / Float(d), mb = b / Float(d), s = rp[r]
                                        for j in 0..<d { xr[j] = s * (dr[j] * gp[j] - ma - hr[j] * mb) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        partial.withUnsafeBufferPointer { pp in
            weight.grad.withUnsafeMutablePointer { wg in
                bias.grad.withUnsafeMutablePointer { bg in
                    for blk in 0..<blocks {
                        let pw = pp.baseAddress! + blk * 2 * d, pb = pw + d
                        for j in 0..<d {
                            wg[j] += pw[j]
                            bg[j] += pb[j]
                        }
                    }
                }
            }
        }
        return dx
    }
}

/// y = (x − mean)·rstd·weight + bias over one row of d values (y may be x); with `xhat`, also
/// x̂ = (x − mean)·rstd into it and rstd into `rstd`.
@inline(__always)
private func normalizeRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ d: Int, _ eps: Float,
                          _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                          _ xhat: UnsafeMutablePointer<Float>?, _ rstd: UnsafeMutablePointer<Float>) {
    let mean = laneSum(x, d, shift: 0) / Float(d)
    let sq = laneSum(x, d, shift: mean, squared: true)
    let s = 1 / (sq / Float(d) + eps).squareRoot()
    if let xhat {
        rstd.pointee = s
        for j in 0..<d {
            let h = (x[j] - mean) * s
            xhat[j] = h
            y[j] = h * weight[j] + bias[j]
        }
    } else {
        for j in 0..<d { y[j] = (x[j] - mean) * s * weight[j] + bias[j] }
    }
}

/// Σ x[j] (or Σ (x[j] − shift)² with `squared`) over n values, in eight interleaved partial sums
/// added in a fixed order, so the loop vectorizes and the result does not depend on threads.
@inline(__always)
func laneSum(_ x: UnsafePointer<Float>, _ n: Int, shift: Float, squared: Bool = false) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    let shifted = SIMD8<Float>(repeating: shift)
    var j = 0
    while j + 8 <= n {
        let v = UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self) - shifted
        acc += squared ? v * v : v
        j += 8
    }
    var total = acc.sum()
    while j < n {
        let v = x[j] - shift
        total += squared ? v * v : v
        j += 1
    }
    return total
}
