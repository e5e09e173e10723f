import Foundation
import MulanCore

/// What `mulan-filter --source S` reads and writes: filter versions, the raw texts of a source, the
/// decision of each text (kept or dropped with a reason, normalized text, token ids, details), the
/// corpus-wide rules applied to those decisions, their statistics and the comparison of two versions.
///
/// The part summaries that carry the corpus-wide figures between worker parts, and the sentence
/// index of the duplicate check, are in `TextFilterStore+Summaries.swift`.
public struct TextFilterStore {
    let database: Database

    public init(_ catalog: Catalog) { database = catalog.database }

    /// Runs `body` in a write transaction (`BEGIN IMMEDIATE`); commits on success unless `rollBack`
    /// (a dry run: everything computed, nothing kept), and rolls back on any error.
    public func transaction<T>(rollBack: Bool = false, _ body: () throws -> T) throws -> T {
        try database.execute("BEGIN IMMEDIATE")
        do {
            let value = try body()
            try database.execute(rollBack ? "ROLLBACK" : "COMMIT")
            return value
        } catch {
            try? database.execute("ROLLBACK")
            throw error
        }
    }

    // MARK: Versions

    /// The latest completed version of `source` (dry runs left out), `preferred` first when it is
    /// completed (nil: none).
    public func previousVersion(source: String, preferring preferred: String) throws(MulanError) -> String? {
        try database.selectFirst("""
            SELECT version FROM filter_versions WHERE source = ? AND completed_at IS NOT NULL AND version NOT LIKE '%~dry-run'
            ORDER BY (version = ?) DESC, completed_at DESC LIMIT 1
            """, [source, preferred])?["version"].string
    }

    /// Starts `version` over: its earlier row and decisions go, a new incomplete row is written.
    public func beginVersion(_ version: String, source: String, unfiltered: Bool, config: String,
                             vocabularySHA256: String) throws(MulanError) {
        try database.run("DELETE FROM filter_versions WHERE version = ?", [version])
        try database.run("""
            INSERT INTO filter_versions (version, source, unfiltered, config, vocab_sha256, created_at)
            VALUES (?, ?, ?, ?, ?, ?)
            """, [version, source, unfiltered, config, vocabularySHA256, Timestamp.now()])
    }

    /// When `version` completed (nil: not yet) and its `stats` JSON; nil when there is no such version.
    public func versionState(_ version: String) throws(MulanError) -> (completedAt: String?, stats: String?)? {
        try database.selectFirst("SELECT completed_at, stats FROM filter_versions WHERE version = ?", [version])
            .map { ($0["completed_at"].string, $0["stats"].string) }
    }

    /// Records `stats` (JSON) for `version` without completing it (a worker's local phase).
    public func setStats(version: String, stats: String) throws(MulanError) {
        try database.run("UPDATE filter_versions SET stats = ? WHERE version = ?", [stats, version])
    }

    /// Marks `version` complete with its statistics (JSON).
    public func complete(version: String, stats: String) throws(MulanError) {
        try database.run("UPDATE filter_versions SET completed_at = ?, stats = ? WHERE version = ?",
                         [Timestamp.now(), stats, version])
    }

    /// Deletes `version` and, through the foreign key, its decisions.
    public func deleteVersion(_ version: String) throws(MulanError) {
        try database.run("DELETE FROM filter_versions WHERE version = ?", [version])
    }

    // MARK: Raw texts

    /// How many raw texts `source` has.
    public func rawTextCount(source: String) throws(MulanError) -> Int {
        try database.selectFirst("SELECT COUNT(*) AS texts FROM raw_texts WHERE source = ?", [source])?["texts"].int ?? 0
    }

    /// One raw text of a source.
    public struct RawText: Sendable {
        public var id: Int
        public var trackID: String
        public var text: String
        /// Where the text was read (with `withOrigin` only): from an audio container, and the file and
        /// line it came from (the track's manifest for container texts, the annotation file otherwise;
        /// "" and 0 when not recorded).
        public var fromContainer = false
        public var file = ""
        public var line = 0
    }

