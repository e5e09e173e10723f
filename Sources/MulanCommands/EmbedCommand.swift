import ArgumentParser
import Foundation
import MulanCore
import MulanTensor
import MulanTraining

/// The model options `mulan-embed`, `mulan-search` and `mulan-eval` share.
public struct ModelOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A mulan-train checkpoint (checkpoint-NNNNNN.safetensors).", valueName: "file"))
    public var checkpoint: String?

    @Option(help: ArgumentHelp("A mulan-train run directory: its newest checkpoint is used.", valueName: "dir"))
    public var runDir: String?

    @Option(help: ArgumentHelp("The WordPiece vocab.txt the training texts were tokenized with (needed to embed text).",
                               valueName: "file"))
    public var vocab: String?

    @Option(help: "Threads for decoding, log-mel and the kernels (default: --jobs).")
    public var threads: Int?

    public init() {}

    public func validate() throws {
        if checkpoint != nil && runDir != nil { throw ValidationError("pass --checkpoint or --run-dir, not both") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
    }

    /// Opens the model: the given checkpoint or run directory, else `fallback` (an index's checkpoint).
    func open(fallbackCheckpoint: String? = nil, fallbackVocabulary: String? = nil, jobs: Int,
              console: Console) throws(MulanError) -> Embedder {
        try startBLAS(threads: threads ?? jobs, console: console)
        let path: String
        if checkpoint == nil && runDir == nil, let fallbackCheckpoint {
            path = fallbackCheckpoint
        } else {
            path = try Embedder.resolveCheckpoint(checkpoint, runDirectory: runDir)
        }
        return try Embedder(checkpoint: path, vocabulary: vocab ?? fallbackVocabulary)
    }
}

/// `mulan-embed`: audio and text embeddings of a trained model, as a NumPy matrix and an index.
public struct EmbedCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mulan-embed",
        abstract: "Embed audio files, shard clips and texts with a trained mulan-train model.",
        discussion: "Exit codes: 0 ok; 3 done, but some inputs failed (listed in embedding-info.json); 64 usage; 1 fatal.",
        subcommands: [EmbedRunCommand.self, TextEmbedBenchCommand.self],
        defaultSubcommand: EmbedRunCommand.self)

    public init() {}
}

/// What `mulan-embed` prints on stdout.
struct EmbedSummary: StageReport {
    var out: String
    var checkpoint: String
    var step: Int
    var dim: Int
    var rows: Int
    var audioRows: Int
    var textRows: Int
    var failed: Int
    var failuresByReason: [String: Int]
    var seconds: Double
    var audioSecondsEmbedded: Double

    enum CodingKeys: String, CodingKey {
        case out, checkpoint, step, dim, rows, audioRows = "audio_rows", textRows = "text_rows", failed
        case failuresByReason = "failures_by_reason", seconds, audioSecondsEmbedded = "audio_seconds_embedded"
    }
}

