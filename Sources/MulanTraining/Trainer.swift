import Foundation
import MulanCore
import MulanRecords
import MulanTensor

/// The machine-readable summary of a run (`summary.json` in the run directory, and on stdout).
public struct TrainSummary: Codable, Sendable, StageReport {
    public var runDirectory: String
    public var datasetID: String
    public var firstStep: Int
    public var steps: Int
    /// The step this invocation ended at (below `steps` after `--stop-at`).
    public var lastStep: Int
    public var examples: Int
    public var seconds: Double
    public var examplesPerSecond: Double
    public var threads: Int
    /// The OpenBLAS core the products ran on, and why (nil if OpenBLAS was never loaded).
    public var blas: BLASCore?
    /// Share of thread time in GEMM, the log-mel front end (with SpecAugment) and data loading (shard reads, FLAC decoding).
    public var timeShare: [String: Double]
    public var peakRSSBytes: Int
    public var finalLoss: Double?
    public var temperature: Double
    public var valid: EvaluationResult?
    public var test: EvaluationResult?
    public var checkpoint: String?
    /// The frozen-feature cache of this invocation (`--audio-cache`); nil without it.
    public var audioCache: AudioCacheStatistics?
    /// The decoded-clip cache of this invocation (`--decoded-cache`); nil without it.
    public var decodedCache: DecodedCacheStatistics?
    /// The text cache of this invocation (`--text-train frozen` or `top:K`); nil with `full`.
    public var textCache: TextCacheStatistics?

    enum CodingKeys: String, CodingKey {
        case runDirectory = "run_directory", datasetID = "dataset_id", firstStep = "first_step", steps, lastStep = "last_step", examples, seconds
        case examplesPerSecond = "examples_per_second", threads, blas, timeShare = "time_share", peakRSSBytes = "peak_rss_bytes"
        case finalLoss = "final_loss", temperature, valid, test, checkpoint, audioCache = "audio_cache"
        case decodedCache = "decoded_cache", textCache = "text_cache"
    }
}

/// Runs training: batches from the sampler, both towers forward and backward, the contrastive
/// loss, AdamW; metrics to `metrics.jsonl`, checkpoints beside it, evaluation on valid every
/// `evalEvery` steps and on test at the end.
public final class Trainer {
    public let config: TrainingConfig
    public let runDirectory: String
    let train: DatasetSplit
    let valid: DatasetSplit?
    let test: DatasetSplit?
    let model: MuLanModel
    let optimizer: AdamW
    let sampler: Sampler
    let frontEnd: AudioFrontEnd
    /// The frozen musicnn tower's patch features (`--audio-cache`), nil otherwise.
    let audioCache: FrozenFeatureCache?
    let console: Console
    private(set) var startStep = 0
    private var metrics: MetricsLog
    private let textCache: TextCache
    /// Held for the trainer's lifetime: two trainers on one run directory would interleave
    /// checkpoints and metrics.
    private let lock: WorkdirLock

