import Foundation
import MulanCore

/// The statistics of one `mulan-filter --source S` run (`--report FILE`; schemas/filter-report.schema.json).
public struct FilterReport: Codable, Sendable, StageReport {
    public struct Example: Codable, Sendable {
        public var text: String
        public var count: Int
        public var reason: String?
    }
    public struct Lengths: Codable, Sendable {
        public var min = 0, p50 = 0, p90 = 0, p99 = 0, max = 0
        public var mean = 0.0
        public var histogram: [String: Int] = [:]
    }
    public struct Changes: Codable, Sendable {
        public var comparedWith: String?
        public var keptToDropped = 0
        public var droppedToKept = 0
        public var reasonChanged = 0
        public var newTexts = 0
        enum CodingKeys: String, CodingKey {
            case comparedWith = "compared_with", keptToDropped = "kept_to_dropped", droppedToKept = "dropped_to_kept"
            case reasonChanged = "reason_changed", newTexts = "new_texts"
        }
    }

    public var schemaVersion = 1
    public var stage = "filter"
    public var source: String
    public var version: String
    public var unfiltered: Bool
    public var dryRun: Bool
    public var textsTotal = 0
    public var kept = 0
    public var dropped = 0
    public var droppedByReason: [String: Int] = [:]
    public var sentencesTotal: Int?
    public var sentencesKept: Int?
    public var sentencesDroppedByReason: [String: Int]?
    public var tokenLengths = Lengths()
    public var topKept: [Example] = []
    public var topDropped: [Example] = []
    public var changes: Changes?
    public var wallSeconds = 0.0

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", stage, source, version, unfiltered, dryRun = "dry_run"
        case textsTotal = "texts_total", kept, dropped, droppedByReason = "dropped_by_reason"
        case sentencesTotal = "sentences_total", sentencesKept = "sentences_kept"
        case sentencesDroppedByReason = "sentences_dropped_by_reason", tokenLengths = "token_lengths"
        case topKept = "top_kept", topDropped = "top_dropped", changes, wallSeconds = "wall_seconds"
    }



    /// A human table for standard output.
    public func text() -> String {
        func pct(_ n: Int, _ of: Int) -> String { of > 0 ? String(format: "%5.1f%%", 100 * Double(n) / Double(of)) : "    -" }
        func row(_ indent: Int, _ label: String, _ n: Int, _ share: String = "") -> String {
            let name = String(repeating: " ", count: indent) + label
            let padded = name.count < 30 ? name + String(repeating: " ", count: 30 - name.count) : name
            let number = String(n)
            return padded + String(repeating: " ", count: max(0, 9 - number.count)) + number + (share.isEmpty ? "" : "  " + share)
        }
        var lines = ["filter \(source) \(dryRun ? "(dry run, nothing written) " : "")version \(version)"
                     + (unfiltered ? " (unfiltered)" : "")]
        lines.append(row(2, "texts", textsTotal))
        lines.append(row(2, "kept", kept, pct(kept, textsTotal)))
        lines.append(row(2, "dropped", dropped, pct(dropped, textsTotal)))
        for (reason, n) in droppedByReason.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
            lines.append(row(4, reason, n, pct(n, textsTotal)))
        }
        if let total = sentencesTotal, let keptSentences = sentencesKept {
            lines.append(row(2, "sentences", total))
            lines.append(row(2, "sentences kept", keptSentences, pct(keptSentences, total)))
            for (reason, n) in (sentencesDroppedByReason ?? [:]).sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
                lines.append(row(4, reason, n, pct(n, total)))
            }
        }
        let l = tokenLengths
        lines.append("  tokens per kept text: min \(l.min), median \(l.p50), p90 \(l.p90), p99 \(l.p99), max \(l.max), "
                     + String(format: "mean %.1f", l.mean))
        if !topKept.isEmpty {
            lines.append("  top kept: " + topKept.prefix(5).map { "\"\($0.text.prefix(40))\" ×\($0.count)" }.joined(separator: ", "))
        }
        if !topDropped.isEmpty {
            lines.append("  top dropped: " + topDropped.prefix(5).map { "\"\($0.text.prefix(40))\" ×\($0.count) (\($0.reason ?? ""))" }
                .joined(separator: ", "))
        }
        if let c = changes {
            lines.append("  compared with \(c.comparedWith ?? "nothing (first run)"): \(c.keptToDropped) kept→dropped, "
                         + "\(c.droppedToKept) dropped→kept, \(c.reasonChanged) other reason, \(c.newTexts) new")
        }
        return lines.joined(separator: "\n")
    }
}
