import Foundation
import MulanCore

/// The figures a corpus-wide text filter rule needs from every worker part, as tables (`summary_*`):
/// kept tags with the number of distinct tracks carrying them, playlists with their number of member
/// tracks, and the description sentences that reached the duplicate check, with their fingerprints
/// and their place in the global order. Tracks never span parts, so counts add up across parts.
///
/// A summary is either the run's own (temporary tables of the run's connection: a single process, or
/// a worker's local phase before it publishes them) or a worker's published summary file, opened
/// read-only and immutable by the global phase.
public struct TextFilterSummary {
    let database: Database
    let schema: String

    init(database: Database, schema: String) {
        self.database = database
        self.schema = schema
    }

    /// Opens a worker's published summary file (`…summary.sqlite`), read-only and immutable.
    public init(publishedAt path: String) throws(MulanError) {
        database = try Database(path: path, immutable: true)
        schema = "main"
    }

    /// Which version, worker and number of workers the summary was written for (nil: no such row).
    public func meta() throws(MulanError) -> (version: String?, worker: Int?, workers: Int?)? {
        try database.selectFirst("SELECT version, worker, workers FROM \(schema).summary_meta")
            .map { ($0["version"].string, $0["worker"].int, $0["workers"].int) }
    }

    /// How many checked description sentences the summary holds.
    public func candidateCount() throws(MulanError) -> Int {
        try database.selectFirst("SELECT COUNT(*) AS sentences FROM \(schema).summary_candidates")?["sentences"].int ?? 0
    }

    /// The summary's checked sentences in the global order (`SentenceCandidate`), pulled one at a time.
    public func candidates() throws(MulanError) -> SentenceCandidateCursor {
        SentenceCandidateCursor(try database.cursor("""
            SELECT container, file, line, track_id, raw_text_id, ordinal, exact, signature, bands
            FROM \(schema).summary_candidates ORDER BY container DESC, file, line, track_id, raw_text_id, ordinal
            """))
    }

    /// Creates the summary tables in `schema` of `db`, replacing earlier ones.
    static func create(_ db: Database, schema: String) throws(MulanError) {
        try db.execute("""
            DROP TABLE IF EXISTS \(schema).summary_tag_freq;
            DROP TABLE IF EXISTS \(schema).summary_group_sizes;
            DROP TABLE IF EXISTS \(schema).summary_candidates;
            DROP TABLE IF EXISTS \(schema).summary_meta;
            CREATE TABLE \(schema).summary_tag_freq (normalized TEXT PRIMARY KEY, tracks INTEGER NOT NULL);
            CREATE TABLE \(schema).summary_group_sizes (group_id TEXT PRIMARY KEY, tracks INTEGER NOT NULL);
            CREATE TABLE \(schema).summary_candidates (
                container INTEGER NOT NULL, file TEXT NOT NULL, line INTEGER NOT NULL, track_id TEXT NOT NULL,
                raw_text_id INTEGER NOT NULL, ordinal INTEGER NOT NULL,
                exact INTEGER NOT NULL, signature TEXT NOT NULL, bands TEXT NOT NULL);
            CREATE TABLE \(schema).summary_meta (
                version TEXT NOT NULL, source TEXT NOT NULL, worker INTEGER NOT NULL, workers INTEGER NOT NULL,
                created_at TEXT NOT NULL);
            """)
    }

    /// The index the replay reads candidates in order with.
    static func index(_ db: Database, schema: String) throws(MulanError) {
        try db.execute("""
            CREATE INDEX \(schema).summary_candidates_order ON summary_candidates
                (container DESC, file, line, track_id, raw_text_id, ordinal)
            """)
    }
}

/// A description sentence that reached the duplicate check, with its place in the global order
/// (from an audio container first, then file, line, track, raw text, its position among the text's
/// checked sentences), its exact hash and its MinHash signature and bands (as the filter writes them).
public struct SentenceCandidate: Sendable {
    public var container: Bool
    public var file: String
    public var line: Int
    public var trackID: String
    public var rawTextID: Int
    public var ordinal: Int
    public var exact: UInt64
    public var signature: String
    public var bands: String

    public init(container: Bool, file: String, line: Int, trackID: String, rawTextID: Int, ordinal: Int, exact: UInt64,
                signature: String, bands: String) {
        self.container = container
        self.file = file
        self.line = line
        self.trackID = trackID
        self.rawTextID = rawTextID
        self.ordinal = ordinal
        self.exact = exact
        self.signature = signature
        self.bands = bands
    }
}

/// A summary's checked sentences, pulled one at a time (`TextFilterSummary.candidates()`).
public final class SentenceCandidateCursor {
    private let cursor: RowCursor

    init(_ cursor: RowCursor) { self.cursor = cursor }

