import Foundation
import MulanCore
import MulanRecords

/// The JSON report of `mulan-eval`: what `EvaluationJob` returns.
public struct EvaluationReport: StageReport {
    public var checkpoint: String
    public var step: Int
    public var groundTruth: String?
    public var index: String?
    public var itemsEmbedded: Int
    public var itemsReused: Int
    public var failures: [EmbeddingFailure]
    public var prompt: String
    public var benchmark: BenchmarkReport?
    public var tagging: TaggingReport?
    public var retrieval: CaptionRetrievalReport?

    enum CodingKeys: String, CodingKey {
        case checkpoint, step, groundTruth = "ground_truth", index, itemsEmbedded = "items_embedded"
        case itemsReused = "items_reused", failures, prompt, benchmark, tagging, retrieval
    }

    /// Every item was embedded and every benchmark item had audio (else `mulan-eval` exits 3).
    public var complete: Bool { failures.isEmpty && (benchmark?.missingAudio ?? 0) == 0 }
}

/// What a `--benchmark` preset chose, in `mulan-eval`'s report.
public struct BenchmarkReport: Codable, Sendable {
    public var name: String
    public var title: String
    public var split: String
    public var files: [String]
    public var tagRule: String
    /// The tags scored (ids as in the files) with the words put in the prompt.
    public var tags: [Tag]
    /// Items of the split that the preset kept (found or not).
    public var itemsListed: Int
    /// The evaluated items' ids in the corpus files (clip_id, TRACK_ID, YTID, track_id).
    public var items: [String]
    public var missingAudio: Int
    public var missing: [MissingAudio]

    public struct Tag: Codable, Sendable {
        public var tag: String
        public var words: String
    }

    enum CodingKeys: String, CodingKey {
        case name, title, split, files, tagRule = "tag_rule", tags, itemsListed = "items_listed", items
        case missingAudio = "missing_audio", missing
    }

    public init(_ set: BenchmarkSet) {
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

extension EvaluationReport {
    /// The human-readable report (what `mulan-eval` prints).
    public func text() -> String {
        let r = self
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
            let grouped = t.exclusiveGroups != nil
            out.append("tag".padding(toLength: width, withPad: " ", startingAt: 0) + "  positives  ROC-AUC  AP"
                       + (grouped ? "     exclusive ROC-AUC  AP" : ""))
            for (p, name) in zip(t.perTag, shown) {
                var line = name.padding(toLength: width, withPad: " ", startingAt: 0)
                    + String(format: "  %9d  ", p.positives) + f(p.rocAUC) + "    " + f(p.averagePrecision)
                if grouped && (p.exclusiveROCAUC != nil || p.exclusiveAveragePrecision != nil) {
                    line += "  " + f(p.exclusiveROCAUC) + "              " + f(p.exclusiveAveragePrecision)
                }
                out.append(line)
            }
            out.append("")
            out.append("zero-shot tagging: macro ROC-AUC \(f(t.macroROCAUC)), mAP \(f(t.meanAveragePrecision)) "
                       + "over \(t.tagsScored) tags and \(t.items) clips"
                       + (t.tagsSkipped.isEmpty ? "" : "; \(t.tagsSkipped.count) tags without positives or negatives left out"))
            if let groups = t.exclusiveGroups {
                out.append("exclusive: each tag of " + groups.map { "{" + $0.joined(separator: ", ") + "}" }.joined(separator: ", ")
                           + " also scored among its group (softmax at τ = \(String(format: "%.4f", t.exclusiveTemperature ?? 0)))")
            }
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
    func headline(_ b: BenchmarkReport, _ r: EvaluationReport) -> [String] {
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
