/// Multi-head self-attention over [B, L, width] with a key padding mask given as per-sequence
/// lengths: in sequence b, keys at positions ≥ lengths[b] get −∞ before the softmax (every length is
/// at least 1). Queries at padded positions are computed like the others (as BERT does); nothing at
/// a padded position reaches a valid position.
///
/// query, key, value and output are `Linear(width → width)` with bias; head h uses columns
/// h·d ..< (h+1)·d of the projections (d = width / heads, the layout of BERT's checkpoints), and
/// scores are scaled by 1/√d. Each (sequence, head) pair is one task of `Parallel.forEach` with its
/// own `BLAS.gemm` calls, so results do not depend on `BLAS.threads`.
///
/// With `firstQueryOnly`, only position 0 queries (keys and values are still every position): the
/// output is [B, 1, width], the [CLS] rows of the full output, for a last layer whose other
/// positions nobody reads.
///
/// Weights are initialized N(0, std²) and biases 0, as BERT does (std 0.02).
public final class MultiHeadSelfAttention: Module {
    public let width: Int
    public let heads: Int
    public let headDim: Int
    public let query: Linear
    public let key: Linear
    public let value: Linear
    public let output: Linear

    // What the backward pass needs from the last training forward.
    private var q = Tensor(shape: [0]), k = Tensor(shape: [0]), v = Tensor(shape: [0])
    /// Softmax probabilities, [B·heads, queries, L]; columns at padded keys are 0.
    private var probabilities = Tensor(shape: [0])
    private var lengths: [Int] = []
    private var batch = 0, sequenceLength = 0, queryCount = 0
    /// For `forwardPacked`: [Wq; Wk; Wv] ([3·width, width]) and [bq; bk; bv], and the parameter
    /// versions they were built from.
    private var fusedWeight = Tensor(shape: [0]), fusedBias = Tensor(shape: [0])
    private var fusedVersions: [Int] = []

    public init(width: Int, heads: Int, std: Float = 0.02, random: inout RandomSource) {
        precondition(heads > 0 && width % heads == 0, "width \(width) is not a multiple of heads \(heads)")
        self.width = width
        self.heads = heads
        headDim = width / heads
        query = Linear(width, width, random: &random)
        key = Linear(width, width, random: &random)
        value = Linear(width, width, random: &random)
        output = Linear(width, width, random: &random)
        for layer in [query, key, value, output] { bertInitialize(layer, std: std, random: &random) }
    }

    /// query.*, key.*, value.*, output.* (the encoder layer maps them to BERT's names).
    public var namedParameters: [(name: String, parameter: Parameter)] {
        nest("query", query) + nest("key", key) + nest("value", value) + nest("output", output)
    }

    /// x: [B, L, width]; lengths: B values in 1...L. Returns [B, L, width], or [B, 1, width] with
    /// `firstQueryOnly`.
    public func forward(_ x: Tensor, lengths: [Int], firstQueryOnly: Bool = false, training: Bool = true) -> Tensor {
        precondition(x.rank == 3 && x.shape[2] == width, "attention(width \(width)) got input \(x.shape)")
        let b = x.shape[0], l = x.shape[1], w = width, h = heads, d = headDim, lq = firstQueryOnly ? 1 : l
        precondition(lengths.count == b && lengths.allSatisfy { $0 >= 1 && $0 <= l },
                     "attention: lengths \(lengths) for input \(x.shape)")
        let q = query.forward(firstQueryOnly ? firstPositions(x) : x, training: training)
        let k = key.forward(x, training: training)
        let v = value.forward(x, training: training)
        // Every element of the context is written (beta 0). The probabilities' columns at padded keys
        // are kept 0 for the backward pass; an inference pass never reads them.
        var context = Tensor(uninitializedShape: [b, lq, w])
        var probs = training ? Tensor(shape: [b * h, lq, l]) : Tensor(uninitializedShape: [b * h, lq, l])
        let scale = 1 / Float(d).squareRoot()
        q.withUnsafePointer { qp in
            k.withUnsafePointer { kp in
                v.withUnsafePointer { vp in
                    context.withUnsafeMutablePointer { cp in
                        probs.withUnsafeMutablePointer { pp in
                            lengths.withUnsafeBufferPointer { lens in
                                Parallel.forEach(b * h) { t in
                                    let s = t / h, n = lens[s], column = (t % h) * d
                                    let keys = s * l * w + column, queries = s * lq * w + column
                                    let p = pp + t * lq * l
                                    // Scores for the valid keys only; the others stay 0 (exp(−∞)).
                                    BLAS.gemm(transB: true, m: lq, n: n, k: d, alpha: scale, a: qp + queries, lda: w,
                                              b: kp + keys, ldb: w, c: p, ldc: l)
                                    for i in 0..<lq { softmaxRow(p + i * l, n) }
                                    BLAS.gemm(m: lq, n: d, k: n, a: p, lda: l, b: vp + keys, ldb: w,
                                              c: cp + queries, ldc: w)
                                }
                            }
                        }
                    }
                }
            }
        }
        let y = output.forward(context, training: training)
        if training {
            (self.q, self.k, self.v, probabilities) = (q, k, v, probs)
            self.lengths = lengths
            (batch, sequenceLength, queryCount) = (b, l, lq)
        } else {
            (self.q, self.k, self.v, probabilities) = (Tensor(shape: [0]), Tensor(shape: [0]), Tensor(shape: [0]),
                                                        Tensor(shape: [0]))
        }
        return y
    }