    /// Opens the dataset and the run directory; with `resume`, continues from the newest checkpoint
    /// there (its configuration wins over `config`, except `steps`, which may be extended).
    public init(config requested: TrainingConfig, dataset: String, runDirectory: String, resume: Bool,
                console: Console) throws(MulanError) {
        var config = requested
        try Durable.createFolder(runDirectory)
        lock = try WorkdirLock(lockFile: runDirectory + "/.lock", stage: "mulan-train",
                               what: "the run directory \(runDirectory)",
                               hint: "another mulan-train is using it: wait for it to finish, or choose another --run-dir")
        let checkpoints = Checkpoint.list(in: runDirectory)
        var loaded: (Checkpoint.Loaded, String)?
        if resume, let last = checkpoints.last {
            let l = try Checkpoint.load(last.path)
            var c = l.config
            c.steps = requested.steps
            // The cache's limit changes no result (FrozenFeatureCache): a resumed run may set another.
            if c.audioCacheMiB != nil, let mib = requested.audioCacheMiB { c.audioCacheMiB = mib }
            c.decodedCacheMiB = requested.decodedCacheMiB  // nor does the decoded-clip cache's
            config = c
            loaded = (l, last.path)
        } else if !resume, !checkpoints.isEmpty {
            throw MulanError(.usage, "\(runDirectory) already holds checkpoints",
                             hint: "pass --resume to continue that run, or choose another --run-dir")
        }
        try config.checkAudio(source: loaded.map { "the checkpoint \($0.1)" } ?? "the run's configuration")
        train = try DatasetSplit(dataset: dataset, split: "train")
        guard train.manifest.sampleRate == config.logMel.sampleRate else {
            throw MulanError(.usage, "the dataset's clips are \(train.manifest.sampleRate) Hz but the run expects \(config.logMel.sampleRate) Hz",
                             hint: config.audio.kind.isPretrainedMusicnn && loaded == nil
                                ? "the \(config.audio.kind.rawValue) tower takes 16 kHz audio: shard the clips at 16000 Hz"
                                : "start a new run directory for this dataset")
        }
        valid = try? DatasetSplit(dataset: dataset, split: "valid")
        test = try? DatasetSplit(dataset: dataset, split: "test")
        let available = train.availableSources
        let mix = config.mix.restricted(to: available)
        guard !mix.sources.isEmpty else {
            throw MulanError(.usage, "no source of --mix \(config.mix) has texts in the train split (it has: \(available.map(\.rawValue).sorted().joined(separator: ", ")))")
        }
        let missing = config.mix.sources.filter { !available.contains($0) }
        if !missing.isEmpty {
            console.log(.warning, "the train split has no \(missing.map(\.rawValue).joined(separator: ", ")) texts; "
                        + "mixing \(mix) instead (the remaining weights, renormalized)", event: "mix-renormalized")
        }
        // A fresh run with --text-init starts the text tower from a pretrained BERT, whose shape
        // then defines config.text (so a resumed run or mulan-embed rebuilds the same tower).
        var pretrained: TextTower?
        if loaded == nil, let folder = config.textInit {
            var random = RandomSource(seed: config.seed ^ 0x7465_7874_0000_0001)
            let p = try PretrainedText.load(directory: folder, maxLength: config.text.maxLength,
                                            embeddingDim: config.text.embeddingDim, pooling: config.text.pooling,
                                            random: &random)
            let vocabularySHA = p.vocabulary.sha256
            if let datasetSHA = train.manifest.vocabularySHA256, datasetSHA != vocabularySHA {
                throw MulanError(.usage, "\(p.vocabularyPath) is not the vocabulary the dataset's token ids come from "
                                 + "(SHA-256 \(vocabularySHA.prefix(12))… vs the dataset's \(datasetSHA.prefix(12))…)",
                                 hint: "filter the text with --vocab \(p.vocabularyPath), or start the text tower from scratch")
            }
            config.text = p.tower.config
            pretrained = p.tower
        }
        self.config = config
        self.runDirectory = runDirectory
        self.console = console
        model = MuLanModel(config, text: pretrained)
        // A fresh run with --audio-init starts the musicnn or vgg tower (all but proj) from the converted file.
        let pretrainedTower = model.audio as? any PretrainedAudioTower
        if loaded == nil, let file = config.audioInit, let tower = pretrainedTower {
            try PretrainedAudio.load(file, into: tower)
        }
        let layers = config.text.layers, textTraining = config.textTraining
        let pretrainedBlocks = pretrainedTower.map { type(of: $0) }
            .map { ($0, (config.audioTraining ?? .full).trainedBlocks(outOf: $0.blockNames.count)) }
        optimizer = AdamW(model.namedParameters.filter { p in
            if p.name.hasPrefix("text.") { return textTraining.trains(String(p.name.dropFirst(5)), layers: layers) }
            if p.name.hasPrefix("audio."), let (tower, blocks) = pretrainedBlocks {
                return tower.trains(String(p.name.dropFirst(6)), trainedBlocks: blocks)
            }
            return true
        }, settings: config.adam, learningRateScale: { $0.hasPrefix("pitch.") ? config.pitchLearningRateScale : 1 })
        textCache = TextCache(capacity: config.textCacheEntries, capacityBytes: config.textCacheMiB << 20)
        sampler = Sampler(split: train, mix: mix, batchSize: config.batchSize, seed: config.seed,
                          bufferSize: config.shuffleBuffer)
        frontEnd = try AudioFrontEnd(split: train, config: config,
                                     decodedCache: config.decodedCacheMiB > 0 ? DecodedClipCache(capacityMiB: config.decodedCacheMiB) : nil)
        if let mib = config.audioCacheMiB, let tower = model.audio as? any PretrainedAudioTower {
            audioCache = FrozenFeatureCache(tower: tower, frontEnd: frontEnd, config: config, capacityMiB: mib)
        } else {
            audioCache = nil
        }
        // A process killed while writing a checkpoint or the metrics leaves NAME.tmp behind.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: runDirectory)) ?? [] where name.hasSuffix(".tmp") {
            try? FileManager.default.removeItem(atPath: runDirectory + "/" + name)
        }
        metrics = try MetricsLog(path: runDirectory + "/metrics.jsonl")
        if let (l, path) = loaded {
            try Checkpoint.restore(l, into: model, optimizer: optimizer, path: path)
            try sampler.restore(l.sampler)
            startStep = l.step
            try metrics.truncate(after: l.step)
            console.log(.info, "resuming from \(path) at step \(l.step)", event: "resume")
        } else {
            try metrics.truncate(after: -1)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        if let data = try? encoder.encode(RunConfigFile(config: config, blas: try? BLAS.load())) {
            try AtomicFile.write(data + Data("\n".utf8), to: runDirectory + "/config.json")
        }
    }

