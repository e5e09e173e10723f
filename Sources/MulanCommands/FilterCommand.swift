import ArgumentParser
import Foundation
import MulanCore
import MulanFiltering
import MulanText

extension TextSource: ExpressibleByArgument {}
extension FilterPhase: ExpressibleByArgument {}

/// `mulan-filter`: normalize, tokenize and filter the weak text sources.
public struct FilterCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mulan-filter",
        abstract: "Normalize, tokenize (BERT WordPiece) and filter weak text; filter clips by zero-shot audio scores (audio).",
        discussion: "Exit codes: 0 ok; 3 some inputs failed (recorded); 64 usage; 1 fatal.",
        subcommands: [FilterRunCommand.self, AudioFilterCommand.self, TokenizeCommand.self, TrainRelevanceCommand.self],
        defaultSubcommand: FilterRunCommand.self)

    public init() {}
}

public struct TokenizeCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Tokenize lines from standard input: one line of space-separated ids per input line.",
        discussion: """
        Tokenization is BERT uncased WordPiece, id for id as Hugging Face tokenizers' \
        BertWordPieceTokenizer(vocab, lowercase=True). An empty line gives an empty line. \
        Lines longer than --max-line-bytes are tokenized from their first bytes and reported.
        """)

    @Option(help: ArgumentHelp("The WordPiece vocabulary (a BERT vocab.txt).", valueName: "file"))
    public var vocab: String

    @Flag(help: "Add [CLS] and [SEP] around each line's ids.")
    public var special = false

    @Option(help: ArgumentHelp("Longest line read whole, in bytes.", valueName: "n"))
    public var maxLineBytes: Int = 1 << 20

    @Flag(help: "Print no summary on standard error.")
    public var quiet = false

    public init() {}

    public func validate() throws {
        if maxLineBytes < 1 { throw ValidationError("--max-line-bytes must be at least 1") }
    }

    public func run() async throws {
        let console = Console(format: .text, quiet: quiet)
        try await runStage(console: console) {
            let vocabulary = try WordPieceVocabulary(path: vocab)
            var lines = LineTokenizer(tokenizer: BertTokenizer(vocabulary: vocabulary), special: special)
            lines.maxLineBytes = maxLineBytes
            let started = Date()
            let summary = try lines.run(input: 0, output: 1)
            let seconds = Date().timeIntervalSince(started)
            for line in summary.overlongLines.prefix(10) {
                console.log(.warning, "stdin:\(line): line longer than \(maxLineBytes) bytes; only its first bytes were tokenized")
            }
            console.log(.info, String(format: "tokenized %d lines (%d tokens, %.1f MB) in %.2f s: %.0f lines/s",
                                      summary.lines, summary.tokens, Double(summary.bytes) / 1e6, seconds,
                                      seconds > 0 ? Double(summary.lines) / seconds : 0))
            return summary.overlongLines.isEmpty ? .success : .completedWithFailures
        }
    }
}

public struct FilterRunCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Filter one text source of the catalog (the default subcommand: mulan-filter --source S).",
        discussion: """
        Writes, per raw text of the source, kept or dropped with a reason, the normalized text and its \
        token ids (for descriptions, the kept sentences), under a filter version derived from the \
        configuration, the vocabulary and the models. Settings: --config FILE (TOML; \
        manifests/filters.toml lists every key with its default). A work directory split into worker \
        parts (mulan-ingest --workers N) is filtered by N workers in two phases: --phase local on every \
        worker, then --phase global on every worker; the decisions equal one process's \
        (docs/scale-out.md). Exit codes: 0 ok; 64 usage; 1 fatal.
        """)

    @OptionGroup public var global: GlobalOptions

    @OptionGroup(title: "Workers") public var workerOptions: WorkerOptions

    @Option(help: ArgumentHelp("With workers: local (decide this part's texts, publish its summary) or global "
                               + "(corpus-wide rules from every part's summary).", valueName: "phase"))
    public var phase: FilterPhase?

    @Option(help: ArgumentHelp("The source: tags, descriptions, playlists or aset.", valueName: "source"))
    public var source: TextSource

    @Option(help: ArgumentHelp("Filter configuration (TOML). Default: the built-in defaults.", valueName: "file"))
    public var config: String?

    @Option(help: ArgumentHelp("The WordPiece vocabulary (BERT vocab.txt).", valueName: "file"))
    public var vocab: String

    @Option(help: ArgumentHelp("AudioSet ontology.json for --source aset (overrides aset.ontology).", valueName: "file"))
    public var labels: String?

    @Flag(name: .customLong("no-filter"), help: "Keep every text, normalized and tokenized (to compare with filtering).")
    public var noFilter = false

    @Flag(help: "Compute and report what would change, but write nothing.")
    public var dryRun = false

    @Option(help: ArgumentHelp("Write the statistics as JSON to this file.", valueName: "file"))
    public var report: String?

    public init() {}

    public func run() async throws {
        let console = global.console
        try await runStage(console: console) {
            var settings = FilterConfig()
            if let config {
                settings = try FilterConfig.load(path: config)
            } else {
                settings.descriptions.relevanceModel = ""
                if let bundled = Self.bundledModel() { settings.descriptions.relevanceModel = bundled }
            }
            let job = FilterJob(workdir: global.workdir, source: source, config: settings, vocabularyPath: vocab,
                                labelsPath: labels, unfiltered: noFilter, dryRun: dryRun, console: console,
                                slice: try workerOptions.slice(), phase: phase)
            switch try job.execute() {
            case .finished(let summary):
                if let report { try summary.write(to: report) }
                print(summary.text())
            case .localPhase(let texts, let summary, let version, let slice):
                print("filter \(source.rawValue) version \(version), phase local (\(slice)): \(texts) texts decided; "
                      + "summary \(summary)")
                print("  next: --phase global on every worker (it writes the statistics and --report)")
            }
            return .success
        }
    }

    /// The relevance model shipped in manifests/, next to the executable's package, if present.
    static func bundledModel() -> String? {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        for _ in 0..<5 {
            let candidate = dir.appendingPathComponent("manifests/relevance-model.json").path
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }
}

