import MulanTensor

/// The two towers and the loss's temperature: everything a checkpoint holds as weights.
public final class MuLanModel: Module {
    public let audio: AudioTower
    public let text: TextTower
    public let loss: ContrastiveLoss

    public init(_ config: TrainingConfig) {
        var random = RandomSource(seed: config.seed ^ 0x6D75_6C61_6E00_0001)
        audio = AudioTower(config.audio, random: &random)
        text = TextTower(config.text, random: &random)
        loss = ContrastiveLoss(initialTemperature: config.initialTemperature, decoupled: config.decoupledLoss)
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        nest("audio", audio) + nest("text", text) + nest("loss", loss)
    }
}
