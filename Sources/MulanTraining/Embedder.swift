import Foundation
import MulanCore
import MulanDSP
import MulanMedia
import MulanTensor
import MulanText

/// Audio to embed: a file (decoded with `AudioDecoder`) or a clip of a shard (`MemoryAudioDecoder`).
public struct AudioItem: Sendable {
    public enum Source: Sendable {
        case file(path: String)
        case shard(split: DatasetSplit, clip: ShardClip)
    }

    public var source: Source

    public static func file(_ path: String) -> AudioItem { AudioItem(source: .file(path: path)) }
    public static func shard(_ split: DatasetSplit, _ clip: ShardClip) -> AudioItem { AudioItem(source: .shard(split: split, clip: clip)) }

    /// The file path, or `SHARD#KEY`.
    public var label: String {
        switch source {
        case .file(let path): path
        case .shard(let split, let clip): split.shardPaths[clip.shard] + "#" + clip.key
        }
    }
}

/// What became of one audio item: its index row (without a row number yet) and embedding, or why it failed.
public enum AudioOutcome: Sendable {
    case embedded(IndexRow, [Float])
    case failed(EmbeddingFailure)
}

/// A trained model opened for inference: audio and text embeddings from a `mulan-train` checkpoint.
///
/// Audio: decoded to mono at the model's sample rate; a clip of at most `clipSeconds` (30 s) is
/// the mean of three windows of the model's window length (start, middle, end; shorter audio is
/// zero-padded to one window), as `Trainer.evaluate` scores clips; a longer track is the mean of all its
/// non-overlapping windows from the start (a tail shorter than a window is left out). The mean is
/// L2-normalized again. Text: `BertTokenizer` WordPiece ids wrapped in [CLS] … [SEP] and cut to the
/// model's `maxLength`, as the trainer feeds the shards' ids.
public final class Embedder {
    public static let clipSeconds = 30.0

    public let config: TrainingConfig
    public let step: Int
    public let checkpointPath: String
    public let checkpointSHA256: String
    public let vocabularyPath: String?
    public var dim: Int { config.audio.embeddingDim }
    /// The contrastive loss's learned temperature τ (similarities / τ are the model's logits).
    public var temperature: Float { model.loss.temperature }
    /// Frames of one window's log-mel (the audio tower's input is [melBands × logMelFrames]).
    public var logMelFrames: Int { pool.frames }
    /// Windows per audio-tower forward pass (bounds memory).
    public var windowsPerBatch = 24
    /// Receives, for each window of an audio item, the item, the window's start offset (samples)
    /// and its log-mel, the audio tower's input ([melBands × frames], row-major), before the forward
    /// pass: lets another implementation of the model be checked on the very same inputs
    /// (`mulan-embed --dump-log-mel`).
    public typealias WindowInputs = (_ item: AudioItem, _ offset: Int, _ logMel: ArraySlice<Float>) -> Void

    let model: MuLanModel
    private let pool: LogMelPool
    /// The windows' pitch-class profiles, for a model with a pitch-class branch.
    private let pitch: PitchClassPool?
    private let tokenizer: BertTokenizer?
    private var frontEnds: [String: AudioFrontEnd] = [:]

    /// `checkpoint`, or the newest `checkpoint-NNNNNN.safetensors` of `runDirectory`.
    public static func resolveCheckpoint(_ checkpoint: String?, runDirectory: String?) throws(MulanError) -> String {
        if let checkpoint { return checkpoint }
        guard let runDirectory else {
            throw MulanError(.usage, "no model given", hint: "pass --checkpoint FILE.safetensors or --run-dir DIR (a mulan-train run)")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: runDirectory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw MulanError(.usage, "--run-dir \(runDirectory) is not a folder", hint: "pass the run directory of mulan-train")
        }
        guard let newest = Checkpoint.list(in: runDirectory).last else {
            throw MulanError(.usage, "\(runDirectory) holds no checkpoint-NNNNNN.safetensors",
                             hint: "train first (mulan-train --run-dir \(runDirectory)) or pass --checkpoint")
        }
        return newest.path
    }

