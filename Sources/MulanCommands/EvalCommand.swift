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

/// The JSON report of `mulan-eval`.
struct EvalReport: StageReport {
    var checkpoint: String
    var step: Int
    var groundTruth: String?
    var index: String?
    var itemsEmbedded: Int
    var itemsReused: Int
    var failures: [EmbeddingFailure]
    var prompt: String
    var benchmark: BenchmarkReport?
    var tagging: TaggingReport?
    var retrieval: CaptionRetrievalReport?

    enum CodingKeys: String, CodingKey {
        case checkpoint, step, groundTruth = "ground_truth", index, itemsEmbedded = "items_embedded"
        case itemsReused = "items_reused", failures, prompt, benchmark, tagging, retrieval
    }
}

/// What a `--benchmark` preset chose, in `mulan-eval`'s report.
struct BenchmarkReport: Codable, Sendable {
    var name: String
    var title: String
    var split: String
    var files: [String]
    var tagRule: String
    /// The tags scored (ids as in the files) with the words put in the prompt.
    var tags: [Tag]
    /// Items of the split that the preset kept (found or not).
    var itemsListed: Int
    /// The evaluated items' ids in the corpus files (clip_id, TRACK_ID, YTID, track_id).
    var items: [String]
    var missingAudio: Int
    var missing: [MissingAudio]

    struct Tag: Codable, Sendable {
        var tag: String
        var words: String
    }

    enum CodingKeys: String, CodingKey {
        case name, title, split, files, tagRule = "tag_rule", tags, itemsListed = "items_listed", items
        case missingAudio = "missing_audio", missing
    }

    init(_ set: BenchmarkSet) {
        name = set.benchmark.rawValue
        title = set.benchmark.title
        split = set.split
        files = set.files.map(Paths.absolute)
        tagRule = set.tagRule
        tags = (set.truth?.tags ?? []).map { Tag(tag: $0, words: set.truth?.words[$0] ?? $0) }
        itemsListed = set.itemsListed
        var seen = Set<String>()
        items = set.truth.map { $0.items.map { $0.name ?? $0.id } }
            ?? (set.captions?.pairs ?? []).compactMap(\.path).filter { seen.insert($0).inserted }
        missingAudio = set.missing.count
        missing = set.missing
    }
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

