import Foundation
import MulanCatalog
import MulanCore
import MulanFormats
import MulanText

/// Where the global phase reads one part's summary: a table set in `schema` of `database` (the
/// run's own connection and `temp` for a single process; a worker's published summary file,
/// opened immutable, otherwise).
struct SummarySource {
    let database: Database
    let schema: String
}

/// The figures a corpus-wide rule needs from every part, as tables (`summary_*`): kept tags with
/// the number of distinct tracks carrying them, playlists with their number of member tracks, and
/// the description sentences that reached the duplicate check, with their fingerprints and their
/// place in the global order. Tracks never span parts, so counts add up across parts.
enum SummaryTables {
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

    /// `temp.filter_global_freq`: every part's tag frequencies, summed.
    static func sumTagFrequencies(_ db: Database, _ summaries: [SummarySource]) throws(MulanError) {
        try sumCounts(db, summaries, into: "filter_global_freq", key: "normalized", from: "summary_tag_freq")
    }

    /// `temp.filter_global_sizes`: every part's playlist sizes, summed.
    static func sumGroupSizes(_ db: Database, _ summaries: [SummarySource]) throws(MulanError) {
        try sumCounts(db, summaries, into: "filter_global_sizes", key: "group_id", from: "summary_group_sizes")
    }

    /// `temp.TABLE (KEY, n)`: the per-key `tracks` counts of every part's `SUMMARY` table, summed
    /// (a track is in one part only, so counts add up).
    private static func sumCounts(_ db: Database, _ summaries: [SummarySource], into table: String, key: String,
                                  from summary: String) throws(MulanError) {
        try db.execute("""
            CREATE TEMP TABLE IF NOT EXISTS \(table) (\(key) TEXT PRIMARY KEY, n INTEGER NOT NULL);
            DELETE FROM temp.\(table);
            """)
        for s in summaries {
            let rows = try s.database.cursor("SELECT \(key), tracks FROM \(s.schema).\(summary)")
            while let row = try rows.next() {
                try db.run("""
                    INSERT INTO temp.\(table) (\(key), n) VALUES (?, ?)
                    ON CONFLICT (\(key)) DO UPDATE SET n = n + excluded.n
                    """, [row[0], row[1]])
            }
        }
    }
}

/// A description sentence's place in the global order in which "earlier in the source" is meant:
/// texts read from audio containers first (by the track's manifest file and line), then texts
/// loaded from annotation files (by file and line); then track id, the text's catalog id and the
/// sentence's position among the text's checked sentences. Everything but the catalog id is the
/// same whichever part holds the text, and the catalog id only orders texts of one track, which
/// always share a part. Strings compare by their UTF-8 bytes, as SQLite's BINARY collation does.
struct CandidateKey {
    var container: Bool
    var file: String
    var line: Int
    var track: String
    var rawTextID: Int
    var ordinal: Int

    static func precedes(_ a: CandidateKey, _ b: CandidateKey) -> Bool {
        if a.container != b.container { return a.container }
        if a.file != b.file { return a.file.utf8.lexicographicallyPrecedes(b.file.utf8) }
        if a.line != b.line { return a.line < b.line }
        if a.track != b.track { return a.track.utf8.lexicographicallyPrecedes(b.track.utf8) }
        if a.rawTextID != b.rawTextID { return a.rawTextID < b.rawTextID }
        return a.ordinal < b.ordinal
    }
}

/// The description filter's duplicate index during the local phase: it answers "not seen" and
/// records each checked sentence (its exact hash, MinHash signature and bands) in
/// `temp.summary_candidates`, so that the global phase can replay every part's sentences in the
/// global order and find the real answers.
final class CandidateRecorder: SentenceIndex {
    private let db: Database
    private var key = CandidateKey(container: false, file: "", line: 0, track: "", rawTextID: 0, ordinal: 0)
    private var exact: UInt64 = 0
    private(set) var recorded = 0

    init(database: Database) {
        db = database
    }

    /// The text whose sentences come next.
    func begin(_ key: CandidateKey) {
        self.key = key
    }

    func seenExact(_ hash: UInt64) throws -> Bool {
        exact = hash
        return false
    }

