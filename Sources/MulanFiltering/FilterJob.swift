import Foundation
import MulanCatalog
import MulanCore
import MulanText

/// `mulan-filter --source S`: decides, for every raw text of one source, kept or dropped with a
/// reason, and writes the normalized text and its token ids under a filter version derived from
/// the configuration. The whole run is one transaction (a killed run leaves the previous state);
/// a dry run computes everything, reports what would change, and rolls back.
public struct FilterJob: Sendable {
    public var workdir: String
    public var source: TextSource
    public var config: FilterConfig
    public var vocabularyPath: String
    public var labelsPath: String?
    public var unfiltered: Bool
    public var dryRun: Bool
    public var console: Console

    /// Bumped when the filtering code changes what it decides for the same configuration.
    public static let codeVersion = 1

    public init(workdir: String, source: TextSource, config: FilterConfig, vocabularyPath: String, labelsPath: String?,
                unfiltered: Bool, dryRun: Bool, console: Console) {
        self.workdir = Paths.absolute(workdir)
        self.source = source
        self.config = config
        self.vocabularyPath = Paths.absolute(vocabularyPath)
        self.labelsPath = labelsPath.map(Paths.absolute)
        self.unfiltered = unfiltered
        self.dryRun = dryRun
        self.console = console
    }

    public func run() throws -> FilterReport {
        let started = Date()
        let lock = try WorkdirLock(workdir: workdir, stage: "mulan-filter")
        defer { withExtendedLifetime(lock) {} }
        let catalog = try Catalog(path: workdir + "/catalog.sqlite")
        let db = catalog.database
        let vocabulary = try WordPieceVocabulary(path: vocabularyPath)
        let tokenizer = BertTokenizer(vocabulary: vocabulary)

        // Resources, and their hashes for the version.
        var model: RelevanceModel?
        var extra = ""
        if source == .descriptions, !unfiltered, !config.descriptions.relevanceModel.isEmpty {
            let path = config.resolve(config.descriptions.relevanceModel)
            model = try RelevanceModel.load(path: path)
            if model?.vocabularySHA256 != vocabulary.sha256 {
                throw MulanError(.usage, "the relevance model \(path) was trained with another vocabulary",
                                 hint: "retrain it with mulan-filter train-relevance --vocab \(vocabularyPath)")
            }
            extra += ";model=" + (try SHA256Digest.hex(ofFile: path).digest)
        }
        var labels: AudioSetLabels?
        if source == .aset {
            let path = labelsPath ?? (config.aset.ontology.isEmpty ? nil : config.resolve(config.aset.ontology))
            if let path {
                labels = try AudioSetLabels.load(path: path)
                extra += ";labels=" + (try SHA256Digest.hex(ofFile: path).digest)
            } else if !unfiltered {
                throw MulanError(.usage, "filtering aset needs the AudioSet ontology",
                                 hint: "pass --labels ontology.json or set aset.ontology in the configuration")
            }
        }
        let configText = unfiltered ? "{}" : config.canonical(source)
        let versionKey = "code=\(Self.codeVersion);source=\(source.rawValue);unfiltered=\(unfiltered);"
            + "config=\(configText);vocab=\(vocabulary.sha256)\(extra)"
        let digest = SHA256Digest.hex(of: Array(versionKey.utf8))
        let version = "\(source.rawValue)-\(unfiltered ? "unfiltered-" : "")\(digest.prefix(12))"
        let writeVersion = dryRun ? version + "~dry-run" : version
        let previous = try db.row("""
            SELECT version FROM filter_versions WHERE source = ? AND completed_at IS NOT NULL AND version NOT LIKE '%~dry-run'
            ORDER BY (version = ?) DESC, completed_at DESC LIMIT 1
            """, [source.rawValue, version])?[0].string

        var report = FilterReport(source: source.rawValue, version: version, unfiltered: unfiltered, dryRun: dryRun)
        let total = try catalog.count("SELECT COUNT(*) FROM raw_texts WHERE source = ?", [source.rawValue])
        let progress = ProgressMeter(total: total, unit: "texts", console: console)
        let index = try SQLiteSentenceIndex(database: db)

        try db.execute("BEGIN IMMEDIATE")
        do {
            try db.run("DELETE FROM filter_versions WHERE version = ?", [writeVersion])
            try db.run("""
                INSERT INTO filter_versions (version, source, unfiltered, config, vocab_sha256, created_at)
                VALUES (?, ?, ?, ?, ?, ?)
                """, [writeVersion, source.rawValue, unfiltered, configText, vocabulary.sha256, Timestamp.now()])
            let tags = source == .tags ? try TagFilter(config: config.tags, tokenizer: tokenizer) : nil
            let playlists = source == .playlists ? try PlaylistFilter(config: config.playlists, tokenizer: tokenizer) : nil
            let aset = source == .aset ? AsetFilter(config: config.aset, labels: labels, tokenizer: tokenizer) : nil
            let descriptions = source == .descriptions
                ? try DescriptionFilter(config: config.descriptions, tokenizer: tokenizer, model: model, index: index) : nil
            var sentenceReasons: [String: Int] = [:]
            var sentences = 0

            try db.forEach("SELECT id, track_id, text FROM raw_texts WHERE source = ? ORDER BY id", [source.rawValue]) { row in
                guard let id = row[0].int, let track = row[1].string else { return }
                let text = row[2].string ?? ""
                let d: TextDecision
                switch source {
                case .tags: d = tags!.decide(text, unfiltered: unfiltered)
                case .playlists: d = playlists!.decide(text, unfiltered: unfiltered)
                case .aset: d = aset!.decide(text, unfiltered: unfiltered)
                case .descriptions:
                    d = try descriptions!.decide(text, unfiltered: unfiltered)
                    sentences += d.sentenceReasons.count
                    for r in d.sentenceReasons where r != "kept" { sentenceReasons[r, default: 0] += 1 }
                }
                try db.run("""
                    INSERT INTO text_decisions (version, raw_text_id, source, track_id, status, reason, normalized,
                        token_ids, token_count, details)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, [writeVersion, id, source.rawValue, track, d.kept ? "kept" : "dropped", d.reason, d.normalized,
                          d.kept ? d.tokenIDs.map(String.init).joined(separator: " ") : nil,
                          d.kept ? d.tokenIDs.count : 0, d.details])
                progress.advance()
            }
            progress.finish()
            if !unfiltered { try applyCorpusRules(db, version: writeVersion) }
            if source == .descriptions {
                report.sentencesTotal = sentences
                report.sentencesKept = sentences - sentenceReasons.values.reduce(0, +)
                report.sentencesDroppedByReason = sentenceReasons
            }
            try collectStatistics(db, version: writeVersion, into: &report)
            if dryRun {
                report.changes = try compare(db, version: writeVersion, with: previous)
            } else if let previous {
                report.changes = try compare(db, version: writeVersion, with: previous == version ? nil : previous)
            }
            report.wallSeconds = Date().timeIntervalSince(started)
            try db.run("UPDATE filter_versions SET completed_at = ?, stats = ? WHERE version = ?",
                       [Timestamp.now(), report.json(), writeVersion])
            try db.execute(dryRun ? "ROLLBACK" : "COMMIT")
        } catch {
            try? db.execute("ROLLBACK")
            throw error
        }
        return report
    }

    /// Rules that need the whole source: for tags, minimum frequency (distinct tracks), one copy per
    /// track, at most N per track (the most frequent kept); for playlists, playlist size bounds and
    /// one copy of a title per track; for aset, one copy of a label per track.
    private func applyCorpusRules(_ db: Database, version: String) throws {
        switch source {
        case .tags:
            try db.run("""
                UPDATE text_decisions SET status = 'dropped', reason = 'rare', token_ids = NULL, token_count = 0
                WHERE version = ?1 AND status = 'kept' AND normalized IN (
                    SELECT normalized FROM text_decisions WHERE version = ?1 AND status = 'kept'
                    GROUP BY normalized HAVING COUNT(DISTINCT track_id) < ?2)
                """, [version, config.tags.minFrequency])
            try dropDuplicatesPerTrack(db, version: version)
            try db.run("""
                WITH freq AS (
                    SELECT normalized, COUNT(DISTINCT track_id) AS n FROM text_decisions
                    WHERE version = ?1 AND status = 'kept' GROUP BY normalized),
                ranked AS (
                    SELECT d.raw_text_id, ROW_NUMBER() OVER (
                        PARTITION BY d.track_id ORDER BY f.n DESC, d.raw_text_id) AS r
                    FROM text_decisions d JOIN freq f ON f.normalized = d.normalized
                    WHERE d.version = ?1 AND d.status = 'kept')
                UPDATE text_decisions SET status = 'dropped', reason = 'over-max-per-track', token_ids = NULL,
                    token_count = 0
                WHERE version = ?1 AND raw_text_id IN (SELECT raw_text_id FROM ranked WHERE r > ?2)
                """, [version, config.tags.maxPerTrack])
        case .playlists:
            try db.run("""
                WITH sizes AS (
                    SELECT group_id, COUNT(DISTINCT track_id) AS n FROM raw_texts
                    WHERE source = 'playlists' AND group_id IS NOT NULL GROUP BY group_id)
                UPDATE text_decisions SET status = 'dropped',
                    reason = CASE WHEN (SELECT n FROM sizes s JOIN raw_texts r ON r.group_id = s.group_id
                                        WHERE r.id = text_decisions.raw_text_id) < ?2
                             THEN 'too-few-tracks' ELSE 'too-many-tracks' END,
                    token_ids = NULL, token_count = 0
                WHERE version = ?1 AND status = 'kept' AND raw_text_id IN (
                    SELECT r.id FROM raw_texts r JOIN sizes s ON s.group_id = r.group_id
                    WHERE r.source = 'playlists' AND (s.n < ?2 OR s.n > ?3))
                """, [version, config.playlists.minTracks, config.playlists.maxTracks])
            try dropDuplicatesPerTrack(db, version: version)
        case .aset:
            try dropDuplicatesPerTrack(db, version: version)
        case .descriptions:
            break  // duplicates were found sentence by sentence
        }
    }

    /// Keeps the first of identical normalized texts of a track.
    private func dropDuplicatesPerTrack(_ db: Database, version: String) throws {
        try db.run("""
            UPDATE text_decisions SET status = 'dropped', reason = 'duplicate', token_ids = NULL, token_count = 0
            WHERE version = ?1 AND status = 'kept' AND raw_text_id NOT IN (
                SELECT MIN(raw_text_id) FROM text_decisions WHERE version = ?1 AND status = 'kept'
                GROUP BY track_id, lower(normalized))
            """, [version])
    }

    private func collectStatistics(_ db: Database, version: String, into report: inout FilterReport) throws {
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
    private func compare(_ db: Database, version: String, with other: String?) throws -> FilterReport.Changes {
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

/// Exact and near-duplicate sentence lookups in temporary SQLite tables (on disk, so memory stays
/// bounded however many sentences a source has).
final class SQLiteSentenceIndex: SentenceIndex {
    let db: Database

    init(database: Database) throws(MulanError) {
        db = database
        try db.execute("""
            CREATE TEMP TABLE IF NOT EXISTS seen_sentences (hash INTEGER PRIMARY KEY);
            CREATE TEMP TABLE IF NOT EXISTS sentence_signatures (id INTEGER PRIMARY KEY, signature TEXT NOT NULL);
            CREATE TEMP TABLE IF NOT EXISTS sentence_bands (band INTEGER NOT NULL, signature_id INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS temp.sentence_bands_band ON sentence_bands(band);
            DELETE FROM seen_sentences; DELETE FROM sentence_signatures; DELETE FROM sentence_bands;
            """)
    }

    func seenExact(_ hash: UInt64) throws -> Bool {
        try db.run("INSERT OR IGNORE INTO seen_sentences (hash) VALUES (?)", [Int64(bitPattern: hash)])
        return db.changes == 0
    }

    func nearDuplicate(signature: [UInt64], bands: [UInt64], threshold: Double) throws -> Bool {
        var candidates = Set<Int>()
        for band in bands {
            for row in try db.rows("SELECT signature_id FROM sentence_bands WHERE band = ?", [Int64(bitPattern: band)]) {
                if let id = row[0].int { candidates.insert(id) }
            }
        }
        for id in candidates.sorted() {
            guard let text = try db.row("SELECT signature FROM sentence_signatures WHERE id = ?", [id])?[0].string else { continue }
            let other = text.split(separator: " ").compactMap { UInt64($0, radix: 16) }
            if MinHasher.similarity(signature, other) >= threshold { return true }
        }
        try db.run("INSERT INTO sentence_signatures (signature) VALUES (?)",
                   [signature.map { String($0, radix: 16) }.joined(separator: " ")])
        let id = db.lastInsertRowID
        for band in bands {
            try db.run("INSERT INTO sentence_bands (band, signature_id) VALUES (?, ?)", [Int64(bitPattern: band), id])
        }
        return false
    }
}