    /// Inference over packed rows: x is [N, width], the sequences one after another without
    /// padding (sequence s is the `lengths[s]` rows after those of the sequences before it, N the sum
    /// of the lengths). Returns [N, width]: for every row, what `forward` gives at that (valid)
    /// position, up to rounding (OpenBLAS may block products of other shapes differently: a few
    /// 1e-7 on all-MiniLM-L6-v2). Keeps no state for a backward pass. No work goes to padding.
    ///
    /// The query, key and value projections are one product with the three weights stacked
    /// ([3·width, width], built on first use and rebuilt whenever one of the six parameters changes,
    /// see `Parameter.version`): OpenBLAS packs the input once instead of three times.
    public func forwardPacked(_ x: Tensor, lengths: [Int]) -> Tensor {
        let w = width, h = heads, d = headDim, n = x.count / max(w, 1)
        precondition(x.shape.last == w && lengths.allSatisfy { $0 >= 1 } && lengths.reduce(0, +) == n,
                     "attention: packed input \(x.shape) for lengths \(lengths)")
        let versions = [query.weight, key.weight, value.weight].map(\.version)
            + [query.bias, key.bias, value.bias].map { $0?.version ?? -1 }
        if versions != fusedVersions {
            fusedWeight = Tensor(uninitializedShape: [3 * w, w])
            fusedWeight.storage.withUnsafeMutableBufferPointer { fp in
                for (i, layer) in [query, key, value].enumerated() {
                    layer.weight.value.storage.withUnsafeBufferPointer { wp in
                        _ = UnsafeMutableBufferPointer(rebasing: fp[i * w * w..<(i + 1) * w * w]).initialize(from: wp)
                    }
                }
            }
            fusedBias = Tensor(shape: [3 * w])
            for (i, layer) in [query, key, value].enumerated() {
                if let bias = layer.bias {
                    for j in 0..<w { fusedBias.storage[i * w + j] = bias.value.storage[j] }
                }
            }
            fusedVersions = versions
        }
        let qkv = Linear.affine(x, weight: fusedWeight, bias: fusedBias)  // [N, 3w]: q | k | v per row
        var offsets = [Int](repeating: 0, count: lengths.count + 1)
        var scratch = [Int](repeating: 0, count: lengths.count + 1)
        for (s, len) in lengths.enumerated() {
            offsets[s + 1] = offsets[s] + len
            scratch[s + 1] = scratch[s] + h * len * len
        }
        var context = Tensor(uninitializedShape: [n, w])  // every element written (beta 0)
        var probs = [Float](unsafeUninitializedCapacity: max(1, scratch[lengths.count])) { _, c in
            c = max(1, scratch[lengths.count])
        }
        let scale = 1 / Float(d).squareRoot(), ld = 3 * w
        qkv.withUnsafePointer { qp in
            context.withUnsafeMutablePointer { cp in
                probs.withUnsafeMutableBufferPointer { pb in
                    offsets.withUnsafeBufferPointer { off in
                        scratch.withUnsafeBufferPointer { sc in
                            let pp = pb.baseAddress!
                            Parallel.forEach(lengths.count * h) { t in
                                let s = t / h, head = t % h, row = off[s], len = off[s + 1] - row
                                let q = qp + row * ld + head * d, k = q + w, v = q + 2 * w
                                let p = pp + sc[s] + head * len * len
                                BLAS.gemm(transB: true, m: len, n: len, k: d, alpha: scale, a: q, lda: ld,
                                          b: k, ldb: ld, c: p, ldc: len)
                                for i in 0..<len { softmaxRow(p + i * len, len) }
                                BLAS.gemm(m: len, n: d, k: len, a: p, lda: len, b: v, ldb: ld,
                                          c: cp + row * w + head * d, ldc: w)
                            }
                        }
                    }
                }
            }
        }
        return output.forward(context, training: false)
    }