    /// Trains up to `config.steps` (or stops after step `stopAt`, with a checkpoint, for schedulers
    /// that slice long jobs: the learning-rate schedule still spans `config.steps`), evaluates on test
    /// when the last step is done, and returns the summary.
    ///
    /// With `dumpBatches`, writes each step's batch as the trainer draws it to that file (one JSON
    /// line per step, `BatchDump`): created afresh by a new run, appended to by a resumed one; with
    /// `dumpFeatures` too, each step's audio input to `DIR/step-NNNNNN.npy`.
    public func run(stopAt: Int? = nil, dumpBatches: String? = nil, dumpFeatures: String? = nil) throws(MulanError) -> TrainSummary {
        let end = min(config.steps, stopAt ?? config.steps)
        if audioCache != nil, dumpFeatures != nil {
            throw MulanError(.usage, "--dump-features writes each step's log-mel, but with --audio-cache a step's audio input is the "
                             + "frozen tower's cached patch features, not a log-mel", hint: "drop --dump-features (--dump-batches alone works)")
        }
        let dump = try dumpBatches.map { path throws(MulanError) in
            try BatchDump(path: path, featuresDirectory: dumpFeatures, append: startStep > 0)
        }
        Profiler.reset()
        let begin = Date()
        var lastLoss: Double?
        var lastValid: EvaluationResult?
        var lastCheckpoint: String?
        var examples = 0
        var windowStart = Date(), windowExamples = 0
        var rate = 0.0
        var lossEMA: Double?
        let total = max(0, end - startStep)
        let progress = ProgressMeter(total: total, unit: "steps", console: console) { [unowned self] done, _ in
            let loss = lossEMA.map { String(format: "%.3f", $0) } ?? "-"
            return "step \(startStep + done) loss \(loss) τ \(String(format: "%.3f", model.loss.temperature)) \(String(format: "%.1f", rate)) ex/s"
        }
        let validClips = try valid.map { v throws(MulanError) in try evaluationClips(v) }
        for step in startStep..<max(startStep, end) {
            let refs = try sampler.batch(step)
            let tokens = TokenBatch(sequences: refs.map(\.tokenIDs), maxLength: config.text.maxLength)
            let a: Tensor
            if let cache = audioCache {
                let input = try cache.trainingBatch(refs, step: step)
                try dump?.write(step: step, refs: refs, windowOffsets: input.windowOffsets, features: nil)
                model.zeroGrads()
                a = model.audioEmbedding(tower: cache.tower.forward(meanPenultimate: input.features, training: true),
                                         pitchClasses: input.pitchClasses, training: true)
            } else {
                let input = try frontEnd.trainingBatch(refs, step: step)
                try dump?.write(step: step, refs: refs, windowOffsets: input.windowOffsets, features: input.features)
                model.zeroGrads()
                a = model.audioEmbedding(tower: model.audio.forward(input.features, training: true),
                                         pitchClasses: input.pitchClasses, training: true)
            }
            let t = textForward(tokens)
            let loss = model.loss.forward(audio: a, text: t)
            guard loss.isFinite else {
                throw MulanError(.data, "the loss became \(loss) at step \(step)",
                                 hint: "lower --lr or raise --warmup-steps; resume from the last checkpoint")
            }
            let (da, dt) = model.loss.backward()
            model.audio.backward(model.audioEmbeddingBackward(da), inputGradient: false)
            textBackward(dt)
            let norm = optimizer.clipGradients(maxNorm: config.clipNorm)
            let lr = config.schedule.rate(at: step)
            optimizer.update(lr: lr)
            model.loss.clampTemperature()

            examples += refs.count
            windowExamples += refs.count
            lastLoss = Double(loss)
            lossEMA = lossEMA.map { 0.9 * $0 + 0.1 * Double(loss) } ?? Double(loss)
            let now = Date()
            if now.timeIntervalSince(windowStart) > 0 {
                rate = Double(windowExamples) / now.timeIntervalSince(windowStart)
            }
            let done = step + 1
            if done % config.logEvery == 0 || done == config.steps {
                var counts: [String: Int] = [:]
                for r in refs { counts[r.source.rawValue, default: 0] += 1 }
                try metrics.append(.training(step: done, loss: Double(loss), temperature: Double(model.loss.temperature),
                                             batchSize: refs.count, examplesPerSecond: rate, learningRate: Double(lr),
                                             gradientNorm: Double(norm), sources: counts))
                windowStart = now
                windowExamples = 0
            }
            if let v = valid, let clips = validClips, done % config.evalEvery == 0 || done == config.steps {
                let result = try evaluate(v, clips: clips)
                lastValid = result
                try metrics.append(evaluationLine(result, step: done))
                console.log(.info, "step \(done): valid R@1 t→a \(String(format: "%.3f", result.textToAudio.recallAt1)), "
                            + "loss \(result.loss.map { String(format: "%.3f", $0) } ?? "-")", event: "evaluation")
            }
            if done % config.checkpointEvery == 0 || done == end {
                lastCheckpoint = try saveCheckpoint(step: done)
            }
            progress.advance()
        }
        progress.finish()
        if let stats = frontEnd.decodedCache?.statistics {
            console.log(.info, "decoded-clip cache: \(stats.clips) clips kept (\(stats.bytes) of \(stats.capacityBytes) bytes), "
                        + "\(stats.hits) draws from the cache, \(stats.misses) decoded", event: "decoded-cache")
        }
        if let stats = audioCache?.statistics {
            console.log(.info, "audio feature cache: \(stats.clips) clips stored (\(stats.bytes) of \(stats.capacityBytes) bytes), "
                        + "\(stats.patchesComputed) patches computed, \(stats.patchHits) window patches from the cache", event: "audio-cache")
        }
        var testResult: EvaluationResult?
        if let t = test, end == config.steps {
            let result = try evaluate(t, clips: try evaluationClips(t))
            testResult = result
            try metrics.append(evaluationLine(result, step: config.steps))
            try metrics.sync()
        }
        let seconds = Date().timeIntervalSince(begin)
        let shares = Profiler.snapshot()
        let threadSeconds = max(seconds * Double(BLAS.threads), 1e-9)
        var timeShare: [String: Double] = [:]
        for (k, v) in shares { timeShare[k.rawValue] = v / threadSeconds }
        return TrainSummary(
            runDirectory: runDirectory, datasetID: train.manifest.datasetID, firstStep: startStep, steps: config.steps,
            lastStep: max(startStep, end), examples: examples, seconds: seconds, examplesPerSecond: seconds > 0 ? Double(examples) / seconds : 0,
            threads: BLAS.threads, blas: try? BLAS.load(), timeShare: timeShare, peakRSSBytes: PeakMemory.residentBytes(), finalLoss: lastLoss,
            temperature: Double(model.loss.temperature), valid: lastValid, test: testResult,
            checkpoint: lastCheckpoint ?? Checkpoint.list(in: runDirectory).last?.path, audioCache: audioCache?.statistics,
            decodedCache: frontEnd.decodedCache?.statistics,
            textCache: config.textTraining == .full ? nil : textCache.statistics)
    }

