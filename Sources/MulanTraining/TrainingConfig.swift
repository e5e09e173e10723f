import MulanDSP
import MulanTensor

/// Everything that defines a training run; saved as `config.json` in the run directory and in
/// every checkpoint, so that `--resume` and evaluation rebuild the same model.
public struct TrainingConfig: Codable, Sendable, Equatable {
    public var audio = AudioTowerConfig()
    public var text = TextTowerConfig()
    public var logMel: LogMelConfig
    public var specAugment: SpecAugmentConfig? = SpecAugmentConfig()
    /// Training crops this many seconds of each 30-s clip; evaluation averages three such windows.
    public var windowSeconds = 10.0
    public var batchSize = 64
    public var steps = 1000
    public var learningRate: Float = 3e-4
    public var minimumLearningRate: Float = 0
    public var warmupSteps = 100
    public var adam = AdamW.Settings()
    public var clipNorm: Float = 1.0
    public var initialTemperature: Float = 0.1
    public var decoupledLoss = true
    public var mix = SourceMix.muLan
    public var seed: UInt64 = 0
    public var shuffleBuffer = 1000
    public var evalEvery = 500
    public var evalSamples = 1000
    public var checkpointEvery = 500
    public var keepCheckpoints = 3
    public var logEvery = 10

    public init(sampleRate: Int) {
        logMel = LogMelConfig(sampleRate: sampleRate)
        audio.melBands = logMel.melBands
    }

    public var schedule: LearningRateSchedule {
        LearningRateSchedule(peak: learningRate, warmupSteps: warmupSteps, totalSteps: steps, minimum: minimumLearningRate)
    }

    /// Samples in one training window.
    public var windowSamples: Int { Int((windowSeconds * Double(logMel.sampleRate)).rounded()) }
}
