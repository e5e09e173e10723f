import Foundation
import MulanTensor
import Testing

@Suite("Transformer layers: Embedding, LayerNorm, GELU, attention, encoder layer", .serialized)
struct TransformerLayerTests {
    /// Replaces every trainable parameter by N(0, std²) (LayerNorm weights by 1 + N(0, std²)), so
    /// that gradient checks see non-trivial weights rather than BERT's small initialization.
    static func randomize(_ module: any Module, std: Float, random: inout RandomSource) {
        for (name, p) in module.namedParameters {
            var t = Tensor.normal(shape: p.value.shape, std: std, using: &random)
            if name.hasSuffix("LayerNorm.weight") || name.hasSuffix("Norm.weight") {
                for i in t.storage.indices { t.storage[i] += 1 }
            }
            p.value = t
        }
    }

    /// The parameters but the attention key bias, whose true gradient is 0 (see the attention check).
    static func withoutKeyBias(_ named: [(name: String, parameter: Parameter)]) -> [(name: String, parameter: Parameter)] {
        named.filter { !$0.name.hasSuffix("key.bias") }
    }

    @Test func embeddingLooksUpAndAccumulatesRows() {
        var random = RandomSource(seed: 11)
        let e = Embedding(10, 4, random: &random)
        #expect(e.weight.value.shape == [10, 4])
        let ids: [Int32] = [3, 7, 3, 0, 9, 3]
        let y = e.forward(ids)
        #expect(y.shape == [6, 4])
        for (r, id) in ids.enumerated() {
            #expect(Array(y.storage[r * 4..<(r + 1) * 4]) == Array(e.weight.value.storage[Int(id) * 4..<Int(id + 1) * 4]))
        }
        // Initialization N(0, 0.02²): a large table has about that spread.
        let big = Embedding(1000, 64, random: &random)
        let sd = (big.weight.value.storage.reduce(0.0) { $0 + Double($1 * $1) } / Double(big.weight.value.count)).squareRoot()
        #expect(abs(sd - 0.02) < 0.001)

        let bad = GradientCheck.check(input: Tensor(shape: [0]), parameters: e.namedParameters,
                                      forward: { _ in e.forward(ids) },
                                      backward: { e.backward($0); return Tensor(shape: [0]) })
        #expect(bad.isEmpty, "\(bad.prefix(5))")
        // Row 3 gets the sum of its three uses; unused rows stay 0.
        e.zeroGrads()
        _ = e.forward(ids)
        let dy = Tensor.normal(shape: [6, 4], std: 1, using: &random)
        e.backward(dy)
        for j in 0..<4 {
            #expect(e.weight.grad.storage[3 * 4 + j] == dy.storage[j] + dy.storage[2 * 4 + j] + dy.storage[5 * 4 + j])
            #expect(e.weight.grad.storage[5 * 4 + j] == 0)
        }
    }

    @Test func layerNormValuesAndGradients() {
        var random = RandomSource(seed: 12)
        let norm = LayerNorm(6, epsilon: 1e-12)
        #expect(norm.weight.decays == false && norm.bias.decays == false)
        let x = Tensor.normal(shape: [3, 4, 6], std: 2, using: &random)
        // With weight 1 and bias 0: every row has mean 0 and variance 1.
        let y = norm.forward(x)
        for r in 0..<12 {
            let row = y.storage[r * 6..<(r + 1) * 6].map(Double.init)
            let mean = row.reduce(0, +) / 6
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 6
            #expect(abs(mean) < 1e-5 && abs(variance - 1) < 1e-4)
        }
        Self.randomize(norm, std: 0.5, random: &random)
        let bad = GradientCheck.check(input: x, parameters: norm.namedParameters,
                                      forward: { norm.forward($0) }, backward: { norm.backward($0) })
        #expect(bad.isEmpty, "\(bad.prefix(5))")
        // Inference gives the same values.
        let train = norm.forward(x), eval = norm.forward(x, training: false)
        #expect(train == eval)
    }

