import Foundation
import MulanCore
import MulanRecords

/// `mulan-eval`'s evaluation of a trained model: zero-shot tagging against a ground truth (a
/// benchmark preset, a MagnaTagATune-style CSV or a shard split) and caption retrieval. The command
/// parses the options into this configuration, opens the model (`openModel`) and prints the report.
public struct EvaluationJob {
    /// Where the tags of the evaluated clips come from.
    public enum GroundTruth: Sendable {
        /// A benchmark preset with its own files; `audioRoot` is the folder the corpus's audio is in.
        case benchmark(Benchmark, data: [String], labels: [String], audioRoot: String)
        /// The tags of a shard split.
        case shards(dataset: String, split: String)
        /// A MagnaTagATune-style CSV; its `mp3_path` under `audioRoot` (default: the CSV's folder).
        case csv(path: String, audioRoot: String?)
    }

    /// Opens the model: the given checkpoint, else the one an index was embedded with (`fallbackCheckpoint`).
    public typealias OpenModel = (_ fallbackCheckpoint: String?, _ fallbackVocabulary: String?) throws(MulanError) -> Embedder

    public var groundTruth: GroundTruth?
    /// Evaluate only the tags listed in this file (one per line).
    public var tags: String?
    /// A caption set for retrieval (JSONL of {"path" or "key", "caption"}).
    public var captions: String?
    /// The folder relative caption paths are under.
    public var audioRoot: String?
    /// The text embedded for each tag, `{tag}` standing for the tag's words.
    public var prompt: String
    /// Reuse the audio embeddings of this mulan-embed index.
    public var index: String?
    /// Audio items decoded and embedded per batch.
    public var batch: Int
    /// Groups of mutually exclusive tags, each also scored among its group (`ZeroShotEvaluation.exclusiveScores`).
    public var exclusive: [[String]] = []
    public var console: Console

    public init(groundTruth: GroundTruth?, tags: String?, captions: String?, audioRoot: String?, prompt: String, index: String?,
                batch: Int, console: Console) {
        self.groundTruth = groundTruth
        self.tags = tags
        self.captions = captions
        self.audioRoot = audioRoot
        self.prompt = prompt
        self.index = index
        self.batch = batch
        self.console = console
    }

    /// The ground truth read, and the preset that chose it.
    struct Inputs {
        var truth: TagGroundTruth?
        var preset: BenchmarkSet?
        var captions: CaptionSet?
        /// The `exclusive` groups as indices into `truth`'s tags.
        var exclusive: [[Int]] = []
    }

    /// Evaluates: reads the ground truth and captions (a bad file costs nothing), opens the model,
    /// embeds the audio needed (reusing the index's), then scores tagging and retrieval.
    public func run(openModel: OpenModel) throws(MulanError) -> EvaluationReport {
        let inputs = try readInputs()
        let reused = try index.map { dir throws(MulanError) in try EmbeddingIndex(directory: dir) }
        let embedder = try openModel(reused?.info.checkpoint, reused?.info.vocabulary)
        if let reused { try reused.checkSameModel(embedder) }
        if embedder.vocabularyPath == nil {
            throw MulanError(.usage, "tag names and captions are embedded as text, which needs the vocabulary",
                             hint: "pass --vocab vocab.txt (the one mulan-filter used)")
        }
        let wanted = try wantedAudio(inputs, reused: reused)
        let embedded = Self.embedAudio(wanted, embedder: embedder, index: reused, batch: batch, console: console)
        let failures = embedded.failures
        let tagging = try inputs.truth.map { truth throws(MulanError) in
            try Self.tagging(truth, audioByID: embedded.byID, embedder: embedder, prompt: prompt, exclusive: inputs.exclusive,
                             failures: failures.count, preset: inputs.preset)
        }
        let retrieval = try inputs.captions.map { set throws(MulanError) in
            try Self.retrieval(set, audioByID: embedded.byID, embedder: embedder, preset: inputs.preset)
        }
        return EvaluationReport(checkpoint: embedder.checkpointPath, step: embedder.step, groundTruth: groundTruthName(inputs.preset),
                                index: index.map(Paths.absolute), itemsEmbedded: wanted.count - embedded.reused - failures.count,
                                itemsReused: embedded.reused, failures: failures, prompt: prompt,
                                benchmark: inputs.preset.map(BenchmarkReport.init), tagging: tagging, retrieval: retrieval)
    }

