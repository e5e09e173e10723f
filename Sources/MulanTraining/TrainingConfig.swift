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
    /// Distinct texts whose frozen part's output is cached (`frozen` and `top:K`, see `TextCache`).
    public var textCacheEntries = 1_000_000
    /// The text cache's limit on stored floats, in MiB.
    public var textCacheMiB = 2048
    /// A converted pretrained audio file (`mulan-pretrained-audio` safetensors) the audio tower
    /// started from (`--audio-init`); nil: from scratch.
    public var audioInit: String?
    /// Which audio-tower weights train (`--audio-train`); nil: all of them.
    public var audioTraining: AudioTraining?
    /// The frozen-feature cache's limit in MiB (`--audio-cache`; `FrozenFeatureCache`): with a frozen
    /// musicnn tower, training windows start on the tower's patch grid and each clip's patch
    /// features are computed once. nil: no cache, windows anywhere.
    public var audioCacheMiB: Int?
    /// The decoded-clip cache's limit in MiB (`--decoded-cache`; `DecodedClipCache`): training clips
    /// stay decoded in memory between draws. 0: every draw decodes.
    public var decodedCacheMiB = 0
    /// Learned key profiles of the pitch-class branch (`--pitch-profiles`; `PitchClassBranch`): each
    /// window's 12-bin pitch-class profile adds to the audio embedding. 0: no branch.
    public var pitchProfiles = 0
    /// What the pitch-class branch's parameters (`pitch.*`) learn at: this times the learning rate of
    /// the rest (`--pitch-lr-scale`). Its projection starts at zero, so at 1 it grows only as fast as
    /// any other weight moves (docs/training.md).
    public var pitchLearningRateScale: Float = 1

    enum CodingKeys: String, CodingKey {
        case audio, text, logMel, specAugment, windowSeconds, batchSize, steps, learningRate, minimumLearningRate
        case warmupSteps, adam, clipNorm, initialTemperature, decoupledLoss, mix, seed, shuffleBuffer, evalEvery
        case evalSamples, checkpointEvery, keepCheckpoints, logEvery, textInit, textTraining, textCacheEntries
        case textCacheMiB, audioInit, audioTraining, audioCacheMiB, decodedCacheMiB, pitchProfiles
        case pitchLearningRateScale
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
        textCacheMiB = try value(.textCacheMiB, textCacheMiB)
        audioInit = try c.decodeIfPresent(String.self, forKey: .audioInit)
        audioTraining = try c.decodeIfPresent(AudioTraining.self, forKey: .audioTraining)
        audioCacheMiB = try c.decodeIfPresent(Int.self, forKey: .audioCacheMiB)
        decodedCacheMiB = try value(.decodedCacheMiB, decodedCacheMiB)
        pitchProfiles = try value(.pitchProfiles, pitchProfiles)
        pitchLearningRateScale = try value(.pitchLearningRateScale, pitchLearningRateScale)
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

    /// Log-mel frames of one window (centred frames, as `LogMelSpectrogram.frameCount`).
    public var windowFrames: Int {
        let padded = windowSamples + 2 * (logMel.fftSize / 2)
        return padded < logMel.fftSize ? 0 : 1 + (padded - logMel.fftSize) / logMel.hopLength
    }

    /// Checks that the audio tower can be built as configured: the kind is implemented, a musicnn
    /// tower has musicnn's front end (`LogMelConfig.musicnn`: a differing setting is named) and
    /// windows of at least one 187-frame patch, and `audioTraining` / `audioInit` go with a
    /// pretrained kind. `source` names where the configuration came from (a checkpoint, a file).
    public func checkAudio(source: String) throws(MulanError) {
        if !audio.kind.isPretrainedMusicnn {
            if let t = audioTraining, t != .full {
                throw MulanError(.usage, "\(source): audio training \(t) needs a pretrained audio tower",
                                 hint: "--audio-train frozen or top:K goes with --audio-tower musicnn or vgg and --audio-init FILE")
            }
            if audioInit != nil {
                throw MulanError(.usage, "\(source): --audio-init loads a musicnn or vgg tower, not the \(audio.kind.rawValue) tower",
                                 hint: "pass --audio-tower musicnn or vgg (the file's architecture)")
            }
        }
        switch audio.kind {
        case .resnet:
            break
        case .resnet50:
            if audio.widths.count != AudioTowerConfig.resnet50Depths.count || !audio.widths.allSatisfy({ $0 % Bottleneck.expansion == 0 }) {
                throw MulanError(.usage, "\(source): the resnet50 tower needs 4 stage widths, each a multiple of 4, got \(audio.widths)",
                                 hint: "ResNet-50's are 256,512,1024,2048")
            }
        case .ast:
            let a = audio.ast ?? ASTConfig()
            if a.width % a.heads != 0 || min(a.width, a.layers, a.heads, a.feedForward) < 1 {
                throw MulanError(.usage, "\(source): the AST's width \(a.width) must be a positive multiple of its heads \(a.heads), "
                                 + "with positive layers and feed-forward width")
            }
            if ASTTower.patches(audio.melBands) < 1 || ASTTower.patches(windowFrames) < 1 {
                throw MulanError(.usage, "\(source): the AST's 16×16 patches need at least 16 mel bands and 16 frames per window, "
                                 + "got \(audio.melBands) bands and \(windowFrames) frames")
            }
        case .musicnn, .vgg:
            let name = audio.kind.rawValue
            let blockNames = audio.kind == .vgg ? VggTower.blockNames : MusicnnTower.blockNames
            if let difference = LogMelConfig.musicnn.difference(from: logMel) {
                throw MulanError(.data, "\(source): the \(name) audio tower needs musicnn's front end, but logMel.\(difference)",
                                 hint: "musicnn's front end is fixed: 16000 Hz, window and FFT 512, hop 256, 96 bands, log10(10000x+1)")
            }
            if audio.melBands != MusicnnTower.melBands {
                throw MulanError(.data, "\(source): audio.melBands is \(audio.melBands); the \(name) tower takes \(MusicnnTower.melBands)")
            }
            let frames = 1 + windowSamples / logMel.hopLength
            if frames < MusicnnTower.patchFrames {
                throw MulanError(.usage, "\(source): a \(windowSeconds)-s window has \(frames) frames, fewer than \(name)'s "
                                 + "\(MusicnnTower.patchFrames)-frame patch", hint: "use windows of at least 3 s")
            }
            if case .top(let k) = audioTraining ?? .full, k > blockNames.count {
                throw MulanError(.usage, "\(source): audio training top:\(k), but \(name) has \(blockNames.count) blocks "
                                 + "(\(blockNames.joined(separator: ", ")))")
            }
        }
        if pitchProfiles < 0 || pitchProfiles > 64 {
            throw MulanError(.usage, "\(source): pitchProfiles is \(pitchProfiles); the pitch-class branch takes 0 (off) to 64 profiles",
                             hint: "--pitch-profiles 4 learns four key profiles (the first two start as major and minor)")
        }
        if !(pitchLearningRateScale > 0 && pitchLearningRateScale <= 1000) {
            throw MulanError(.usage, "\(source): pitchLearningRateScale is \(pitchLearningRateScale); it multiplies the learning rate "
                             + "of the pitch-class branch and must be above 0 and at most 1000",
                             hint: "--pitch-lr-scale 10 lets the branch learn ten times as fast as the towers")
        }
        if pitchProfiles == 0 && pitchLearningRateScale != 1 {
            throw MulanError(.usage, "\(source): pitchLearningRateScale is \(pitchLearningRateScale), but there is no pitch-class branch",
                             hint: "add --pitch-profiles K, or leave --pitch-lr-scale out")
        }
        if pitchProfiles > 0 {
            do { _ = try PitchClassProfile(sampleRate: logMel.sampleRate) } catch {
                throw MulanError(.usage, "\(source): \(error.message)", hint: error.hint)
            }
        }
        try checkAudioCache(source: source)
    }
}