    /// Calls `body` for each raw text of `source` in catalog id order, one row in memory at a time
    /// (`body` may write meanwhile). `withOrigin` adds where each text was read (`RawText.file`).
    public func forEachRawText(source: String, withOrigin: Bool, _ body: (RawText) throws -> Void) throws {
        let sql = withOrigin ? """
            SELECT r.id, r.track_id, r.text, r.origin LIKE 'container:%' AS container,
                   CASE WHEN r.origin LIKE 'container:%' THEN COALESCE(t.manifest_file, '') ELSE COALESCE(r.origin_file, '') END AS file,
                   CASE WHEN r.origin LIKE 'container:%' THEN COALESCE(t.manifest_line, 0) ELSE COALESCE(r.origin_line, 0) END AS line
            FROM raw_texts r LEFT JOIN tracks t ON t.track_id = r.track_id WHERE r.source = ? ORDER BY r.id
            """ : "SELECT id, track_id, text FROM raw_texts WHERE source = ? ORDER BY id"
        try database.forEachRow(sql, [source]) { row in
            guard let id = row["id"].int, let track = row["track_id"].string else { return }
            var text = RawText(id: id, trackID: track, text: row["text"].string ?? "")
            if withOrigin {
                text.fromContainer = row["container"].int == 1
                text.file = row["file"].string ?? ""
                text.line = row["line"].int ?? 0
            }
            try body(text)
        }
    }

    // MARK: Decisions

    /// The decision of one raw text.
    public struct Decision: Sendable {
        public var rawTextID: Int
        public var source: String
        public var trackID: String
        public var kept: Bool
        public var reason: String
        public var normalized: String
        /// The token ids of a kept text (nil: none stored, as for a dropped text).
        public var tokenIDs: [Int32]?
        public var details: String?

        public init(rawTextID: Int, source: String, trackID: String, kept: Bool, reason: String, normalized: String,
                    tokenIDs: [Int32]?, details: String?) {
            self.rawTextID = rawTextID
            self.source = source
            self.trackID = trackID
            self.kept = kept
            self.reason = reason
            self.normalized = normalized
            self.tokenIDs = tokenIDs
            self.details = details
        }
    }

    /// Token ids as stored: space-separated decimal numbers.
    static func tokenText(_ ids: [Int32]?) -> String? { ids.map { $0.map(String.init).joined(separator: " ") } }