    /// The text tower's training forward. With a frozen encoder (`frozen`), the projection of cached
    /// pooled encoder outputs; with `top:K`, the top K layers on cached hidden states of the frozen
    /// layers below them (`TextTower.forward(fromLayer:)`). Either way each distinct text goes
    /// through the frozen part once while the cache holds it, and again each time it comes after.
    private func textForward(_ tokens: TokenBatch) -> Tensor {
        let first: Int
        switch config.textTraining {
        case .full: return model.text.forward(tokens, training: true)
        case .frozen: first = config.text.layers
        case .top(let k): first = max(0, config.text.layers - k)
        }
        let w = config.text.width, l = tokens.length
        let sequences = (0..<tokens.batchSize).map { Array(tokens.ids[($0 * l)..<($0 * l + tokens.lengths[$0])]) }
        // First-occurrence order (a Set's order changes from process to process).
        var seen = Set<[Int32]>()
        let missing = sequences.filter { textCache[$0] == nil && seen.insert($0).inserted }
        textCache.count(texts: sequences.count, encoded: missing.count)
        // What the cache did not take, for this step only.
        var fresh: [[Int32]: [Float]] = [:]
        if !missing.isEmpty {
            let batch = TokenBatch(sequences: missing, maxLength: config.text.maxLength, addSpecialTokens: false)
            if config.textTraining == .frozen {
                let pooled = model.text.pooled(batch)
                for (i, seq) in missing.enumerated() {
                    let row = Array(pooled.storage[(i * w)..<((i + 1) * w)])
                    if !textCache.insert(seq, row) { fresh[seq] = row }
                }
            } else {
                let (hidden, offsets) = model.text.packedHidden(batch, throughLayers: first)
                for (i, seq) in missing.enumerated() {
                    let rows = Array(hidden.storage[(offsets[i] * w)..<(offsets[i + 1] * w)])
                    if !textCache.insert(seq, rows) { fresh[seq] = rows }
                }
            }
        }
        func row(_ seq: [Int32]) -> [Float] {
            guard let r = textCache[seq] ?? fresh[seq] else { preconditionFailure("Trainer: a text neither cached nor encoded") }
            return r
        }
        if config.textTraining == .frozen {
            var batch = Tensor(shape: [tokens.batchSize, w])
            for (i, seq) in sequences.enumerated() {
                row(seq).withUnsafeBufferPointer { r in
                    for j in 0..<w { batch.storage[i * w + j] = r[j] }
                }
            }
            return model.text.normalize.forward(model.text.projection.forward(batch, training: true), training: true)
        }
        // The hidden states entering layer `first`, padded with zeros (no valid position sees them).
        var hidden = Tensor(shape: [tokens.batchSize, l, w])
        hidden.withUnsafeMutablePointer { hp in
            for (i, seq) in sequences.enumerated() {
                row(seq).withUnsafeBufferPointer { r in (hp + i * l * w).update(from: r.baseAddress!, count: r.count) }
            }
        }
        return model.text.forward(fromLayer: first, hidden: hidden, lengths: tokens.lengths, training: true)
    }

