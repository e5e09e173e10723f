import Foundation
import MulanCore

/// `mulan-embed`'s job: audio (files and folders, shard clips) and texts embedded with a trained
/// model into an index folder (`EmbeddingIndexWriter`). The command parses the options into this
/// configuration, opens the model (`openModel`) and prints the summary.
public struct EmbeddingJob {
    /// Audio files and/or folders (searched recursively).
    public var audio: [String]
    /// A mulan-shard dataset folder whose `split` clips are embedded.
    public var shards: String?
    public var split: String
    /// Texts to embed (`--text`), before the lines of `textFile`.
    public var texts: [String]
    /// A file of texts, one per line (blank lines skipped).
    public var textFile: String?
    /// The index folder written.
    public var out: String
    /// Audio items decoded and embedded per batch.
    public var batch: Int
    /// Also write every audio window's log-mel here (`LogMelDump`).
    public var dumpLogMel: String?
    public var console: Console

    public init(audio: [String], shards: String?, split: String, texts: [String], textFile: String?, out: String, batch: Int,
                dumpLogMel: String?, console: Console) {
        self.audio = audio
        self.shards = shards
        self.split = split
        self.texts = texts
        self.textFile = textFile
        self.out = out
        self.batch = batch
        self.dumpLogMel = dumpLogMel
        self.console = console
    }

    /// Embeds everything and commits the index: every input list is read first (a usage error costs
    /// nothing), then the model opened (`openModel`); items that cannot be decoded are listed with
    /// their reason and the run goes on.
    public func run(openModel: () throws(MulanError) -> Embedder) throws(MulanError) -> EmbeddingSummary {
        let begin = Date()
        let texts = try readTexts()
        let embedder = try openModel()
        if !texts.isEmpty && embedder.vocabularyPath == nil {
            throw MulanError(.usage, "embedding text needs the WordPiece vocabulary", hint: "pass --vocab vocab.txt")
        }
        let (items, found) = try audioItems()
        var failures = found
        let writer = try EmbeddingIndexWriter(directory: out, dim: embedder.dim)
        let dump = try dumpLogMel.map { dir throws(MulanError) in
            try LogMelDump(directory: dir, melBands: embedder.config.logMel.melBands, frames: embedder.logMelFrames)
        }
        let progress = ProgressMeter(total: items.count + texts.count, unit: "items", console: console) { _, _ in
            "\(failures.count) failed"
        }
        let audio = try embedAudio(items, embedder: embedder, writer: writer, dump: dump, progress: progress) { failures.append($0) }
        try embedTexts(texts, embedder: embedder, writer: writer, progress: progress)
        progress.finish()
        try dump?.finish()
        let info = EmbeddingInfo(
            checkpoint: embedder.checkpointPath, checkpointSHA256: embedder.checkpointSHA256, step: embedder.step,
            dim: embedder.dim, sampleRate: embedder.config.logMel.sampleRate, windowSeconds: embedder.config.windowSeconds,
            vocabulary: embedder.vocabularyPath, rows: writer.rows.count, audioRows: audio.rows, textRows: texts.count,
            failures: failures)
        try writer.commit(info: info)
        var byReason: [String: Int] = [:]
        for f in failures { byReason[f.reason, default: 0] += 1 }
        return EmbeddingSummary(out: Paths.absolute(out), checkpoint: embedder.checkpointPath, step: embedder.step,
                                dim: embedder.dim, rows: writer.rows.count, audioRows: audio.rows, textRows: texts.count,
                                failed: failures.count, failuresByReason: byReason,
                                seconds: Date().timeIntervalSince(begin), audioSecondsEmbedded: audio.seconds)
    }

    /// The audio to embed: the files found under `audio` (with those that cannot be listed as
    /// failures), then the clips of the shard split.
    func audioItems() throws(MulanError) -> (items: [AudioItem], failures: [EmbeddingFailure]) {
        var items: [AudioItem] = []
        var failures: [EmbeddingFailure] = []
        if !audio.isEmpty {
            let found = Embedder.audioFiles(audio)
            items += found.files.map(AudioItem.file)
            failures += found.failures
        }
        if let shards {
            let s = try DatasetSplit(dataset: shards, split: split)
            items += try Embedder.clips(of: s).map { AudioItem.shard(s, $0) }
        }
        return (items, failures)
    }

    /// Embeds `items` in batches of `batch` into `writer`; each failure is logged and handed to `failed`.
    func embedAudio(_ items: [AudioItem], embedder: Embedder, writer: EmbeddingIndexWriter, dump: LogMelDump?,
                    progress: ProgressMeter, failed: (EmbeddingFailure) -> Void) throws(MulanError) -> (rows: Int, seconds: Double) {
        let windowInputs: Embedder.WindowInputs? = dump.map { d in { d.add($0, $1, $2) } }
        var rows = 0, seconds = 0.0
        for lo in stride(from: 0, to: items.count, by: batch) {
            let group = Array(items[lo..<min(items.count, lo + batch)])
            var embedded: [(row: IndexRow, embedding: [Float])] = []
            for outcome in embedder.embed(audio: group, inputs: windowInputs) {
                switch outcome {
                case .embedded(let row, let e):
                    embedded.append((row, e))
                    seconds += row.seconds ?? 0
                case .failed(let f):
                    failed(f)
                    console.log(.warning, "\(f.path): \(f.reason): \(f.detail)", event: "failed",
                                fields: ["path": f.path, "reason": f.reason])
                }
            }
            try writer.append(embedded)
            rows += embedded.count
            progress.advance(by: group.count)
        }
        return (rows, seconds)
    }