    /// dy: the shape of the output. Accumulates the four layers' parameter gradients; returns dx
    /// ([B, L, width]).
    public func backward(_ dy: Tensor) -> Tensor {
        let b = batch, l = sequenceLength, lq = queryCount, w = width, h = heads, d = headDim
        precondition(probabilities.count == b * h * lq * l && dy.count == b * lq * w,
                     "attention.backward without a matching forward")
        let dContext = output.backward(dy)
        var dq = Tensor(shape: [b, lq, w]), dk = Tensor(shape: [b, l, w]), dv = Tensor(shape: [b, l, w])
        var dScores = Tensor(shape: [b * h, lq, l])
        let scale = 1 / Float(d).squareRoot()
        q.withUnsafePointer { qp in
            k.withUnsafePointer { kp in
                v.withUnsafePointer { vp in
                    probabilities.withUnsafePointer { pp in
                        dContext.withUnsafePointer { gp in
                            dq.withUnsafeMutablePointer { dqp in
                                dk.withUnsafeMutablePointer { dkp in
                                    dv.withUnsafeMutablePointer { dvp in
                                        dScores.withUnsafeMutablePointer { sp in
                                            lengths.withUnsafeBufferPointer { lens in
                                                Parallel.forEach(b * h) { t in
                                                    let s = t / h, n = lens[s], column = (t % h) * d
                                                    let keys = s * l * w + column, queries = s * lq * w + column
                                                    let p = pp + t * lq * l, ds = sp + t * lq * l
                                                    // dP = dC·Vᵀ (valid keys); dV = Pᵀ·dC (rows of valid keys).
                                                    BLAS.gemm(transB: true, m: lq, n: n, k: d, a: gp + queries, lda: w,
                                                              b: vp + keys, ldb: w, c: ds, ldc: l)
                                                    BLAS.gemm(transA: true, m: n, n: d, k: lq, a: p, lda: l,
                                                              b: gp + queries, ldb: w, c: dvp + keys, ldc: w)
                                                    // Through the softmax: dS = P ⊙ (dP − Σⱼ P·dP), times the scale.
                                                    for i in 0..<lq {
                                                        let pr = p + i * l, dr = ds + i * l
                                                        var dot: Float = 0
                                                        for j in 0..<n { dot += pr[j] * dr[j] }
                                                        for j in 0..<n { dr[j] = scale * pr[j] * (dr[j] - dot) }
                                                    }
                                                    // dQ = dS·K; dK = dSᵀ·Q (rows of valid keys).
                                                    BLAS.gemm(m: lq, n: d, k: n, a: ds, lda: l, b: kp + keys, ldb: w,
                                                              c: dqp + queries, ldc: w)
                                                    BLAS.gemm(transA: true, m: n, n: d, k: lq, a: ds, lda: l,
                                                              b: qp + queries, ldb: w, c: dkp + keys, ldc: w)
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
        }
        var dx = key.backward(dk)
        addInPlace(&dx, value.backward(dv))
        let dxq = query.backward(dq)
        if lq == l {
            addInPlace(&dx, dxq)
        } else {
            addToFirstPositions(&dx, dxq)
        }
        return dx
    }
}

/// BERT's post-LN encoder layer (`BertLayer`):
///
///     h = LN₁(x + Attention(x))            attention.self.*, attention.output.dense, attention.output.LayerNorm
///     y = LN₂(h + W₂·GELU(W₁·h))           intermediate.dense (W₁), output.dense (W₂), output.LayerNorm
///
/// Without dropout: BERT's hidden and attention-probability dropout are not implemented (training
/// runs as BERT does in eval mode). Parameter names are those of Hugging Face's `BertLayer`.
public final class TransformerEncoderLayer: Module {
    public let attention: MultiHeadSelfAttention
    public let attentionNorm: LayerNorm
    public let intermediate: Linear
    public let activation = GELU()
    public let outputDense: Linear
    public let outputNorm: LayerNorm
    private var firstOnly = false

    public init(width: Int, heads: Int, feedForward: Int, layerNormEpsilon: Float = 1e-12, std: Float = 0.02,
                random: inout RandomSource) {
        attention = MultiHeadSelfAttention(width: width, heads: heads, std: std, random: &random)
        attentionNorm = LayerNorm(width, epsilon: layerNormEpsilon)
        intermediate = Linear(width, feedForward, random: &random)
        outputDense = Linear(feedForward, width, random: &random)
        outputNorm = LayerNorm(width, epsilon: layerNormEpsilon)
        bertInitialize(intermediate, std: std, random: &random)
        bertInitialize(outputDense, std: std, random: &random)
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        nest("attention.self.query", attention.query) + nest("attention.self.key", attention.key)
            + nest("attention.self.value", attention.value) + nest("attention.output.dense", attention.output)
            + nest("attention.output.LayerNorm", attentionNorm) + nest("intermediate.dense", intermediate)
            + nest("output.dense", outputDense) + nest("output.LayerNorm", outputNorm)
    }

    /// x: [B, L, width]; lengths as for `MultiHeadSelfAttention`. Returns [B, L, width], or with
    /// `firstPositionOnly` the [CLS] rows alone, [B, 1, width] (for a last layer under [CLS]
    /// pooling: the other positions are not computed).
    public func forward(_ x: Tensor, lengths: [Int], firstPositionOnly: Bool = false, training: Bool = true) -> Tensor {
        let a = attention.forward(x, lengths: lengths, firstQueryOnly: firstPositionOnly, training: training)
        // The residual sums are formed inside the LayerNorms.
        let h = attentionNorm.forward(a, adding: firstPositionOnly ? firstPositions(x) : x, training: training)
        var f = intermediate.forward(h, training: training)
        if training {
            f = activation.forward(f, training: true)
        } else {
            GELU.applyInPlace(&f)  // the same values, without another buffer
        }
        let o = outputDense.forward(f, training: training)
        firstOnly = firstPositionOnly
        return outputNorm.forward(o, adding: h, training: training)
    }

    /// Inference over packed rows (see `MultiHeadSelfAttention.forwardPacked`): x [N, width], the
    /// valid positions of the sequences one after another; returns [N, width], the rows `forward`
    /// gives at those positions (up to rounding), with no work spent on padding. Keeps no state for
    /// a backward pass.
    public func forwardPacked(_ x: Tensor, lengths: [Int]) -> Tensor {
        let a = attention.forwardPacked(x, lengths: lengths)
        let h = attentionNorm.forward(a, adding: x, training: false)
        var f = intermediate.forward(h, training: false)
        GELU.applyInPlace(&f)
        let o = outputDense.forward(f, training: false)
        return outputNorm.forward(o, adding: h, training: false)
    }

    /// dy: the shape of the output. Returns dx, [B, L, width].
    public func backward(_ dy: Tensor) -> Tensor {
        let dz2 = outputNorm.backward(dy)
        var dh = intermediate.backward(activation.backward(outputDense.backward(dz2)))
        addInPlace(&dh, dz2)
        // dz₁ is both the gradient of the attention output and, through the residual, of x.
        let dz1 = attentionNorm.backward(dh)
        var dx = attention.backward(dz1)
        if firstOnly {
            addToFirstPositions(&dx, dz1)
        } else {
            addInPlace(&dx, dz1)
        }
        return dx
    }
}

/// BERT's `_init_weights` for a linear layer: weight N(0, std²), bias 0.
fileprivate func bertInitialize(_ layer: Linear, std: Float, random: inout RandomSource) {
    layer.weight.value = .normal(shape: layer.weight.value.shape, std: std, using: &random)
    if let bias = layer.bias { bias.value = Tensor(shape: bias.value.shape) }
}

/// a += b, element-wise over as many elements.
fileprivate func addInPlace(_ a: inout Tensor, _ b: Tensor) {
    precondition(a.count == b.count, "cannot add \(b.shape) to \(a.shape)")
    let n = a.count
    b.withUnsafePointer { bp in
        a.withUnsafeMutablePointer { ap in
            for i in 0..<n { ap[i] += bp[i] }
        }
    }
}

/// x[:, 0, :] of x [B, L, width], as [B, 1, width].
fileprivate func firstPositions(_ x: Tensor) -> Tensor {
    let b = x.shape[0], l = x.shape[1], w = x.shape[2]
    var y = Tensor(shape: [b, 1, w])
    x.withUnsafePointer { xp in
        y.withUnsafeMutablePointer { yp in
            for s in 0..<b { (yp + s * w).update(from: xp + s * l * w, count: w) }
        }
    }
    return y
}

/// x[:, 0, :] += g for x [B, L, width] and g [B, 1, width].
fileprivate func addToFirstPositions(_ x: inout Tensor, _ g: Tensor) {
    let b = x.shape[0], l = x.shape[1], w = x.shape[2]
    precondition(g.count == b * w, "cannot add \(g.shape) to the first positions of \(x.shape)")
    g.withUnsafePointer { gp in
        x.withUnsafeMutablePointer { xp in
            for s in 0..<b {
                let row = xp + s * l * w, src = gp + s * w
                for j in 0..<w { row[j] += src[j] }
            }
        }
    }
}

/// In place: p[0..<n] ← softmax(p[0..<n]) (n ≥ 1), max-subtracted, with the vectorizable
/// `expNonPositive` of GELU.swift. The rest of the row is left as it is.
@inline(__always)
fileprivate func softmaxRow(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
    var m = p[0]
    for j in 1..<n where p[j] > m { m = p[j] }
    for j in 0..<n { p[j] = expNonPositive(p[j] - m) }
    var sum: Float = 0
    for j in 0..<n { sum += p[j] }
    let inv = 1 / sum
    for j in 0..<n { p[j] *= inv }
}