    private func textBackward(_ dt: Tensor) {
        if config.textTraining == .frozen {
            _ = model.text.projection.backward(model.text.normalize.backward(dt))
        } else {
            model.text.backward(dt)
        }
    }

    private func saveCheckpoint(step: Int) throws(MulanError) -> String {
        let path = runDirectory + "/" + Checkpoint.fileName(step: step)
        // The metrics up to this step reach the disk before the checkpoint that implies them; the
        // checkpoint is synced and its folder entry too (Checkpoint.save) before older ones go.
        try metrics.sync()
        try Checkpoint.save(model: model, optimizer: optimizer, step: step, config: config, sampler: sampler.state, to: path)
        for old in Checkpoint.list(in: runDirectory).dropLast(max(1, config.keepCheckpoints)) {
            try? FileManager.default.removeItem(atPath: old.path)
        }
        return path
    }

    private func evaluationLine(_ r: EvaluationResult, step: Int) -> MetricsLine {
        .evaluation(r, step: step, temperature: Double(model.loss.temperature), batchSize: config.batchSize,
                    examplesPerSecond: evaluationRate)
    }

    private var evaluationRate = 0.0

    /// The first `evalSamples` clips of a split (in shard order) that have a text of a mixed source.
    func evaluationClips(_ split: DatasetSplit) throws(MulanError) -> [ShardClip] {
        var clips: [ShardClip] = []
        let sources = Set(config.mix.sources.map(\.rawValue))
        for index in split.shardPaths.indices where clips.count < config.evalSamples {
            try ShardScanner(split: split).scan(shard: index) { clip in
                if clip.record.texts.keys.contains(where: sources.contains) { clips.append(clip) }
                return clips.count < config.evalSamples
            }
        }
        return clips
    }

