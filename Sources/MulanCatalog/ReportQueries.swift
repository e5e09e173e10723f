import Foundation
import MulanCore

/// The aggregates `mulan-report` shows of a catalog, computed by SQL (GROUP BY, MIN/MAX) or streamed
/// row by row, so that memory does not grow with the catalog. Opens the catalog read-only and applies
/// no migration: a catalog of any schema version is read as it is (callers check `tables()` and
/// `columns(of:)` before asking for what a version added).
public struct ReportQueries {
    let database: Database
    public var path: String { database.path }

    public init(path: String) throws(MulanError) {
        database = try Database(path: path, readOnly: true)
    }

    /// Runs `body` inside one read transaction: a consistent snapshot even while a stage writes.
    public func snapshot<T>(_ body: () throws -> T) throws -> T {
        try database.execute("BEGIN")
        defer { try? database.execute("COMMIT") }
        return try body()
    }

    // MARK: Schema

    public func tables() throws(MulanError) -> Set<String> {
        Set(try database.select("SELECT name FROM sqlite_master WHERE type = 'table'").compactMap { $0["name"].string })
    }

    /// The highest applied migration (0: none recorded).
    public func schemaVersion() throws(MulanError) -> Int {
        try database.selectFirst("SELECT MAX(version) AS version FROM schema_migrations")?["version"].int ?? 0
    }

    /// The columns of `table` (one of the catalog's tables).
    public func columns(of table: String) throws(MulanError) -> Set<String> {
        try Self.checkIdentifier(table)
        return Set(try database.select("PRAGMA table_info(\(table))").compactMap { $0["name"].string })
    }

    // MARK: Histograms

    /// A set of values the report draws as histograms.
    public enum Values: Sendable {
        /// A column of kept clips (`clips.duration_s`, `lufs`, …).
        case keptClips(column: String)
        /// A column of ingested tracks.
        case ingestedTracks(column: String)
        /// The scores (per prompt) the decisions of an audio filter version were made on.
        case audioScores(scoreSet: String, version: String)

        /// The value expression, the key expression, the FROM clause with a WHERE, and its arguments.
        func sql() throws(MulanError) -> (value: String, key: String?, from: String, arguments: [any SQLBindable]) {
            switch self {
            case .keptClips(let column):
                try ReportQueries.checkIdentifier(column)
                return (column, nil, "clips WHERE status = 'kept'", [])
            case .ingestedTracks(let column):
                try ReportQueries.checkIdentifier(column)
                return (column, nil, "tracks WHERE status = 'ingested'", [])
            case .audioScores(let scoreSet, let version):
                return ("j.value", "j.key", """
                    audio_decisions d JOIN audio_scores s ON s.score_set = ? AND s.clip_id = d.clip_id, json_each(s.scores) j
                    WHERE d.version = ? AND s.scores IS NOT NULL AND j.type IN ('real', 'integer')
                    """, [scoreSet, version])
            }
        }
    }

    /// Counts of `values` per key and bin: one query for MIN, MAX and COUNT, then `bins` chooses the
    /// bins from the range, then one GROUP BY key and bin (`CAST((value - lower) / width AS INTEGER)`).
    /// Nil when no row has a value. The key is "" for values without keys.
    public func binnedCounts(_ values: Values, bins: (_ minimum: Double, _ maximum: Double) -> (lower: Double, width: Double))
        throws(MulanError) -> [(key: String, bin: Int, count: Int)]? {
        let q = try values.sql()
        guard let r = try database.selectFirst(
            "SELECT MIN(\(q.value)) AS lo, MAX(\(q.value)) AS hi, COUNT(\(q.value)) AS n FROM \(q.from)", q.arguments),
              let lo = r["lo"].double, let hi = r["hi"].double, (r["n"].int ?? 0) > 0 else { return nil }
        let b = bins(lo, hi)
        return try database.select("""
            SELECT \(q.key ?? "''") AS k, CAST((\(q.value) - ?) / ? AS INTEGER) AS b, COUNT(*) AS n FROM \(q.from) AND \(q.value) IS NOT NULL
            GROUP BY k, b
            """, [b.lower, b.width] + q.arguments).map { ($0["k"].string ?? "", $0["b"].int ?? 0, $0["n"].int ?? 0) }
    }

    // MARK: Audio

    /// Tracks by status and reason ("" for none): status descending, most first, then by reason.
    public func tracksByOutcome() throws(MulanError) -> [(status: String, reason: String, count: Int)] {
        try database.select("""
            SELECT status, COALESCE(reason, '') AS reason, COUNT(*) AS n FROM tracks GROUP BY 1, 2 ORDER BY 1 DESC, 3 DESC, 2
            """).map { ($0["status"].string ?? "", $0["reason"].string ?? "", $0["n"].int ?? 0) }
    }