    /// Embeds `texts` 64 at a time into `writer`.
    func embedTexts(_ texts: [String], embedder: Embedder, writer: EmbeddingIndexWriter,
                    progress: ProgressMeter) throws(MulanError) {
        for lo in stride(from: 0, to: texts.count, by: 64) {
            let part = Array(texts[lo..<min(texts.count, lo + 64)])
            let e = try embedder.embed(texts: part)
            let d = embedder.dim
            try writer.append(part.enumerated().map { k, t in
                (IndexRow(row: -1, kind: .text, text: t), Array(e[(k * d)..<((k + 1) * d)]))
            })
            progress.advance(by: part.count)
        }
    }

    /// `texts`, then the lines of `textFile`.
    func readTexts() throws(MulanError) -> [String] {
        var texts = self.texts
        if let textFile {
            guard let data = FileManager.default.contents(atPath: textFile) else {
                throw MulanError(.io, "cannot read \(textFile)", hint: "check --text-file")
            }
            guard let content = String(validating: [UInt8](data), as: UTF8.self) else {
                throw MulanError(.data, "\(textFile) is not UTF-8 text", hint: "re-save it as UTF-8, one text per line")
            }
            for line in content.split(separator: "\n", omittingEmptySubsequences: false) {
                let t = line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
                if !t.trimmingCharacters(in: .whitespaces).isEmpty { texts.append(t) }
            }
        }
        return texts
    }
}

/// What `mulan-embed` prints on stdout.
public struct EmbeddingSummary: StageReport {
    public var out: String
    public var checkpoint: String
    public var step: Int
    public var dim: Int
    public var rows: Int
    public var audioRows: Int
    public var textRows: Int
    public var failed: Int
    public var failuresByReason: [String: Int]
    public var seconds: Double
    public var audioSecondsEmbedded: Double

    enum CodingKeys: String, CodingKey {
        case out, checkpoint, step, dim, rows, audioRows = "audio_rows", textRows = "text_rows", failed
        case failuresByReason = "failures_by_reason", seconds, audioSecondsEmbedded = "audio_seconds_embedded"
    }
}

/// `mulan-embed --dump-log-mel DIR`: each audio window's tower input, in the order the windows
/// are embedded: `log-mel.npy` (float32 [windows, melBands·frames], each row a [melBands × frames]
/// log-mel, row-major) and `log-mel.jsonl` (per row: the item, as index.jsonl names it, the
/// window's start offset in samples, melBands and frames). Both are written under temporary names
/// and renamed by `finish`.
public final class LogMelDump {
    private let npy: NPYWriter
    private let lines: FileHandle
    private let linesPath: String
    private let melBands: Int, frames: Int
    private var failure: MulanError?

    public init(directory: String, melBands: Int, frames: Int) throws(MulanError) {
        try Durable.createFolder(directory)
        npy = try NPYWriter(path: directory + "/log-mel.npy", dim: melBands * frames)
        linesPath = directory + "/log-mel.jsonl"
        guard let h = Paths.createForWriting(linesPath + ".tmp") else {
            throw MulanError(.io, "cannot create \(linesPath).tmp", hint: "check that the folder is writable")
        }
        lines = h
        self.melBands = melBands
        self.frames = frames
    }

    /// One line of log-mel.jsonl: the item (`path`, or `shard` and `key`, as index.jsonl names it).
    struct Line: Encodable {
        var path: String?
        var shard: String?
        var key: String?
        var offset: Int
        var melBands: Int
        var frames: Int
        enum CodingKeys: String, CodingKey { case path, shard, key, offset, melBands = "mel_bands", frames }
    }

    public func add(_ item: AudioItem, _ offset: Int, _ logMel: ArraySlice<Float>) {
        guard failure == nil else { return }
        var line = Line(offset: offset, melBands: melBands, frames: frames)
        switch item.source {
        case .file(let path): line.path = path
        case .shard(let split, let clip):
            line.shard = split.shardPaths[clip.shard]
            line.key = clip.key
        }
        do {
            try npy.append(Array(logMel))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            try lines.write(contentsOf: try encoder.encode(line) + Data("\n".utf8))
        } catch let e as MulanError {
            failure = e
        } catch {
            failure = MulanError(.io, "cannot write \(linesPath).tmp", hint: "check free space", cause: error)
        }
    }

    public func finish() throws(MulanError) {
        if let failure { throw failure }
        try npy.finish()
        do {
            try lines.synchronize()
            try lines.close()
        } catch {
            throw MulanError(.io, "cannot finish \(linesPath).tmp", hint: "check free space", cause: error)
        }
        for path in [npy.path, linesPath] { try Durable.rename(path + ".tmp", to: path, syncFolder: false) }
        try Durable.syncFolder(Durable.folder(of: linesPath))
    }
}