    /// Embeds the clips (mean of three windows) and one text per clip (the first text of the first
    /// mixed source it has), then scores retrieval both ways, zero-shot tagging over the split's tag
    /// vocabulary, and the loss.
    public func evaluate(_ split: DatasetSplit, clips: [ShardClip]) throws(MulanError) -> EvaluationResult {
        let begin = Date()
        let evalFrontEnd = try AudioFrontEnd(split: split, config: config)
        let d = config.audio.embeddingDim
        let n = clips.count
        var audio = Tensor(shape: [n, d])
        let chunk = max(1, config.batchSize / 3)
        for lo in stride(from: 0, to: n, by: chunk) {
            let part = Array(clips[lo..<min(n, lo + chunk)])
            let batch = try evalFrontEnd.evaluationBatch(part)
            let e = model.audioEmbedding(tower: model.audio.forward(batch.features, training: false),
                                         pitchClasses: batch.pitchClasses, training: false)
            for i in 0..<part.count {
                var norm: Float = 0
                var mean = [Float](repeating: 0, count: d)
                for k in 0..<3 { for j in 0..<d { mean[j] += e.storage[(i * 3 + k) * d + j] / 3 } }
                for j in 0..<d { norm += mean[j] * mean[j] }
                norm = max(norm.squareRoot(), 1e-12)
                for j in 0..<d { audio.storage[(lo + i) * d + j] = mean[j] / norm }
            }
        }
        let order = config.mix.sources.map(\.rawValue)
        let queries: [[Int32]] = clips.map { c in
            let source = order.first { c.record.texts[$0]?.isEmpty == false } ?? c.record.texts.keys.sorted()[0]
            return c.record.texts[source]![0].tokenIDs.map { Int32(truncatingIfNeeded: $0) }
        }
        let text = embedTexts(queries)
        let similarity = similarityMatrix(audio, text)
        // Clips whose query texts are the same token sequence are relevant to each other's queries.
        var groupOf: [[Int32]: Int] = [:]
        let groups = queries.map { q in groupOf[q] ?? { groupOf[q] = groupOf.count; return groupOf.count - 1 }() }
        let a2t = RetrievalMetrics.diagonalRanks(similarity, n: n, groups: groups)
        let t2a = RetrievalMetrics.diagonalRanks(similarity, n: n, transpose: true, groups: groups)
        func retrieval(_ ranks: [Int]) -> EvaluationResult.Retrieval {
            .init(recallAt1: RetrievalMetrics.recall(at: 1, ranks: ranks), recallAt5: RetrievalMetrics.recall(at: 5, ranks: ranks),
                  recallAt10: RetrievalMetrics.recall(at: 10, ranks: ranks), medianRank: RetrievalMetrics.median(ranks))
        }
        // Loss over consecutive chunks of the batch size.
        var lossSum = 0.0, lossChunks = 0
        let probe = ContrastiveLoss(initialTemperature: model.loss.temperature, decoupled: config.decoupledLoss)
        let b = config.batchSize
        for lo in stride(from: 0, to: n, by: b) where min(n, lo + b) - lo >= 3 {
            let hi = min(n, lo + b)
            let aa = Tensor(shape: [hi - lo, d], Array(audio.storage[(lo * d)..<(hi * d)]))
            let tt = Tensor(shape: [hi - lo, d], Array(text.storage[(lo * d)..<(hi * d)]))
            lossSum += Double(probe.forward(audio: aa, text: tt))
            lossChunks += 1
        }
        let tagging = tagScores(clips: clips, audio: audio)
        evaluationRate = Double(n) / max(Date().timeIntervalSince(begin), 1e-9)
        return EvaluationResult(split: split.name, clips: n, loss: lossChunks > 0 ? lossSum / Double(lossChunks) : nil,
                                textToAudio: retrieval(t2a), audioToText: retrieval(a2t), tagging: tagging)
    }

