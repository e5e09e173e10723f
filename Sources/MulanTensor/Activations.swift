/// max(0, x), element-wise.
public final class ReLU: Module {
    private var mask: [Bool] = []
    public init() {}
    public var namedParameters: [(name: String, parameter: Parameter)] { [] }

    public func forward(_ x: Tensor, training: Bool = true) -> Tensor {
        var y = x
        if training { mask = [Bool](repeating: false, count: x.count) }
        for i in y.storage.indices {
            if y.storage[i] > 0 { if training { mask[i] = true } } else { y.storage[i] = 0 }
        }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        var dx = dy
        for i in dx.storage.indices where !mask[i] { dx.storage[i] = 0 }
        return dx
    }
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
