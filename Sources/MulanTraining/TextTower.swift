import MulanTensor

/// Token ids of a batch of texts, padded to one length: row b holds `lengths[b]` ids starting with
/// [CLS] and ending with [SEP], then `pad` ids.
///
/// The `token_ids` of our shards (`texts.<source>[i].token_ids`, see docs/shards.md) are the
/// WordPiece ids of the text alone, *without* [CLS] and [SEP] (`BertTokenizer.encode` with
/// `special: false`, as the filter stage stores them). The initializer therefore adds them by
/// default; pass `addSpecialTokens: false` for sequences that already hold [CLS] … [SEP].
public struct TokenBatch: Sendable {
    /// batchSize × length ids, row-major, padded with the pad id (0).
    public var ids: [Int32]
    /// Per row, the number of ids before the padding (≥ 1).
    public var lengths: [Int]
    /// The padded length of every row.
    public var length: Int
    public var batchSize: Int

    /// A batch from ready-made, padded ids.
    public init(ids: [Int32], lengths: [Int], length: Int) {
        precondition(length >= 1 && ids.count == lengths.count * length, "TokenBatch: \(ids.count) ids for "
                     + "\(lengths.count) rows of \(length)")
        precondition(lengths.allSatisfy { $0 >= 1 && $0 <= length }, "TokenBatch: lengths \(lengths) for length \(length)")
        self.ids = ids
        self.lengths = lengths
        self.length = length
        batchSize = lengths.count
    }

    /// Wraps, truncates and pads `sequences`.
    ///
    /// - With `addSpecialTokens` (the default, for shard `token_ids`): each row is
    ///   [CLS] + the first `maxLength − 2` ids + [SEP].
    /// - Without: each sequence must already start with [CLS] (and end with [SEP]); one longer than
    ///   `maxLength` keeps its first `maxLength − 1` ids and gets [SEP] as its last.
    ///
    /// Rows are padded with `pad` to the longest row, or to `maxLength` with `padToMaxLength`.
    /// The defaults are bert-base-uncased's ids ([CLS] 101, [SEP] 102, [PAD] 0).
    public init(sequences: [[Int32]], maxLength: Int, addSpecialTokens: Bool = true, padToMaxLength: Bool = false,
                cls: Int32 = 101, sep: Int32 = 102, pad: Int32 = 0) {
        precondition(!sequences.isEmpty, "TokenBatch: no sequences")
        precondition(maxLength >= 2, "TokenBatch: maxLength \(maxLength) cannot hold [CLS] and [SEP]")
        var rows: [[Int32]] = []
        rows.reserveCapacity(sequences.count)
        for s in sequences {
            if addSpecialTokens {
                rows.append([cls] + s.prefix(maxLength - 2) + [sep])
            } else {
                precondition(s.first == cls, "TokenBatch: a sequence does not start with [CLS] (\(cls))")
                rows.append(s.count <= maxLength ? s : Array(s.prefix(maxLength - 1)) + [sep])
            }
        }
        let length = padToMaxLength ? maxLength : rows.map(\.count).max()!
        var ids = [Int32](repeating: pad, count: rows.count * length)
        for (b, row) in rows.enumerated() {
            for (i, id) in row.enumerated() { ids[b * length + i] = id }
        }
        self.init(ids: ids, lengths: rows.map(\.count), length: length)
    }
}

/// How the text tower turns its last hidden states into one vector per text (before the projection).
public enum TextPooling: String, Codable, Sendable {
    /// The hidden state of position 0 ([CLS]).
    case cls
    /// The mean of the hidden states of the valid positions ([CLS] and [SEP] included, padding
    /// excluded), as sentence-transformers' mean pooling with the attention mask.
    case mean
}

/// The shape of the text tower. The defaults are a small BERT; all-MiniLM-L6-v2 is
/// (30522, width 384, 6 layers, 12 heads, feedForward 1536, ε 1e-12, mean pooling).
public struct TextTowerConfig: Codable, Sendable, Equatable {
    public var vocabularySize = 30522
    public var width = 256
    public var layers = 4
    public var heads = 4
    public var feedForward = 1024
    /// The longest sequence, [CLS] and [SEP] included; also the number of position embeddings.
    public var maxLength = 64
    /// The size of the output embedding (the projection of the pooled state).
    public var embeddingDim = 128
    public var layerNormEpsilon: Float = 1e-12
    /// [CLS] (the default, and what a configuration without the key means) or mean pooling.
    public var pooling: TextPooling = .cls

