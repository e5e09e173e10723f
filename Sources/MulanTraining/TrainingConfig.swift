import MulanCore
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
    /// A Hugging Face BERT folder the text tower started from (`--text-init`); nil: from scratch.
    public var textInit: String?
    /// Which text-tower weights train.
    public var textTraining = TextTraining.full
    /// Distinct texts whose frozen encoder output is cached (frozen mode).
    public var textCacheEntries = 1_000_000

    enum CodingKeys: String, CodingKey {
        case audio, text, logMel, specAugment, windowSeconds, batchSize, steps, learningRate, minimumLearningRate
        case warmupSteps, adam, clipNorm, initialTemperature, decoupledLoss, mix, seed, shuffleBuffer, evalEvery
        case evalSamples, checkpointEvery, keepCheckpoints, logEvery, textInit, textTraining, textCacheEntries
    }

    /// Configurations saved before a key existed decode with its default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        logMel = try c.decode(LogMelConfig.self, forKey: .logMel)
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            try c.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
        audio = try value(.audio, audio)
        text = try value(.text, text)
        specAugment = try c.decodeIfPresent(SpecAugmentConfig.self, forKey: .specAugment)
        windowSeconds = try value(.windowSeconds, windowSeconds)
        batchSize = try value(.batchSize, batchSize)
        steps = try value(.steps, steps)
        learningRate = try value(.learningRate, learningRate)
        minimumLearningRate = try value(.minimumLearningRate, minimumLearningRate)
        warmupSteps = try value(.warmupSteps, warmupSteps)
        adam = try value(.adam, adam)
        clipNorm = try value(.clipNorm, clipNorm)
        initialTemperature = try value(.initialTemperature, initialTemperature)
        decoupledLoss = try value(.decoupledLoss, decoupledLoss)
        mix = try value(.mix, mix)
        seed = try value(.seed, seed)
        shuffleBuffer = try value(.shuffleBuffer, shuffleBuffer)
        evalEvery = try value(.evalEvery, evalEvery)
        evalSamples = try value(.evalSamples, evalSamples)
        checkpointEvery = try value(.checkpointEvery, checkpointEvery)
        keepCheckpoints = try value(.keepCheckpoints, keepCheckpoints)
        logEvery = try value(.logEvery, logEvery)
        textInit = try c.decodeIfPresent(String.self, forKey: .textInit)
        textTraining = try value(.textTraining, textTraining)
        textCacheEntries = try value(.textCacheEntries, textCacheEntries)
    }

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

/// Which weights of the text tower train: all (`full`), only the projection (`frozen`: the encoder's
/// output per distinct text is computed once and cached), or the projection and the top K encoder
/// layers (`top:K`).
public enum TextTraining: Codable, Sendable, Equatable, CustomStringConvertible {
    case full
    case frozen
    case top(Int)

    public init(parsing text: String) throws(MulanError) {
        switch text {
        case "full": self = .full
        case "frozen": self = .frozen
        default:
            guard text.hasPrefix("top:"), let k = Int(text.dropFirst(4)), k >= 1 else {
                throw MulanError(.usage, "--text-train must be full, frozen or top:K (K ≥ 1), got '\(text)'")
            }
            self = .top(k)
        }
    }

    public var description: String {
        switch self {
        case .full: "full"
        case .frozen: "frozen"
        case .top(let k): "top:\(k)"
        }
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { self = try TextTraining(parsing: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    /// Whether the text-tower parameter `name` (relative to the tower) trains, in a tower of `layers` layers.
    public func trains(_ name: String, layers: Int) -> Bool {
        switch self {
        case .full: return true
        case .frozen: return name.hasPrefix("projection.")
        case .top(let k):
            if name.hasPrefix("projection.") { return true }
            guard name.hasPrefix("encoder.layer."),
                  let index = Int(name.dropFirst("encoder.layer.".count).prefix { $0 != "." }) else { return false }
            return index >= layers - k
        }
    }
}
