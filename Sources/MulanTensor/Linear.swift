/// y = x · Wᵀ + b over the last dimension: x is [..., in], y is [..., out]. W is [out, in] (the
/// PyTorch and safetensors layout), initialized as PyTorch does (uniform ±1/√in).
public final class Linear: Module {
    public let weight: Parameter
    public let bias: Parameter?
    public let inFeatures: Int
    public let outFeatures: Int
    private var input = Tensor(shape: [0])

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, random: inout RandomSource) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        let bound = 1 / Float(inFeatures).squareRoot()
        weight = Parameter(.uniform(shape: [outFeatures, inFeatures], bound: bound, using: &random))
        self.bias = bias ? Parameter(.uniform(shape: [outFeatures], bound: bound, using: &random), decays: false) : nil
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    public func forward(_ x: Tensor, training: Bool = true) -> Tensor {
        precondition(x.shape.last == inFeatures, "Linear(\(inFeatures)→\(outFeatures)) got input \(x.shape)")
        let y = Self.affine(x, weight: weight.value, bias: bias?.value)
        input = training ? x : Tensor(shape: [0])
        return y
    }

    /// x · Wᵀ + b over the last dimension of x, for a weight [out, in] and an optional bias [out]
    /// (what `forward` computes, as a function of its weights).
    static func affine(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let out = weight.shape[0], inFeatures = weight.shape[1], rows = x.count / inFeatures
        // Every element is written: the bias rows (each thread fills its own rows just before its
        // product), or the product with beta 0.
        var y = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [out])
        x.withUnsafePointer { xp in
            weight.withUnsafePointer { wp in
                y.withUnsafeMutablePointer { yp in
                    if let bias {
                        bias.withUnsafePointer { bp in
                            BLAS.parallelGemm(transB: true, m: rows, n: out, k: inFeatures, a: xp, lda: inFeatures,
                                              b: wp, ldb: inFeatures, beta: 1, c: yp, ldc: out,
                                              splitColumns: true) { rows, columns in
                                let width = columns.count
                                for r in rows { (yp + r * out + columns.lowerBound).update(from: bp + columns.lowerBound, count: width) }
                            }
                        }
                    } else {
                        BLAS.parallelGemm(transB: true, m: rows, n: out, k: inFeatures, a: xp, lda: inFeatures,
                                          b: wp, ldb: inFeatures, beta: 0, c: yp, ldc: out, splitColumns: true) { _, _ in }
                    }
                }
            }
        }
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let rows = dy.count / outFeatures
        precondition(input.count == rows * inFeatures, "Linear.backward without a matching forward")
        // dW += dyᵀ · x ; db += Σ dy ; dx = dy · W
        dy.withUnsafePointer { dp in
            input.withUnsafePointer { xp in
                weight.grad.withUnsafeMutablePointer { gp in
                    BLAS.parallelGemm(transA: true, m: outFeatures, n: inFeatures, k: rows, a: dp, lda: outFeatures,
                                      b: xp, ldb: inFeatures, beta: 1, c: gp, ldc: inFeatures)
                }
            }
        }
        if let bias {
            bias.grad.withUnsafeMutablePointer { bp in
                dy.withUnsafePointer { dp in
                    for r in 0..<rows { for o in 0..<outFeatures { bp[o] += dp[r * outFeatures + o] } }
                }
            }
        }
        var dx = Tensor(shape: input.shape)
        dy.withUnsafePointer { dp in
            weight.value.withUnsafePointer { wp in
                dx.withUnsafeMutablePointer { xp in
                    BLAS.parallelGemm(m: rows, n: inFeatures, k: outFeatures, a: dp, lda: outFeatures,
                                      b: wp, ldb: inFeatures, c: xp, ldc: inFeatures)
                }
            }
        }
        return dx
    }
}