    public init(vocabularySize: Int = 30522, width: Int = 256, layers: Int = 4, heads: Int = 4,
                feedForward: Int = 1024, maxLength: Int = 64, embeddingDim: Int = 128,
                layerNormEpsilon: Float = 1e-12, pooling: TextPooling = .cls) {
        self.vocabularySize = vocabularySize
        self.width = width
        self.layers = layers
        self.heads = heads
        self.feedForward = feedForward
        self.maxLength = maxLength
        self.embeddingDim = embeddingDim
        self.layerNormEpsilon = layerNormEpsilon
        self.pooling = pooling
    }

    enum CodingKeys: String, CodingKey {
        case vocabularySize, width, layers, heads, feedForward, maxLength, embeddingDim, layerNormEpsilon, pooling
    }

    /// Missing keys take their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TextTowerConfig()
        self.init(vocabularySize: try c.decodeIfPresent(Int.self, forKey: .vocabularySize) ?? d.vocabularySize,
                  width: try c.decodeIfPresent(Int.self, forKey: .width) ?? d.width,
                  layers: try c.decodeIfPresent(Int.self, forKey: .layers) ?? d.layers,
                  heads: try c.decodeIfPresent(Int.self, forKey: .heads) ?? d.heads,
                  feedForward: try c.decodeIfPresent(Int.self, forKey: .feedForward) ?? d.feedForward,
                  maxLength: try c.decodeIfPresent(Int.self, forKey: .maxLength) ?? d.maxLength,
                  embeddingDim: try c.decodeIfPresent(Int.self, forKey: .embeddingDim) ?? d.embeddingDim,
                  layerNormEpsilon: try c.decodeIfPresent(Float.self, forKey: .layerNormEpsilon) ?? d.layerNormEpsilon,
                  pooling: try c.decodeIfPresent(TextPooling.self, forKey: .pooling) ?? d.pooling)
    }
}

/// The text tower: a BERT encoder (embeddings, post-LN layers; Hugging Face `BertModel` parameter
/// names, so BERT checkpoints load by name, see `PretrainedText`), then pooling (`config.pooling`:
/// the [CLS] hidden state, or the mean over the valid positions), then `projection` to
/// `embeddingDim`, L2-normalized.
///
/// `forward`/`backward` give the embeddings; `pooled` the pooled states before the projection
/// (what sentence-transformers calls the sentence embedding, before its normalization);
/// `encode`/`backwardEncoder` the last hidden states of every position (for other poolings).
///
/// Embeddings: word + position + token type 0 (the token-type table [2, width] is kept so BERT
/// weights load without folding), then LayerNorm. No dropout anywhere. Parameters are initialized as
/// BERT does (N(0, 0.02²), biases 0, LayerNorm 1 and 0) except `projection`, which is a default
/// `Linear`.
public final class TextTower: Module {
    public let config: TextTowerConfig
    public let wordEmbeddings: Embedding
    public let positionEmbeddings: Embedding
    public let tokenTypeEmbeddings: Embedding
    public let embeddingNorm: LayerNorm
    public let layers: [TransformerEncoderLayer]
    public let projection: Linear
    public let normalize = L2Normalize()

    /// The last training pass (batch size, length; for `forward`, the first layer it ran and whether
    /// it ran the embeddings), which decides what a backward pass may follow.
    private enum Pass { case encode(Int, Int), forward(Int, Int, lengths: [Int], fromLayer: Int, embedded: Bool) }
    private var pass: Pass?

    public init(_ config: TextTowerConfig = TextTowerConfig(), random: inout RandomSource) {
        precondition(config.width % config.heads == 0, "width \(config.width) is not a multiple of heads \(config.heads)")
        self.config = config
        wordEmbeddings = Embedding(config.vocabularySize, config.width, random: &random)
        positionEmbeddings = Embedding(config.maxLength, config.width, random: &random)
        tokenTypeEmbeddings = Embedding(2, config.width, random: &random)
        embeddingNorm = LayerNorm(config.width, epsilon: config.layerNormEpsilon)
        var layers: [TransformerEncoderLayer] = []
        for _ in 0..<config.layers {
            layers.append(TransformerEncoderLayer(width: config.width, heads: config.heads,
                                                  feedForward: config.feedForward,
                                                  layerNormEpsilon: config.layerNormEpsilon, random: &random))
        }
        self.layers = layers
        projection = Linear(config.width, config.embeddingDim, random: &random)
    }

