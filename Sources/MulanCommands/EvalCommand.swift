import ArgumentParser
import Foundation
import MulanCore
import MulanTraining

/// `mulan-eval`: zero-shot tagging and caption retrieval of a trained model.
public struct EvalCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mulan-eval",
        abstract: "Zero-shot tagging (per-tag and macro ROC-AUC, mAP) and caption retrieval (Recall@K) of a trained model.",
        discussion: "Exit codes: 0 ok; 3 done, but some audio could not be decoded (left out, listed); 64 usage; 1 fatal.",
        subcommands: [EvalRunCommand.self],
        defaultSubcommand: EvalRunCommand.self)

    public init() {}
}

/// The JSON report of `mulan-eval`.
struct EvalReport: StageReport {
    var checkpoint: String
    var step: Int
    var groundTruth: String?
    var index: String?
    var itemsEmbedded: Int
    var itemsReused: Int
    var failures: [EmbeddingFailure]
    var tagging: TaggingReport?
    var retrieval: CaptionRetrievalReport?

    enum CodingKeys: String, CodingKey {
        case checkpoint, step, groundTruth = "ground_truth", index, itemsEmbedded = "items_embedded"
        case itemsReused = "items_reused", failures, tagging, retrieval
    }
}

public struct EvalRunCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Evaluate (the default subcommand).",
        discussion: """
        Ground truth: a MagnaTagATune-style CSV (--csv: tab-separated, clip_id, one 0/1 column per tag, \
        mp3_path resolved under --audio-root), or the tags of a shard split (--shards, --split). Each tag \
        name is embedded as text and scored against every clip's audio embedding (a clip of up to 30 s: the \
        mean of its start, middle and end windows). Per-tag ROC-AUC and average precision; macro ROC-AUC \
        and mAP over the tags with both positive and negative clips. --captions F.jsonl ({"path" or "key", \
        "caption"} per line) adds text→audio and audio→text Recall@1/5/10 and median rank. --index reuses \
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

    @Option(help: ArgumentHelp("Reuse the audio embeddings of this mulan-embed index.", valueName: "dir"))
    public var index: String?

    @Option(help: ArgumentHelp("Write the full report (per tag) as JSON here.", valueName: "file"))
    public var json: String?

    @Option(help: "Audio items decoded and embedded per batch.")
    public var batch = 16

    public init() {}

    public func validate() throws {
        if csv != nil && shards != nil { throw ValidationError("pass --csv or --shards, not both") }
        if csv == nil && shards == nil && captions == nil {
            throw ValidationError("nothing to evaluate: pass --csv (with --audio-root), --shards, and/or --captions")
        }
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
    }

    public func run() async throws {
        let console = global.console
        try await runStage(console: console) {
            // Ground truth and captions first: a bad file costs nothing.
            var truth: TagGroundTruth?
            if let shards {
                truth = try TagGroundTruth.shards(try DatasetSplit(dataset: shards, split: split))
            } else if let csv {
                truth = try TagGroundTruth.magnaTagATune(
                    csv: csv, audioRoot: audioRoot ?? (Paths.absolute(csv) as NSString).deletingLastPathComponent)
            }
            if let tags, let t = truth {
                truth = try t.restricted(to: try Self.lines(of: tags), listedIn: tags)
            }
            let captionSet = try captions.map { path throws(MulanError) in try CaptionSet(path: path, audioRoot: audioRoot) }

            let reused = try index.map { dir throws(MulanError) in try EmbeddingIndex(directory: dir) }
            let embedder = try model.open(fallbackCheckpoint: reused?.info.checkpoint,
                                          fallbackVocabulary: reused?.info.vocabulary, jobs: global.jobs,
                                          console: console)
            if let reused { try SearchRunCommand.checkSameModel(embedder, reused) }
            if embedder.vocabularyPath == nil {
                throw MulanError(.usage, "tag names and captions are embedded as text, which needs the vocabulary",
                                 hint: "pass --vocab vocab.txt (the one mulan-filter used)")
            }

            // Every audio item needed, by id (absolute path or shard key).
            var wanted: [(id: String, item: AudioItem)] = []
            var seen = Set<String>()
            for item in truth?.items ?? [] where !seen.contains(item.id) {
                if let audio = item.audio { wanted.append((item.id, audio)); seen.insert(item.id) }
            }
            var shardClips: [String: AudioItem] = [:]
            if shards != nil {
                for item in truth?.items ?? [] { if let audio = item.audio { shardClips[item.id] = audio } }
            }
            for pair in captionSet?.pairs ?? [] {
                if let p = pair.path, !seen.contains(p) {
                    wanted.append((p, .file(p)))
                    seen.insert(p)
                } else if pair.path == nil, let key = pair.key, !seen.contains(key) {
                    if let item = shardClips[key] {
                        wanted.append((key, item))
                        seen.insert(key)
                    } else if !(reused?.rows.contains { $0.key == key } ?? false) {
                        throw MulanError(.usage, "caption audio key \(key) is neither in --shards nor in --index",
                                         location: SourceLocation(file: captionSet?.file, line: pair.line),
                                         hint: "pass the --shards split (or the --index) that holds it, or name the audio by \"path\"")
                    }
                }
            }

            var audioByID: [String: [Float]] = [:]
            var itemsReused = 0
            if let reused {
                for row in reused.rows where row.kind == .audio {
                    if let id = row.path ?? row.key { audioByID[id] = reused.embedding(row.row) }
                }
            }
            let toEmbed = wanted.filter { audioByID[$0.id] == nil }
            itemsReused = wanted.count - toEmbed.count
            if reused != nil && !toEmbed.isEmpty {
                console.log(.info, "\(toEmbed.count) of \(wanted.count) audio items are not in the index; embedding them now",
                            event: "embed-missing")
            }
            var failures: [EmbeddingFailure] = []
            let progress = ProgressMeter(total: toEmbed.count, unit: "clips", console: console)
            for lo in stride(from: 0, to: toEmbed.count, by: batch) {
                let group = Array(toEmbed[lo..<min(toEmbed.count, lo + batch)])
                for (k, outcome) in embedder.embed(audio: group.map(\.item)).enumerated() {
                    switch outcome {
                    case .embedded(_, let e): audioByID[group[k].id] = e
                    case .failed(let f):
                        failures.append(f)
                        console.log(.warning, "\(f.path): \(f.reason): \(f.detail) (left out)", event: "failed",
                                    fields: ["path": f.path, "reason": f.reason])
                    }
                }
                progress.advance(by: group.count)
            }
            progress.finish()
            let d = embedder.dim

            var tagging: TaggingReport?
            if let truth {
                let usable = truth.items.filter { audioByID[$0.id] != nil }
                guard !usable.isEmpty else {
                    throw MulanError(.media, "no audio of the ground truth could be embedded (\(failures.count) failed)",
                                     hint: "check --audio-root and the files; the warnings above give each reason")
                }
                var audio: [Float] = []
                audio.reserveCapacity(usable.count * d)
                for item in usable { audio += audioByID[item.id] ?? [] }
                let tagEmbeddings = try embedder.embed(texts: truth.tags)
                tagging = ZeroShotEvaluation.tagging(tags: truth.tags, tagEmbeddings: tagEmbeddings, audio: audio, dim: d,
                                                     labels: usable.map(\.tags))
            }
            var retrieval: CaptionRetrievalReport?
            if let captionSet {
                let pairs = captionSet.pairs.compactMap { p -> (caption: String, audio: [Float])? in
                    guard let id = p.path ?? p.key, let a = audioByID[id] else { return nil }
                    return (p.caption, a)
                }
                if pairs.isEmpty {
                    throw MulanError(.media, "no caption's audio could be embedded", location: SourceLocation(file: captionSet.file))
                }
                let text = try embedder.embed(texts: pairs.map(\.caption))
                retrieval = ZeroShotEvaluation.retrieval(captions: pairs.map(\.caption), text: text,
                                                         audio: pairs.flatMap(\.audio), dim: d)
            }

            let report = EvalReport(checkpoint: embedder.checkpointPath, step: embedder.step,
                                    groundTruth: csv.map(Paths.absolute) ?? shards.map { Paths.absolute($0) + " split " + split },
                                    index: index.map(Paths.absolute), itemsEmbedded: toEmbed.count - failures.count,
                                    itemsReused: itemsReused, failures: failures, tagging: tagging, retrieval: retrieval)
            if let json { try report.write(to: json) }
            print(Self.table(report))
            return failures.isEmpty ? .success : .completedWithFailures
        }
    }

    static func lines(of path: String) throws(MulanError) -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw MulanError(.io, "cannot read \(path)", hint: "check --tags (UTF-8, one tag per line)")
        }
        let names = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        guard !names.isEmpty else { throw MulanError(.usage, "\(path) lists no tag") }
        return names
    }

    /// The human-readable report.
    static func table(_ r: EvalReport) -> String {
        func f(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "  -  " }
        var out: [String] = ["model: \(r.checkpoint) (step \(r.step))"]
        if let t = r.tagging {
            let width = max(12, t.perTag.map(\.tag.count).max() ?? 0)
            out.append("")
            out.append("tag".padding(toLength: width, withPad: " ", startingAt: 0) + "  positives  ROC-AUC  AP")
            for p in t.perTag {
                out.append(p.tag.padding(toLength: width, withPad: " ", startingAt: 0)
                           + String(format: "  %9d  ", p.positives) + f(p.rocAUC) + "    " + f(p.averagePrecision))
            }
            out.append("")
            out.append("zero-shot tagging: macro ROC-AUC \(f(t.macroROCAUC)), mAP \(f(t.meanAveragePrecision)) "
                       + "over \(t.tagsScored) tags and \(t.items) clips"
                       + (t.tagsSkipped.isEmpty ? "" : "; \(t.tagsSkipped.count) tags without positives or negatives left out"))
        }
        if let q = r.retrieval {
            out.append("")
            out.append("caption retrieval over \(q.pairs) pairs:")
            for (name, x) in [("text→audio", q.textToAudio), ("audio→text", q.audioToText)] {
                out.append("  \(name)  R@1 \(f(x.recallAt1))  R@5 \(f(x.recallAt5))  R@10 \(f(x.recallAt10))  median rank \(String(format: "%.1f", x.medianRank))")
            }
        }
        if !r.failures.isEmpty { out.append("\n\(r.failures.count) audio items could not be decoded and were left out") }
        return out.joined(separator: "\n")
    }
}