    public func run() async throws {
        let console = global.console
        try await runStage(console: console) {
            // Ground truth and captions first: a bad file costs nothing.
            var truth: TagGroundTruth?
            var preset: BenchmarkSet?
            var captionSet: CaptionSet?
            if let benchmark, let audioRoot {
                let set = try BenchmarkSet.load(benchmark, data: data, audioRoot: audioRoot, labels: labels)
                for m in set.missing {
                    console.log(.warning, "\(m.item): no audio \(m.expected) (\(m.file):\(m.line); counted as missing)",
                                event: "missing-audio", fields: ["item": m.item, "path": m.expected])
                }
                console.log(.info, "\(benchmark.rawValue): \(set.itemsListed) items of \(set.split), \(set.missing.count) without audio; "
                            + "tags: \(set.tagRule)", event: "benchmark")
                truth = set.truth
                captionSet = set.captions
                preset = set
            } else if let shards {
                truth = try TagGroundTruth.shards(try DatasetSplit(dataset: shards, split: split))
            } else if let csv {
                truth = try TagGroundTruth.magnaTagATune(
                    csv: csv, audioRoot: audioRoot ?? (Paths.absolute(csv) as NSString).deletingLastPathComponent)
            }
            if let tags, let t = truth {
                truth = try t.restricted(to: try Self.lines(of: tags), listedIn: tags)
            }
            if let captions { captionSet = try CaptionSet(path: captions, audioRoot: audioRoot) }

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

            let embedded = Self.embedAudio(wanted, embedder: embedder, index: reused, batch: batch, console: console)
            let audioByID = embedded.byID
            let itemsReused = embedded.reused, failures = embedded.failures
            let toEmbed = wanted.count - itemsReused
            let d = embedder.dim

            var tagging: TaggingReport?
            if let truth {
                let usable = truth.items.filter { audioByID[$0.id] != nil }
                guard !usable.isEmpty else {
                    throw MulanError(.media, "no audio of the ground truth could be embedded (\(failures.count) failed"
                                     + (preset.map { ", \($0.missing.count) missing under --audio-root" } ?? "") + ")",
                                     hint: "check --audio-root and the files; the warnings above give each reason")
                }
                var audio: [Float] = []
                audio.reserveCapacity(usable.count * d)
                for item in usable { audio += audioByID[item.id] ?? [] }
                let prompts = truth.tags.map { truth.prompt($0, prompt) }
                let tagEmbeddings = try embedder.embed(texts: prompts)
                tagging = ZeroShotEvaluation.tagging(tags: truth.tags, tagEmbeddings: tagEmbeddings, audio: audio, dim: d,
                                                     labels: usable.map(\.tags))
                for (k, p) in prompts.enumerated() where p != truth.tags[k] { tagging?.perTag[k].prompt = p }
            }
            var retrieval: CaptionRetrievalReport?
            if let captionSet {
                let pairs = captionSet.pairs.compactMap { p -> (caption: String, audio: [Float])? in
                    guard let id = p.path ?? p.key, let a = audioByID[id] else { return nil }
                    return (p.caption, a)
                }
                if pairs.isEmpty {
                    throw MulanError(.media, "no caption's audio could be embedded"
                                     + (preset.map { " (\($0.missing.count) tracks missing under --audio-root)" } ?? ""),
                                     location: SourceLocation(file: captionSet.file))
                }
                let text = try embedder.embed(texts: pairs.map(\.caption))
                if preset != nil {
                    // Several captions per track: rank the distinct tracks, not one copy per caption.
                    var trackOf: [String: Int] = [:]
                    var audio: [Float] = []
                    let captionTrack = captionSet.pairs.compactMap { p -> Int? in
                        guard let id = p.path ?? p.key, let a = audioByID[id] else { return nil }
                        if let t = trackOf[id] { return t }
                        trackOf[id] = trackOf.count
                        audio += a
                        return trackOf.count - 1
                    }
                    retrieval = ZeroShotEvaluation.trackRetrieval(captionTrack: captionTrack, text: text, audio: audio,
                                                                  tracks: trackOf.count, dim: d)
                } else {
                    retrieval = ZeroShotEvaluation.retrieval(captions: pairs.map(\.caption), text: text,
                                                             audio: pairs.flatMap(\.audio), dim: d)
                }
            }

            let report = EvalReport(checkpoint: embedder.checkpointPath, step: embedder.step,
                                    groundTruth: csv.map(Paths.absolute) ?? shards.map { Paths.absolute($0) + " split " + split }
                                        ?? preset.map { "--benchmark \($0.benchmark.rawValue): " + $0.files.map(Paths.absolute).joined(separator: ", ") },
                                    index: index.map(Paths.absolute), itemsEmbedded: toEmbed - failures.count,
                                    itemsReused: itemsReused, failures: failures, prompt: prompt,
                                    benchmark: preset.map(BenchmarkReport.init), tagging: tagging, retrieval: retrieval)
            if let json { try report.write(to: json) }
            print(Self.table(report))
            return failures.isEmpty && (preset?.missing.isEmpty ?? true) ? .success : .completedWithFailures
        }
    }