    /// Zero-shot tagging: every distinct tag text of the clips is embedded by the text tower and
    /// scored against every clip's audio embedding; macro ROC-AUC and mAP over tags that have both
    /// positive and negative clips.
    private func tagScores(clips: [ShardClip], audio: Tensor) -> EvaluationResult.Tagging? {
        var vocabulary: [String: [Int32]] = [:]
        var positives: [String: Set<Int>] = [:]
        for (i, c) in clips.enumerated() {
            for t in c.record.texts[TextSource.tags.rawValue] ?? [] {
                if vocabulary[t.text] == nil { vocabulary[t.text] = t.tokenIDs.map { Int32(truncatingIfNeeded: $0) } }
                positives[t.text, default: []].insert(i)
            }
        }
        let tags = vocabulary.keys.sorted().filter { positives[$0]!.count < clips.count }
        guard !tags.isEmpty else { return nil }
        let embedded = embedTexts(tags.map { vocabulary[$0]! })
        let scores = similarityMatrix(embedded, audio)   // tags × clips
        var aucs: [Double] = [], aps: [Double] = []
        for (k, tag) in tags.enumerated() {
            let row = Array(scores[(k * clips.count)..<((k + 1) * clips.count)])
            let labels = clips.indices.map { positives[tag]!.contains($0) }
            if let auc = RetrievalMetrics.rocAUC(scores: row, labels: labels) { aucs.append(auc) }
            if let ap = RetrievalMetrics.averagePrecision(scores: row, labels: labels) { aps.append(ap) }
        }
        guard !aucs.isEmpty else { return nil }
        return .init(tags: aucs.count, rocAUC: aucs.reduce(0, +) / Double(aucs.count),
                     meanAveragePrecision: aps.reduce(0, +) / Double(max(aps.count, 1)))
    }

    func embedTexts(_ sequences: [[Int32]]) -> Tensor {
        model.embedTexts(sequences, batchSize: config.batchSize, maxLength: config.text.maxLength)
    }

}

/// `mulan-train --dump-batches FILE`: one JSON line per training step with the batch as the trainer
/// drew it, `{"step": N, "examples": [{"key", "shard", "source", "token_ids", "window_offset"}, …]}`
/// (examples in batch order; `token_ids` as stored in the shard, before [CLS]/[SEP]; `window_offset`
/// the first sample of the training window in the decoded clip). With `--dump-features DIR`, also the
/// step's audio input as the model receives it (log-mel after SpecAugment) in `DIR/step-NNNNNN.npy`,
/// float32 [B, melBands·frames], and its shape [B, melBands, frames] as `features` in the line. For
/// checking other readers of the shards (mulan_torch.MulanShards) against the trainer.
struct BatchDump {
    let path: String
    let featuresDirectory: String?
    private let handle: FileHandle

    /// Creates (or, with `append`, opens for appending) the file, and the features folder.
    init(path: String, featuresDirectory: String?, append: Bool) throws(MulanError) {
        self.path = path
        self.featuresDirectory = featuresDirectory
        if let dir = featuresDirectory {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            } catch {
                throw MulanError(.io, "cannot create the features folder \(dir)", cause: error)
            }
        }
        let flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC)
        let fd = open(path, flags, 0o644)
        guard fd >= 0 else {
            throw MulanError(.io, "cannot create the batch dump \(path)", hint: "check that its folder exists and is writable",
                             cause: SystemCallError.current())
        }
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    struct Line: Encodable {
        struct Example: Encodable {
            var key: String
            var shard: Int
            var source: String
            var tokenIDs: [Int32]
            var windowOffset: Int
            enum CodingKeys: String, CodingKey { case key, shard, source, tokenIDs = "token_ids", windowOffset = "window_offset" }
        }
        var step: Int
        var examples: [Example]
        var features: [Int]?
    }

    /// One step's line; `features` (the log-mel batch) goes to the features folder when there is one.
    func write(step: Int, refs: [ExampleRef], windowOffsets: [Int], features: Tensor?) throws(MulanError) {
        var line = Line(step: step, examples: zip(refs, windowOffsets).map { r, o in
            .init(key: r.key, shard: r.shard, source: r.source.rawValue, tokenIDs: r.tokenIDs, windowOffset: o)
        })
        if let dir = featuresDirectory, let features {
            let shape = features.shape
            let rows = shape.first ?? 0, dim = shape.dropFirst().reduce(1, *)
            try NPYWriter.write(dir + "/" + String(format: "step-%06d.npy", step), rows: rows, dim: dim,
                                features.storage)
            line.features = shape
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            try handle.write(contentsOf: try encoder.encode(line) + Data("\n".utf8))
        } catch {
            throw MulanError(.io, "cannot write to the batch dump \(path)", cause: error)
        }
    }
}

/// `metrics.jsonl`: one JSON object per line, appended and flushed as training goes.
struct MetricsLog {
    let path: String

