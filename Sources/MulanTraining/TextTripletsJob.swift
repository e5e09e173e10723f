import Foundation
import MulanCore
import MulanRecords

/// `mulan-eval triplets`' job: text triplet classification with a model's trained text tower and,
/// where the run warm-started it (`--text-init`), with that pretrained model too. The command
/// parses the options into this configuration, opens the model (`openModel`) and prints the report.
public struct TextTripletsJob {
    /// The triplets: JSONL of {"anchor", "positive", "negative"} (and optionally "attribute").
    public var triplets: String
    /// The warm-start text model folder (default: the run's `--text-init`).
    public var textInit: String?
    /// Score the trained text tower only.
    public var warmStart: Bool
    public var console: Console

    public init(triplets: String, textInit: String?, warmStart: Bool, console: Console) {
        self.triplets = triplets
        self.textInit = textInit
        self.warmStart = warmStart
        self.console = console
    }

    public func run(openModel: () throws(MulanError) -> Embedder) throws(MulanError) -> TripletEvaluationReport {
        let set = try TextTriplets(path: triplets)
        let embedder = try openModel()
        let texts = set.texts
        let trained = set.accuracy(embeddings: try embedder.embed(texts: texts), dim: embedder.dim)
        var warm: TripletEvaluationReport.WarmStart?
        if warmStart, let folder = textInit ?? embedder.config.textInit {
            guard FileManager.default.fileExists(atPath: folder) else {
                throw MulanError(.usage, "the run's warm-start text model \(folder) (its --text-init) is not there",
                                 hint: "pass --text-init DIR (the folder the run started from), or --no-warm-start")
            }
            let w = try WarmStartText(directory: folder, config: embedder.config)
            warm = .init(directory: w.directory, dim: w.dim, accuracy: set.accuracy(embeddings: w.embed(texts: texts), dim: w.dim))
        } else if warmStart {
            console.log(.info, "the checkpoint's text tower was trained from scratch (no --text-init): scoring it alone",
                        event: "no-warm-start")
        }
        return TripletEvaluationReport(checkpoint: embedder.checkpointPath, step: embedder.step,
                                       triplets: Paths.absolute(triplets), model: trained, warmStart: warm)
    }
}

/// The JSON report of `mulan-eval triplets`: what `TextTripletsJob` returns.
public struct TripletEvaluationReport: StageReport {
    public var checkpoint: String
    public var step: Int
    public var triplets: String
    public var model: TripletAccuracy
    /// The model the text tower was warm-started from (`--text-init` of the run), where it was.
    public var warmStart: WarmStart?

    public struct WarmStart: Encodable, Sendable {
        public var directory: String
        public var dim: Int
        public var accuracy: TripletAccuracy
    }

    enum CodingKeys: String, CodingKey { case checkpoint, step, triplets, model, warmStart = "warm_start" }
}

extension TripletEvaluationReport {
    /// The human-readable report (what `mulan-eval triplets` prints).
    public func text() -> String {
        let r = self
        func pct(_ a: TripletAccuracy.Breakdown) -> String { String(format: "%.3f (%d/%d)", a.accuracy, a.correct, a.triplets) }
        func all(_ a: TripletAccuracy) -> TripletAccuracy.Breakdown { .init(triplets: a.triplets, correct: a.correct) }
        var out = ["text triplets: \(r.triplets), \(r.model.triplets) triplets"]
        out.append("  trained text tower (\(r.checkpoint), step \(r.step)): accuracy \(pct(all(r.model)))")
        if let w = r.warmStart {
            out.append("  warm start (\(w.directory), \(w.dim)-d pooled): accuracy \(pct(all(w.accuracy)))")
        }
        let attributes = Set(r.model.byAttribute.keys).sorted()
        if !attributes.isEmpty {
            out.append("  by attribute:")
            for a in attributes {
                var line = "    \(a): trained \(r.model.byAttribute[a].map(pct) ?? "-")"
                if let w = r.warmStart { line += ", warm start \(w.accuracy.byAttribute[a].map(pct) ?? "-")" }
                out.append(line)
            }
        }
        return out.joined(separator: "\n")
    }
}
