import ArgumentParser
import Foundation
import MulanCore
import MulanRecords
import MulanTraining

/// `mulan-eval probe`: a linear probe on the model's frozen audio embeddings.
public struct EvalProbeCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Linear probe: per-tag logistic regression on the frozen audio embeddings (train split), "
            + "L2 strength chosen on the valid split, ROC-AUC and PR-AUC on the test split.",
        discussion: """
        The tags and splits come from --benchmark mtat-top50 (--data annotations_final.csv, --audio-root: \
        the 50 most frequent tags, folders 0–b train, c valid, d–f test), a MagnaTagATune-style CSV (--csv: \
        clip_id, 0/1 tag columns, mp3_path, and a split column of train/valid/test, or MTAT's folders), or \
        the tag texts of a mulan-shard dataset's splits (--shards, --train-split, --valid-split, --test-split). \
        Audio is embedded as mulan-eval does (up to 30 s: the mean of its start, middle and end windows); \
        --index reuses a mulan-embed index of the same model. Each tag's classifier minimises the mean \
        log-loss + λ/2·|w|² (Newton's method, deterministic); λ is chosen from --lambdas by the mean \
        validation ROC-AUC, then the classifiers are refitted on train + valid and scored on test.
        """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var model: ModelOptions

    @Option(help: ArgumentHelp("MagnaTagATune-style annotations CSV (clip_id, tag columns, mp3_path, optional split).",
                               valueName: "file"))
    public var csv: String?

    @Option(help: ArgumentHelp("Folder the CSV's mp3_path are under (default: the CSV's folder).", valueName: "dir"))
    public var audioRoot: String?

    @Option(help: ArgumentHelp("A mulan-shard dataset folder: the tags of its splits.", valueName: "dir"))
    public var shards: String?

    @Option(help: ArgumentHelp("The training split of --shards.", valueName: "name"))
    public var trainSplit = "train"

    @Option(help: ArgumentHelp("The validation split of --shards.", valueName: "name"))
    public var validSplit = "valid"

    @Option(help: ArgumentHelp("The test split of --shards.", valueName: "name"))
    public var testSplit = "test"

    @Option(help: ArgumentHelp("A benchmark preset with official splits: mtat-top50.", valueName: "name"))
    public var benchmark: Benchmark?

    @Option(help: ArgumentHelp("The benchmark's file: annotations_final.csv.", valueName: "file"))
    public var data: [String] = []

    @Option(help: ArgumentHelp("Probe only these tags (one per line).", valueName: "file"))
    public var tags: String?

    @Option(help: ArgumentHelp("The L2 strengths tried, comma-separated.", valueName: "list"))
    public var lambdas = LinearProbe.defaultGrid.map { String($0) }.joined(separator: ",")

    @Option(help: ArgumentHelp("Reuse the audio embeddings of this mulan-embed index.", valueName: "dir"))
    public var index: String?

    @Option(help: ArgumentHelp("Write the full report (per tag) as JSON here.", valueName: "file"))
    public var json: String?

    @Option(help: "Audio items decoded and embedded per batch.")
    public var batch = 16

    public init() {}

    var grid: [Double]? {
        let values = lambdas.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 && $0!.isFinite }) else { return nil }
        return values.map { $0! }
    }

    public func validate() throws {
        let sources = [benchmark != nil, csv != nil, shards != nil].filter { $0 }.count
        if sources != 1 { throw ValidationError("pass one ground truth: --benchmark mtat-top50, --csv or --shards") }
        if let benchmark {
            if data.isEmpty { throw ValidationError("--benchmark \(benchmark.rawValue) needs --data \(benchmark.files)") }
            if audioRoot == nil { throw ValidationError("--benchmark needs --audio-root, the folder the corpus's audio is in") }
        } else if !data.isEmpty {
            throw ValidationError("--data goes with --benchmark")
        }
        if grid == nil { throw ValidationError("--lambdas must be positive numbers, comma-separated (e.g. 1e-4,1e-3,1e-2)") }
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
    }

    /// The job this command line asks for.
    func job(console: Console) throws(MulanError) -> LinearProbeJob {
        let groundTruth: LinearProbeJob.GroundTruth
        if let benchmark, let audioRoot {
            groundTruth = .benchmark(benchmark, data: data, audioRoot: audioRoot)
        } else if let shards {
            groundTruth = .shards(dataset: shards, train: trainSplit, valid: validSplit, test: testSplit)
        } else if let csv {
            groundTruth = .csv(path: csv, audioRoot: audioRoot)
        } else {
            throw MulanError(.usage, "no ground truth", hint: "pass --benchmark mtat-top50, --csv or --shards")
        }
        return LinearProbeJob(groundTruth: groundTruth, tags: tags, grid: grid ?? LinearProbe.defaultGrid, index: index,
                              batch: batch, console: console)
    }

    public func run() async throws {
        let console = global.console
        try await runStage(console: console) {
            let report = try job(console: console).run { (checkpoint, vocabulary) throws(MulanError) in
                try model.open(fallbackCheckpoint: checkpoint, fallbackVocabulary: vocabulary, jobs: global.jobs, console: console)
            }
            if let json { try report.write(to: json) }
            print(report.text())
            return report.complete ? .success : .completedWithFailures
        }
    }
}

/// `mulan-eval triplets`: text triplet classification with the trained text tower (and its warm start).
public struct EvalTripletsCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "triplets",
        abstract: "Text triplets: how often the text tower puts an anchor nearer its positive than its negative.",
        discussion: """
        --triplets FILE.jsonl holds one {"anchor", "positive", "negative"} object per line (and optionally \
        "attribute", the property the triplet asks about, for a breakdown). A triplet is right when \
        cos(anchor, positive) > cos(anchor, negative) (a tie is wrong). When the checkpoint's text tower was \
        warm-started (mulan-train --text-init DIR, recorded in the checkpoint's configuration), the same \
        triplets are scored with that pretrained model too (its pooled output, the generic sentence \
        embedding, before any projection): the MuLan paper's comparison. --text-init overrides the folder \
        (a run trained elsewhere); --no-warm-start skips it.
        """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var model: ModelOptions

    @Option(help: ArgumentHelp("The triplets: JSONL of {\"anchor\", \"positive\", \"negative\"}.", valueName: "file"))
    public var triplets: String

    @Option(help: ArgumentHelp("The warm-start text model folder (default: the run's --text-init).", valueName: "dir"))
    public var textInit: String?

    @Flag(help: "Score the trained text tower only.")
    public var noWarmStart = false

    @Option(help: ArgumentHelp("Write the report as JSON here.", valueName: "file"))
    public var json: String?

    public init() {}

    public func run() async throws {
        let console = global.console
        try await runStage(console: console) {
            let job = TextTripletsJob(triplets: triplets, textInit: textInit, warmStart: !noWarmStart, console: console)
            let report = try job.run { () throws(MulanError) in try model.open(jobs: global.jobs, console: console) }
            if let json { try report.write(to: json) }
            print(report.text())
            return .success
        }
    }
}