    init(path: String) throws(MulanError) {
        self.path = path
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw MulanError(.io, "cannot create \(path)", cause: SystemCallError.current()) }
        close(fd)
        try Durable.syncFolder(Durable.folder(of: path))
    }

    /// Flushes the lines appended so far to the disk (at every checkpoint and at the end of a run).
    func sync() throws(MulanError) {
        try Durable.syncFile(path)
    }

    /// Drops lines of steps after `step` (left by a run that stopped before its next checkpoint),
    /// and the test evaluation of `step` itself (written after its checkpoint, and written again
    /// when a finished run is resumed), so a resumed run does not repeat them. Rewrites via a
    /// temporary file.
    func truncate(after step: Int) throws(MulanError) {
        // An empty file is not read: Foundation's String(contentsOfFile:) leaks its 4 KiB read
        // buffer on an empty file (LeakSanitizer, swift-corelibs-foundation 6.3).
        var st = stat()
        let empty = stat(path, &st) == 0 && st.st_size == 0
        let text = empty ? "" : (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let kept = text.split(separator: "\n").filter { line in
            guard let m = MetricsLine.parse(line.utf8) else { return false }
            return m.step < step || (m.step == step && m.split != "test")
        }
        try AtomicFile.write(Data(kept.map { $0 + "\n" }.joined().utf8), to: path)
    }

    func append(_ line: MetricsLine) throws(MulanError) {
        guard let handle = FileHandle(forWritingAtPath: path) else { throw MulanError(.io, "cannot append to \(path)") }
        defer { try? handle.close() }
        do {
            try handle.seekToEnd()
            try handle.write(contentsOf: line.json() + Data("\n".utf8))
        } catch {
            throw MulanError(.io, "cannot append to \(path)", cause: error)
        }
    }
}

/// The frozen part of the text tower's output by token sequence ([CLS] … [SEP]): the pooled
/// encoder output (`--text-train frozen`, width floats a text) or the hidden states entering the
/// first trained layer (`top:K`, length × width floats a text). Holds up to `capacity` texts and
/// `capacityBytes` of floats; beyond either, texts are encoded again each time they come (tags
/// repeat a lot; long descriptions rarely do), so results do not depend on the limits beyond
/// rounding (a text encoded again is encoded beside other texts).
final class TextCache {
    private var rows: [[Int32]: [Float]] = [:]
    let capacity: Int
    let capacityBytes: Int
    private(set) var bytes = 0
    init(capacity: Int, capacityBytes: Int) {
        self.capacity = capacity
        self.capacityBytes = capacityBytes
    }

    subscript(_ key: [Int32]) -> [Float]? { rows[key] }

    /// Texts of training steps, and of them those run through the frozen part.
    private(set) var texts = 0
    private(set) var encoded = 0
    func count(texts n: Int, encoded e: Int) {
        texts += n
        encoded += e
    }

    var statistics: TextCacheStatistics {
        TextCacheStatistics(capacityEntries: capacity, capacityBytes: capacityBytes, entries: rows.count, bytes: bytes,
                            texts: texts, encoded: encoded)
    }

    /// Stores `value` under `key` when both limits allow it; false when it was not stored.
    func insert(_ key: [Int32], _ value: [Float]) -> Bool {
        let size = value.count * MemoryLayout<Float>.size
        guard rows[key] == nil, rows.count < capacity, bytes + size <= capacityBytes else { return rows[key] != nil }
        rows[key] = value
        bytes += size
        return true
    }
}

/// How the text cache did in a run (`text_cache` in summary.json).
public struct TextCacheStatistics: Codable, Sendable, Equatable {
    /// The limits (`--text-cache-entries`, `--text-cache-mib`).
    public var capacityEntries: Int
    public var capacityBytes: Int
    /// Texts kept, and their bytes.
    public var entries: Int
    public var bytes: Int
    /// Texts in the training batches, and of them those run through the frozen part (not in the
    /// cache then; a text repeated within one batch counts once).
    public var texts: Int
    public var encoded: Int

    enum CodingKeys: String, CodingKey {
        case capacityEntries = "capacity_entries", capacityBytes = "capacity_bytes", entries, bytes, texts, encoded
    }
}

/// `config.json` in a run directory: the run's `TrainingConfig`, and beside its keys `blas`, the
/// OpenBLAS core this invocation multiplies on (a record for people and benchmarks; `--resume` and
/// the model tools read the configuration from the checkpoint, not from here).
struct RunConfigFile: Encodable {
    var config: TrainingConfig
    var blas: BLASCore?

    enum CodingKeys: String, CodingKey { case blas }

    func encode(to encoder: any Encoder) throws {
        try config.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(blas, forKey: .blas)
    }
}