    /// The next sentence, or nil at the end.
    public func next() throws(MulanError) -> SentenceCandidate? {
        guard let r = try cursor.nextRow() else { return nil }
        return SentenceCandidate(container: r["container"].int == 1, file: r["file"].string ?? "", line: r["line"].int ?? 0,
                                 trackID: r["track_id"].string ?? "", rawTextID: r["raw_text_id"].int ?? 0,
                                 ordinal: r["ordinal"].int ?? 0, exact: UInt64(bitPattern: Int64(r["exact"].int ?? 0)),
                                 signature: r["signature"].string ?? "", bands: r["bands"].string ?? "")
    }
}

extension TextFilterStore {
    // MARK: The run's own summary

    /// The run's own summary (temporary tables of this connection).
    public var ownSummary: TextFilterSummary { TextFilterSummary(database: database, schema: "temp") }

    /// Creates the run's own summary tables, empty.
    public func resetOwnSummary() throws(MulanError) {
        try TextFilterSummary.create(database, schema: "temp")
    }

    /// Adds the number of distinct tracks of each kept tag of `version` to the own summary (tracks are
    /// disjoint between parts, so the sum over the parts is the corpus's count).
    public func summarizeKeptTags(version: String) throws(MulanError) {
        try database.run("""
            INSERT INTO temp.summary_tag_freq (normalized, tracks)
            SELECT normalized, COUNT(DISTINCT track_id) FROM text_decisions
            WHERE version = ? AND status = 'kept' GROUP BY normalized
            """, [version])
    }

    /// Adds the number of distinct member tracks of each playlist to the own summary.
    public func summarizePlaylistSizes() throws(MulanError) {
        try database.execute("""
            INSERT INTO temp.summary_group_sizes (group_id, tracks)
            SELECT group_id, COUNT(DISTINCT track_id) FROM raw_texts
            WHERE source = 'playlists' AND group_id IS NOT NULL GROUP BY group_id
            """)
    }