    /// `embeddings.word_embeddings.weight`, …, `encoder.layer.{i}.…`, `projection.weight`, `projection.bias`.
    public var namedParameters: [(name: String, parameter: Parameter)] {
        var all = nest("embeddings.word_embeddings", wordEmbeddings)
            + nest("embeddings.position_embeddings", positionEmbeddings)
            + nest("embeddings.token_type_embeddings", tokenTypeEmbeddings)
            + nest("embeddings.LayerNorm", embeddingNorm)
        for (i, layer) in layers.enumerated() { all += nest("encoder.layer.\(i)", layer) }
        return all + nest("projection", projection)
    }

    /// The last hidden states, [B, L, width] (also at padded positions, which no valid position
    /// sees). With `training`, keeps what `backwardEncoder` needs.
    public func encode(_ batch: TokenBatch, training: Bool = false) -> Tensor {
        var h = embed(batch, training: training)
        for layer in layers { h = layer.forward(h, lengths: batch.lengths, training: training) }
        pass = training ? .encode(batch.batchSize, batch.length) : nil
        return h
    }

    /// Backward through the encoder from the gradient of the last hidden states ([B, L, width]) of
    /// a training `encode`: accumulates the gradients of the embeddings and of every layer.
    public func backwardEncoder(_ dHidden: Tensor) {
        guard case let .encode(b, l)? = pass, dHidden.count == b * l * config.width else {
            preconditionFailure("TextTower.backwardEncoder without a matching training encode")
        }
        var g = dHidden
        for layer in layers.reversed() { g = layer.backward(g) }
        backwardEmbeddings(g, batchSize: b, length: l)
    }

    /// Unit-norm text embeddings, [B, embeddingDim]: the projection of `pooled`. Under [CLS]
    /// pooling the last layer computes the [CLS] position only
    /// (`TransformerEncoderLayer.forward(firstPositionOnly:)`): nothing else reaches the output.
    public func forward(_ batch: TokenBatch, training: Bool = true) -> Tensor {
        let p = pool(batch, training: training)
        pass = training ? .forward(batch.batchSize, batch.length, lengths: batch.lengths, fromLayer: 0, embedded: true) : nil
        return normalize.forward(projection.forward(p, training: training), training: training)
    }

    /// Unit-norm text embeddings, [B, embeddingDim], from the hidden states that enter layer `n`
    /// (`hidden` [B, L, width]; n = 0: the output of the embeddings): layers n..<layers, pooling
    /// and the projection, as `forward` runs them. Rows at padded positions (from `lengths[b]` on)
    /// may hold any finite value: no valid position sees them. After a training pass, `backward`
    /// stops at layer n: the embeddings and the layers below get no gradient (`--text-train top:K`
    /// with the hidden states of the frozen layers cached, see `packedHidden`).
    public func forward(fromLayer n: Int, hidden: Tensor, lengths: [Int], training: Bool = true) -> Tensor {
        precondition(n >= 0 && n <= layers.count, "TextTower: layer \(n) of \(layers.count)")
        precondition(hidden.rank == 3 && hidden.shape[0] == lengths.count && hidden.shape[2] == config.width,
                     "TextTower: hidden states \(hidden.shape) for \(lengths.count) sequences of width \(config.width)")
        let l = hidden.shape[1]
        precondition(lengths.allSatisfy { $0 >= 1 && $0 <= l }, "TextTower: lengths \(lengths) for length \(l)")
        let p = poolLayers(hidden, from: n, lengths: lengths, training: training)
        pass = training ? .forward(lengths.count, l, lengths: lengths, fromLayer: n, embedded: false) : nil
        return normalize.forward(projection.forward(p, training: training), training: training)
    }

