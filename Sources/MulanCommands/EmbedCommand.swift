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
            let job = EmbeddingJob(audio: audio, shards: shards, split: split, texts: text, textFile: textFile, out: out,
                                   batch: batch, dumpLogMel: dumpLogMel, console: console)
            let summary = try job.run { () throws(MulanError) in try model.open(jobs: global.jobs, console: console) }
            print(summary.json())
            return summary.failed == 0 ? .success : .completedWithFailures
        }
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
