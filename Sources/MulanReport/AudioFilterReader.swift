import Foundation
import MulanCatalog
import MulanRecords

/// One version of `mulan-filter audio` (`audio_filter_versions`) and its decision counts.
struct AudioFilterVersion {
    var version: String
    var scoreSet: String
    var checkpoint: String
    var checkpointStep: Int
    var prompts: [Prompt]
    var rules: [String]
    var createdAt: String
    var completedAt: String?
    var kept = 0
    var dropped = 0
    var decided: Int { kept + dropped }
}

/// What the report shows of the zero-shot audio filter: every version, and for the latest one its
/// drop reasons and the distribution of each prompt's score.
struct AudioFilterFigures {
    /// Completed versions first, the one completed last first (as mulan-shard picks it), then
    /// unfinished ones, the one created last first.
    var versions: [AudioFilterVersion] = []
    /// Dropped clips of the latest version by reason (the first failing rule, or `unreadable`),
    /// most first.
    var dropReasons: [(reason: String, count: Int)] = []
    /// The latest version's scores, one histogram per prompt on shared bins, in the version's prompt order.
    var scores: [(prompt: String, histogram: Histogram)] = []
    /// Kept clips of ingested tracks the latest version has no decision for (ingested after it ran).
    var undecided = 0
    var latest: AudioFilterVersion? { versions.first }
}

extension CatalogReader {
    /// Most prompts drawn as histograms; the rest are named in a note.
    static let maxScoreHistograms = 12

    /// The audio filter tables (schema version 6), aggregated by SQL: counts by GROUP BY, prompt
    /// scores binned by GROUP BY over `json_each` of the stored score objects.
    func audioFilter() throws -> AudioFilterFigures {
        var f = AudioFilterFigures()
        var counts: [String: (kept: Int, dropped: Int)] = [:]
        for r in try queries.audioDecisionCounts() {
            if r.kept { counts[r.version, default: (0, 0)].kept += r.clips } else { counts[r.version, default: (0, 0)].dropped += r.clips }
        }
        for r in try queries.audioFilterVersions() {
            var version = AudioFilterVersion(
                version: r.version, scoreSet: r.scoreSet, checkpoint: r.checkpoint, checkpointStep: r.checkpointStep,
                prompts: Self.prompts(r.promptsJSON), rules: Self.rules(r.rulesJSON),
                createdAt: r.createdAt, completedAt: r.completedAt)
            version.kept = counts[r.version]?.kept ?? 0
            version.dropped = counts[r.version]?.dropped ?? 0
            f.versions.append(version)
        }
        guard let latest = f.latest else { return f }
        f.dropReasons = try queries.audioDropReasons(version: latest.version)
        f.undecided = try queries.undecidedClips(version: latest.version)
        // The scores the decisions were made on: the version's score set, for each decided clip.
        let byPrompt = try histograms(.audioScores(scoreSet: latest.scoreSet, version: latest.version),
                                      target: 30, minimumWidth: 0.001)   // cosines; details print 3 decimals
        let order = latest.prompts.map(\.name)
        func rank(_ name: String) -> Int { order.firstIndex(of: name) ?? order.count }
        f.scores = byPrompt.sorted { (rank($0.key), $0.key) < (rank($1.key), $1.key) }.map { ($0.key, $0.histogram) }
        return f
    }

    /// `prompts` as mulan-filter audio stored them (JSON of its `[Prompt]`); empty when they do not decode.
    static func prompts(_ json: String) -> [Prompt] {
        (try? JSONDecoder().decode([Prompt].self, from: Data(json.utf8))) ?? []
    }

    /// `rules` as stored: a JSON list of canonical rule texts; empty when it is not.
    static func rules(_ json: String) -> [String] {
        (try? JSONDecoder().decode([String].self, from: Data(json.utf8))) ?? []
    }
}
