import MulanTensor

/// The two towers and the loss's temperature: everything a checkpoint holds as weights.
public final class MuLanModel: Module {
    public let audio: AudioTower
    public let text: TextTower
    public let loss: ContrastiveLoss

    /// A fresh model; `text` replaces the text tower (a pretrained one, shaped as `config.text`).
    public init(_ config: TrainingConfig, text pretrained: TextTower? = nil) {
        var random = RandomSource(seed: config.seed ^ 0x6D75_6C61_6E00_0001)
        audio = AudioTower(config.audio, random: &random)
        text = pretrained ?? TextTower(config.text, random: &random)
        loss = ContrastiveLoss(initialTemperature: config.initialTemperature, decoupled: config.decoupledLoss)
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        nest("audio", audio) + nest("text", text) + nest("loss", loss)
    }
}

extension MuLanModel {
    /// Unit-norm text embeddings [n, embeddingDim] of WordPiece id sequences (without [CLS]/[SEP],
    /// as the shards store them), in inference batches of `batchSize`.
    public func embedTexts(_ sequences: [[Int32]], batchSize: Int, maxLength: Int) -> Tensor {
        let d = text.config.embeddingDim
        var out = Tensor(shape: [sequences.count, d])
        let b = max(1, batchSize)
        for lo in stride(from: 0, to: sequences.count, by: b) {
            let hi = min(sequences.count, lo + b)
            let e = text.forward(TokenBatch(sequences: Array(sequences[lo..<hi]), maxLength: maxLength), training: false)
            for i in 0..<(hi - lo) * d { out.storage[lo * d + i] = e.storage[i] }
        }
        return out
    }
}