extension TrainingConfig {
    /// The frozen-feature cache (`audioCacheMiB`) needs a frozen musicnn or vgg tower and no SpecAugment.
    func checkAudioCache(source: String) throws(MulanError) {
        guard let mib = audioCacheMiB else { return }
        guard mib >= 0 else {
            throw MulanError(.usage, "\(source): the audio feature cache limit is \(mib) MiB", hint: "--audio-cache takes MiB, 0 or more")
        }
        guard audio.kind.isPretrainedMusicnn, audioTraining == .frozen else {
            let tower = audio.kind.isPretrainedMusicnn ? "the \(audio.kind.rawValue) tower with --audio-train \(audioTraining ?? .full)"
                                                       : "the \(audio.kind.rawValue) tower"
            throw MulanError(.usage, "\(source): the audio feature cache (--audio-cache) keeps a frozen tower's patch features, "
                             + "but this run trains \(tower), whose features change at every step",
                             hint: "use --audio-cache with --audio-tower musicnn (or vgg) --audio-init FILE --audio-train frozen, or drop it")
        }
        if let spec = specAugment, spec.frequencyMasks > 0 || spec.timeMasks > 0 {
            throw MulanError(.usage, "\(source): SpecAugment masks each example's log-mel before the audio tower, so its features "
                             + "change with every draw and the audio feature cache (--audio-cache) cannot hold them",
                             hint: "pass --no-spec-augment with --audio-cache, or drop --audio-cache to train with SpecAugment")
        }
    }
}