    /// Clips by status with their total duration, seconds.
    public func clipsByStatus() throws(MulanError) -> [(status: String?, clips: Int, seconds: Double)] {
        try database.select("SELECT status, COUNT(*) AS n, TOTAL(duration_s) AS seconds FROM clips GROUP BY status")
            .map { ($0["status"].string, $0["n"].int ?? 0, $0["seconds"].double ?? 0) }
    }

    /// The range of kept clips' RMS and peak (linear) and their number (nil: no kept clip).
    public func keptClipLevelRange() throws(MulanError)
        -> (rms: (min: Double?, max: Double?), peak: (min: Double?, max: Double?), clips: Int)? {
        guard let r = try database.selectFirst("""
            SELECT MIN(rms) AS rms_min, MAX(rms) AS rms_max, MIN(peak) AS peak_min, MAX(peak) AS peak_max, COUNT(*) AS n
            FROM clips WHERE status = 'kept'
            """), let n = r["n"].int, n > 0 else { return nil }
        return ((r["rms_min"].double, r["rms_max"].double), (r["peak_min"].double, r["peak_max"].double), n)
    }

    /// Calls `body` with each kept clip's RMS and peak (linear), one row in memory at a time.
    public func forEachKeptClipLevel(_ body: (_ rms: Double?, _ peak: Double?) throws -> Void) throws {
        try database.forEachRow("SELECT rms, peak FROM clips WHERE status = 'kept'") { row in
            try body(row["rms"].double, row["peak"].double)
        }
    }

    /// Kept clips by `loudness_status` (nil: not measured).
    public func keptClipsByLoudnessStatus() throws(MulanError) -> [(status: String?, clips: Int)] {
        try database.select("SELECT loudness_status, COUNT(*) AS n FROM clips WHERE status = 'kept' GROUP BY 1")
            .map { ($0["loudness_status"].string, $0["n"].int ?? 0) }
    }

    /// Kept clips stored with a normalization gain, and those whose true peak before plus the gain
    /// reaches the track's ceiling less `margin` dB.
    public func normalizedClips(ceilingMargin margin: Double) throws(MulanError) -> (normalized: Int, atCeiling: Int)? {
        try database.selectFirst("""
            SELECT COUNT(*) AS n, TOTAL(c.lufs_before IS NOT NULL AND c.true_peak_before_db IS NOT NULL
                                   AND c.true_peak_before_db + c.loudness_gain_db >= t.loudness_max_true_peak_db - ?) AS at_ceiling
            FROM clips c JOIN tracks t ON t.id = c.track_rowid
            WHERE c.status = 'kept' AND c.loudness_gain_db IS NOT NULL
            """, [margin]).map { ($0["n"].int ?? 0, Int($0["at_ceiling"].double ?? 0)) }
    }

    /// The (target, ceiling) pairs ingested tracks were stored with, and how many tracks each, most first.
    public func loudnessTargets() throws(MulanError) -> [(lufs: Double, ceilingDBTP: Double, tracks: Int)] {
        try database.select("""
            SELECT loudness_target_lufs, loudness_max_true_peak_db, COUNT(*) AS n FROM tracks
            WHERE loudness_target_lufs IS NOT NULL AND status = 'ingested' GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2
            """).map { ($0["loudness_target_lufs"].double ?? 0, $0["loudness_max_true_peak_db"].double ?? 0, $0["n"].int ?? 0) }
    }

    // MARK: Text

    /// Raw texts loaded per source ("" for none); all under "" when the catalog has no source column.
    public func loadedTexts(bySource: Bool) throws(MulanError) -> [(source: String, texts: Int)] {
        let sql = bySource ? "SELECT COALESCE(source, '') AS source, COUNT(*) AS n FROM raw_texts GROUP BY 1"
                           : "SELECT '' AS source, COUNT(*) AS n FROM raw_texts"
        return try database.select(sql).map { ($0["source"].string ?? "", $0["n"].int ?? 0) }
    }

    /// Completed filter versions (dry runs left out), by source, the one completed last first.
    public func completedFilterVersions() throws(MulanError)
        -> [(source: String?, version: String?, unfiltered: Bool, stats: String?)] {
        try database.select("""
            SELECT source, version, unfiltered, stats FROM filter_versions
            WHERE completed_at IS NOT NULL AND version NOT LIKE '%~dry-run'
            ORDER BY source, completed_at DESC, version
            """).map { ($0["source"].string, $0["version"].string, ($0["unfiltered"].int ?? 0) != 0, $0["stats"].string) }
    }

    /// Text decisions of `version` by status and reason: status descending, most first, then reason.
    public func textDecisionCounts(version: String) throws(MulanError) -> [(status: String, reason: String, count: Int)] {
        try database.select("""
            SELECT status, reason, COUNT(*) AS n FROM text_decisions WHERE version = ? GROUP BY status, reason
            ORDER BY status DESC, 3 DESC, reason
            """, [version]).map { ($0["status"].string ?? "", $0["reason"].string ?? "", $0["n"].int ?? 0) }
    }