    /// The ground truth (restricted to `tags`) and the captions.
    func readInputs() throws(MulanError) -> Inputs {
        var inputs = Inputs()
        switch groundTruth {
        case .benchmark(let benchmark, let data, let labels, let audioRoot):
            let set = try BenchmarkSet.load(benchmark, data: data, audioRoot: audioRoot, labels: labels)
            for m in set.missing {
                console.log(.warning, "\(m.item): no audio \(m.expected) (\(m.file):\(m.line); counted as missing)",
                            event: "missing-audio", fields: ["item": m.item, "path": m.expected])
            }
            console.log(.info, "\(benchmark.rawValue): \(set.itemsListed) items of \(set.split), \(set.missing.count) without audio; "
                        + "tags: \(set.tagRule)", event: "benchmark")
            inputs.truth = set.truth
            inputs.captions = set.captions
            inputs.preset = set
        case .shards(let dataset, let split):
            inputs.truth = try TagGroundTruth.shards(try DatasetSplit(dataset: dataset, split: split))
        case .csv(let csv, let audioRoot):
            inputs.truth = try TagGroundTruth.magnaTagATune(
                csv: csv, audioRoot: audioRoot ?? (Paths.absolute(csv) as NSString).deletingLastPathComponent)
        case nil:
            break
        }
        if let tags, let t = inputs.truth {
            inputs.truth = try t.restricted(to: try Self.lines(of: tags), listedIn: tags)
        }
        if !exclusive.isEmpty {
            guard let t = inputs.truth else {
                throw MulanError(.usage, "--exclusive groups tags, but nothing is tagged here",
                                 hint: "pass it with --csv, --shards or a tagging --benchmark")
            }
            inputs.exclusive = try ZeroShotEvaluation.exclusiveGroups(exclusive, tags: t.tags)
        }
        if let captions { inputs.captions = try CaptionSet(path: captions, audioRoot: audioRoot) }
        return inputs
    }

    /// Every audio item needed, by id (absolute path or shard key), each once: the ground truth's,
    /// then the captions' (a caption naming a shard key must find it in the shard split or the index).
    func wantedAudio(_ inputs: Inputs, reused: EmbeddingIndex?) throws(MulanError) -> [(id: String, item: AudioItem)] {
        var wanted: [(id: String, item: AudioItem)] = []
        var seen = Set<String>()
        for item in inputs.truth?.items ?? [] where !seen.contains(item.id) {
            if let audio = item.audio { wanted.append((item.id, audio)); seen.insert(item.id) }
        }
        var shardClips: [String: AudioItem] = [:]
        if case .shards = groundTruth {
            for item in inputs.truth?.items ?? [] { if let audio = item.audio { shardClips[item.id] = audio } }
        }
        for pair in inputs.captions?.pairs ?? [] {
            if let p = pair.path, !seen.contains(p) {
                wanted.append((p, .file(p)))
                seen.insert(p)
            } else if pair.path == nil, let key = pair.key, !seen.contains(key) {
                if let item = shardClips[key] {
                    wanted.append((key, item))
                    seen.insert(key)
                } else if !(reused?.rows.contains { $0.key == key } ?? false) {
                    throw MulanError(.usage, "caption audio key \(key) is neither in --shards nor in --index",
                                     location: SourceLocation(file: inputs.captions?.file, line: pair.line),
                                     hint: "pass the --shards split (or the --index) that holds it, or name the audio by \"path\"")
                }
            }
        }
        return wanted
    }

