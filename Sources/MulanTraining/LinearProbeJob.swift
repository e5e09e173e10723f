import Foundation
import MulanCore
import MulanRecords

/// `mulan-eval probe`'s job: a linear probe (per-tag logistic regression) on a model's frozen
/// audio embeddings, trained on the train split, its L2 strength chosen on the valid split, scored
/// on the test split. The command parses the options into this configuration, opens the model
/// (`openModel`) and prints the report.
public struct LinearProbeJob {
    /// Where the tags and the splits come from.
    public enum GroundTruth: Sendable {
        /// A benchmark preset with official splits; `audioRoot` is the folder the corpus's audio is in.
        case benchmark(Benchmark, data: [String], audioRoot: String)
        /// The tag texts of a shard dataset's three splits.
        case shards(dataset: String, train: String, valid: String, test: String)
        /// A MagnaTagATune-style CSV with a split column (or MTAT's folders in mp3_path).
        case csv(path: String, audioRoot: String?)
    }

    public var groundTruth: GroundTruth
    /// Probe only the tags listed in this file (one per line).
    public var tags: String?
    /// The L2 strengths tried.
    public var grid: [Double]
    /// Reuse the audio embeddings of this mulan-embed index.
    public var index: String?
    /// Audio items decoded and embedded per batch.
    public var batch: Int
    public var console: Console

    public init(groundTruth: GroundTruth, tags: String?, grid: [Double], index: String?, batch: Int, console: Console) {
        self.groundTruth = groundTruth
        self.tags = tags
        self.grid = grid
        self.index = index
        self.batch = batch
        self.console = console
    }

    /// Reads the ground truth (a bad file costs nothing), opens the model, embeds the audio
    /// (reusing the index's) and fits and scores the probe.
    public func run(openModel: EvaluationJob.OpenModel) throws(MulanError) -> ProbeEvaluationReport {
        var (truth, preset, groundTruthName) = try readGroundTruth()
        if let tags { truth = try truth.restricted(to: try EvaluationJob.lines(of: tags), listedIn: tags) }

        let reused = try index.map { dir throws(MulanError) in try EmbeddingIndex(directory: dir) }
        let embedder = try openModel(reused?.info.checkpoint, reused?.info.vocabulary)
        if let reused { try reused.checkSameModel(embedder) }

        var wanted: [(id: String, item: AudioItem)] = []
        var seen = Set<String>()
        for item in truth.items where !seen.contains(item.id) {
            if let audio = item.audio { wanted.append((item.id, audio)); seen.insert(item.id) }
        }
        let embedded = EvaluationJob.embedAudio(wanted, embedder: embedder, index: reused, batch: batch, console: console)
        func split(_ role: String) -> LinearProbe.Split {
            let usable = truth.items.filter { $0.split == role && embedded.byID[$0.id] != nil }
            return LinearProbe.Split(features: usable.flatMap { embedded.byID[$0.id] ?? [] }, labels: usable.map(\.tags))
        }
        let probe = try LinearProbe.evaluate(tags: truth.tags, train: split("train"), valid: split("valid"),
                                             test: split("test"), dim: embedder.dim, grid: grid)
        return ProbeEvaluationReport(checkpoint: embedder.checkpointPath, step: embedder.step, groundTruth: groundTruthName,
                                    index: index.map(Paths.absolute),
                                    itemsEmbedded: wanted.count - embedded.reused - embedded.failures.count,
                                    itemsReused: embedded.reused, failures: embedded.failures,
                                    benchmark: preset.map(BenchmarkReport.init), probe: probe)
    }

