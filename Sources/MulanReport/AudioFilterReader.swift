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
        for r in try db.rows("SELECT version, status, COUNT(*) FROM audio_decisions GROUP BY version, status") {
            let v = r[0].string ?? "", n = r[2].int ?? 0
            if r[1].string == "kept" { counts[v, default: (0, 0)].kept += n } else { counts[v, default: (0, 0)].dropped += n }
        }
        for r in try db.rows("""
            SELECT version, score_set, checkpoint, checkpoint_step, prompts, rules, created_at, completed_at
            FROM audio_filter_versions
            ORDER BY completed_at IS NULL, completed_at DESC, created_at DESC, version
            """) {
            let v = r[0].string ?? ""
            var version = AudioFilterVersion(
                version: v, scoreSet: r[1].string ?? "", checkpoint: r[2].string ?? "", checkpointStep: r[3].int ?? 0,
                prompts: Self.prompts(r[4].string ?? ""), rules: Self.rules(r[5].string ?? ""),
                createdAt: r[6].string ?? "", completedAt: r[7].string)
            version.kept = counts[v]?.kept ?? 0
            version.dropped = counts[v]?.dropped ?? 0
            f.versions.append(version)
        }
        guard let latest = f.latest else { return f }
        for r in try db.rows("""
            SELECT reason, COUNT(*) AS n FROM audio_decisions WHERE version = ? AND status = 'dropped'
            GROUP BY reason ORDER BY n DESC, reason
            """, [latest.version]) {
            f.dropReasons.append((r[0].string ?? "", r[1].int ?? 0))
        }
        f.undecided = try db.row("""
            SELECT COUNT(*) FROM clips c JOIN tracks t ON t.id = c.track_rowid
            WHERE c.status = 'kept' AND t.status = 'ingested'
              AND NOT EXISTS (SELECT 1 FROM audio_decisions d WHERE d.version = ? AND d.clip_id = c.id)
            """, [latest.version])?[0].int ?? 0
        // The scores the decisions were made on: the version's score set, for each decided clip.
        let byPrompt = try histograms(value: "j.value", key: "j.key", from: """
            audio_decisions d JOIN audio_scores s ON s.score_set = ? AND s.clip_id = d.clip_id, json_each(s.scores) j
            WHERE d.version = ? AND s.scores IS NOT NULL AND j.type IN ('real', 'integer')
            """, [latest.scoreSet, latest.version], target: 30, minimumWidth: 0.001)   // cosines; details print 3 decimals
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