    @Test func geluValuesAndGradients() {
        var random = RandomSource(seed: 13)
        let gelu = GELU()
        let y = gelu.forward(Tensor(shape: [5], [-3, -1, 0, 1, 2]))
        // 0.5·x·(1 + erf(x/√2)) from double-precision values.
        let expected: [Float] = [-0.0040496998, -0.15865525, 0, 0.84134475, 1.9544997]
        for i in 0..<5 { #expect(abs(y.storage[i] - expected[i]) < 3e-7, "gelu at \(i)") }
        // Against libm's erf, in Double, over [−15, 15]: value and derivative Φ(x) + x·φ(x).
        let grid = Tensor(shape: [30001], (0...30000).map { Float(-15 + Double($0) * 0.001) })
        let values = gelu.forward(grid)
        let slopes = gelu.backward(Tensor(shape: [30001], repeating: 1))
        var worstValue = 0.0, worstSlope = 0.0
        for i in 0..<grid.count {
            let v = Double(grid.storage[i])
            let cdf = 0.5 * (1 + erf(v / 2.0.squareRoot())), density = exp(-0.5 * v * v) / (2 * Double.pi).squareRoot()
            worstValue = max(worstValue, abs(Double(values.storage[i]) - v * cdf) / max(1, abs(v)))
            worstSlope = max(worstSlope, abs(Double(slopes.storage[i]) - (cdf + v * density)))
        }
        #expect(worstValue < 3e-7 && worstSlope < 5e-7, "value error \(worstValue), slope error \(worstSlope)")
        #expect(gelu.forward(grid, training: false) == values)

        let x = Tensor.normal(shape: [4, 50], std: 2, using: &random)
        let bad = GradientCheck.check(input: x, parameters: [], forward: { gelu.forward($0) },
                                      backward: { gelu.backward($0) }, epsilon: 1e-3, samples: 200)
        #expect(bad.isEmpty, "\(bad.prefix(5))")
    }

    /// Attention with −∞ masking over all positions, in Double, straight from the definition.
    static func naiveAttention(_ x: Tensor, lengths: [Int], _ a: MultiHeadSelfAttention) -> [Double] {
        let b = x.shape[0], l = x.shape[1], w = a.width, h = a.heads, d = a.headDim
        func project(_ layer: Linear) -> [Double] {
            var out = [Double](repeating: 0, count: b * l * w)
            for r in 0..<b * l {
                for o in 0..<w {
                    var s = Double(layer.bias!.value.storage[o])
                    for i in 0..<w { s += Double(x.storage[r * w + i]) * Double(layer.weight.value.storage[o * w + i]) }
                    out[r * w + o] = s
                }
            }
            return out
        }
        let q = project(a.query), k = project(a.key), v = project(a.value)
        var context = [Double](repeating: 0, count: b * l * w)
        for s in 0..<b {
            for head in 0..<h {
                for i in 0..<l {
                    var scores = [Double](repeating: -.infinity, count: l)
                    for j in 0..<l where j < lengths[s] {
                        var dot = 0.0
                        for c in 0..<d { dot += q[(s * l + i) * w + head * d + c] * k[(s * l + j) * w + head * d + c] }
                        scores[j] = dot / Double(d).squareRoot()
                    }
                    let m = scores.max()!
                    let e = scores.map { exp($0 - m) }
                    let z = e.reduce(0, +)
                    for c in 0..<d {
                        var sum = 0.0
                        for j in 0..<l { sum += e[j] / z * v[(s * l + j) * w + head * d + c] }
                        context[(s * l + i) * w + head * d + c] = sum
                    }
                }
            }
        }
        var y = [Double](repeating: 0, count: b * l * w)
        for r in 0..<b * l {
            for o in 0..<w {
                var s = Double(a.output.bias!.value.storage[o])
                for i in 0..<w { s += context[r * w + i] * Double(a.output.weight.value.storage[o * w + i]) }
                y[r * w + o] = s
            }
        }
        return y
    }

    @Test func attentionMatchesNaiveImplementation() {
        var random = RandomSource(seed: 14)
        let attention = MultiHeadSelfAttention(width: 12, heads: 3, random: &random)
        Self.randomize(attention, std: 0.4, random: &random)
        let lengths = [7, 3, 1, 5]
        let x = Tensor.normal(shape: [4, 7, 12], std: 1, using: &random)
        let y = attention.forward(x, lengths: lengths)
        let reference = Self.naiveAttention(x, lengths: lengths, attention)
        #expect(y.shape == [4, 7, 12])
        var worst = 0.0
        for i in 0..<y.count { worst = max(worst, abs(Double(y.storage[i]) - reference[i])) }
        #expect(worst < 1e-4, "max difference \(worst)")
        #expect(attention.forward(x, lengths: lengths, training: false) == y)
    }

    @Test func attentionGradientsWithUnevenLengths() {
        var random = RandomSource(seed: 15)
        let attention = MultiHeadSelfAttention(width: 8, heads: 2, random: &random)
        Self.randomize(attention, std: 0.5, random: &random)
        let lengths = [5, 2, 1]
        let x = Tensor.normal(shape: [3, 5, 8], std: 1, using: &random)
        // The key bias shifts every score of a query row alike, which the softmax ignores: its gradient
        // is 0 in exact arithmetic, and finite differences only see rounding noise. Checked apart.
        let bad = GradientCheck.check(input: x, parameters: Self.withoutKeyBias(attention.namedParameters),
                                      forward: { attention.forward($0, lengths: lengths) },
                                      backward: { attention.backward($0) }, samples: 60)
        #expect(bad.isEmpty, "\(bad.prefix(5))")
        #expect(attention.key.bias!.grad.storage.allSatisfy { abs($0) < 1e-5 })
    }

    @Test func paddedPositionsDoNotReachValidOnes() {
        var random = RandomSource(seed: 16)
        let attention = MultiHeadSelfAttention(width: 8, heads: 2, random: &random)
        Self.randomize(attention, std: 0.5, random: &random)
        let layer = TransformerEncoderLayer(width: 8, heads: 2, feedForward: 16, random: &random)
        Self.randomize(layer, std: 0.4, random: &random)
        let lengths = [4, 2, 1], l = 4, w = 8
        let x = Tensor.normal(shape: [3, l, w], std: 1, using: &random)
        var other = x
        for s in 0..<3 {
            for i in lengths[s]..<l { for j in 0..<w { other.storage[(s * l + i) * w + j] = random.normal() * 5 } }
        }
        for forward in [{ attention.forward($0, lengths: lengths) }, { layer.forward($0, lengths: lengths) }] {
            let y1 = forward(x), y2 = forward(other)
            for s in 0..<3 {
                let valid = (s * l * w)..<((s * l + lengths[s]) * w)
                #expect(Array(y1.storage[valid]) == Array(y2.storage[valid]), "sequence \(s)")
            }
        }
        // Backward: a gradient only at valid positions gives no gradient at padded inputs.
        var dy = Tensor.normal(shape: [3, l, w], std: 1, using: &random)
        for s in 0..<3 { for i in lengths[s]..<l { for j in 0..<w { dy.storage[(s * l + i) * w + j] = 0 } } }
        for (forward, backward) in [({ attention.forward($0, lengths: lengths) }, { attention.backward($0) }),
                                    ({ layer.forward($0, lengths: lengths) }, { layer.backward($0) })] {
            _ = forward(x)
            let dx = backward(dy)
            for s in 0..<3 {
                for i in lengths[s]..<l {
                    #expect(dx.storage[((s * l + i) * w)..<((s * l + i + 1) * w)].allSatisfy { $0 == 0 })
                }
            }
        }
    }

    @Test func encoderLayerGradientsAndNames() {
        var random = RandomSource(seed: 17)
        let layer = TransformerEncoderLayer(width: 8, heads: 2, feedForward: 16, layerNormEpsilon: 1e-12, random: &random)
        #expect(layer.namedParameters.map(\.name) == [
            "attention.self.query.weight", "attention.self.query.bias",
            "attention.self.key.weight", "attention.self.key.bias",
            "attention.self.value.weight", "attention.self.value.bias",
            "attention.output.dense.weight", "attention.output.dense.bias",
            "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
            "intermediate.dense.weight", "intermediate.dense.bias",
            "output.dense.weight", "output.dense.bias",
            "output.LayerNorm.weight", "output.LayerNorm.bias",
        ])
        #expect(layer.intermediate.weight.value.shape == [16, 8] && layer.outputDense.weight.value.shape == [8, 16])
        // BERT initialization: biases 0, weights N(0, 0.02²).
        #expect(layer.attention.query.bias!.value.storage.allSatisfy { $0 == 0 })
        #expect(layer.intermediate.weight.value.storage.allSatisfy { abs($0) < 0.15 })
        Self.randomize(layer, std: 0.4, random: &random)
        let lengths = [3, 1]
        let x = Tensor.normal(shape: [2, 3, 8], std: 1, using: &random)
        let bad = GradientCheck.check(input: x, parameters: Self.withoutKeyBias(layer.namedParameters),
                                      forward: { layer.forward($0, lengths: lengths) },
                                      backward: { layer.backward($0) }, samples: 30)
        #expect(bad.isEmpty, "\(bad.prefix(5))")
        #expect(layer.attention.key.bias!.grad.storage.allSatisfy { abs($0) < 1e-5 })
    }

    @Test func firstPositionOnlyIsTheFirstRowOfTheFullLayer() {
        var random = RandomSource(seed: 19)
        let layer = TransformerEncoderLayer(width: 8, heads: 2, feedForward: 16, random: &random)
        Self.randomize(layer, std: 0.4, random: &random)
        let lengths = [4, 1, 3], l = 4, w = 8
        let x = Tensor.normal(shape: [3, l, w], std: 1, using: &random)
        let full = layer.forward(x, lengths: lengths)
        let first = layer.forward(x, lengths: lengths, firstPositionOnly: true)
        #expect(first.shape == [3, 1, w])
        for s in 0..<3 {
            for j in 0..<w { #expect(abs(first.storage[s * w + j] - full.storage[s * l * w + j]) < 1e-5) }
        }
        let attentionFirst = layer.attention.forward(x, lengths: lengths, firstQueryOnly: true)
        let attentionFull = layer.attention.forward(x, lengths: lengths)
        for s in 0..<3 {
            for j in 0..<w { #expect(abs(attentionFirst.storage[s * w + j] - attentionFull.storage[s * l * w + j]) < 1e-5) }
        }
        let bad = GradientCheck.check(input: x, parameters: Self.withoutKeyBias(layer.namedParameters),
                                      forward: { layer.forward($0, lengths: lengths, firstPositionOnly: true) },
                                      backward: { layer.backward($0) }, samples: 30)
        #expect(bad.isEmpty, "\(bad.prefix(5))")
    }

    @Test func resultsDoNotDependOnThreadCount() {
        var random = RandomSource(seed: 18)
        // Large enough that parallelGemm splits rows and LayerNorm has several blocks.
        let layer = TransformerEncoderLayer(width: 64, heads: 4, feedForward: 128, random: &random)
        Self.randomize(layer, std: 0.1, random: &random)
        let lengths = [16, 9, 1, 16, 12, 3, 7, 16]
        let x = Tensor.normal(shape: [8, 16, 64], std: 1, using: &random)
        let dy = Tensor.normal(shape: [8, 16, 64], std: 1, using: &random)
        func run(threads: Int, firstPositionOnly: Bool) -> (y: Tensor, dx: Tensor, grads: [Tensor]) {
            BLAS.threads = threads
            defer { BLAS.threads = 1 }
            layer.zeroGrads()
            let y = layer.forward(x, lengths: lengths, firstPositionOnly: firstPositionOnly)
            let dx = layer.backward(firstPositionOnly ? Tensor(shape: [8, 1, 64], Array(dy.storage[0..<512])) : dy)
            return (y, dx, layer.parameters.map(\.grad))
        }
        for firstPositionOnly in [false, true] {
            let one = run(threads: 1, firstPositionOnly: firstPositionOnly)
            let two = run(threads: 2, firstPositionOnly: firstPositionOnly)
            #expect(one.y == two.y)
            #expect(one.dx == two.dx)
            #expect(one.grads == two.grads)
        }
    }

    /// The valid rows of x [B, L, w], one sequence after another: [N, w].
    static func packed(_ x: Tensor, lengths: [Int]) -> Tensor {
        let l = x.shape[1], w = x.shape[2]
        var rows: [Float] = []
        for (s, n) in lengths.enumerated() { rows += x.storage[(s * l * w)..<((s * l + n) * w)] }
        return Tensor(shape: [rows.count / w, w], rows)
    }

    @Test func fusedLayerNormResidualAndInPlaceGELUGiveTheSameValues() {
        var random = RandomSource(seed: 22)
        let norm = LayerNorm(40, epsilon: 1e-12)
        Self.randomize(norm, std: 0.5, random: &random)
        let x = Tensor.normal(shape: [70, 40], std: 2, using: &random)
        let r = Tensor.normal(shape: [70, 40], std: 2, using: &random)
        for threads in [1, 2] {
            BLAS.threads = threads
            defer { BLAS.threads = 1 }
            let reference = norm.forward(x + r, training: false)
            #expect(norm.forward(x, adding: r, training: false) == reference)
            #expect(norm.forward(x, adding: r, training: true) == reference)
            let gelu = GELU()
            let big = Tensor.normal(shape: [3, 5000], std: 3, using: &random)
            var inPlace = big
            GELU.applyInPlace(&inPlace)
            #expect(inPlace == gelu.forward(big, training: false))
        }
    }

    @Test func packedInferenceGivesTheValidRowsOfThePaddedPass() {
        var random = RandomSource(seed: 23)
        // Large enough that the products run on two threads (and the wide ones split by columns).
        let layer = TransformerEncoderLayer(width: 64, heads: 4, feedForward: 256, random: &random)
        Self.randomize(layer, std: 0.1, random: &random)
        let lengths = [16, 9, 1, 16, 12, 3, 7, 2], l = 16, w = 64
        let x = Tensor.normal(shape: [8, l, w], std: 1, using: &random)
        let input = Self.packed(x, lengths: lengths)
        func check(_ label: String) {
            let padded = layer.forward(x, lengths: lengths, training: false)
            let expected = Self.packed(padded, lengths: lengths)
            let one = layer.forwardPacked(input, lengths: lengths)
            #expect(one.shape == [lengths.reduce(0, +), w])
            let worst = zip(one.storage, expected.storage).map { abs($0 - $1) }.max()!
            #expect(worst < 1e-5, "\(label): largest |Δ| \(worst)")
            BLAS.threads = 2
            defer { BLAS.threads = 1 }
            #expect(layer.forwardPacked(input, lengths: lengths) == one, "\(label): 2 threads")
        }
        check("initial weights")
        // The stacked query/key/value weights follow every change of the parameters.
        layer.attention.key.weight.value.storage[5] += 1
        check("key weight changed in place")
        layer.attention.value.bias!.value = Tensor.normal(shape: [w], std: 0.5, using: &random)
        check("value bias replaced")
    }
}

