/// A lookup table: row `id` of `weight` ([count, dim]) for each id. Initialized N(0, 0.02²) as
/// BERT initializes its embeddings.
///
/// `backward` adds each output row's gradient into the row of `weight.grad` it came from, in the
/// order of the ids, so repeated ids accumulate deterministically whatever `BLAS.threads` is.
public final class Embedding: Module {
    public let weight: Parameter
    public let count: Int
    public let dim: Int
    private var ids: [Int32] = []

    public init(_ count: Int, _ dim: Int, std: Float = 0.02, random: inout RandomSource) {
        precondition(count > 0 && dim > 0, "Embedding(\(count), \(dim))")
        self.count = count
        self.dim = dim
        weight = Parameter(.normal(shape: [count, dim], std: std, using: &random))
    }

    public var namedParameters: [(name: String, parameter: Parameter)] { [("weight", weight)] }

    /// The rows of `ids`: [ids.count, dim]. Every id must be in 0..<count.
    public func forward(_ ids: [Int32], training: Bool = true) -> Tensor {
        var y = Tensor(shape: [ids.count, dim])
        let dim = dim, count = count
        ids.withUnsafeBufferPointer { ip in
            weight.value.withUnsafePointer { wp in
                y.withUnsafeMutablePointer { yp in
                    for (r, id) in ip.enumerated() {
                        precondition(id >= 0 && Int(id) < count, "Embedding: id \(id) outside 0..<\(count)")
                        (yp + r * dim).update(from: wp + Int(id) * dim, count: dim)
                    }
                }
            }
        }
        self.ids = training ? ids : []
        return y
    }

    /// Adds `dy` ([ids.count, dim], any shape with as many elements) into the rows of `weight.grad`.
    /// There is no input gradient (ids are discrete).
    public func backward(_ dy: Tensor) {
        precondition(dy.count == ids.count * dim, "Embedding.backward without a matching forward")
        let dim = dim
        ids.withUnsafeBufferPointer { ip in
            dy.withUnsafePointer { dp in
                weight.grad.withUnsafeMutablePointer { gp in
                    for (r, id) in ip.enumerated() {
                        let g = gp + Int(id) * dim, d = dp + r * dim
                        for j in 0..<dim { g[j] += d[j] }
                    }
                }
            }
        }
    }
}