public struct TrainRelevanceCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "train-relevance",
        abstract: "Train the description relevance classifier from labeled sentences.",
        discussion: """
        --labels is JSONL: {"text": "...", "label": 1} (1: describes the music, 0: does not). A \
        deterministic share (--holdout) is held out by a hash of the text and reported as precision, \
        recall and F1; the model is trained on the rest and written as JSON.
        """)

    @Option(help: ArgumentHelp("Labeled sentences (JSONL with text and label).", valueName: "file"))
    public var labels: String

    @Option(help: ArgumentHelp("The WordPiece vocabulary (BERT vocab.txt).", valueName: "file"))
    public var vocab: String

    @Option(help: ArgumentHelp("Where to write the model.", valueName: "file"))
    public var out: String

    @Option(help: ArgumentHelp("Share of examples held out for evaluation.", valueName: "share"))
    public var holdout: Double = 0.2

    @Option(help: ArgumentHelp("Training epochs.", valueName: "n"))
    public var epochs: Int = 20

    @Option(help: ArgumentHelp("Random seed of the example order.", valueName: "n"))
    public var seed: UInt64 = 1

    public init() {}

    public func validate() throws {
        if !(holdout >= 0 && holdout < 1) { throw ValidationError("--holdout must be in [0, 1)") }
        if epochs < 1 { throw ValidationError("--epochs must be at least 1") }
    }

    public func run() async throws {
        let console = Console()
        try await runStage(console: console) {
            let vocabulary = try WordPieceVocabulary(path: vocab)
            let tokenizer = BertTokenizer(vocabulary: vocabulary)
            let reader = try ByteReader(path: labels)
            var train: [RelevanceModel.Example] = []
            var test: [RelevanceModel.Example] = []
            var line = 0
            let buckets = 1 << 18
            while let (bytes, _) = try reader.nextLine() {
                line += 1
                if bytes.isEmpty { continue }
                guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
                      let text = object["text"] as? String, let label = object["label"] as? Int, label == 0 || label == 1 else {
                    throw MulanError(.usage, "expected {\"text\": \"...\", \"label\": 0 or 1}",
                                     location: SourceLocation(file: labels, line: line))
                }
                let sentence = TextNormalizer.normalize(text)
                let example = RelevanceModel.Example(
                    features: RelevanceModel.features(tokenizer.encode(sentence), buckets: buckets), label: label == 1)
                let h = SHA256Digest.hex(of: Array(sentence.utf8)).prefix(8)
                if Double(UInt64(h, radix: 16) ?? 0) / Double(UInt32.max) < holdout { test.append(example) } else { train.append(example) }
            }
            guard !train.isEmpty else { throw MulanError(.usage, "\(labels) holds no training examples") }
            var model = RelevanceModel.train(train, buckets: buckets, epochs: epochs, seed: seed)
            model.vocabularySHA256 = vocabulary.sha256
            let metrics = model.evaluate(test)
            model.metrics = metrics.reduce(into: [:]) { $0["heldout_" + $1.key] = $1.value }
            model.metrics["train_examples"] = Double(train.count)
            model.trainedOn = ["labels_file": (labels as NSString).lastPathComponent,
                               "labels_sha256": try SHA256Digest.hex(ofFile: labels).digest]
            try AtomicFile.write(Data(model.json().utf8), to: out)
            print(String(format: "trained on %d examples; held out %d: precision %.3f, recall %.3f, F1 %.3f",
                         train.count, test.count, metrics["precision"] ?? 0, metrics["recall"] ?? 0, metrics["f1"] ?? 0))
            return .success
        }
    }
}