public struct EmbedRunCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Embed (the default subcommand).",
        discussion: """
        Audio (--audio files or folders, searched recursively for audio extensions; --shards with --split): \
        a clip of up to 30 s is the mean of three windows of the model's window length (start, middle, end), \
        a longer track the mean of all its non-overlapping windows. Text (--text, --text-file): BERT WordPiece \
        with --vocab. Writes to --out: embeddings.npy (float32 [rows, dim]), index.jsonl (one object per row) \
        and embedding-info.json (model, counts, failures), under temporary names renamed at the end. \
        Files that cannot be decoded are listed with their reason and the run goes on (exit 3).
        """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var model: ModelOptions

    @Option(parsing: .upToNextOption, help: ArgumentHelp("Audio files and/or folders (recursive).", valueName: "path"))
    public var audio: [String] = []

    @Option(help: ArgumentHelp("A mulan-shard dataset folder: embed the clips of --split.", valueName: "dir"))
    public var shards: String?

    @Option(help: ArgumentHelp("The split of --shards to embed.", valueName: "name"))
    public var split = "test"

    @Option(help: ArgumentHelp("A text to embed (repeatable).", valueName: "text"))
    public var text: [String] = []

    @Option(help: ArgumentHelp("A file of texts to embed, one per line (blank lines are skipped).", valueName: "file"))
    public var textFile: String?

    @Option(help: ArgumentHelp("Output folder.", valueName: "dir"))
    public var out: String

    @Option(help: "Audio items decoded and embedded per batch.")
    public var batch = 16

    @Option(help: ArgumentHelp("Also write every audio window's log-mel (the audio tower's input) to this folder: "
                               + "log-mel.npy (float32 [windows, melBands·frames]) and log-mel.jsonl (item, offset, shape), "
                               + "for checking another implementation of the model on the same inputs.",
                               valueName: "dir", visibility: .hidden))
    public var dumpLogMel: String?

    public init() {}

    public func validate() throws {
        if audio.isEmpty && shards == nil && text.isEmpty && textFile == nil {
            throw ValidationError("nothing to embed: pass --audio, --shards, --text or --text-file")
        }
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
        if out.isEmpty { throw ValidationError("--out must not be empty") }
    }

    public func run() async throws {
        let console = global.console
        try await runStage(console: console) {
            let begin = Date()
            // Read every input list first, so that a usage error costs nothing.
            let texts = try readTexts()
            let embedder = try model.open(jobs: global.jobs, console: console)
            if !texts.isEmpty && embedder.vocabularyPath == nil {
                throw MulanError(.usage, "embedding text needs the WordPiece vocabulary", hint: "pass --vocab vocab.txt")
            }
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
            let writer = try EmbeddingIndexWriter(directory: out, dim: embedder.dim)
            var dump: LogMelDump?
            var windowInputs: Embedder.WindowInputs?
            if let dumpLogMel {
                let d = try LogMelDump(directory: dumpLogMel, melBands: embedder.config.logMel.melBands,
                                       frames: embedder.logMelFrames)
                dump = d
                windowInputs = { d.add($0, $1, $2) }
            }
            var audioRows = 0, audioSeconds = 0.0
            let progress = ProgressMeter(total: items.count + texts.count, unit: "items", console: console) { _, _ in
                "\(failures.count) failed"
            }
            for lo in stride(from: 0, to: items.count, by: batch) {
                let group = Array(items[lo..<min(items.count, lo + batch)])
                var embedded: [(row: IndexRow, embedding: [Float])] = []
                for outcome in embedder.embed(audio: group, inputs: windowInputs) {
                    switch outcome {
                    case .embedded(let row, let e):
                        embedded.append((row, e))
                        audioSeconds += row.seconds ?? 0
                    case .failed(let f):
                        failures.append(f)
                        console.log(.warning, "\(f.path): \(f.reason): \(f.detail)", event: "failed",
                                    fields: ["path": f.path, "reason": f.reason])
                    }
                }
                try writer.append(embedded)
                audioRows += embedded.count
                progress.advance(by: group.count)
            }
            for lo in stride(from: 0, to: texts.count, by: 64) {
                let part = Array(texts[lo..<min(texts.count, lo + 64)])
                let e = try embedder.embed(texts: part)
                let d = embedder.dim
                try writer.append(part.enumerated().map { k, t in
                    (IndexRow(row: -1, kind: .text, text: t), Array(e[(k * d)..<((k + 1) * d)]))
                })
                progress.advance(by: part.count)
            }
            progress.finish()
            try dump?.finish()
            let info = EmbeddingInfo(
                checkpoint: embedder.checkpointPath, checkpointSHA256: embedder.checkpointSHA256, step: embedder.step,
                dim: embedder.dim, sampleRate: embedder.config.logMel.sampleRate, windowSeconds: embedder.config.windowSeconds,
                vocabulary: embedder.vocabularyPath, rows: writer.rows.count, audioRows: audioRows, textRows: texts.count,
                failures: failures)
            try writer.commit(info: info)
            var byReason: [String: Int] = [:]
            for f in failures { byReason[f.reason, default: 0] += 1 }
            let summary = EmbedSummary(out: Paths.absolute(out), checkpoint: embedder.checkpointPath, step: embedder.step,
                                       dim: embedder.dim, rows: writer.rows.count, audioRows: audioRows, textRows: texts.count,
                                       failed: failures.count, failuresByReason: byReason,
                                       seconds: Date().timeIntervalSince(begin), audioSecondsEmbedded: audioSeconds)
            print(summary.json())
            return failures.isEmpty ? .success : .completedWithFailures
        }
    }

    /// `--text` values, then the lines of `--text-file`.
    private func readTexts() throws(MulanError) -> [String] {
        var texts = text
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

/// `mulan-embed --dump-log-mel DIR`: each audio window's tower input, in the order the windows
/// are embedded: `log-mel.npy` (float32 [windows, melBands·frames], each row a [melBands × frames]
/// log-mel, row-major) and `log-mel.jsonl` (per row: the item, as index.jsonl names it, the
/// window's start offset in samples, melBands and frames). Both are written under temporary names
/// and renamed by `finish`.
final class LogMelDump {
    private let npy: NPYWriter
    private let lines: FileHandle
    private let linesPath: String
    private let melBands: Int, frames: Int
    private var failure: MulanError?

    init(directory: String, melBands: Int, frames: Int) throws(MulanError) {
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

    func add(_ item: AudioItem, _ offset: Int, _ logMel: ArraySlice<Float>) {
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

    func finish() throws(MulanError) {
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

/// `mulan-embed text-bench`: times the pretrained text encoder alone on ready-made token ids, the way
/// `mulan-embed` batches texts (for bench/text-embed-vs-transformers.sh).
public struct TextEmbedBenchCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "text-bench", abstract: "Time a Hugging Face BERT folder's mean-pooled embeddings (benchmarks).",
        shouldDisplay: false)

    @Option(help: ArgumentHelp("Hugging Face BERT folder (config.json, model.safetensors, vocab.txt).", valueName: "dir"))
    public var model: String

    @Option(help: ArgumentHelp("JSON {\"sequences\": [[101, …, 102], …]}: token ids with [CLS] and [SEP].", valueName: "file"))
    public var ids: String

    @Option(help: "Threads.") public var threads = 1
    @Option(help: "Texts per batch.") public var batch = 32
    @Option(help: "Timed passes over all texts (after one warm-up batch).") public var repeats = 3
    @Option(help: ArgumentHelp("Write the last pass's pooled embeddings (float32, given order) here.", valueName: "file"))
    public var pooledOut: String?

    public init() {}

    struct Input: Decodable { var sequences: [[Int32]] }

    public func run() async throws {
        BLAS.threads = threads
        let sequences = try JSONDecoder().decode(Input.self, from: Data(contentsOf: URL(fileURLWithPath: ids))).sequences
        let maxLength = max(2, sequences.map(\.count).max() ?? 2)
        var random = RandomSource(seed: 1)
        let tower = try PretrainedText.load(directory: model, maxLength: maxLength, pooling: .mean, random: &random).tower
        let width = tower.config.width
        let batches = TextTower.lengthSortedBatches(lengths: sequences.map(\.count), batchSize: batch)
        func embed(_ rows: [Int]) -> Tensor {
            tower.pooled(TokenBatch(sequences: rows.map { sequences[$0] }, maxLength: maxLength, addSpecialTokens: false))
        }
        if let first = batches.first { _ = embed(first) }
        var seconds: [Double] = []
        var pooled = [Float](repeating: 0, count: sequences.count * width)
        for _ in 0..<max(1, repeats) {
            let started = DispatchTime.now().uptimeNanoseconds
            for rows in batches {
                let p = embed(rows)
                for (k, row) in rows.enumerated() {
                    for j in 0..<width { pooled[row * width + j] = p.storage[k * width + j] }
                }
            }
            seconds.append(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
        }
        if let pooledOut {
            try pooled.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: pooledOut)) }
        }
        let tokens = sequences.reduce(0) { $0 + $1.count }
        let padded = batches.reduce(0) { sum, rows in sum + rows.count * rows.map { sequences[$0].count }.max()! }
        struct Result: Encodable {
            var implementation = "mulan", threads: Int, rows: Int, tokens: Int, padded_tokens: Int
            var seconds: [Double], texts_per_second: Double
        }
        let result = Result(threads: threads, rows: sequences.count, tokens: tokens, padded_tokens: padded,
                            seconds: seconds, texts_per_second: Double(sequences.count) / seconds.min()!)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(result), as: UTF8.self))
    }
}
