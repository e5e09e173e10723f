/// max(0, x), element-wise.
public final class ReLU: Module {
    private var mask: [Bool] = []
    public init() {}
    public var namedParameters: [(name: String, parameter: Parameter)] { [] }

    /// max(x, 0) element-wise (NaN becomes 0), over the threads in ranges of the storage: one pass
    /// that reads x and writes y (and the mask when training) through pointers, so the loop
    /// vectorizes; a copy of x then a subscript loop took 15 % of a frozen musicnn tower's time.
    public func forward(_ x: Tensor, training: Bool = true) -> Tensor {
        var y = SpatialKernels.uninitializedTensor(x.shape)
        let n = x.count
        if training { mask = [Bool](repeating: false, count: n) }
        x.withUnsafePointer { xp in
            y.withUnsafeMutablePointer { yp in
                if training {
                    mask.withUnsafeMutableBufferPointer { mb in
                        let mp = mb.baseAddress!
                        SpatialKernels.parallelRanges(n, grain: Self.grain) { lo, hi in
                            for i in lo..<hi {
                                let v = xp[i], positive = v > 0
                                mp[i] = positive
                                yp[i] = positive ? v : 0
                            }
                        }
                    }
                } else {
                    SpatialKernels.parallelRanges(n, grain: Self.grain) { lo, hi in
                        for i in lo..<hi { let v = xp[i]; yp[i] = v > 0 ? v : 0 }
                    }
                }
            }
        }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        var dx = SpatialKernels.uninitializedTensor(dy.shape)
        let n = dy.count
        precondition(mask.count == n, "ReLU.backward of \(dy.shape) after a forward pass of \(mask.count) elements")
        dy.withUnsafePointer { gp in
            dx.withUnsafeMutablePointer { dp in
                mask.withUnsafeBufferPointer { mb in
                    let mp = mb.baseAddress!
                    SpatialKernels.parallelRanges(n, grain: Self.grain) { lo, hi in
                        for i in lo..<hi { dp[i] = mp[i] ? gp[i] : 0 }
                    }
                }
            }
        }
        return dx
    }

    /// Elements per thread below which one thread does the whole tensor.
    static let grain = 1 << 16
}

/// Scales each row (the last dimension) to unit L2 norm: y = x / max(‖x‖, ε).
public final class L2Normalize: Module {
    private var output = Tensor(shape: [0])
    private var norms: [Float] = []
    public let epsilon: Float
    public init(epsilon: Float = 1e-12) { self.epsilon = epsilon }
    public var namedParameters: [(name: String, parameter: Parameter)] { [] }

    public func forward(_ x: Tensor, training: Bool = true) -> Tensor {
        let d = x.shape.last ?? 1, rows = x.count / max(d, 1)
        var y = x
        norms = [Float](repeating: 0, count: rows)
        for r in 0..<rows {
            var s: Float = 0
            for j in 0..<d { s += x.storage[r * d + j] * x.storage[r * d + j] }
            let n = max(s.squareRoot(), epsilon)
            norms[r] = n
            for j in 0..<d { y.storage[r * d + j] /= n }
        }
        output = y
        return y
    }

    /// dx = (dy − y·(y·dy)) / ‖x‖
    public func backward(_ dy: Tensor) -> Tensor {
        let d = output.shape.last ?? 1, rows = output.count / max(d, 1)
        var dx = dy
        for r in 0..<rows {
            var dot: Float = 0
            for j in 0..<d { dot += output.storage[r * d + j] * dy.storage[r * d + j] }
            for j in 0..<d {
                dx.storage[r * d + j] = (dy.storage[r * d + j] - output.storage[r * d + j] * dot) / norms[r]
            }
        }
        return dx
    }
}