    /// Records the decision `d` of `version`.
    public func insert(_ d: Decision, version: String) throws(MulanError) {
        try database.run("""
            INSERT INTO text_decisions (version, raw_text_id, source, track_id, status, reason, normalized,
                token_ids, token_count, details)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [version, d.rawTextID, d.source, d.trackID, d.kept ? "kept" : "dropped", d.reason, d.normalized,
                  Self.tokenText(d.tokenIDs), d.tokenIDs?.count ?? 0, d.details])
    }

    /// The stored details of the decision of `rawTextID` in `version` and the raw text itself (nil: no
    /// such decision).
    public func decisionDetails(version: String, rawTextID: Int) throws(MulanError) -> (details: String?, text: String?)? {
        try database.selectFirst("""
            SELECT d.details, r.text FROM text_decisions d JOIN raw_texts r ON r.id = d.raw_text_id
            WHERE d.version = ? AND d.raw_text_id = ?
            """, [version, rawTextID]).map { ($0["details"].string, $0["text"].string) }
    }

    /// Replaces what was decided for raw text `rawTextID` in `version`: kept or dropped, the reason,
    /// the normalized text, the token ids (nil: none stored) and the details.
    public func updateDecision(version: String, rawTextID: Int, kept: Bool, reason: String, normalized: String,
                               tokenIDs: [Int32]?, details: String?) throws(MulanError) {
        try database.run("""
            UPDATE text_decisions SET status = ?, reason = ?, normalized = ?, token_ids = ?, token_count = ?, details = ?
            WHERE version = ? AND raw_text_id = ?
            """, [kept ? "kept" : "dropped", reason, normalized, Self.tokenText(tokenIDs), tokenIDs?.count ?? 0, details,
                  version, rawTextID])
    }

    // MARK: Corpus-wide rules

    /// Tags: drops kept tags that fewer than `minimumTracks` distinct tracks of the whole corpus carry
    /// (`temp.filter_global_freq`, from `sumTagFrequencies`) as `rare`.
    public func dropRareTags(version: String, minimumTracks: Int) throws(MulanError) {
        try database.run("""
            UPDATE text_decisions SET status = 'dropped', reason = 'rare', token_ids = NULL, token_count = 0
            WHERE version = ?1 AND status = 'kept' AND normalized IN (
                SELECT normalized FROM temp.filter_global_freq WHERE n < ?2)
            """, [version, minimumTracks])
    }

    /// Tags: keeps at most `maximum` per track, the most frequent in the corpus first (then the first
    /// read); the others are dropped as `over-max-per-track`.
    public func dropTagsOverMaximumPerTrack(version: String, maximum: Int) throws(MulanError) {
        try database.run("""
            WITH ranked AS (
                SELECT d.raw_text_id, ROW_NUMBER() OVER (
                    PARTITION BY d.track_id ORDER BY f.n DESC, d.raw_text_id) AS r
                FROM text_decisions d JOIN temp.filter_global_freq f ON f.normalized = d.normalized
                WHERE d.version = ?1 AND d.status = 'kept')
            UPDATE text_decisions SET status = 'dropped', reason = 'over-max-per-track', token_ids = NULL,
                token_count = 0
            WHERE version = ?1 AND raw_text_id IN (SELECT raw_text_id FROM ranked WHERE r > ?2)
            """, [version, maximum])
    }

    /// Playlists: drops kept titles of playlists with fewer than `minimumTracks` or more than
    /// `maximumTracks` distinct member tracks in the whole corpus (`temp.filter_global_sizes`, from
    /// `sumGroupSizes`) as `too-few-tracks` or `too-many-tracks`.
    public func dropPlaylistsOutsideSizes(version: String, minimumTracks: Int, maximumTracks: Int) throws(MulanError) {
        try database.run("""
            UPDATE text_decisions SET status = 'dropped',
                reason = CASE WHEN (SELECT s.n FROM temp.filter_global_sizes s JOIN raw_texts r ON r.group_id = s.group_id
                                    WHERE r.id = text_decisions.raw_text_id) < ?2
                         THEN 'too-few-tracks' ELSE 'too-many-tracks' END,
                token_ids = NULL, token_count = 0
            WHERE version = ?1 AND status = 'kept' AND raw_text_id IN (
                SELECT r.id FROM raw_texts r JOIN temp.filter_global_sizes s ON s.group_id = r.group_id
                WHERE r.source = 'playlists' AND (s.n < ?2 OR s.n > ?3))
            """, [version, minimumTracks, maximumTracks])
    }

    /// Keeps the first of identical normalized texts (ignoring case) of a track; the others are
    /// dropped as `duplicate`.
    public func dropDuplicatesPerTrack(version: String) throws(MulanError) {
        try database.run("""
            UPDATE text_decisions SET status = 'dropped', reason = 'duplicate', token_ids = NULL, token_count = 0
            WHERE version = ?1 AND status = 'kept' AND raw_text_id NOT IN (
                SELECT MIN(raw_text_id) FROM text_decisions WHERE version = ?1 AND status = 'kept'
                GROUP BY track_id, lower(normalized))
            """, [version])
    }

    // MARK: Statistics

    /// How many texts `version` keeps or drops, by status and reason.
    public func decisionCounts(version: String) throws(MulanError) -> [(kept: Bool, reason: String?, texts: Int)] {
        try database.select("""
            SELECT status, reason, COUNT(*) AS texts FROM text_decisions WHERE version = ? GROUP BY status, reason
            """, [version]).map { ($0["status"].string == "kept", $0["reason"].string, $0["texts"].int ?? 0) }
    }

    /// The token count of the kept text at `offset` in token-count order (a quantile, without reading
    /// every count into memory).
    public func keptTokenCount(version: String, atOffset offset: Int) throws(MulanError) -> Int {
        try database.selectFirst("""
            SELECT token_count FROM text_decisions WHERE version = ? AND status = 'kept'
            ORDER BY token_count LIMIT 1 OFFSET ?
            """, [version, offset])?["token_count"].int ?? 0
    }

    /// The mean token count of the kept texts of `version`.
    public func meanKeptTokenCount(version: String) throws(MulanError) -> Double {
        try database.selectFirst("SELECT AVG(token_count) AS mean FROM text_decisions WHERE version = ? AND status = 'kept'",
                                 [version])?["mean"].double ?? 0
    }

    /// How many kept texts of `version` have each token count.
    public func keptTokenCountHistogram(version: String) throws(MulanError) -> [(tokens: Int, texts: Int)] {
        try database.select("""
            SELECT token_count, COUNT(*) AS texts FROM text_decisions WHERE version = ? AND status = 'kept' GROUP BY token_count
            """, [version]).compactMap { row in
            guard let n = row["token_count"].int, let count = row["texts"].int else { return nil }
            return (n, count)
        }
    }

    /// The `limit` most frequent kept normalized texts of `version` (ties by text).
    public func topKept(version: String, limit: Int) throws(MulanError) -> [(text: String, count: Int)] {
        try database.select("""
            SELECT normalized, COUNT(*) AS n FROM text_decisions WHERE version = ? AND status = 'kept'
            GROUP BY normalized ORDER BY n DESC, normalized LIMIT ?
            """, [version, limit]).map { ($0["normalized"].string ?? "", $0["n"].int ?? 0) }
    }

    /// The `limit` most frequent dropped normalized texts of `version` with their reason (ties by text).
    public func topDropped(version: String, limit: Int) throws(MulanError) -> [(text: String, count: Int, reason: String?)] {
        try database.select("""
            SELECT normalized, COUNT(*) AS n, reason FROM text_decisions WHERE version = ? AND status = 'dropped'
            GROUP BY normalized, reason ORDER BY n DESC, normalized LIMIT ?
            """, [version, limit]).map { ($0["normalized"].string ?? "", $0["n"].int ?? 0, $0["reason"].string) }
    }

    // MARK: Comparison

    /// How many decisions `version` has.
    public func decisionCount(version: String) throws(MulanError) -> Int {
        try database.selectFirst("SELECT COUNT(*) AS texts FROM text_decisions WHERE version = ?", [version])?["texts"].int ?? 0
    }

    /// How the decisions of `version` differ from those of `other`, per raw text.
    public func differences(version: String, from other: String) throws(MulanError)
        -> (keptToDropped: Int, droppedToKept: Int, reasonChanged: Int, new: Int) {
        let r = try database.selectFirst("""
            SELECT
              SUM(CASE WHEN o.status = 'kept' AND n.status = 'dropped' THEN 1 ELSE 0 END) AS kept_to_dropped,
              SUM(CASE WHEN o.status = 'dropped' AND n.status = 'kept' THEN 1 ELSE 0 END) AS dropped_to_kept,
              SUM(CASE WHEN o.status = n.status AND o.reason != n.reason THEN 1 ELSE 0 END) AS reason_changed,
              SUM(CASE WHEN o.raw_text_id IS NULL THEN 1 ELSE 0 END) AS new_texts
            FROM text_decisions n LEFT JOIN text_decisions o ON o.version = ?2 AND o.raw_text_id = n.raw_text_id
            WHERE n.version = ?1
            """, [version, other])
        return (r?["kept_to_dropped"].int ?? 0, r?["dropped_to_kept"].int ?? 0, r?["reason_changed"].int ?? 0,
                r?["new_texts"].int ?? 0)
    }
}
