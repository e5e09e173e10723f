import Foundation
import MulanCatalog
import MulanCore
import MulanText

/// Corpus-wide rules run in SQL, statistics and the comparison with an earlier version.
extension FilterJob {
    /// Tags: minimum frequency (distinct tracks, over the whole corpus), one copy per track, at
    /// most N per track (the most frequent in the corpus kept). `temp.filter_global_freq` holds
    /// the corpus's frequency of every kept tag before these rules.
    func applyTagRules(_ db: Database, version: String) throws {
        try db.run("""
            UPDATE text_decisions SET status = 'dropped', reason = 'rare', token_ids = NULL, token_count = 0
            WHERE version = ?1 AND status = 'kept' AND normalized IN (
                SELECT normalized FROM temp.filter_global_freq WHERE n < ?2)
            """, [version, config.tags.minFrequency])
        try dropDuplicatesPerTrack(db, version: version)
        // A tag that survived the rare rule kept its count: duplicates leave one copy per track.
        try db.run("""
            WITH ranked AS (
                SELECT d.raw_text_id, ROW_NUMBER() OVER (
                    PARTITION BY d.track_id ORDER BY f.n DESC, d.raw_text_id) AS r
                FROM text_decisions d JOIN temp.filter_global_freq f ON f.normalized = d.normalized
                WHERE d.version = ?1 AND d.status = 'kept')
            UPDATE text_decisions SET status = 'dropped', reason = 'over-max-per-track', token_ids = NULL,
                token_count = 0
            WHERE version = ?1 AND raw_text_id IN (SELECT raw_text_id FROM ranked WHERE r > ?2)
            """, [version, config.tags.maxPerTrack])
    }

    /// Playlists: size bounds (distinct member tracks over the whole corpus, from
    /// `temp.filter_global_sizes`), one copy of a title per track.
    func applyPlaylistRules(_ db: Database, version: String) throws {
        try db.run("""
            UPDATE text_decisions SET status = 'dropped',
                reason = CASE WHEN (SELECT s.n FROM temp.filter_global_sizes s JOIN raw_texts r ON r.group_id = s.group_id
                                    WHERE r.id = text_decisions.raw_text_id) < ?2
                         THEN 'too-few-tracks' ELSE 'too-many-tracks' END,
                token_ids = NULL, token_count = 0
            WHERE version = ?1 AND status = 'kept' AND raw_text_id IN (
                SELECT r.id FROM raw_texts r JOIN temp.filter_global_sizes s ON s.group_id = r.group_id
                WHERE r.source = 'playlists' AND (s.n < ?2 OR s.n > ?3))
            """, [version, config.playlists.minTracks, config.playlists.maxTracks])
        try dropDuplicatesPerTrack(db, version: version)
    }

    /// Keeps the first of identical normalized texts of a track.
    func dropDuplicatesPerTrack(_ db: Database, version: String) throws {
        try db.run("""
            UPDATE text_decisions SET status = 'dropped', reason = 'duplicate', token_ids = NULL, token_count = 0
            WHERE version = ?1 AND status = 'kept' AND raw_text_id NOT IN (
                SELECT MIN(raw_text_id) FROM text_decisions WHERE version = ?1 AND status = 'kept'
                GROUP BY track_id, lower(normalized))
            """, [version])
    }

    func collectStatistics(_ db: Database, version: String, into report: inout FilterReport) throws {
        for row in try db.rows("SELECT status, reason, COUNT(*) FROM text_decisions WHERE version = ? GROUP BY status, reason",
                               [version]) {
            let n = row[2].int ?? 0
            report.textsTotal += n
            if row[0].string == "kept" {
                report.kept += n
            } else {
                report.dropped += n
                report.droppedByReason[row[1].string ?? "?", default: 0] += n
            }
        }
        // Token-length distribution by SQL, so memory does not grow with the number of texts.
        let keptCount = report.kept
        if keptCount > 0 {
            func quantile(_ p: Double) throws -> Int {
                try db.row("""
                    SELECT token_count FROM text_decisions WHERE version = ? AND status = 'kept'
                    ORDER BY token_count LIMIT 1 OFFSET ?
                    """, [version, min(keptCount - 1, Int(Double(keptCount - 1) * p))])?[0].int ?? 0
            }
            var l = FilterReport.Lengths()
            l.min = try quantile(0)
            l.p50 = try quantile(0.5)
            l.p90 = try quantile(0.9)
            l.p99 = try quantile(0.99)
            l.max = try quantile(1)
            l.mean = try db.row("SELECT AVG(token_count) FROM text_decisions WHERE version = ? AND status = 'kept'",
                                [version])?[0].double ?? 0
            for row in try db.rows("""
                SELECT token_count, COUNT(*) FROM text_decisions WHERE version = ? AND status = 'kept' GROUP BY token_count
                """, [version]) {
                guard let n = row[0].int, let count = row[1].int else { continue }
                var lo = 1
                while lo * 2 <= n { lo *= 2 }
                l.histogram[n == 0 ? "0" : "\(lo)-\(lo * 2 - 1)", default: 0] += count
            }
            report.tokenLengths = l
        }
        report.topKept = try db.rows("""
            SELECT normalized, COUNT(*) AS n FROM text_decisions WHERE version = ? AND status = 'kept'
            GROUP BY normalized ORDER BY n DESC, normalized LIMIT 10
            """, [version]).map { FilterReport.Example(text: $0[0].string ?? "", count: $0[1].int ?? 0, reason: nil) }
        report.topDropped = try db.rows("""
            SELECT normalized, COUNT(*) AS n, reason FROM text_decisions WHERE version = ? AND status = 'dropped'
            GROUP BY normalized, reason ORDER BY n DESC, normalized LIMIT 10
            """, [version]).map { FilterReport.Example(text: $0[0].string ?? "", count: $0[1].int ?? 0, reason: $0[2].string) }
    }

    /// How decisions of `version` differ from those of `other` (per raw text).
    func compare(_ db: Database, version: String, with other: String?) throws -> FilterReport.Changes {
        var c = FilterReport.Changes(comparedWith: other)
        guard let other else {
            c.newTexts = try db.row("SELECT COUNT(*) FROM text_decisions WHERE version = ?", [version])?[0].int ?? 0
            return c
        }
        let r = try db.row("""
            SELECT
              SUM(CASE WHEN o.status = 'kept' AND n.status = 'dropped' THEN 1 ELSE 0 END),
              SUM(CASE WHEN o.status = 'dropped' AND n.status = 'kept' THEN 1 ELSE 0 END),
              SUM(CASE WHEN o.status = n.status AND o.reason != n.reason THEN 1 ELSE 0 END),
              SUM(CASE WHEN o.raw_text_id IS NULL THEN 1 ELSE 0 END)
            FROM text_decisions n LEFT JOIN text_decisions o ON o.version = ?2 AND o.raw_text_id = n.raw_text_id
            WHERE n.version = ?1
            """, [version, other])
        c.keptToDropped = r?[0].int ?? 0
        c.droppedToKept = r?[1].int ?? 0
        c.reasonChanged = r?[2].int ?? 0
        c.newTexts = r?[3].int ?? 0
        return c
    }
}
