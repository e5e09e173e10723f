import Foundation
import MulanTensor
import MulanTraining
import Testing

@Suite("Text tower: TokenBatch, BERT encoder, projection")
struct TextTowerTests {
    static let tiny = TextTowerConfig(vocabularySize: 50, width: 8, layers: 2, heads: 2, feedForward: 16,
                                      maxLength: 10, embeddingDim: 6)

    /// Ids in 3..<50 for the tiny vocabulary; [CLS] 1, [SEP] 2, [PAD] 0.
    static func tinyBatch(_ lengths: [Int], maxLength: Int = 10, random: inout RandomSource) -> TokenBatch {
        let sequences = lengths.map { n in (0..<n).map { _ in Int32(3 + random.next() % 47) } }
        return TokenBatch(sequences: sequences, maxLength: maxLength, cls: 1, sep: 2, pad: 0)
    }

    @Test func tokenBatchWrapsTruncatesAndPads() {
        let b = TokenBatch(sequences: [[7592, 2088], [], [1, 2, 3, 4, 5, 6, 7, 8]], maxLength: 6)
        #expect(b.batchSize == 3 && b.length == 6 && b.lengths == [4, 2, 6])
        #expect(b.ids == [101, 7592, 2088, 102, 0, 0,
                          101, 102, 0, 0, 0, 0,
                          101, 1, 2, 3, 4, 102])
        // Padded to the longest row, or to maxLength on request.
        let short = TokenBatch(sequences: [[5], [5, 6]], maxLength: 8)
        #expect(short.length == 4 && short.ids == [101, 5, 102, 0, 101, 5, 6, 102])
        #expect(TokenBatch(sequences: [[5]], maxLength: 8, padToMaxLength: true).ids == [101, 5, 102, 0, 0, 0, 0, 0])
        // Sequences that already hold [CLS] … [SEP]: kept, or cut with [SEP] last.
        let wrapped = TokenBatch(sequences: [[101, 9, 102], [101, 1, 2, 3, 4, 5, 102]], maxLength: 5, addSpecialTokens: false)
        #expect(wrapped.lengths == [3, 5])
        #expect(wrapped.ids == [101, 9, 102, 0, 0, 101, 1, 2, 3, 102])
        // Other special ids.
        let custom = TokenBatch(sequences: [[9, 9, 9]], maxLength: 4, cls: 1, sep: 2, pad: 3)
        #expect(custom.ids == [1, 9, 9, 2])
    }

    @Test func configDecodesWithDefaults() throws {
        let config = try JSONDecoder().decode(TextTowerConfig.self, from: Data(#"{"width": 384, "heads": 12}"#.utf8))
        #expect(config == TextTowerConfig(width: 384, heads: 12))
        let again = try JSONDecoder().decode(TextTowerConfig.self, from: JSONEncoder().encode(Self.tiny))
        #expect(again == Self.tiny)
    }

    @Test func shapesAndUnitNorms() {
        var random = RandomSource(seed: 21)
        let tower = TextTower(Self.tiny, random: &random)
        let batch = Self.tinyBatch([5, 0, 8, 2], random: &random)
        #expect(batch.length == 10)
        let e = tower.forward(batch, training: false)
        #expect(e.shape == [4, 6])
        for r in 0..<4 {
            let norm = e.storage[r * 6..<(r + 1) * 6].reduce(0) { $0 + Double($1 * $1) }.squareRoot()
            #expect(abs(norm - 1) < 1e-5)
        }
        let h = tower.encode(batch)
        #expect(h.shape == [4, 10, 8])
        // forward (whose last layer computes [CLS] only) is the projection of encode's [CLS] states.
        var cls = Tensor(shape: [4, 8])
        for s in 0..<4 { for j in 0..<8 { cls.storage[s * 8 + j] = h.storage[s * 80 + j] } }
        let viaEncode = L2Normalize().forward(tower.projection.forward(cls, training: false))
        for i in 0..<e.count { #expect(abs(viaEncode.storage[i] - e.storage[i]) < 1e-5) }
        // Training and inference forwards agree; an unpadded row does not depend on the batch.
        #expect(tower.forward(batch, training: true) == e)
        let alone = TokenBatch(ids: Array(batch.ids[0..<7]), lengths: [7], length: 7)
        let e0 = tower.forward(alone, training: false)
        for j in 0..<6 { #expect(abs(e0.storage[j] - e.storage[j]) < 1e-5) }
    }

    @Test func parameterNamesAreBertNames() {
        var random = RandomSource(seed: 22)
        let tower = TextTower(Self.tiny, random: &random)
        let names = tower.namedParameters.map(\.name)
        var expected = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                        "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight",
                        "embeddings.LayerNorm.bias"]
        for i in 0..<2 {
            for suffix in ["attention.self.query.weight", "attention.self.query.bias", "attention.self.key.weight",
                           "attention.self.key.bias", "attention.self.value.weight", "attention.self.value.bias",
                           "attention.output.dense.weight", "attention.output.dense.bias",
                           "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
                           "intermediate.dense.weight", "intermediate.dense.bias", "output.dense.weight",
                           "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias"] {
                expected.append("encoder.layer.\(i).\(suffix)")
            }
        }
        expected += ["projection.weight", "projection.bias"]
        #expect(names == expected)
        let shapes = Dictionary(uniqueKeysWithValues: tower.namedParameters.map { ($0.name, $0.parameter.value.shape) })
        #expect(shapes["embeddings.word_embeddings.weight"] == [50, 8])
        #expect(shapes["embeddings.position_embeddings.weight"] == [10, 8])
        #expect(shapes["embeddings.token_type_embeddings.weight"] == [2, 8])
        #expect(shapes["encoder.layer.1.intermediate.dense.weight"] == [16, 8])
        #expect(shapes["encoder.layer.1.output.dense.weight"] == [8, 16])
        #expect(shapes["projection.weight"] == [6, 8])
        // No weight decay on biases and LayerNorm parameters.
        for (name, p) in tower.namedParameters {
            #expect(p.decays == !(name.hasSuffix(".bias") || name.contains("LayerNorm")), "\(name)")
        }
    }

    /// all-MiniLM-L6-v2's BertModel without its pooler has 22,565,376 parameters (22,713,216 with
    /// the pooler's 384·384 + 384): the same blocks at that size must count as many.
    @Test func miniLMSizedEncoderHasBertParameterCount() {
        var random = RandomSource(seed: 23)
        let tower = TextTower(TextTowerConfig(vocabularySize: 30522, width: 384, layers: 6, heads: 12,
                                                      feedForward: 1536, maxLength: 512, embeddingDim: 128),
                              random: &random)
        #expect(tower.parameterCount - (384 * 128 + 128) == 22_565_376)
    }

    @Test func endToEndGradientsOnATinyTower() {
        var random = RandomSource(seed: 24)
        let tower = TextTower(Self.tiny, random: &random)
        // Larger weights than BERT's initialization, so that attention and GELU are far from linear.
        for (name, p) in tower.namedParameters {
            var t = Tensor.normal(shape: p.value.shape, std: 0.4, using: &random)
            if name.hasSuffix("LayerNorm.weight") { for i in t.storage.indices { t.storage[i] += 1 } }
            p.value = t
        }
        let batch = Self.tinyBatch([6, 1, 3], random: &random)
        // The attention key biases have a true gradient of 0 (the softmax ignores a shift shared by a
        // row's scores); finite differences see only rounding noise there, so they are checked apart.
        let bad = TrainingGradientCheck.check(
            input: Tensor(shape: [0]), parameters: tower.namedParameters.filter { !$0.name.hasSuffix("key.bias") },
            forward: { _ in tower.forward(batch, training: true) },
            backward: { tower.backward($0); return Tensor(shape: [0]) }, epsilon: 5e-3, samples: 30)
        #expect(bad.isEmpty, "\(bad.count) mismatches: \(bad.prefix(5))")
        for layer in tower.layers { #expect(layer.attention.key.bias!.grad.storage.allSatisfy { abs($0) < 1e-5 }) }
        // The encoder path: L = Σ r·encode(batch), through backwardEncoder.
        let encoderBad = TrainingGradientCheck.check(
            input: Tensor(shape: [0]),
            parameters: tower.namedParameters.filter { !$0.name.hasSuffix("key.bias") && !$0.name.hasPrefix("projection") },
            forward: { _ in tower.encode(batch, training: true) },
            backward: { tower.backwardEncoder($0); return Tensor(shape: [0]) }, epsilon: 5e-3, samples: 20)
        #expect(encoderBad.isEmpty, "\(encoderBad.count) mismatches: \(encoderBad.prefix(5))")
        // Padding ids get no gradient: rows of ids that only occur as padding stay 0.
        tower.zeroGrads()
        _ = tower.forward(batch, training: true)
        tower.backward(Tensor.normal(shape: [3, 6], std: 1, using: &random))
        let used = Set(batch.ids.enumerated().filter { $0.offset % batch.length < batch.lengths[$0.offset / batch.length] }
            .map { Int($0.element) })
        let grad = tower.wordEmbeddings.weight.grad
        for id in 0..<50 where !used.contains(id) {
            #expect(grad.storage[id * 8..<(id + 1) * 8].allSatisfy { $0 == 0 }, "id \(id)")
        }
    }

    /// `forward(fromLayer:)` on the packed hidden states of the layers below (`packedHidden`, what
    /// `--text-train top:K` caches) gives the embeddings and, for the layers it ran and the
    /// projection, the gradients of the whole tower's `forward`; nothing below gets a gradient.
    @Test(arguments: [TextPooling.mean, .cls])
    func forwardFromALayerEqualsTheWholeTower(pooling: TextPooling) {
        var random = RandomSource(seed: 25)
        var config = TextTowerConfig(vocabularySize: 50, width: 8, layers: 3, heads: 2, feedForward: 16,
                                     maxLength: 10, embeddingDim: 6)
        config.pooling = pooling
        let tower = TextTower(config, random: &random)
        for (name, p) in tower.namedParameters {
            var t = Tensor.normal(shape: p.value.shape, std: 0.4, using: &random)
            if name.hasSuffix("LayerNorm.weight") { for i in t.storage.indices { t.storage[i] += 1 } }
            p.value = t
        }
        let batch = Self.tinyBatch([6, 1, 3, 8], random: &random)
        let dy = Tensor.normal(shape: [4, 6], std: 1, using: &random)
        tower.zeroGrads()
        let whole = tower.forward(batch, training: true)
        tower.backward(dy)
        let reference = Dictionary(uniqueKeysWithValues: tower.namedParameters.map { ($0.name, $0.parameter.grad) })
        for first in 0...3 {
            let (packed, offsets) = tower.packedHidden(batch, throughLayers: first)
            #expect(offsets == [0, 8, 11, 16, 26] && packed.shape == [26, 8])  // [CLS] and [SEP] added
            // Padded the way the trainer pads: zeros after each sequence's rows.
            var hidden = Tensor(shape: [4, batch.length, 8])
            for s in 0..<4 {
                for i in 0..<(offsets[s + 1] - offsets[s]) * 8 {
                    hidden.storage[s * batch.length * 8 + i] = packed.storage[offsets[s] * 8 + i]
                }
            }
            tower.zeroGrads()
            let y = tower.forward(fromLayer: first, hidden: hidden, lengths: batch.lengths, training: true)
            let gap = zip(y.storage, whole.storage).map { abs($0 - $1) }.max()!
            #expect(gap < 1e-5, "from layer \(first): embeddings differ by \(gap)")
            tower.backward(dy)
            for (name, p) in tower.namedParameters {
                let ran = name.hasPrefix("projection.") || (name.hasPrefix("encoder.layer.")
                    && Int(name.dropFirst("encoder.layer.".count).prefix { $0 != "." })! >= first)
                if ran {
                    let want = reference[name]!
                    let scale = max(1e-3, want.storage.map(abs).max()!)
                    let diff = zip(p.grad.storage, want.storage).map { abs($0 - $1) }.max()!
                    #expect(diff <= 1e-4 * scale, "from layer \(first): \(name) gradient differs by \(diff) (scale \(scale))")
                } else {
                    #expect(p.grad.storage.allSatisfy { $0 == 0 }, "from layer \(first): \(name) got a gradient")
                }
            }
        }
    }
}