    /// Adds a checked description sentence to the own summary.
    public func recordCandidate(_ c: SentenceCandidate) throws(MulanError) {
        try database.run("""
            INSERT INTO temp.summary_candidates (container, file, line, track_id, raw_text_id, ordinal, exact, signature, bands)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [c.container, c.file, c.line, c.trackID, c.rawTextID, c.ordinal, Int64(bitPattern: c.exact),
                  c.signature, c.bands])
    }

    /// Copies the own summary into a new file at `path` (rollback journal, candidates in the global
    /// order with their index) with its meta row. The file is attached for the copy and detached
    /// again, also on failure; the caller removes a partly written file and renames a finished one.
    public func exportOwnSummary(to path: String, version: String, source: String, worker: Int,
                                 workers: Int) throws(MulanError) {
        try database.run("ATTACH DATABASE ? AS summary_out", [path])
        do {
            try database.execute("PRAGMA summary_out.journal_mode = DELETE")
            try TextFilterSummary.create(database, schema: "summary_out")
            try database.execute("""
                INSERT INTO summary_out.summary_tag_freq SELECT * FROM temp.summary_tag_freq;
                INSERT INTO summary_out.summary_group_sizes SELECT * FROM temp.summary_group_sizes;
                INSERT INTO summary_out.summary_candidates SELECT * FROM temp.summary_candidates
                    ORDER BY container DESC, file, line, track_id, raw_text_id, ordinal;
                """)
            try TextFilterSummary.index(database, schema: "summary_out")
            try database.run("""
                INSERT INTO summary_out.summary_meta (version, source, worker, workers, created_at) VALUES (?, ?, ?, ?, ?)
                """, [version, source, worker, workers, Timestamp.now()])
            try database.execute("DETACH DATABASE summary_out")
        } catch {
            try? database.execute("DETACH DATABASE summary_out")
            throw error
        }
    }

    // MARK: The corpus's figures

    /// `temp.filter_global_freq`: every part's tag frequencies, summed (what `dropRareTags` and
    /// `dropTagsOverMaximumPerTrack` read).
    public func sumTagFrequencies(_ summaries: [TextFilterSummary]) throws(MulanError) {
        try sumCounts(summaries, into: "filter_global_freq", key: "normalized", from: "summary_tag_freq")
    }

    /// `temp.filter_global_sizes`: every part's playlist sizes, summed (what `dropPlaylistsOutsideSizes` reads).
    public func sumGroupSizes(_ summaries: [TextFilterSummary]) throws(MulanError) {
        try sumCounts(summaries, into: "filter_global_sizes", key: "group_id", from: "summary_group_sizes")
    }

    /// `temp.TABLE (KEY, n)`: the per-key `tracks` counts of every part's `SUMMARY` table, summed
    /// (a track is in one part only, so counts add up).
    private func sumCounts(_ summaries: [TextFilterSummary], into table: String, key: String,
                           from summary: String) throws(MulanError) {
        try database.execute("""
            CREATE TEMP TABLE IF NOT EXISTS \(table) (\(key) TEXT PRIMARY KEY, n INTEGER NOT NULL);
            DELETE FROM temp.\(table);
            """)
        for s in summaries {
            let rows = try s.database.cursor("SELECT \(key), tracks FROM \(s.schema).\(summary)")
            while let row = try rows.nextRow() {
                try database.run("""
                    INSERT INTO temp.\(table) (\(key), n) VALUES (?, ?)
                    ON CONFLICT (\(key)) DO UPDATE SET n = n + excluded.n
                    """, [row[key], row["tracks"]])
            }
        }
    }

    // MARK: Duplicate replay

    /// Empties (creating it if needed) the list of this part's sentences the replay found duplicate.
    public func resetDuplicateOutcomes() throws(MulanError) {
        try database.execute("""
            CREATE TEMP TABLE IF NOT EXISTS filter_outcomes (
                raw_text_id INTEGER NOT NULL, ordinal INTEGER NOT NULL, reason TEXT NOT NULL,
                PRIMARY KEY (raw_text_id, ordinal));
            DELETE FROM temp.filter_outcomes;
            """)
    }

    /// Records that checked sentence `ordinal` of raw text `rawTextID` is a duplicate (`reason`).
    public func recordDuplicateOutcome(rawTextID: Int, ordinal: Int, reason: String) throws(MulanError) {
        try database.run("INSERT INTO temp.filter_outcomes (raw_text_id, ordinal, reason) VALUES (?, ?, ?)",
                         [rawTextID, ordinal, reason])
    }

    /// Calls `body` with each recorded duplicate (raw text id, sentence ordinal, reason) in raw text
    /// and ordinal order, one row in memory at a time (`body` may write meanwhile).
    public func forEachDuplicateOutcome(_ body: (_ rawTextID: Int, _ ordinal: Int, _ reason: String) throws -> Void) throws {
        try database.forEachRow("SELECT raw_text_id, ordinal, reason FROM temp.filter_outcomes ORDER BY raw_text_id, ordinal") { row in
            guard let id = row["raw_text_id"].int, let ordinal = row["ordinal"].int, let reason = row["reason"].string else { return }
            try body(id, ordinal, reason)
        }
    }

    /// A new, empty sentence index in temporary tables of this connection.
    public func sentenceIndex() throws(MulanError) -> SentenceIndexTables {
        try SentenceIndexTables(database: database)
    }
}

/// Exact and near-duplicate sentence lookups in temporary SQLite tables (on disk, so memory stays
/// bounded however many sentences a source has): the exact hashes seen, and the MinHash signatures
/// recorded with their LSH bands.
public struct SentenceIndexTables {
    let database: Database

    /// Creates the tables if needed and empties them.
    init(database: Database) throws(MulanError) {
        self.database = database
        try database.execute("""
            CREATE TEMP TABLE IF NOT EXISTS seen_sentences (hash INTEGER PRIMARY KEY);
            CREATE TEMP TABLE IF NOT EXISTS sentence_signatures (id INTEGER PRIMARY KEY, signature TEXT NOT NULL);
            CREATE TEMP TABLE IF NOT EXISTS sentence_bands (band INTEGER NOT NULL, signature_id INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS temp.sentence_bands_band ON sentence_bands(band);
            DELETE FROM seen_sentences; DELETE FROM sentence_signatures; DELETE FROM sentence_bands;
            """)
    }

    /// Records the exact hash of a sentence; true when it was recorded before.
    public func recordExact(_ hash: UInt64) throws(MulanError) -> Bool {
        try database.run("INSERT OR IGNORE INTO seen_sentences (hash) VALUES (?)", [Int64(bitPattern: hash)])
        return database.changes == 0
    }

    /// The ids of the recorded signatures that have `band` among their bands.
    public func signatureIDs(band: UInt64) throws(MulanError) -> [Int] {
        try database.select("SELECT signature_id FROM sentence_bands WHERE band = ?", [Int64(bitPattern: band)])
            .compactMap { $0["signature_id"].int }
    }

    /// The recorded signature `id` (nil: no such signature).
    public func signature(id: Int) throws(MulanError) -> String? {
        try database.selectFirst("SELECT signature FROM sentence_signatures WHERE id = ?", [id])?["signature"].string
    }

    /// Records a signature with its bands.
    public func add(signature: String, bands: [UInt64]) throws(MulanError) {
        try database.run("INSERT INTO sentence_signatures (signature) VALUES (?)", [signature])
        let id = database.lastInsertRowID
        for band in bands {
            try database.run("INSERT INTO sentence_bands (band, signature_id) VALUES (?, ?)", [Int64(bitPattern: band), id])
        }
    }
}
