import ArgumentParser
import Foundation
import MulanCore
import MulanRecords
import MulanTraining

extension Benchmark: ExpressibleByArgument {}

/// `mulan-eval`: zero-shot tagging and caption retrieval of a trained model.
public struct EvalCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mulan-eval",
        abstract: "Zero-shot tagging (per-tag and macro ROC-AUC, mAP) and caption retrieval (Recall@K) of a trained model; a linear probe on its audio embeddings (probe); text triplets (triplets).",
        discussion: "Exit codes: 0 ok; 3 done, but some audio could not be decoded or a benchmark's audio is missing (left out, listed); 64 usage; 1 fatal.",
        subcommands: [EvalRunCommand.self, EvalProbeCommand.self, EvalTripletsCommand.self],
        defaultSubcommand: EvalRunCommand.self)

    public init() {}
}

public struct EvalRunCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Evaluate (the default subcommand).",
        discussion: """
        Benchmarks: --benchmark NAME with --data (the benchmark's own file) and --audio-root picks the \
        paper's tags, split and files (mtat-top50, jamendo-top50, jamendo-genre, jamendo-instrument, \
        jamendo-moodtheme, audioset-gen25, audioset-mu141 with --labels, musiccaps, song-describer: see \
        docs/using-a-model.md); items whose audio is missing are counted, listed and give exit 3. \
        Otherwise the ground truth is a MagnaTagATune-style CSV (--csv: tab-separated, clip_id, one 0/1 column per tag, \
        mp3_path resolved under --audio-root), or the tags of a shard split (--shards, --split). Each tag \
        name is embedded as text and scored against every clip's audio embedding (a clip of up to 30 s: the \
        mean of its start, middle and end windows). Per-tag ROC-AUC and average precision; macro ROC-AUC \
        and mAP over the tags with both positive and negative clips. --captions F.jsonl ({"path" or "key", \
        "caption"} per line) adds text→audio and audio→text Recall@1/5/10 and median rank. --exclusive A,B,… \
        (repeatable) names tags of which each clip has one (major,minor): each is also scored among its \
        group, the clip's similarities to the group's tags through a softmax at the model's temperature, \
        and reported beside the plain figures (exclusive ROC-AUC). --index reuses \
        the audio embeddings of a mulan-embed index of the same model (matched by path or shard key); \
        anything missing from it is embedded now.
        """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var model: ModelOptions

    @Option(help: ArgumentHelp("MagnaTagATune-style annotations CSV (clip_id, tag columns, mp3_path).", valueName: "file"))
    public var csv: String?

    @Option(help: ArgumentHelp("Folder the CSV's mp3_path (and relative caption paths) are under (default: the CSV's folder).",
                               valueName: "dir"))
    public var audioRoot: String?

    @Option(help: ArgumentHelp("A mulan-shard dataset folder: evaluate against the tags of --split.", valueName: "dir"))
    public var shards: String?

    @Option(help: ArgumentHelp("The split of --shards.", valueName: "name"))
    public var split = "test"

    @Option(help: ArgumentHelp("Evaluate only these tags (one per line).", valueName: "file"))
    public var tags: String?

    @Option(help: ArgumentHelp("Caption set for retrieval: JSONL of {\"path\" or \"key\", \"caption\"}.", valueName: "file"))
    public var captions: String?

    @Option(help: ArgumentHelp("A benchmark preset: \(Benchmark.allCases.map(\.rawValue).joined(separator: ", ")).",
                               valueName: "name"))
    public var benchmark: Benchmark?

    @Option(help: ArgumentHelp("The benchmark's file (repeatable): annotations_final.csv, autotagging_*-test.tsv, eval_segments.csv, musiccaps-public.csv, song_describer.csv.",
                               valueName: "file"))
    public var data: [String] = []

    @Option(help: ArgumentHelp("AudioSet ontology.json (and, for audioset-mu141, class_labels_indices.csv); repeatable.",
                               valueName: "file"))
    public var labels: [String] = []

    @Option(help: ArgumentHelp("The text embedded for each tag, {tag} standing for the tag's words (e.g. \"music with {tag}\").",
                               valueName: "text"))
    public var prompt = "{tag}"

    @Option(help: ArgumentHelp("Mutually exclusive tags, comma-separated (repeatable, e.g. --exclusive major,minor): each "
                               + "tag of a group is also scored among the group's tags (softmax at the model's temperature).",
                               valueName: "tags"))
    public var exclusive: [String] = []

    @Option(help: ArgumentHelp("Reuse the audio embeddings of this mulan-embed index.", valueName: "dir"))
    public var index: String?

    @Option(help: ArgumentHelp("Write the full report (per tag) as JSON here.", valueName: "file"))
    public var json: String?

    @Option(help: "Audio items decoded and embedded per batch.")
    public var batch = 16

    public init() {}

    public func validate() throws {
        if let benchmark {
            if csv != nil || shards != nil || captions != nil {
                throw ValidationError("--benchmark chooses its own ground truth: pass it without --csv, --shards and --captions")
            }
            if data.isEmpty { throw ValidationError("--benchmark \(benchmark.rawValue) needs --data \(benchmark.files)") }
            if audioRoot == nil { throw ValidationError("--benchmark needs --audio-root, the folder the corpus's audio is in") }
        } else {
            if !data.isEmpty || !labels.isEmpty { throw ValidationError("--data and --labels go with --benchmark") }
            if csv != nil && shards != nil { throw ValidationError("pass --csv or --shards, not both") }
            if csv == nil && shards == nil && captions == nil {
                throw ValidationError("nothing to evaluate: pass --benchmark, --csv (with --audio-root), --shards, and/or --captions")
            }
        }
        if !prompt.contains("{tag}") { throw ValidationError("--prompt must contain {tag} (e.g. \"music with {tag}\")") }
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
    }

    /// The `--exclusive` groups, each a list of tag names.
    var exclusiveGroups: [[String]] {
        exclusive.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
    }

    /// The job this command line asks for.
    func job(console: Console) -> EvaluationJob {
        var groundTruth: EvaluationJob.GroundTruth?
        if let benchmark, let audioRoot {
            groundTruth = .benchmark(benchmark, data: data, labels: labels, audioRoot: audioRoot)
        } else if let shards {
            groundTruth = .shards(dataset: shards, split: split)
        } else if let csv {
            groundTruth = .csv(path: csv, audioRoot: audioRoot)
        }
        var job = EvaluationJob(groundTruth: groundTruth, tags: tags, captions: captions, audioRoot: audioRoot, prompt: prompt,
                                index: index, batch: batch, console: console)
        job.exclusive = exclusiveGroups
        return job
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