    /// Inference: the hidden states that enter layer `n` (n = 0: the embeddings' output), on the
    /// valid positions of every sequence alone, packed one sequence after another: `hidden`
    /// [N, width], N the sum of the lengths, sequence s in rows `offsets[s]..<offsets[s + 1]`. The
    /// rows `encode` would give there, up to rounding (as `pooled` under mean pooling); what
    /// `forward(fromLayer:)` continues from.
    public func packedHidden(_ batch: TokenBatch, throughLayers n: Int) -> (hidden: Tensor, offsets: [Int]) {
        precondition(n >= 0 && n <= layers.count, "TextTower: layer \(n) of \(layers.count)")
        let b = batch.batchSize, l = batch.length, w = config.width, vocabulary = config.vocabularySize
        precondition(l <= config.maxLength, "TextTower: length \(l) over maxLength \(config.maxLength)")
        var offsets = [Int](repeating: 0, count: b + 1)
        for s in 0..<b { offsets[s + 1] = offsets[s] + batch.lengths[s] }
        precondition(batch.ids.allSatisfy { $0 >= 0 && Int($0) < vocabulary }, "TextTower: a token id is outside 0..<\(vocabulary)")
        // Word + (position + token type 0) per valid position, the sequences in parallel (the values
        // of `embed`).
        var x = Tensor(uninitializedShape: [offsets[b], w])
        wordEmbeddings.weight.value.withUnsafePointer { wp in
            positionEmbeddings.weight.value.withUnsafePointer { pp in
                tokenTypeEmbeddings.weight.value.withUnsafePointer { tp in
                    batch.ids.withUnsafeBufferPointer { ip in
                        x.withUnsafeMutablePointer { xp in
                            Parallel.forEach(b) { s in
                                for i in 0..<(offsets[s + 1] - offsets[s]) {
                                    let row = xp + (offsets[s] + i) * w, word = wp + Int(ip[s * l + i]) * w, pos = pp + i * w
                                    for j in 0..<w { row[j] = word[j] + (pos[j] + tp[j]) }
                                }
                            }
                        }
                    }
                }
            }
        }
        var h = embeddingNorm.forward(x, training: false)
        for layer in layers.prefix(n) { h = layer.forwardPacked(h, lengths: batch.lengths) }
        return (h, offsets)
    }

    /// The pooled last hidden states, [B, width], before the projection (an inference pass): under
    /// mean pooling, what sentence-transformers' `Pooling(mode_mean_tokens)` gives (it
    /// L2-normalizes them afterwards). Under mean pooling, inference runs on the valid positions
    /// alone (no work for padding, see `meanPooledPacked`).
    public func pooled(_ batch: TokenBatch) -> Tensor {
        let p = pool(batch, training: false)
        pass = nil
        return p
    }

    /// The mean of the rows 0..<lengths[s] of each sequence of `hidden` ([B, L, width]): [B, width].
    public static func meanPool(_ hidden: Tensor, lengths: [Int]) -> Tensor {
        precondition(hidden.rank == 3 && hidden.shape[0] == lengths.count, "meanPool: \(hidden.shape), \(lengths.count) lengths")
        let b = hidden.shape[0], l = hidden.shape[1], w = hidden.shape[2]
        precondition(lengths.allSatisfy { $0 >= 1 && $0 <= l }, "meanPool: lengths \(lengths) for length \(l)")
        var y = Tensor(shape: [b, w])
        hidden.withUnsafePointer { hp in
            y.withUnsafeMutablePointer { yp in
                for s in 0..<b {
                    let out = yp + s * w, n = lengths[s]
                    for i in 0..<n {
                        let row = hp + (s * l + i) * w
                        for j in 0..<w { out[j] += row[j] }
                    }
                    let inv = 1 / Float(n)
                    for j in 0..<w { out[j] *= inv }
                }
            }
        }
        return y
    }

    /// Encoder then pooling: [B, width].
    private func pool(_ batch: TokenBatch, training: Bool) -> Tensor {
        if !training && config.pooling == .mean { return meanPooledPacked(batch) }
        return poolLayers(embed(batch, training: training), from: 0, lengths: batch.lengths, training: training)
    }

    /// Layers n..<layers on `hidden` [B, L, width], then pooling: [B, width].
    private func poolLayers(_ hidden: Tensor, from n: Int, lengths: [Int], training: Bool) -> Tensor {
        let b = lengths.count, w = config.width
        var h = hidden
        let clsOnly = config.pooling == .cls
        for i in n..<layers.count {
            h = layers[i].forward(h, lengths: lengths, firstPositionOnly: clsOnly && i == layers.count - 1,
                                  training: training)
        }
        if config.pooling == .mean { return Self.meanPool(h, lengths: lengths) }
        var cls = Tensor(shape: [b, w])
        let stride = h.count / b  // L·width, or width after the last layer
        h.withUnsafePointer { hp in
            cls.withUnsafeMutablePointer { cp in
                for s in 0..<b { (cp + s * w).update(from: hp + s * stride, count: w) }
            }
        }
        return cls
    }

