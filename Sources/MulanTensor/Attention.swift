/// Multi-head self-attention over [B, L, width] with a key padding mask given as per-sequence
/// lengths: in sequence b, keys at positions ≥ lengths[b] get −∞ before the softmax (every length is
/// at least 1). Queries at padded positions are computed like the others (as BERT does); nothing at
/// a padded position reaches a valid position.
///
/// query, key, value and output are `Linear(width → width)` with bias; head h uses columns
/// h·d ..< (h+1)·d of the projections (d = width / heads, the layout of BERT's checkpoints), and
/// scores are scaled by 1/√d. Each (sequence, head) pair is one task of `Parallel.forEach` with its
/// own `BLAS.gemm` calls, so results do not depend on `BLAS.threads`. A task walks its queries in
/// blocks of `queryBlock` rows (a split fixed by the shapes alone): a block's scores, softmax and
/// product with V (forward), and its dP, dS, dQ and its share of dK and dV (backward), run while
/// the block's [rows, L] scores are in the core's cache, instead of passes over the whole [L, L]
/// matrix (5.6 MB at the AST's 1,189 positions, more than a core's L2).
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
    /// Softmax probabilities, [B·heads, queries, L]; columns at padded keys are not written (nothing
    /// reads them).
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

    /// Query rows per block of a (sequence, head) task: 64 rows of scores at the AST's 1,189 keys are
    /// 304 KB, so a block's probabilities and (backward) its dS fit a core's L2 together.
    static let queryBlock = 64

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
        // Every element of the context is written (beta 0). A training pass keeps the probabilities for
        // the backward pass (their columns at padded keys are never written nor read); an inference pass
        // puts each block's in a scratch block of the same layout (the same products, the same values).
        var context = Tensor(uninitializedShape: [b, lq, w])
        var probs = Tensor(uninitializedShape: training ? [b * h, lq, l] : [1])
        let scale = 1 / Float(d).squareRoot(), block = Self.queryBlock
        q.withUnsafePointer { qp in
            k.withUnsafePointer { kp in
                v.withUnsafePointer { vp in
                    context.withUnsafeMutablePointer { cp in
                        probs.withUnsafeMutablePointer { pp in
                            lengths.withUnsafeBufferPointer { lens in
                                Parallel.forEach(b * h) { t in
                                    let s = t / h, n = lens[s], column = (t % h) * d
                                    let keys = s * l * w + column, queries = s * lq * w + column
                                    let scratch = training ? nil : UnsafeMutablePointer<Float>.allocate(capacity: min(block, lq) * l)
                                    defer { scratch?.deallocate() }
                                    var i0 = 0
                                    while i0 < lq {
                                        let rows = min(block, lq - i0)
                                        let p = scratch ?? pp + (t * lq + i0) * l
                                        // Scores for the valid keys only (the others would be exp(−∞) = 0).
                                        BLAS.gemm(transB: true, m: rows, n: n, k: d, alpha: scale, a: qp + queries + i0 * w,
                                                  lda: w, b: kp + keys, ldb: w, c: p, ldc: l)
                                        for i in 0..<rows { softmaxRow(p + i * l, n) }
                                        BLAS.gemm(m: rows, n: d, k: n, a: p, lda: l, b: vp + keys, ldb: w,
                                                  c: cp + queries + i0 * w, ldc: w)
                                        i0 += rows
                                    }
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
        // Every row of dq is written by its block's product (beta 0); dK's and dV's rows at padded keys
        // stay 0.
        var dq = Tensor(uninitializedShape: [b, lq, w]), dk = Tensor(shape: [b, l, w]), dv = Tensor(shape: [b, l, w])
        let scale = 1 / Float(d).squareRoot(), block = Self.queryBlock
        q.withUnsafePointer { qp in
            k.withUnsafePointer { kp in
                v.withUnsafePointer { vp in
                    probabilities.withUnsafePointer { pp in
                        dContext.withUnsafePointer { gp in
                            dq.withUnsafeMutablePointer { dqp in
                                dk.withUnsafeMutablePointer { dkp in
                                    dv.withUnsafeMutablePointer { dvp in
                                        lengths.withUnsafeBufferPointer { lens in
                                            Parallel.forEach(b * h) { t in
                                                let s = t / h, n = lens[s], column = (t % h) * d
                                                let keys = s * l * w + column, queries = s * lq * w + column
                                                // dP, then dS in place, of one block of query rows: [rows, n].
                                                let ds = UnsafeMutablePointer<Float>.allocate(capacity: min(block, lq) * n)
                                                defer { ds.deallocate() }
                                                var i0 = 0
                                                while i0 < lq {
                                                    let rows = min(block, lq - i0), first: Float = i0 == 0 ? 0 : 1
                                                    let p = pp + (t * lq + i0) * l, g = gp + queries + i0 * w
                                                    // dP = dC·Vᵀ (valid keys); dV += Pᵀ·dC (rows of valid keys).
                                                    BLAS.gemm(transB: true, m: rows, n: n, k: d, a: g, lda: w,
                                                              b: vp + keys, ldb: w, c: ds, ldc: n)
                                                    BLAS.gemm(transA: true, m: n, n: d, k: rows, a: p, lda: l,
                                                              b: g, ldb: w, beta: first, c: dvp + keys, ldc: w)
                                                    // Through the softmax: dS = P ⊙ (dP − Σⱼ P·dP), times the scale.
                                                    for i in 0..<rows { softmaxBackwardRow(p + i * l, ds + i * n, n, scale: scale) }
                                                    // dQ = dS·K; dK += dSᵀ·Q (rows of valid keys).
                                                    BLAS.gemm(m: rows, n: d, k: n, a: ds, lda: n, b: kp + keys, ldb: w,
                                                              c: dqp + queries + i0 * w, ldc: w)
                                                    BLAS.gemm(transA: true, m: n, n: d, k: rows, a: ds, lda: n,
                                                              b: qp + queries + i0 * w, ldb: w, beta: first, c: dkp + keys, ldc: w)
                                                    i0 += rows
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
/// `expNonPositive` of GELU.swift. The maximum (`laneMax`) and the sum (`laneSum`) run in eight
/// lanes, so that they vectorize too (a single running sum or maximum is a chain of dependent
/// operations, one per element, that the compiler may not reorder). The rest of the row is left as
/// it is.
@inline(__always)
func softmaxRow(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
    let m = laneMax(p, n)
    for j in 0..<n { p[j] = expNonPositive(p[j] - m) }
    let inv = 1 / laneSum(p, n, shift: 0)
    for j in 0..<n { p[j] *= inv }
}

/// The softmax's backward pass over one row of n values, in place: dp ← scale·p ⊙ (dp − Σⱼ p·dp),
/// the dot product in eight lanes (`laneDot`).
@inline(__always)
func softmaxBackwardRow(_ p: UnsafePointer<Float>, _ dp: UnsafeMutablePointer<Float>, _ n: Int, scale: Float) {
    let dot = laneDot(p, dp, n)
    for j in 0..<n { dp[j] = scale * p[j] * (dp[j] - dot) }
}

/// max x[0..<n] (n ≥ 1): eight lanes, then the tail. Exact (a maximum does not round), so equal to a
/// running maximum for inputs without NaN.
@inline(__always)
func laneMax(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    let raw = UnsafeRawPointer(x)
    var m = x[0], j = 0
    if n >= 8 {
        var acc = raw.loadUnaligned(as: SIMD8<Float>.self)
        j = 8
        while j + 8 <= n {
            let v = raw.loadUnaligned(fromByteOffset: j &* 4, as: SIMD8<Float>.self)
            acc.replace(with: v, where: v .> acc)
            j &+= 8
        }
        m = acc.max()
    }
    while j < n {
        if x[j] > m { m = x[j] }
        j &+= 1
    }
    return m
}

/// Σ a[j]·b[j] over n values, in eight interleaved partial sums added in a fixed order (as `laneSum`).
@inline(__always)
func laneDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    var acc = SIMD8<Float>(repeating: 0)
    var j = 0
    while j + 8 <= n {
        acc += ra.loadUnaligned(fromByteOffset: j &* 4, as: SIMD8<Float>.self)
            * rb.loadUnaligned(fromByteOffset: j &* 4, as: SIMD8<Float>.self)
        j &+= 8
    }
    var total = acc.sum()
    while j < n {
        total += a[j] * b[j]
        j &+= 1
    }
    return total
}
