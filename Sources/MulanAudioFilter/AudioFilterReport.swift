import Foundation
import MulanCore
import MulanRecords
import MulanTraining

/// What `mulan-filter audio` did (`--report FILE`; schemas/audio-filter-report.schema.json): the version, the clips decided, why clips were
/// dropped, and how each prompt's scores are spread. The counts cover every decision of the
/// version, this run's and earlier runs'; `scored_this_run` and `decided_this_run` say what this run added.
public struct AudioFilterReport: Codable, Sendable, StageReport {
    public struct Distribution: Codable, Sendable {
        public var min = 0.0, p10 = 0.0, p50 = 0.0, p90 = 0.0, max = 0.0, mean = 0.0
        /// Clips whose scores are counted: kept and dropped alike.
        public var clips = 0
    }

    public var schemaVersion = 1
    public var stage = "audio-filter"
    public var version: String
    public var scoreSet: String
    public var checkpoint: String
    public var checkpointSHA256: String
    public var checkpointStep: Int
    public var prompts: [Prompt]
    public var rules: [String]
    public var clipsTotal = 0
    public var kept = 0
    public var dropped = 0
    public var droppedByReason: [String: Int] = [:]
    public var scoredThisRun = 0
    public var scoresReused = 0
    public var decidedThisRun = 0
    public var scoreDistribution: [String: Distribution] = [:]
    public var wallSeconds = 0.0

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", stage, version, scoreSet = "score_set", checkpoint
        case checkpointSHA256 = "checkpoint_sha256", checkpointStep = "checkpoint_step", prompts, rules
        case clipsTotal = "clips_total", kept, dropped, droppedByReason = "dropped_by_reason"
        case scoredThisRun = "scored_this_run", scoresReused = "scores_reused", decidedThisRun = "decided_this_run"
        case scoreDistribution = "score_distribution", wallSeconds = "wall_seconds"
    }

    /// A short table for standard output.
    public func text() -> String {
        func pct(_ n: Int) -> String { clipsTotal > 0 ? String(format: "%5.1f%%", 100 * Double(n) / Double(clipsTotal)) : "    -" }
        func row(_ label: String, _ n: Int, _ share: Bool = true) -> String {
            let padded = label.count < 34 ? label + String(repeating: " ", count: 34 - label.count) : label
            let number = String(n)
            return padded + String(repeating: " ", count: max(0, 7 - number.count)) + number + (share ? "  " + pct(n) : "")
        }
        var lines = ["audio filter version \(version) (checkpoint step \(checkpointStep), scores \(scoreSet))"]
        lines.append("  rules: " + (rules.isEmpty ? "none (scores only, every clip kept)" : rules.joined(separator: "; ")))
        lines.append(row("  clips", clipsTotal, false))
        lines.append(row("  kept", kept))
        lines.append(row("  dropped", dropped))
        for (reason, n) in droppedByReason.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
            lines.append(row("    " + reason, n))
        }
        lines.append("  this run: \(scoredThisRun) clips scored, \(scoresReused) scores reused, \(decidedThisRun) decided, "
                     + String(format: "%.1f s", wallSeconds))
        lines.append("  scores      min    p10    p50    p90    max   mean")
        for p in prompts {
            guard let d = scoreDistribution[p.name] else { continue }
            let name = p.name.count < 10 ? p.name + String(repeating: " ", count: 10 - p.name.count) : String(p.name.prefix(10))
            lines.append("  " + name + [d.min, d.p10, d.p50, d.p90, d.max, d.mean].map { String(format: " %6.3f", $0) }.joined())
        }
        return lines.joined(separator: "\n")
    }
}