    /// Inference under mean pooling on the valid positions alone: the rows of every sequence are
    /// packed one after another ([N, width], N the sum of the lengths) through the embeddings and
    /// every layer (`TransformerEncoderLayer.forwardPacked`), so no work goes to padding, which mean
    /// pooling never reads. The same rows and means as the padded pass, up to rounding (a few 1e-7).
    private func meanPooledPacked(_ batch: TokenBatch) -> Tensor {
        let b = batch.batchSize, w = config.width
        let (h, offsets) = packedHidden(batch, throughLayers: layers.count)
        var y = Tensor(shape: [b, w])
        h.withUnsafePointer { hp in
            y.withUnsafeMutablePointer { yp in
                Parallel.forEach(b) { s in
                    let out = yp + s * w, n = offsets[s + 1] - offsets[s]
                    for i in 0..<n {
                        let row = hp + (offsets[s] + i) * w
                        for j in 0..<w { out[j] += row[j] }
                    }
                    let inv = 1 / Float(n)
                    for j in 0..<w { out[j] *= inv }
                }
            }
        }
        return y
    }

    /// From the gradient of the embeddings ([B, embeddingDim]) of a training `forward` back to every
    /// parameter it used (after `forward(fromLayer: n, …)`, the projection and layers n and above).
    public func backward(_ dEmbedding: Tensor) {
        guard case let .forward(b, l, lengths, first, embedded)? = pass, dEmbedding.count == b * config.embeddingDim else {
            preconditionFailure("TextTower.backward without a matching training forward")
        }
        let w = config.width
        let dPooled = projection.backward(normalize.backward(dEmbedding))
        // The layers the forward pass ran, and the embeddings if it ran them.
        let ran = layers[first...]
        if config.pooling == .mean {
            // Each valid position receives dPooled / n; padded positions nothing.
            var g = Tensor(shape: [b, l, w])
            dPooled.withUnsafePointer { dp in
                g.withUnsafeMutablePointer { gp in
                    for s in 0..<b {
                        let n = lengths[s], inv = 1 / Float(n), src = dp + s * w
                        for i in 0..<n {
                            let row = gp + (s * l + i) * w
                            for j in 0..<w { row[j] = src[j] * inv }
                        }
                    }
                }
            }
            for layer in ran.reversed() { g = layer.backward(g) }
            if embedded { backwardEmbeddings(g, batchSize: b, length: l) }
            return
        }
        let dCLS = dPooled
        var g: Tensor
        if let last = ran.last {
            g = last.backward(dCLS.reshaped([b, 1, w]))
            for layer in ran.dropLast().reversed() { g = layer.backward(g) }
        } else {
            g = Tensor(shape: [b, l, w])
            dCLS.withUnsafePointer { cp in
                g.withUnsafeMutablePointer { gp in
                    for s in 0..<b { (gp + s * l * w).update(from: cp + s * w, count: w) }
                }
            }
        }
        if embedded { backwardEmbeddings(g, batchSize: b, length: l) }
    }

    /// Word + position + token type 0, then LayerNorm: [B, L, width].
    private func embed(_ batch: TokenBatch, training: Bool) -> Tensor {
        let b = batch.batchSize, l = batch.length, w = config.width
        precondition(l <= config.maxLength, "TextTower: length \(l) over maxLength \(config.maxLength)")
        var x = wordEmbeddings.forward(batch.ids, training: training)
        positionEmbeddings.weight.value.withUnsafePointer { pp in
            tokenTypeEmbeddings.weight.value.withUnsafePointer { tp in
                x.withUnsafeMutablePointer { xp in
                    for s in 0..<b {
                        for i in 0..<l {
                            let row = xp + (s * l + i) * w, pos = pp + i * w
                            for j in 0..<w { row[j] += pos[j] + tp[j] }
                        }
                    }
                }
            }
        }
        return embeddingNorm.forward(x, training: training).reshaped([b, l, w])
    }

    /// From the gradient of the embedding output ([B, L, width]) into the three tables and the norm.
    private func backwardEmbeddings(_ g: Tensor, batchSize b: Int, length l: Int) {
        let w = config.width
        let dx = embeddingNorm.backward(g)
        wordEmbeddings.backward(dx)
        dx.withUnsafePointer { dp in
            positionEmbeddings.weight.grad.withUnsafeMutablePointer { pp in
                tokenTypeEmbeddings.weight.grad.withUnsafeMutablePointer { tp in
                    for s in 0..<b {
                        for i in 0..<l {
                            let row = dp + (s * l + i) * w, pos = pp + i * w
                            for j in 0..<w {
                                pos[j] += row[j]
                                tp[j] += row[j]
                            }
                        }
                    }
                }
            }
        }
    }
}
