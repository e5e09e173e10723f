import ArgumentParser
import Foundation
import MulanCore
import MulanDSP
import MulanShards
import MulanTensor
import MulanTraining

/// `mulan-train`: the bundled two-tower contrastive trainer.
public struct TrainCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mulan-train",
        abstract: "Train and evaluate a two-tower (audio/text) contrastive model on mulan-shard shards.",
        discussion: "Exit codes: 0 ok; 64 usage; 1 fatal (the message says what and where).",
        subcommands: [TrainRunCommand.self, BLASCommand.self, LogMelBenchCommand.self, FrontEndDumpCommand.self],
        defaultSubcommand: TrainRunCommand.self)

    public init() {}
}

public struct TrainRunCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Train (the default subcommand).",
        discussion: """
        Reads DATASET/dataset.json and the train split's shards (streaming, shuffle buffer, seeded), \
        mixes the text sources per batch as --mix says, and writes to the run directory: config.json, \
        metrics.jsonl (one JSON object per logged step and per evaluation), checkpoint-NNNNNN.safetensors \
        (weights, optimizer and sampler state; Python's safetensors reads them) and summary.json. \
        Evaluates on valid every --eval-every steps and on test at the end. --resume continues from the \
        newest checkpoint; the resumed run equals an uninterrupted one bit for bit, whatever --threads \
        each part used, on the same OpenBLAS core (mulan-train blas shows which core runs).
        """)

    @OptionGroup public var global: GlobalOptions

    @Option(help: ArgumentHelp("Dataset folder written by mulan-shard (default: WORKDIR/shards/latest).", valueName: "dir"))
    public var dataset: String?

    @Option(help: ArgumentHelp("Run directory for metrics and checkpoints (default: WORKDIR/runs/default).", valueName: "dir"))
    public var runDir: String?

    @Flag(help: "Continue from the newest checkpoint in the run directory.")
    public var resume = false

    @Option(help: ArgumentHelp("Stop after this step with a checkpoint (for time-limited jobs; resume later).",
                               valueName: "step"))
    public var stopAt: Int?

    @Option(help: ArgumentHelp("Write each step's batch as drawn to this file: one JSON line per step with, per example, its key, shard, source, token ids and window offset (to check other readers of the shards, e.g. mulan_torch.MulanShards, against the trainer). A resumed run appends.",
                               valueName: "file"))
    public var dumpBatches: String?

    @Option(help: ArgumentHelp("With --dump-batches: also write each step's audio input (log-mel after SpecAugment) to DIR/step-NNNNNN.npy, float32 [batch, mel bands × frames].",
                               valueName: "dir"))
    public var dumpFeatures: String?

    @Option(help: "Training steps in all.") public var steps = 1000
    @Option(help: "Examples per batch.") public var batchSize = 64
    @Option(name: .customLong("lr"), help: "Peak learning rate (AdamW).") public var learningRate: Float = 3e-4
    @Option(help: "Learning rate at the end of the cosine decay.") public var minLR: Float = 0
    @Option(help: "Linear warm-up steps.") public var warmupSteps = 100
    @Option(help: "AdamW weight decay (not on biases, norms or the temperature).") public var weightDecay: Float = 0.01
    @Option(help: "Clip the global gradient norm to this.") public var clipNorm: Float = 1.0
    @Option(help: ArgumentHelp("Source mix per batch.", valueName: "spec")) public var mix = "tags=2,descriptions=2,playlists=1,aset=1"
    @Option(help: "Random seed (model, sampler, crops, SpecAugment).") public var seed: UInt64 = 0
    @Option(help: "Threads for the kernels (default: --jobs).") public var threads: Int?
    @Option(help: "Shuffle buffer size per source.") public var shuffleBuffer = 1000
    @Option(help: "Initial temperature, in (0, 1].") public var temperature: Float = 0.1
    @Option(help: ArgumentHelp("Loss denominator: decoupled (MuLan: positive left out) or standard.", valueName: "kind"))
    public var loss = "decoupled"
    @Option(help: "Evaluate on valid every N steps.") public var evalEvery = 500
    @Option(help: "Clips per evaluation.") public var evalSamples = 1000
    @Option(help: "Checkpoint every N steps (and at the end).") public var checkpointEvery = 500
    @Option(help: "Checkpoints to keep.") public var keepCheckpoints = 3
    @Option(help: "Write a metrics line every N steps.") public var logEvery = 10

    @Option(help: "Seconds per training window.") public var windowSeconds = 10.0
    @Option(help: "Mel bands.") public var melBands = 128
    @Option(help: "Analysis window, seconds.") public var melWindow = 0.025
    @Option(help: "Hop, seconds.") public var melHop = 0.010
    @Flag(help: "Turn SpecAugment off.") public var noSpecAugment = false
    @Option(help: "SpecAugment frequency masks.") public var freqMasks = 2
    @Option(help: "SpecAugment widest frequency mask (bands).") public var freqMaskWidth = 15
    @Option(help: "SpecAugment time masks.") public var timeMasks = 2
    @Option(help: "SpecAugment widest time mask (frames).") public var timeMaskWidth = 50

    @Option(help: ArgumentHelp("Audio tower stage widths (default 32,64,128,256; resnet50: ResNet-50's 256,512,1024,2048, stage outputs, multiples of 4).",
                               valueName: "w,w,…"))
    public var audioWidths: String?
    @Option(help: "Residual blocks per audio stage (resnet; resnet50's stages are 3, 4, 6, 3).") public var audioBlocks = 1
    @Option(help: "AST tower: Transformer width.") public var astWidth = 128
    @Option(help: "AST tower: encoder layers.") public var astLayers = 4
    @Option(help: "AST tower: attention heads.") public var astHeads = 4
    @Option(help: "AST tower: feed-forward width.") public var astFeedForward = 512
    @Option(help: "Text tower width.") public var textWidth = 256
    @Option(help: "Text tower layers.") public var textLayers = 4
    @Option(help: "Text tower attention heads.") public var textHeads = 4
    @Option(help: "Text tower feed-forward width.") public var textFeedForward = 1024
    @Option(help: "Tokens per text (longer texts are cut, keeping [SEP]).") public var maxTextLength = 64
    @Option(help: "Vocabulary size of the token ids.") public var vocabularySize = 30522
    @Option(help: "Embedding dimension of both towers.") public var embeddingDim = 128
    @Option(help: ArgumentHelp("Start the text tower from a Hugging Face BERT folder (config.json, model.safetensors, vocab.txt); its size replaces --text-width/-layers/-heads/-feed-forward.",
                               valueName: "dir"))
    public var textInit: String?
    @Option(help: ArgumentHelp("Text tower weights that train: full, frozen (projection only; encoder outputs cached) or top:K (the projection and the top K layers; the hidden states of the layers below cached).",
                               valueName: "mode"))
    public var textTrain = "full"
    @Option(help: ArgumentHelp("Text pooling: cls or mean (default: mean with --text-init, cls otherwise).", valueName: "kind"))
    public var textPooling: String?
    @Option(help: "Distinct texts whose frozen encoder output (frozen) or lower layers' hidden states (top:K) are cached.") public var textCacheEntries = 1_000_000
    @Option(name: .customLong("text-cache-mib"), help: "The text cache's limit in MiB (beyond it, or beyond --text-cache-entries, texts are encoded again each time).")
    public var textCacheMiB = 2048
    @Option(help: ArgumentHelp("Audio tower: resnet (the compact ResNet of --audio-widths/--audio-blocks on the --mel-* log-mel), resnet50 (ResNet-50's bottleneck stages of 3, 4, 6, 3 blocks), ast (an Audio Spectrogram Transformer of --ast-*: 16×16 patches at stride 10, [CLS] pooling), musicnn or vgg (musicnn's two architectures on their own fixed front end: 16 kHz, FFT 512, hop 256, 96 bands, log10(10000x+1), 3-s patches; the --mel-* options do not apply and the dataset must be 16 kHz).",
                               valueName: "kind"))
    public var audioTower = "resnet"
    @Option(help: ArgumentHelp("Start the audio tower (all but its projection) from a converted pretrained file (mulan_torch.musicnn convert, e.g. .venv/mulan-pretrained/musicnn/MSD_musicnn.safetensors).",
                               valueName: "file"))
    public var audioInit: String?
    @Option(help: ArgumentHelp("Audio tower weights that train: full, frozen (projection only; the tower in inference mode, batch norm on its running statistics) or top:K (the projection and the top K of the tower's blocks: musicnn's [front end, midend, backend], vgg's five conv blocks).",
                               valueName: "mode"))
    public var audioTrain = "full"
    @Option(help: ArgumentHelp("With a frozen musicnn tower (--audio-train frozen): compute each clip's patch features once and keep them in memory, up to this many MiB (800 bytes per 3-s patch, 8,000 per 30-s clip; clips past the limit are recomputed when drawn); training windows then start on the tower's 187-frame patch grid and each step runs only the projection. Needs --no-spec-augment (SpecAugment changes the features at every draw).",
                               valueName: "MiB"))
    public var audioCache: Int?
    @Option(help: ArgumentHelp("Keep decoded training clips in memory, up to this many MiB (2 bytes a sample: 960,000 bytes for a 30-s clip at 16 kHz), so that a clip drawn again in a later epoch is not decoded again; clips past the limit are decoded at each draw. Results do not change. 0: off.",
                               valueName: "MiB"))
    public var decodedCache = 0
    @Option(help: ArgumentHelp("Add a pitch-class branch with this many learned key profiles: each window's 12-bin pitch-class profile (an FFT of about 0.25 s folded to pitch classes C2-C7) is correlated with every profile at all 12 transpositions, and the best correlations add to the audio embedding (docs/training.md). The first two profiles start as Krumhansl and Kessler's major and minor key profiles. 0: off.",
                               valueName: "K"))
    public var pitchProfiles = 0
    @Option(help: ArgumentHelp("Multiply the learning rate of the pitch-class branch (--pitch-profiles) by this factor: its projection starts at zero, so at 1 it grows no faster than any other weight moves (docs/training.md). Above 0, at most 1000.",
                               valueName: "x"))
    public var pitchLrScale: Float = 1

    public init() {}

    public func validate() throws {
        if steps < 1 { throw ValidationError("--steps must be at least 1") }
        if batchSize < 3 { throw ValidationError("--batch-size must be at least 3 (a contrastive batch needs negatives)") }
        if !(temperature > 0 && temperature <= 1) { throw ValidationError("--temperature must be in (0, 1]") }
        if loss != "decoupled" && loss != "standard" { throw ValidationError("--loss must be decoupled or standard") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
        if dumpFeatures != nil && dumpBatches == nil { throw ValidationError("--dump-features needs --dump-batches") }
        if textWidth % textHeads != 0 { throw ValidationError("--text-width must be a multiple of --text-heads") }
        if parseWidths() == nil { throw ValidationError("--audio-widths must be a comma list of positive integers") }
        for (name, v) in [("--eval-every", evalEvery), ("--checkpoint-every", checkpointEvery), ("--log-every", logEvery),
                          ("--eval-samples", evalSamples), ("--keep-checkpoints", keepCheckpoints),
                          ("--shuffle-buffer", shuffleBuffer), ("--max-text-length", maxTextLength)] where v < 1 {
            throw ValidationError("\(name) must be at least 1")
        }
        do { _ = try TextTraining(parsing: textTrain, option: "--text-train") } catch { throw ValidationError(error.description) }
        if textTrain != "full" && textInit == nil {
            throw ValidationError("--text-train \(textTrain) needs --text-init (a frozen random encoder learns nothing)")
        }
        if let p = textPooling, TextPooling(rawValue: p) == nil { throw ValidationError("--text-pooling must be cls or mean") }
        guard let kind = AudioTowerKind(rawValue: audioTower) else {
            throw ValidationError("--audio-tower must be resnet, resnet50, ast, musicnn or vgg")
        }
        do { _ = try AudioTraining(parsing: audioTrain, option: "--audio-train") } catch { throw ValidationError(error.description) }
        if audioTrain != "full" && audioInit == nil {
            throw ValidationError("--audio-train \(audioTrain) needs --audio-init (a frozen random tower learns nothing)")
        }
        if audioInit != nil && !kind.isPretrainedMusicnn {
            throw ValidationError("--audio-init needs --audio-tower musicnn or vgg (the file's architecture)")
        }
        if kind == .resnet50 && audioBlocks != 1 {
            throw ValidationError("--audio-blocks does not apply to --audio-tower resnet50 (its stages have 3, 4, 6 and 3 blocks)")
        }
        if kind == .ast && (astWidth < 1 || astLayers < 1 || astHeads < 1 || astFeedForward < 1 || astWidth % astHeads != 0) {
            throw ValidationError("--ast-width must be a positive multiple of --ast-heads, with positive --ast-layers and --ast-feed-forward")
        }
        if kind.isPretrainedMusicnn {
            // musicnn's front end (vgg's too) is fixed: the --mel-* options may keep their defaults or give musicnn's values.
            let m = LogMelConfig.musicnn
            for (name, value, resnetDefault, musicnn) in [("--mel-bands", Double(melBands), 128, Double(m.melBands)),
                                                          ("--mel-window", melWindow, 0.025, m.windowSeconds),
                                                          ("--mel-hop", melHop, 0.010, m.hopSeconds)]
                where value != resnetDefault && value != musicnn {
                throw ValidationError("\(name) \(value) does not apply to --audio-tower \(kind.rawValue), whose front end is fixed "
                                      + "(96 bands, window 0.032 s, hop 0.016 s)")
            }
        }
        if textCacheEntries < 0 { throw ValidationError("--text-cache-entries must be at least 0") }
        if textCacheMiB < 0 { throw ValidationError("--text-cache-mib must be at least 0") }
        if decodedCache < 0 { throw ValidationError("--decoded-cache must be at least 0") }
        if pitchProfiles < 0 || pitchProfiles > 64 { throw ValidationError("--pitch-profiles must be between 0 (off) and 64") }
        if !(pitchLrScale > 0 && pitchLrScale <= 1000) { throw ValidationError("--pitch-lr-scale must be above 0 and at most 1000") }
        if pitchLrScale != 1 && pitchProfiles == 0 {
            throw ValidationError("--pitch-lr-scale scales the pitch-class branch's learning rate; add --pitch-profiles K")
        }
        if maxTextLength < 2 { throw ValidationError("--max-text-length must be at least 2 ([CLS] and [SEP])") }
        do { _ = try SourceMix(parsing: mix) } catch { throw ValidationError(error.description) }
        if windowSeconds <= 0 || melWindow <= 0 || melHop <= 0 || melBands < 1 {
            throw ValidationError("--window-seconds, --mel-window, --mel-hop and --mel-bands must be positive")
        }
    }

    private func parseWidths() -> [Int]? {
        guard let audioWidths else { return AudioTowerKind(rawValue: audioTower) == .resnet50 ? AudioTowerConfig.resnet50Widths : AudioTowerConfig().widths }
        let w = audioWidths.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !w.isEmpty, w.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        return w.compactMap { $0 }
    }

    func makeConfig(sampleRate: Int) throws(MulanError) -> TrainingConfig {
        var c = TrainingConfig(sampleRate: sampleRate)
        c.logMel = LogMelConfig(sampleRate: sampleRate, windowSeconds: melWindow, hopSeconds: melHop, melBands: melBands)
        c.audio.melBands = melBands
        c.audio.widths = parseWidths() ?? c.audio.widths
        c.audio.blocksPerStage = audioBlocks
        c.audio.embeddingDim = embeddingDim
        c.text.vocabularySize = vocabularySize
        c.text.width = textWidth
        c.text.layers = textLayers
        c.text.heads = textHeads
        c.text.feedForward = textFeedForward
        c.text.maxLength = maxTextLength
        c.text.embeddingDim = embeddingDim
        c.text.pooling = textPooling.flatMap(TextPooling.init(rawValue:)) ?? (textInit == nil ? .cls : .mean)
        c.textInit = textInit
        c.textTraining = try TextTraining(parsing: textTrain, option: "--text-train")
        c.textCacheEntries = textCacheEntries
        c.textCacheMiB = textCacheMiB
        c.audio.kind = AudioTowerKind(rawValue: audioTower) ?? .resnet
        if c.audio.kind == .ast {
            c.audio.ast = ASTConfig(width: astWidth, layers: astLayers, heads: astHeads, feedForward: astFeedForward)
        }
        if c.audio.kind.isPretrainedMusicnn {
            c.logMel = .musicnn
            c.audio.melBands = MusicnnTower.melBands
            c.audioInit = audioInit
            c.audioTraining = try AudioTraining(parsing: audioTrain, option: "--audio-train")
        }
        c.audioCacheMiB = audioCache
        c.decodedCacheMiB = decodedCache
        c.pitchProfiles = pitchProfiles
        c.pitchLearningRateScale = pitchLrScale
        c.specAugment = noSpecAugment ? nil : SpecAugmentConfig(frequencyMasks: freqMasks, maxFrequencyWidth: freqMaskWidth,
                                                                 timeMasks: timeMasks, maxTimeWidth: timeMaskWidth)
        c.windowSeconds = windowSeconds
        c.batchSize = batchSize
        c.steps = steps
        c.learningRate = learningRate
        c.minimumLearningRate = minLR
        c.warmupSteps = warmupSteps
        c.adam.weightDecay = weightDecay
        c.clipNorm = clipNorm
        c.initialTemperature = temperature
        c.decoupledLoss = loss == "decoupled"
        c.mix = try SourceMix(parsing: mix)
        c.seed = seed
        c.shuffleBuffer = shuffleBuffer
        c.evalEvery = evalEvery
        c.evalSamples = evalSamples
        c.checkpointEvery = checkpointEvery
        c.keepCheckpoints = keepCheckpoints
        c.logEvery = logEvery
        return c
    }

    public func run() async throws {
        let console = global.console
        try await runStage(console: console) {
            Tensor.keepFreedMemory()
            try startBLAS(threads: threads ?? global.jobs, console: console)
            let datasetDir = dataset ?? global.workdir + "/shards/latest"
            let runDirectory = runDir ?? global.workdir + "/runs/default"
            let split = try DatasetSplit(dataset: datasetDir, split: "train")
            let config = try makeConfig(sampleRate: split.manifest.sampleRate)
            let trainer = try Trainer(config: config, dataset: datasetDir, runDirectory: runDirectory, resume: resume,
                                      console: console)
            let summary = try trainer.run(stopAt: stopAt, dumpBatches: dumpBatches, dumpFeatures: dumpFeatures)
            try summary.write(to: runDirectory + "/summary.json")
            print(summary.json())
            return .success
        }
    }
}

/// `mulan-train logmel-bench`: times the log-mel front end alone (for bench/logmel-vs-librosa.sh).
public struct LogMelBenchCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "logmel-bench", abstract: "Time the log-mel front end on synthetic audio (benchmarks).",
        shouldDisplay: false)

    @Option(help: "Seconds of audio.") public var seconds = 600.0
    @Option(help: "Sample rate.") public var sampleRate = 16000
    @Option(help: "Repeats (medians and every time are reported).") public var repeats = 5

    public init() {}

    public func run() async throws {
        BLAS.threads = 1
        let result = try LogMelBenchmark.run(seconds: seconds, sampleRate: sampleRate, repeats: repeats)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(result), as: UTF8.self))
    }
}