    /// Loads the model of a checkpoint (its configuration is in the metadata; optimizer state is
    /// not read) and, when given, the WordPiece vocabulary the model's texts were tokenized with.
    public init(checkpoint path: String, vocabulary: String?) throws(MulanError) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw MulanError(.io, "the checkpoint \(path) does not exist",
                             hint: "pass --checkpoint with a checkpoint-NNNNNN.safetensors written by mulan-train, or --run-dir")
        }
        let loaded = try Checkpoint.load(path, weightsOnly: true,
                                         hint: "it is damaged or cut short; use another checkpoint of the run (mulan-train keeps the newest few)")
        let config = loaded.config, step = loaded.step
        guard config.audio.embeddingDim == config.text.embeddingDim else {
            throw MulanError(.data, "the checkpoint \(path) has towers of different widths (\(config.audio.embeddingDim), \(config.text.embeddingDim))")
        }
        try config.checkAudio(source: "the checkpoint \(path)")
        let model = MuLanModel(config)
        try Checkpoint.restore(loaded, into: model, optimizer: nil, path: path)
        self.model = model
        self.config = config
        self.step = step
        checkpointPath = Paths.absolute(path)
        do { checkpointSHA256 = try SHA256Digest.hex(ofFile: path).digest } catch {
            throw MulanError(.io, "cannot read the checkpoint \(path)", cause: error)
        }
        pool = try LogMelPool(config.logMel, windowSamples: config.windowSamples)
        pitch = try PitchClassPool.forModel(config)
        if let vocabulary {
            let v = try WordPieceVocabulary(path: vocabulary)
            guard v.count <= config.text.vocabularySize else {
                throw MulanError(.usage, "the vocabulary \(vocabulary) has \(v.count) tokens but the model's text tower knows "
                                 + "\(config.text.vocabularySize)", hint: "pass the vocab.txt the training shards were tokenized with")
            }
            tokenizer = BertTokenizer(vocabulary: v)
            vocabularyPath = Paths.absolute(vocabulary)
        } else {
            tokenizer = nil
            vocabularyPath = nil
        }
    }

    // MARK: Text

    /// Unit-norm embeddings of `texts`, in order, [texts.count × dim] row-major.
    public func embed(texts: [String]) throws(MulanError) -> [Float] {
        guard let tokenizer else {
            throw MulanError(.usage, "embedding text needs the WordPiece vocabulary", hint: "pass --vocab vocab.txt (the one mulan-filter used)")
        }
        return embed(tokenIDs: texts.map { tokenizer.encode($0) })
    }

    /// Unit-norm embeddings of WordPiece id sequences without [CLS]/[SEP] (as the shards store them).
    public func embed(tokenIDs: [[Int32]]) -> [Float] {
        model.embedTexts(tokenIDs, batchSize: config.batchSize, maxLength: config.text.maxLength).storage
    }

    // MARK: Audio

    /// Start offsets (samples) of the windows averaged for audio of `count` samples (see the type).
    public func windowOffsets(sampleCount count: Int) -> [Int] {
        let w = config.windowSamples
        let limit = Int((Self.clipSeconds * Double(config.logMel.sampleRate)).rounded())
        if count <= max(limit, w) {
            var offsets: [Int] = []
            for o in AudioFrontEnd.clipWindowOffsets(sampleCount: count, length: w) where !offsets.contains(o) {
                offsets.append(o)
            }
            return offsets
        }
        return Array(stride(from: 0, through: count - w, by: w))
    }

    /// Decodes and embeds `items` (decoding in parallel on `BLAS.threads` threads); a bad item
    /// becomes a failure with its reason, the others are embedded. `inputs`, when given, receives
    /// every window's audio-tower input as it is formed (see `WindowInputs`).
    public func embed(audio items: [AudioItem], inputs: WindowInputs? = nil) -> [AudioOutcome] {
        var decoded = [Result<[Float], EmbeddingFailure>?](repeating: nil, count: items.count)
        let slots = ResultSlots(count: items.count)
        Parallel.forEach(items.count) { i in slots.set(i, self.decode(items[i])) }
        for i in items.indices { decoded[i] = slots.get(i) }
        var clips: [[Float]] = []
        var clipOf: [Int: Int] = [:]
        for (i, d) in decoded.enumerated() {
            if case .success(let s)? = d {
                clipOf[i] = clips.count
                clips.append(s)
            }
        }
        var clipInputs: ((_ clip: Int, _ offset: Int, _ logMel: ArraySlice<Float>) -> Void)?
        if let inputs {
            var itemOfClip = [Int](repeating: 0, count: clips.count)
            for (i, c) in clipOf { itemOfClip[c] = i }
            let item = itemOfClip
            clipInputs = { clip, offset, logMel in inputs(items[item[clip]], offset, logMel) }
        }
        let embedded = embed(clips: clips, inputs: clipInputs)
        let rate = Double(config.logMel.sampleRate)
        return items.enumerated().map { i, item in
            switch decoded[i] {
            case .failure(let f)?:
                return .failed(f)
            case .success(let s)?:
                guard let c = clipOf[i], let (embedding, n) = embedded[c] else {
                    return .failed(EmbeddingFailure(path: item.label, reason: FailureReason.decodeFailed.rawValue, detail: "no window was embedded"))
                }
                var row = IndexRow(row: -1, kind: .audio, seconds: Double(s.count) / rate, windows: n)
                switch item.source {
                case .file(let path):
                    row.path = path
                case .shard(let split, let clip):
                    row.shard = split.shardPaths[clip.shard]
                    row.key = clip.key
                    row.track = clip.record.trackID
                }
                return .embedded(row, embedding)
            case nil:
                return .failed(EmbeddingFailure(path: item.label, reason: FailureReason.decodeFailed.rawValue, detail: "not decoded"))
            }
        }
    }

    /// Embeddings of decoded audio (mono, at the model's rate), each the renormalized mean of its
    /// windows (`windowOffsets`), with the number of windows; nil for audio without a window.
    /// `embed(audio:)` embeds what it decodes with it, and `mulan-ingest --clip-model` the
    /// candidate windows of `best:N`, so both score a clip alike.
    /// `inputs` receives each window's tower input (with the index of its clip in `clips`).
    public func embed(clips: [[Float]], inputs: ((_ clip: Int, _ offset: Int, _ logMel: ArraySlice<Float>) -> Void)? = nil)
        -> [(embedding: [Float], windows: Int)?] {
        // Windows of every clip: (clip, offset), batched across clips.
        var windows: [(item: Int, offset: Int)] = []
        for (i, s) in clips.enumerated() {
            for o in windowOffsets(sampleCount: s.count) { windows.append((i, o)) }
        }
        var sums = [[Float]](repeating: [], count: clips.count)
        var counts = [Int](repeating: 0, count: clips.count)
        forEachWindowEmbedding(windows, of: clips, inputs: inputs) { window, e in
            if sums[window.item].isEmpty { sums[window.item] = [Float](repeating: 0, count: dim) }
            for j in 0..<dim { sums[window.item][j] += e[e.startIndex + j] }
            counts[window.item] += 1
        }
        return clips.indices.map { i in
            guard counts[i] > 0 else { return nil }
            let norm = max(sums[i].reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
            return (sums[i].map { $0 / norm }, counts[i])
        }
    }

    /// Runs the audio tower on the windows (clip, offset) of `clips`, `windowsPerBatch` at a time
    /// (log-mels on the BLAS threads), and hands each window's embedding (`dim` values, unit norm;
    /// with a pitch-class branch, the tower's output combined with the window's pitch classes) to
    /// `body`, in the order of `windows`. A window running past the end of its clip
    /// is zero-padded, as in training. `inputs` receives each window's log-mel (the tower's input,
    /// [melBands × frames] row-major) before the forward pass, in the order of `windows`.
    func forEachWindowEmbedding(_ windows: [(item: Int, offset: Int)], of clips: [[Float]],
                                inputs: ((_ item: Int, _ offset: Int, _ logMel: ArraySlice<Float>) -> Void)? = nil,
                                body: ((item: Int, offset: Int), ArraySlice<Float>) -> Void) {
        let m = config.logMel.melBands, t = pool.frames, w = config.windowSamples
        let step = max(1, windowsPerBatch)
        for lo in stride(from: 0, to: windows.count, by: step) {
            let part = Array(windows[lo..<min(windows.count, lo + step)])
            var batch = Tensor(shape: [part.count, m, t])
            let classes = PitchClassProfile.classes
            var profiles = Tensor(shape: [part.count, classes])
            batch.withUnsafeMutablePointer { bp in
                profiles.withUnsafeMutablePointer { pp in
                    let box = SendablePointer(bp), profileBox = SendablePointer(pp)
                    Parallel.forEach(part.count) { k in
                        let samples = AudioFrontEnd.window(clips[part[k].item], offset: part[k].offset, length: w)
                        let values = self.pool.compute(samples)
                        values.withUnsafeBufferPointer { vp in
                            guard let base = vp.baseAddress else { return }
                            (box.pointer + k * m * t).update(from: base, count: min(vp.count, m * t))
                        }
                        if let pitch = self.pitch {
                            let profile = pitch.profile(samples)
                            for c in 0..<classes { profileBox.pointer[k * classes + c] = profile[c] }
                        }
                    }
                }
            }
            if let inputs {
                for (k, window) in part.enumerated() {
                    inputs(window.item, window.offset, batch.storage[(k * m * t)..<((k + 1) * m * t)])
                }
            }
            let e = model.audioEmbedding(tower: model.audio.forward(batch, training: false),
                                         pitchClasses: pitch == nil ? nil : profiles, training: false)
            for (k, window) in part.enumerated() { body(window, e.storage[(k * dim)..<((k + 1) * dim)]) }
        }
    }

    /// The samples of one item at the model's rate, or why not.
    func decode(_ item: AudioItem) -> Result<[Float], EmbeddingFailure> {
        switch item.source {
        case .file(let path):
            return Self.decodeFile(path, sampleRate: config.logMel.sampleRate)
        case .shard(let split, let clip):
            do {
                let s = try frontEnd(for: split).samples(of: (clip.shard, clip.flacOffset, clip.flacSize, clip.key))
                if s.isEmpty { return .failure(EmbeddingFailure(path: item.label, reason: FailureReason.corrupt.rawValue, detail: "the clip holds no samples")) }
                return .success(s)
            } catch {
                return .failure(EmbeddingFailure(path: item.label, reason: FailureReason.corrupt.rawValue,
                                                 detail: error.description))
            }
        }
    }

    private let frontEndLock = NSLock()

    private func frontEnd(for split: DatasetSplit) throws(MulanError) -> AudioFrontEnd {
        frontEndLock.lock()
        defer { frontEndLock.unlock() }
        let id = split.directory + "\u{0}" + split.name
        if let f = frontEnds[id] { return f }
        guard split.manifest.sampleRate == config.logMel.sampleRate else {
            throw MulanError(.usage, "the shards are \(split.manifest.sampleRate) Hz but the model expects \(config.logMel.sampleRate) Hz")
        }
        let f = try AudioFrontEnd(split: split, config: config)
        frontEnds[id] = f
        return f
    }

    /// Decodes a whole file to mono at `sampleRate` (the whole track is held in memory: 4 bytes per sample).
    public static func decodeFile(_ path: String, sampleRate: Int) -> Result<[Float], EmbeddingFailure> {
        func failure(_ reason: FailureReason, _ detail: String) -> Result<[Float], EmbeddingFailure> {
            .failure(EmbeddingFailure(path: path, reason: reason.rawValue, detail: detail))
        }
        guard FileManager.default.fileExists(atPath: path) else {
            return failure(.missingFile, "\(path) does not exist; check the path")
        }
        do {
            let decoder = try AudioDecoder(path: path, outputSampleRate: sampleRate)
            var samples: [Float] = []
            let stats = try decoder.decode { chunk in
                samples.append(contentsOf: chunk)
                return true
            }
            if samples.isEmpty {
                let why = stats.decodeErrors > 0 ? "\(stats.decodeErrors) of \(stats.packets) packets failed to decode"
                    : (stats.readError.map { "reading stopped: \($0)" } ?? "the stream holds no samples")
                return failure(.corrupt, "no audio could be decoded from \(path) (\(why)); re-encode or re-download it")
            }
            if stats.decodeErrors > max(1, stats.packets / 100) {
                return failure(.corrupt, "\(stats.decodeErrors) of \(stats.packets) packets of \(path) failed to decode; "
                               + "the file is damaged, re-encode or re-download it")
            }
            let seconds = Double(samples.count) / Double(sampleRate)
            if let expected = decoder.probe.durationSeconds, decoder.probe.durationIsExact || stats.readError != nil,
               seconds < expected - max(0.5, 0.02 * expected) {
                return failure(.truncated, String(format: "%@ declares %.1f s but only %.1f s could be decoded; "
                                                  + "the file is cut short, re-download or re-export it", path, expected, seconds))
            }
            return .success(samples)
        } catch let f as TrackFailure {
            return failure(f.reason, f.detail)
        } catch {
            return failure(.decodeFailed, "\(path): \(error)")
        }
    }
}