    /// Zero-shot tagging: each tag's prompt embedded as text and scored against the usable clips.
    static func tagging(_ truth: TagGroundTruth, audioByID: [String: [Float]], embedder: Embedder, prompt: String,
                        exclusive: [[Int]] = [], failures: Int, preset: BenchmarkSet?) throws(MulanError) -> TaggingReport {
        let d = embedder.dim
        let usable = truth.items.filter { audioByID[$0.id] != nil }
        guard !usable.isEmpty else {
            throw MulanError(.media, "no audio of the ground truth could be embedded (\(failures) failed"
                             + (preset.map { ", \($0.missing.count) missing under --audio-root" } ?? "") + ")",
                             hint: "check --audio-root and the files; the warnings above give each reason")
        }
        var audio: [Float] = []
        audio.reserveCapacity(usable.count * d)
        for item in usable { audio += audioByID[item.id] ?? [] }
        let prompts = truth.tags.map { truth.prompt($0, prompt) }
        let tagEmbeddings = try embedder.embed(texts: prompts)
        var tagging = ZeroShotEvaluation.tagging(tags: truth.tags, tagEmbeddings: tagEmbeddings, audio: audio, dim: d,
                                                 labels: usable.map(\.tags),
                                                 exclusive: exclusive, temperature: embedder.temperature)
        for (k, p) in prompts.enumerated() where p != truth.tags[k] { tagging.perTag[k].prompt = p }
        return tagging
    }

    /// Caption retrieval over the captions whose audio was embedded; a preset's several captions
    /// per track rank the distinct tracks, not one copy per caption.
    static func retrieval(_ captionSet: CaptionSet, audioByID: [String: [Float]], embedder: Embedder,
                          preset: BenchmarkSet?) throws(MulanError) -> CaptionRetrievalReport {
        let d = embedder.dim
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
        guard preset != nil else {
            return ZeroShotEvaluation.retrieval(captions: pairs.map(\.caption), text: text, audio: pairs.flatMap(\.audio), dim: d)
        }
        var trackOf: [String: Int] = [:]
        var audio: [Float] = []
        let captionTrack = captionSet.pairs.compactMap { p -> Int? in
            guard let id = p.path ?? p.key, let a = audioByID[id] else { return nil }
            if let t = trackOf[id] { return t }
            trackOf[id] = trackOf.count
            audio += a
            return trackOf.count - 1
        }
        return ZeroShotEvaluation.trackRetrieval(captionTrack: captionTrack, text: text, audio: audio, tracks: trackOf.count, dim: d)
    }

    /// The ground truth as the report names it.
    func groundTruthName(_ preset: BenchmarkSet?) -> String? {
        switch groundTruth {
        case .csv(let csv, _): Paths.absolute(csv)
        case .shards(let dataset, let split): Paths.absolute(dataset) + " split " + split
        case .benchmark: preset.map { "--benchmark \($0.benchmark.rawValue): " + $0.files.map(Paths.absolute).joined(separator: ", ") }
        case nil: nil
        }
    }

    /// The audio embeddings of `wanted` (id → unit-norm embedding): taken from `index` where it
    /// holds the id (an absolute path or a shard key), embedded in batches of `batch` otherwise;
    /// items that cannot be decoded are logged and left out.
    public static func embedAudio(_ wanted: [(id: String, item: AudioItem)], embedder: Embedder, index reused: EmbeddingIndex?,
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

    /// The tags listed in `path` (`--tags`: one per line, blank lines skipped).
    public static func lines(of path: String) throws(MulanError) -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw MulanError(.io, "cannot read \(path)", hint: "check --tags (UTF-8, one tag per line)")
        }
        let names = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        guard !names.isEmpty else { throw MulanError(.usage, "\(path) lists no tag") }
        return names
    }
}

extension EmbeddingIndex {
    /// Queries must be embedded by the model that embedded the index.
    public func checkSameModel(_ embedder: Embedder) throws(MulanError) {
        guard embedder.checkpointSHA256 == info.checkpointSHA256 else {
            throw MulanError(.usage, "\(embedder.checkpointPath) is not the model that embedded \(directory) "
                             + "(that was \(info.checkpoint), step \(info.step))",
                             hint: "pass that checkpoint, or re-embed with this one (mulan-embed)")
        }
    }
}