/// Which weights of a tower train: all (`full`), only its projection (`frozen`), or the projection
/// and the top K blocks or layers (`top:K`). The text tower (`--text-train`) and a pretrained audio
/// tower (`--audio-train`) share it; what a block is depends on the tower (`TextTraining`,
/// `AudioTraining`).
public enum TowerTraining: Codable, Sendable, Equatable, CustomStringConvertible {
    case full
    case frozen
    case top(Int)

    /// Parses `full`, `frozen` or `top:K` given to `option`.
    public init(parsing text: String, option: String) throws(MulanError) {
        switch text {
        case "full": self = .full
        case "frozen": self = .frozen
        default:
            guard text.hasPrefix("top:"), let k = Int(text.dropFirst(4)), k >= 1 else {
                throw MulanError(.usage, "\(option) must be full, frozen or top:K (K ≥ 1), got '\(text)'")
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
        do { self = try TowerTraining(parsing: text, option: "the training mode") } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// Which weights of a pretrained audio tower train (`--audio-train`): all (`full`), only the projection `proj`
/// (`frozen`: the tower runs in inference mode, batch norm on its running statistics), or the
/// projection and the top K blocks of the tower (`top:K`; musicnn's blocks, from the bottom: front
/// end with input_bn, midend, backend — top:1 is the backend, top:2 midend and backend, top:3 all;
/// vgg's five conv blocks, input_bn with the first). Blocks that do not train run in inference mode.
/// The tag layer (musicnn's `backend.logits`, vgg's `logits`) is not on the embedding's path and
/// never trains.
public typealias AudioTraining = TowerTraining

extension TowerTraining {
    /// Blocks that train, counted from the top, in a tower of `blocks` blocks (musicnn has 3, vgg 5).
    public func trainedBlocks(outOf blocks: Int) -> Int {
        switch self {
        case .full: blocks
        case .frozen: 0
        case .top(let k): min(k, blocks)
        }
    }

    /// Blocks of musicnn's three that train, counted from the top.
    public var trainedBlocks: Int { trainedBlocks(outOf: MusicnnTower.blockNames.count) }
}

extension LogMelConfig {
    /// The first setting in which `other` differs from this configuration, as "name is X, not Y"
    /// (nil when they agree).
    public func difference(from other: LogMelConfig) -> String? {
        func text(_ v: Double?) -> String { v.map { "\($0)" } ?? "null" }
        let pairs: [(String, String, String)] = [
            ("sampleRate", "\(other.sampleRate)", "\(sampleRate)"),
            ("windowLength", "\(other.windowLength) samples", "\(windowLength) samples"),
            ("hopLength", "\(other.hopLength) samples", "\(hopLength) samples"),
            ("fftSize", "\(other.fftSize)", "\(fftSize)"),
            ("melBands", "\(other.melBands)", "\(melBands)"),
            ("fMin", "\(other.fMin)", "\(fMin)"),
            ("fMax", text(other.resolvedFMax), text(resolvedFMax)),
            ("scale", other.scale.rawValue, scale.rawValue),
        ]
        return pairs.first { $0.1 != $0.2 }.map { "\($0.0) is \($0.1), not \($0.2)" }
    }
}

/// Which weights of the text tower train: all (`full`), only the projection (`frozen`: the encoder's
/// output per distinct text is computed once and cached), or the projection and the top K encoder
/// layers (`top:K`).
public typealias TextTraining = TowerTraining

extension TowerTraining {
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