/// Per-index results written by parallel workers (each index by one worker).
private final class ResultSlots: @unchecked Sendable {   // guarded by its lock
    private let lock = NSLock()
    private var values: [Result<[Float], EmbeddingFailure>?]
    init(count: Int) { values = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ v: Result<[Float], EmbeddingFailure>) {
        lock.lock()
        values[i] = v
        lock.unlock()
    }
    func get(_ i: Int) -> Result<[Float], EmbeddingFailure>? {
        lock.lock()
        defer { lock.unlock() }
        return values[i]
    }
}

extension Embedder {
    /// The clips of a split, in shard order (headers and JSON only).
    public static func clips(of split: DatasetSplit) throws(MulanError) -> [ShardClip] {
        var clips: [ShardClip] = []
        for index in split.shardPaths.indices {
            try ShardScanner(split: split).scan(shard: index) { clip in
                clips.append(clip)
                return true
            }
        }
        return clips
    }

    /// Audio files below `paths`: files as given, folders walked recursively for audio extensions
    /// (`DirectoryScan.defaultGlobs`), sorted; paths that do not exist or folders that cannot be
    /// read become failures.
    public static func audioFiles(_ paths: [String]) -> (files: [String], failures: [EmbeddingFailure]) {
        var files: [String] = []
        var failures: [EmbeddingFailure] = []
        for p in paths {
            let path = Paths.absolute(p)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                failures.append(EmbeddingFailure(path: path, reason: FailureReason.missingFile.rawValue,
                                                 detail: "\(path) does not exist; check the path"))
                continue
            }
            if !isDirectory.boolValue {
                files.append(path)
                continue
            }
            do {
                for entry in try DirectoryScan(root: path, globs: []).rows() {
                    switch entry {
                    case .row(let r): files.append(r.path)
                    case .rejected(let r): failures.append(EmbeddingFailure(path: r.raw, reason: r.reason.rawValue, detail: r.detail))
                    }
                }
            } catch {
                failures.append(EmbeddingFailure(path: path, reason: FailureReason.unreadable.rawValue, detail: error.description))
            }
        }
        return (files, failures)
    }
}