    /// Kept texts of `version` by token count, in token count order.
    public func keptTokenCounts(version: String) throws(MulanError) -> [(tokens: Int, texts: Int)] {
        try database.select("""
            SELECT token_count, COUNT(*) AS n FROM text_decisions WHERE version = ? AND status = 'kept'
            GROUP BY token_count ORDER BY token_count
            """, [version]).map { ($0["token_count"].int ?? 0, $0["n"].int ?? 0) }
    }

    /// The `limit` kept texts of `version` carried by the most tracks, with that number.
    public func topKeptTexts(version: String, limit: Int) throws(MulanError) -> [(text: String, tracks: Int)] {
        try database.select("""
            SELECT normalized, COUNT(DISTINCT track_id) AS n FROM text_decisions
            WHERE version = ? AND status = 'kept' GROUP BY normalized ORDER BY n DESC, normalized LIMIT ?
            """, [version, limit]).map { ($0["normalized"].string ?? "", $0["n"].int ?? 0) }
    }

    /// For each number of tracks, how many kept texts of `version` are carried by that many, most tracks first.
    public func keptTextsByTrackCount(version: String) throws(MulanError) -> [(tracks: Int, texts: Int)] {
        try database.select("""
            SELECT n, COUNT(*) AS texts FROM (
                SELECT COUNT(DISTINCT track_id) AS n FROM text_decisions
                WHERE version = ? AND status = 'kept' GROUP BY normalized)
            GROUP BY n ORDER BY n DESC
            """, [version]).map { ($0["n"].int ?? 0, $0["texts"].int ?? 0) }
    }

    // MARK: Audio filter

    /// Audio filter decisions by version and status.
    public func audioDecisionCounts() throws(MulanError) -> [(version: String, kept: Bool, clips: Int)] {
        try database.select("SELECT version, status, COUNT(*) AS n FROM audio_decisions GROUP BY version, status")
            .map { ($0["version"].string ?? "", $0["status"].string == "kept", $0["n"].int ?? 0) }
    }

    /// An `audio_filter_versions` row.
    public struct AudioFilterVersionRow: Sendable {
        public var version: String
        public var scoreSet: String
        public var checkpoint: String
        public var checkpointStep: Int
        /// As stored: JSON of the prompts and of the rule texts.
        public var promptsJSON: String
        public var rulesJSON: String
        public var createdAt: String
        public var completedAt: String?
    }

    /// Every audio filter version: completed ones first, the one completed last first, then
    /// unfinished ones, the one created last first.
    public func audioFilterVersions() throws(MulanError) -> [AudioFilterVersionRow] {
        try database.select("""
            SELECT version, score_set, checkpoint, checkpoint_step, prompts, rules, created_at, completed_at
            FROM audio_filter_versions
            ORDER BY completed_at IS NULL, completed_at DESC, created_at DESC, version
            """).map {
            AudioFilterVersionRow(version: $0["version"].string ?? "", scoreSet: $0["score_set"].string ?? "",
                                  checkpoint: $0["checkpoint"].string ?? "", checkpointStep: $0["checkpoint_step"].int ?? 0,
                                  promptsJSON: $0["prompts"].string ?? "", rulesJSON: $0["rules"].string ?? "",
                                  createdAt: $0["created_at"].string ?? "", completedAt: $0["completed_at"].string)
        }
    }

    /// Clips `version` dropped, by reason, most first.
    public func audioDropReasons(version: String) throws(MulanError) -> [(reason: String, count: Int)] {
        try database.select("""
            SELECT reason, COUNT(*) AS n FROM audio_decisions WHERE version = ? AND status = 'dropped'
            GROUP BY reason ORDER BY n DESC, reason
            """, [version]).map { ($0["reason"].string ?? "", $0["n"].int ?? 0) }
    }

    /// Kept clips of ingested tracks without a decision of `version`.
    public func undecidedClips(version: String) throws(MulanError) -> Int {
        try database.selectFirst("""
            SELECT COUNT(*) AS n FROM clips c JOIN tracks t ON t.id = c.track_rowid
            WHERE c.status = 'kept' AND t.status = 'ingested'
              AND NOT EXISTS (SELECT 1 FROM audio_decisions d WHERE d.version = ? AND d.clip_id = c.id)
            """, [version])?["n"].int ?? 0
    }

    static func checkIdentifier(_ name: String) throws(MulanError) {
        guard !name.isEmpty, name.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }) else {
            throw MulanError(.internalError, "\(name) is not a table or column name", hint: "report this as a bug in mulan-report")
        }
    }
}