    /// The items with their tags and split roles (train, valid, test), the preset that chose them,
    /// and the ground truth as the report names it.
    func readGroundTruth() throws(MulanError) -> (TagGroundTruth, BenchmarkSet?, String) {
        switch groundTruth {
        case .benchmark(let benchmark, let data, let audioRoot):
            let set = try BenchmarkSet.loadAllSplits(benchmark, data: data, audioRoot: audioRoot)
            for m in set.missing {
                console.log(.warning, "\(m.item): no audio \(m.expected) (\(m.file):\(m.line); counted as missing)",
                            event: "missing-audio", fields: ["item": m.item, "path": m.expected])
            }
            guard let truth = set.truth else { throw MulanError(.internalError, "the preset gave no tags") }
            return (truth, set, "--benchmark \(benchmark.rawValue): " + set.files.map(Paths.absolute).joined(separator: ", "))
        case .shards(let shards, let trainSplit, let validSplit, let testSplit):
            var items: [TagGroundTruth.Item] = []
            var all = Set<String>()
            for (role, name) in [("train", trainSplit), ("valid", validSplit), ("test", testSplit)] {
                let t = try TagGroundTruth.shards(try DatasetSplit(dataset: shards, split: name))
                all.formUnion(t.tags)
                items += t.items.map { var item = $0; item.split = role; return item }
            }
            return (TagGroundTruth(items: items, tags: all.sorted()), nil,
                    Paths.absolute(shards) + " splits \(trainSplit), \(validSplit), \(testSplit)")
        case .csv(let csv, let audioRoot):
            let truth = try TagGroundTruth.magnaTagATune(
                csv: csv, audioRoot: audioRoot ?? (Paths.absolute(csv) as NSString).deletingLastPathComponent)
            if let item = truth.items.first(where: { $0.split == nil }) {
                throw MulanError(.usage, "clip \(item.name ?? item.id) has no split", location: item.origin,
                                 hint: "add a split column (train, valid, test) to the CSV, or keep MTAT's folders in mp3_path")
            }
            return (truth, nil, Paths.absolute(csv))
        }
    }
}

/// The JSON report of `mulan-eval probe`: what `LinearProbeJob` returns.
public struct ProbeEvaluationReport: StageReport {
    public var checkpoint: String
    public var step: Int
    public var groundTruth: String
    public var index: String?
    public var itemsEmbedded: Int
    public var itemsReused: Int
    public var failures: [EmbeddingFailure]
    public var benchmark: BenchmarkReport?
    public var probe: LinearProbeReport

    enum CodingKeys: String, CodingKey {
        case checkpoint, step, groundTruth = "ground_truth", index, itemsEmbedded = "items_embedded"
        case itemsReused = "items_reused", failures, benchmark, probe
    }

    /// Every item was embedded and every benchmark item had audio (else `mulan-eval probe` exits 3).
    public var complete: Bool { failures.isEmpty && (benchmark?.missingAudio ?? 0) == 0 }
}

extension ProbeEvaluationReport {
    /// The human-readable report (what `mulan-eval probe` prints).
    public func text() -> String {
        let r = self
        func f(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "  -  " }
        let p = r.probe, t = p.test
        var out: [String] = []
        if let b = r.benchmark {
            out.append("\(b.title) linear probe (\(b.split)): ROC-AUC \(f(t.macroROCAUC)), PR-AUC (mAP) \(f(t.meanAveragePrecision))")
            if b.missingAudio > 0 {
                out.append("  \(b.missingAudio) of \(b.itemsListed) items have no audio under --audio-root and were left out")
            }
            out.append("")
        }
        out.append("model: \(r.checkpoint) (step \(r.step))")
        out.append("linear probe on \(p.dim)-d audio embeddings: \(p.trainItems) train, \(p.validItems) valid, \(p.testItems) test clips")
        out.append("λ (mean log-loss + λ/2·|w|²) on the valid split: "
                   + p.candidates.map { "\(String(format: "%g", $0.lambda)) → \(f($0.validROCAUC))" }.joined(separator: ", "))
        out.append("chosen λ \(String(format: "%g", p.lambda)), refitted on \(p.refitOn)")
        let width = max(12, t.perTag.map(\.tag.count).max() ?? 0)
        out.append("")
        out.append("tag".padding(toLength: width, withPad: " ", startingAt: 0) + "  positives  ROC-AUC  PR-AUC")
        for x in t.perTag {
            out.append(x.tag.padding(toLength: width, withPad: " ", startingAt: 0)
                       + String(format: "  %9d  ", x.positives) + f(x.rocAUC) + "    " + f(x.averagePrecision))
        }
        out.append("")
        out.append("linear probe (test): macro ROC-AUC \(f(t.macroROCAUC)), PR-AUC (mAP) \(f(t.meanAveragePrecision)) "
                   + "over \(t.tagsScored) tags and \(t.items) clips"
                   + (p.tagsUntrained.isEmpty ? "" : "; \(p.tagsUntrained.count) tags without positives or negatives in train left out")
                   + (t.tagsSkipped.count > p.tagsUntrained.count
                      ? "; \(t.tagsSkipped.count - p.tagsUntrained.count) without positives or negatives in test left out" : ""))
        if !r.failures.isEmpty { out.append("\n\(r.failures.count) audio items could not be decoded and were left out") }
        return out.joined(separator: "\n")
    }
}