    func nearDuplicate(signature: [UInt64], bands: [UInt64], threshold: Double) throws -> Bool {
        try db.run("""
            INSERT INTO temp.summary_candidates (container, file, line, track_id, raw_text_id, ordinal, exact, signature, bands)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [key.container, key.file, key.line, key.track, key.rawTextID, key.ordinal, Int64(bitPattern: exact),
                  DuplicateReplay.hex(signature), DuplicateReplay.hex(bands)])
        key.ordinal += 1
        recorded += 1
        return false
    }
}

/// Finds description duplicates as one process reading the whole source in the global order
/// would: every part's checked sentences are merged in `CandidateKey` order and put through the
/// same index (`SQLiteSentenceIndex`) the filter uses; the answers for this part's sentences are
/// kept (`temp.filter_outcomes`) and patched into its decisions.
enum DuplicateReplay {
    static func hex(_ values: [UInt64]) -> String { SQLiteSentenceIndex.hex(values) }
    static func numbers(_ text: String) -> [UInt64] { SQLiteSentenceIndex.numbers(text) }

    /// Replays every part's candidates; `own` is the index of this part's summary in `summaries`.
    static func run(_ db: Database, summaries: [SummarySource], own: Int, threshold: Double, total: Int?,
                    console: Console) throws {
        try db.execute("""
            CREATE TEMP TABLE IF NOT EXISTS filter_outcomes (
                raw_text_id INTEGER NOT NULL, ordinal INTEGER NOT NULL, reason TEXT NOT NULL,
                PRIMARY KEY (raw_text_id, ordinal));
            DELETE FROM temp.filter_outcomes;
            """)
        let index = try SQLiteSentenceIndex(database: db)
        var count = total ?? 0
        if total == nil {
            for s in summaries {
                count += try s.database.row("SELECT COUNT(*) FROM \(s.schema).summary_candidates")?[0].int ?? 0
            }
        }
        let progress = ProgressMeter(total: count, unit: "sentences", console: console)
        var merge = try CandidateMerge(summaries)
        while let (candidate, source) = try merge.next() {
            var reason: String?
            if try index.seenExact(candidate.exact) {
                reason = "duplicate"
            } else if try index.nearDuplicate(signature: numbers(candidate.signature), bands: numbers(candidate.bands),
                                              threshold: threshold) {
                reason = "near-duplicate"
            }
            if let reason, source == own {
                try db.run("INSERT INTO temp.filter_outcomes (raw_text_id, ordinal, reason) VALUES (?, ?, ?)",
                           [candidate.key.rawTextID, candidate.key.ordinal, reason])
            }
            progress.advance()
        }
        progress.finish()
    }

    /// The details of one sentence, as `DescriptionFilter` writes them.
    private struct SentenceDetail: Decodable {
        var sentence: String
        var reason: String
        var relevance: Double?
    }

    /// Applies the replay's answers to this part's decisions: the sentences found to be duplicates
    /// are dropped with their reason, and each changed text is rebuilt exactly as the description
    /// filter builds it (kept sentences joined, their token ids, details). Returns the number of
    /// sentences newly dropped, by reason.
    static func patch(_ db: Database, version: String, tokenizer: BertTokenizer) throws -> [String: Int] {
        var dropped: [String: Int] = [:]
        var current: Int?
        var answers: [Int: String] = [:]
        func flush() throws {
            guard let id = current else { return }
            try rewrite(db, version: version, rawTextID: id, answers: answers, tokenizer: tokenizer)
            for reason in answers.values { dropped[reason, default: 0] += 1 }
        }
        try db.forEach("SELECT raw_text_id, ordinal, reason FROM temp.filter_outcomes ORDER BY raw_text_id, ordinal") { row in
            guard let id = row[0].int, let ordinal = row[1].int, let reason = row[2].string else { return }
            if id != current {
                try flush()
                current = id
                answers = [:]
            }
            answers[ordinal] = reason
        }
        try flush()
        return dropped
    }

    private static func rewrite(_ db: Database, version: String, rawTextID: Int, answers: [Int: String],
                                tokenizer: BertTokenizer) throws {
        guard let row = try db.row("""
            SELECT d.details, r.text FROM text_decisions d JOIN raw_texts r ON r.id = d.raw_text_id
            WHERE d.version = ? AND d.raw_text_id = ?
            """, [version, rawTextID]), let details = row[0].string else {
            throw MulanError(.internalError, "the decision of raw text \(rawTextID) in \(version) is missing")
        }
        var sentences = try JSONDecoder().decode([SentenceDetail].self, from: Data(details.utf8))
        var checked = 0
        for i in sentences.indices where sentences[i].reason == "kept" {
            if let reason = answers[checked] { sentences[i].reason = reason }
            checked += 1
        }
        let kept = sentences.filter { $0.reason == "kept" }.map(\.sentence)
        let joined = kept.joined(separator: " ")
        let items = sentences.map { s -> String in
            var item = "{\"sentence\":\(JSONText.quote(s.sentence)),\"reason\":\"\(s.reason)\""
            if let score = s.relevance { item += String(format: ",\"relevance\":%.4f", score) }
            return item + "}"
        }
        let ids = kept.isEmpty ? [] : tokenizer.encode(joined)
        try db.run("""
            UPDATE text_decisions SET status = ?, reason = ?, normalized = ?, token_ids = ?, token_count = ?, details = ?
            WHERE version = ? AND raw_text_id = ?
            """, [kept.isEmpty ? "dropped" : "kept", kept.isEmpty ? "no-sentence-kept" : "kept",
                  kept.isEmpty ? TextNormalizer.normalize(row[1].string ?? "") : joined,
                  kept.isEmpty ? nil : ids.map(String.init).joined(separator: " "), ids.count,
                  "[" + items.joined(separator: ",") + "]", version, rawTextID])
    }
}

/// One checked sentence read back from a summary.
struct Candidate {
    var key: CandidateKey
    var exact: UInt64
    var signature: String
    var bands: String
}

/// Merges the summaries' candidates (each read in `CandidateKey` order) into one ordered stream,
/// with a binary heap over the sources' next rows.
struct CandidateMerge {
    private var cursors: [RowCursor] = []
    private var heap: [(candidate: Candidate, source: Int)] = []

    init(_ summaries: [SummarySource]) throws {
        for (i, s) in summaries.enumerated() {
            let cursor = try s.database.cursor("""
                SELECT container, file, line, track_id, raw_text_id, ordinal, exact, signature, bands
                FROM \(s.schema).summary_candidates ORDER BY container DESC, file, line, track_id, raw_text_id, ordinal
                """)
            cursors.append(cursor)
            if let c = try Self.read(cursor) { push((c, i)) }
        }
    }

    private static func read(_ cursor: RowCursor) throws -> Candidate? {
        guard let r = try cursor.next() else { return nil }
        return Candidate(key: CandidateKey(container: r[0].int == 1, file: r[1].string ?? "", line: r[2].int ?? 0,
                                           track: r[3].string ?? "", rawTextID: r[4].int ?? 0, ordinal: r[5].int ?? 0),
                         exact: UInt64(bitPattern: Int64(r[6].int ?? 0)), signature: r[7].string ?? "",
                         bands: r[8].string ?? "")
    }

    private static func less(_ a: (candidate: Candidate, source: Int), _ b: (candidate: Candidate, source: Int)) -> Bool {
        if CandidateKey.precedes(a.candidate.key, b.candidate.key) { return true }
        if CandidateKey.precedes(b.candidate.key, a.candidate.key) { return false }
        return a.source < b.source
    }

    private mutating func push(_ item: (candidate: Candidate, source: Int)) {
        heap.append(item)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.less(heap[i], heap[parent]) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    /// The next candidate in the global order and the index of the summary it came from.
    mutating func next() throws -> (Candidate, Int)? {
        guard let top = heap.first else { return nil }
        if let following = try Self.read(cursors[top.source]) {
            heap[0] = (following, top.source)
        } else {
            let last = heap.removeLast()
            if heap.isEmpty { return (top.candidate, top.source) }
            heap[0] = last
        }
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var smallest = i
            if l < heap.count && Self.less(heap[l], heap[smallest]) { smallest = l }
            if r < heap.count && Self.less(heap[r], heap[smallest]) { smallest = r }
            if smallest == i { break }
            heap.swapAt(i, smallest)
            i = smallest
        }
        return (top.candidate, top.source)
    }
}