    /// The audio embeddings of `wanted` (id → unit-norm embedding): taken from `index` where it
    /// holds the id (an absolute path or a shard key), embedded in batches of `batch` otherwise;
    /// items that cannot be decoded are logged and left out.
    static func embedAudio(_ wanted: [(id: String, item: AudioItem)], embedder: Embedder, index reused: EmbeddingIndex?,
                           batch: Int, console: Console) -> (byID: [String: [Float]], reused: Int, failures: [EmbeddingFailure]) {
        var audioByID: [String: [Float]] = [:]
        if let reused {
            for row in reused.rows where row.kind == .audio {
                if let id = row.path ?? row.key { audioByID[id] = reused.embedding(row.row) }
            }
        }
        let toEmbed = wanted.filter { audioByID[$0.id] == nil }
        let itemsReused = wanted.count - toEmbed.count
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
        return (audioByID, itemsReused, failures)
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
        var out: [String] = []
        if let b = r.benchmark {
            out += headline(b, r) + [""]
        }
        out.append("model: \(r.checkpoint) (step \(r.step))")
        if let t = r.tagging {
            // A preset's tag ids (`genre---rock`, `/m/064t9`) are shown with their words.
            var words: [String: String] = [:]
            for tag in r.benchmark?.tags ?? [] where tag.words != tag.tag { words[tag.tag] = tag.words }
            let shown = t.perTag.map { p in words[p.tag].map { "\($0) [\(p.tag)]" } ?? p.tag }
            let width = max(12, shown.map(\.count).max() ?? 0)
            out.append("")
            out.append("tag".padding(toLength: width, withPad: " ", startingAt: 0) + "  positives  ROC-AUC  AP")
            for (p, name) in zip(t.perTag, shown) {
                out.append(name.padding(toLength: width, withPad: " ", startingAt: 0)
                           + String(format: "  %9d  ", p.positives) + f(p.rocAUC) + "    " + f(p.averagePrecision))
            }
            out.append("")
            out.append("zero-shot tagging: macro ROC-AUC \(f(t.macroROCAUC)), mAP \(f(t.meanAveragePrecision)) "
                       + "over \(t.tagsScored) tags and \(t.items) clips"
                       + (t.tagsSkipped.isEmpty ? "" : "; \(t.tagsSkipped.count) tags without positives or negatives left out"))
        }
        if let q = r.retrieval {
            out.append("")
            out.append("caption retrieval over \(q.pairs) " + (q.tracks.map { "captions of \($0) tracks:" } ?? "pairs:"))
            for (name, x) in [("text→audio", q.textToAudio), ("audio→text", q.audioToText)] {
                out.append("  \(name)  R@1 \(f(x.recallAt1))  R@5 \(f(x.recallAt5))  R@10 \(f(x.recallAt10))  median rank \(String(format: "%.1f", x.medianRank))")
            }
        }
        if !r.failures.isEmpty { out.append("\n\(r.failures.count) audio items could not be decoded and were left out") }
        return out.joined(separator: "\n")
    }

    /// A benchmark's result as the MuLan paper's tables give it: the benchmark, split and metric
    /// on the first line, then what was evaluated and what was missing.
    static func headline(_ b: BenchmarkReport, _ r: EvalReport) -> [String] {
        func f(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "-" }
        var out: [String] = []
        if let t = r.tagging {
            out.append("\(b.title) (\(b.split)): ROC-AUC \(f(t.macroROCAUC)), PR-AUC (mAP) \(f(t.meanAveragePrecision))")
            out.append("  zero-shot, macro over \(t.tagsScored) of \(b.tags.count) tags (\(b.tagRule)), \(t.items) clips, "
                       + "prompt \"\(r.prompt)\"")
        }
        if let q = r.retrieval {
            let x = q.textToAudio, y = q.audioToText
            out.append("\(b.title) (\(b.split)) text→music: R@1 \(f(x.recallAt1)), R@5 \(f(x.recallAt5)), R@10 \(f(x.recallAt10)), "
                       + "median rank \(String(format: "%.1f", x.medianRank))")
            out.append("  \(q.pairs) captions over \(q.tracks ?? q.pairs) tracks (each caption one query); music→text: "
                       + "R@1 \(f(y.recallAt1)), R@5 \(f(y.recallAt5)), R@10 \(f(y.recallAt10)), median rank \(String(format: "%.1f", y.medianRank))")
        }
        if b.missingAudio > 0 {
            let shown = b.missing.prefix(10).map(\.item).joined(separator: ", ")
            out.append("  \(b.missingAudio) of \(b.itemsListed) items have no audio under --audio-root and were left out: \(shown)"
                       + (b.missingAudio > 10 ? ", … (all in --json)" : ""))
        }
        return out
    }
}
