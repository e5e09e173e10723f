import MulanTensor

/// The two towers and the loss's temperature: everything a checkpoint holds as weights.
public final class MuLanModel: Module {
    /// The audio tower of `config.audio.kind`: an `AudioTower` (the compact ResNet or ResNet-50), an
    /// `ASTTower`, a `MusicnnTower` or a `VggTower`.
    public let audio: any AudioEncoder
    public let text: TextTower
    public let loss: ContrastiveLoss
    /// The pitch-class branch (`config.pitchProfiles` > 0), nil without one.
    public let pitch: PitchClassBranch?

    /// A fresh model; `text` replaces the text tower (a pretrained one, shaped as `config.text`).
    /// Call `TrainingConfig.checkAudio` first: a configuration it rejects stops here.
    public init(_ config: TrainingConfig, text pretrained: TextTower? = nil) {
        var random = RandomSource(seed: config.seed ^ 0x6D75_6C61_6E00_0001)
        switch config.audio.kind {
        case .resnet, .resnet50:
            audio = AudioTower(config.audio, random: &random)
        case .ast:
            audio = ASTTower(config.audio.ast ?? ASTConfig(), melBands: config.audio.melBands, frames: config.windowFrames,
                             embeddingDim: config.audio.embeddingDim, random: &random)
        case .musicnn:
            let tower = MusicnnTower(embeddingDim: config.audio.embeddingDim, random: &random)
            tower.trainedBlocks = (config.audioTraining ?? .full).trainedBlocks(outOf: type(of: tower).blockNames.count)
            audio = tower
        case .vgg:
            let tower = VggTower(embeddingDim: config.audio.embeddingDim, random: &random)
            tower.trainedBlocks = (config.audioTraining ?? .full).trainedBlocks(outOf: type(of: tower).blockNames.count)
            audio = tower
        }
        text = pretrained ?? TextTower(config.text, random: &random)
        loss = ContrastiveLoss(initialTemperature: config.initialTemperature, decoupled: config.decoupledLoss)
        pitch = config.pitchProfiles > 0
            ? PitchClassBranch(profiles: config.pitchProfiles, embeddingDim: config.audio.embeddingDim, random: &random) : nil
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        nest("audio", audio) + nest("text", text) + nest("loss", loss) + (pitch.map { nest("pitch", $0) } ?? [])
    }

    /// The audio embedding of the tower's output `tower` [B, D] (unit norm) and the windows'
    /// pitch-class profiles [B, 12]: the tower's own without a pitch-class branch, else the branch's
    /// combination (`PitchClassBranch.forward`).
    public func audioEmbedding(tower: Tensor, pitchClasses: Tensor?, training: Bool) -> Tensor {
        guard let pitch else { return tower }
        guard let pitchClasses else { preconditionFailure("a model with a pitch-class branch needs each window's pitch classes") }
        return pitch.forward(audio: tower, pitchClasses: pitchClasses, training: training)
    }

    /// The gradient with respect to the tower's output, from that of `audioEmbedding`'s.
    public func audioEmbeddingBackward(_ dEmbedding: Tensor) -> Tensor {
        pitch?.backward(dEmbedding) ?? dEmbedding
    }
}

extension MuLanModel {
    /// Unit-norm text embeddings [n, embeddingDim] of WordPiece id sequences (without [CLS]/[SEP],
    /// as the shards store them), in inference batches of `batchSize` texts of similar length
    /// (`TextTower.lengthSortedBatches`), returned in the order given.
    public func embedTexts(_ sequences: [[Int32]], batchSize: Int, maxLength: Int) -> Tensor {
        let d = text.config.embeddingDim
        var out = Tensor(shape: [sequences.count, d])
        for rows in TextTower.lengthSortedBatches(lengths: sequences.map(\.count), batchSize: batchSize) {
            let e = text.forward(TokenBatch(sequences: rows.map { sequences[$0] }, maxLength: maxLength), training: false)
            for (k, row) in rows.enumerated() {
                for j in 0..<d { out.storage[row * d + j] = e.storage[k * d + j] }
            }
        }
        return out
    }
}

extension TextTower {
    /// Row indices grouped into inference batches of at most `batchSize`, longest texts first and
    /// texts of similar length together, so a batch pads little (a batch is as long as its longest
    /// row). Ties keep the given order, so the grouping is deterministic.
    public static func lengthSortedBatches(lengths: [Int], batchSize: Int) -> [[Int]] {
        let order = lengths.indices.sorted { lengths[$0] != lengths[$1] ? lengths[$0] > lengths[$1] : $0 < $1 }
        let b = max(1, batchSize)
        return stride(from: 0, to: order.count, by: b).map { Array(order[$0..<min(order.count, $0 + b)]) }
    }
}
